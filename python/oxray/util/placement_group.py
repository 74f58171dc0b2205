"""Placement groups (Ray's `ray.util.placement_group`): bundles of
resources reserved together, on one node or across nodes, for tasks and
actors to run in.

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    ray.get(pg.ready())
    f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    remove_placement_group(pg)
"""

import os

from oxray import _native
from oxray._private import worker as _worker

VALID_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class PlacementGroupID:
    """A placement group's id."""

    def __init__(self, binary):
        self._binary = binary

    def binary(self):
        return self._binary

    def hex(self):
        return self._binary.hex()

    def __eq__(self, other):
        return isinstance(other, PlacementGroupID) and other._binary == self._binary

    def __hash__(self):
        return hash(self._binary)

    def __repr__(self):
        return f"PlacementGroupID({self.hex()})"


class PlacementGroup:
    """A handle on a placement group."""

    def __init__(self, id, bundle_cache=None):
        self.id = id
        self.bundle_cache = bundle_cache

    @property
    def bundle_specs(self):
        """The bundles, as dicts of resource amounts."""
        if self.bundle_cache is None:
            self.bundle_cache = _native.placement_group_info(self.id.binary())["bundles"]
        return self.bundle_cache

    @property
    def bundle_count(self):
        return len(self.bundle_specs)

    def ready(self):
        """An ObjectRef that resolves (to this group) once every bundle is
        reserved."""
        from oxray._private import serialization

        _worker.session()
        return _native.placement_group_ready(self.id.binary(), serialization.serialize(self, "a placement group"))

    def wait(self, timeout_seconds=30):
        """Whether the group is ready within `timeout_seconds`."""
        ready, _ = _worker.wait([self.ready()], timeout=timeout_seconds)
        return bool(ready)

    def __eq__(self, other):
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __reduce__(self):
        return (PlacementGroup, (self.id, self.bundle_cache))

    def __repr__(self):
        return f"PlacementGroup(id={self.id.hex()})"


def _check_bundles(bundles):
    if not isinstance(bundles, (list, tuple)) or not bundles:
        raise ValueError("The placement group `bundles` argument must be a non-empty list of resource dicts, "
                         f"got {bundles!r}.")
    out = []
    for b in bundles:
        if not isinstance(b, dict):
            raise ValueError(f"Each bundle must be a dict of resource amounts, got {b!r}.")
        pairs = []
        for name, amount in b.items():
            if not isinstance(name, str):
                raise ValueError(f"Resource names must be strings, got {name!r}.")
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
                raise ValueError(f"Bundle resource {name!r} must be a non-negative number, got {amount!r}.")
            if amount:
                pairs.append((name, float(amount)))
        if not pairs:
            raise ValueError(f"Bundles cannot be an empty dictionary or resources with only 0 values. Bundles: {bundles}")
        out.append(pairs)
    return out


def placement_group(bundles, strategy="PACK", name="", lifetime=None, _max_cpu_fraction_per_node=None,
                    _soft_target_node_id=None, bundle_label_selector=None):
    """Reserves `bundles` (a list of resource dicts) by `strategy` (PACK,
    SPREAD, STRICT_PACK, STRICT_SPREAD); returns at once, `ready()` tells
    when the reservation is done."""
    session = _worker.session()
    pairs = _check_bundles(bundles)
    if strategy not in VALID_STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy}. Supported strategies are: "
                         f"{list(VALID_STRATEGIES)}.")
    if lifetime not in (None, "detached"):
        raise ValueError(f"Placement group `lifetime` argument must be either `None` or 'detached'. Got {lifetime}.")
    if not isinstance(name, str):
        raise TypeError(f"The name of a placement group must be a string, got {type(name).__name__}")
    if bundle_label_selector:
        raise ValueError("bundle_label_selector is not supported by oxray: its nodes carry no labels")
    pg_id = os.urandom(16)
    info = _native.create_placement_group(pg_id, pairs, strategy, name, session.namespace or "",
                                          lifetime == "detached")
    return PlacementGroup(PlacementGroupID(pg_id), info["bundles"])


def remove_placement_group(placement_group):
    """Removes a group: its resources return to the nodes, and the tasks
    and actors running in it end."""
    _worker.session()
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group expects a PlacementGroup, got {type(placement_group).__name__}")
    _native.remove_placement_group(placement_group.id.binary())


def get_placement_group(placement_group_name):
    """The live group named `placement_group_name` in this namespace."""
    session = _worker.session()
    try:
        info = _native.placement_group_info(b"", placement_group_name, session.namespace or "")
    except Exception as e:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name}") from e
    return PlacementGroup(PlacementGroupID(bytes.fromhex(info["placement_group_id"])), info["bundles"])


def _table_entry(info):
    return {
        "placement_group_id": info["placement_group_id"],
        "name": info["name"],
        "bundles": dict(enumerate(info["bundles"])),
        "bundles_to_node_id": dict(enumerate(info["bundles_to_node_id"])),
        "strategy": info["strategy"],
        "state": info["state"],
        "stats": {},
    }


def placement_group_table(placement_group=None):
    """Every group's state (or one group's), as Ray's table of dicts."""
    _worker.session()
    if placement_group is not None:
        return _table_entry(_native.placement_group_info(placement_group.id.binary()))
    return {g["placement_group_id"]: _table_entry(g) for g in _native.list_placement_groups()}


def get_current_placement_group():
    """The group the current task or actor runs in; None in the driver and
    outside groups."""
    s = _worker.session()
    current = getattr(s, "current_placement_group", None)
    return PlacementGroup(PlacementGroupID(current)) if current else None


def group_shape(shape, placement_group, bundle_index):
    """A task's resource shape inside a group: each resource becomes the
    group's (`CPU_group_<i>_<pg>`, or `CPU_group_<pg>` for any bundle), plus
    a sliver of the bundle marker, as Ray does."""
    if bundle_index is None:
        bundle_index = -1
    if isinstance(bundle_index, bool) or not isinstance(bundle_index, int) or bundle_index < -1:
        raise ValueError(f"placement_group_bundle_index must be an int >= -1, got {bundle_index!r}")
    if bundle_index >= 0 and placement_group.bundle_cache is not None and bundle_index >= len(placement_group.bundle_cache):
        raise ValueError(f"placement_group_bundle_index {bundle_index} is out of range: the group has "
                         f"{len(placement_group.bundle_cache)} bundles")
    pg = placement_group.id.hex()
    suffix = f"_group_{bundle_index}_{pg}" if bundle_index >= 0 else f"_group_{pg}"
    out = [(f"{name}{suffix}", amount) for name, amount in shape]
    out.append((f"bundle{suffix}", 0.001))
    return out
