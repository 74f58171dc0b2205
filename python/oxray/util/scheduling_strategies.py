"""How a task or actor chooses its node: Ray's `scheduling_strategy`
option takes `"DEFAULT"`, `"SPREAD"`, or one of these objects."""


class NodeAffinitySchedulingStrategy:
    """Run on the node `node_id` (a hex id from `get_runtime_context()
    .get_node_id()` or `nodes()`). With `soft=True`, run elsewhere when that
    node is gone or cannot ever fit the task; with `soft=False` the task
    fails instead."""

    def __init__(self, node_id, soft, _spill_on_unavailable=False, _fail_on_unavailable=False):
        if not isinstance(node_id, str):
            raise TypeError(f"node_id must be a hex string, got {type(node_id).__name__}")
        self.node_id = node_id
        self.soft = bool(soft)
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def __repr__(self):
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


class PlacementGroupSchedulingStrategy:
    """Run in a bundle of a placement group: `placement_group_bundle_index`
    picks one (-1: any), and with `placement_group_capture_child_tasks` the
    tasks it submits run in the group too."""

    def __init__(self, placement_group, placement_group_bundle_index=-1, placement_group_capture_child_tasks=None):
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def __repr__(self):
        return (f"PlacementGroupSchedulingStrategy(placement_group={self.placement_group!r}, "
                f"placement_group_bundle_index={self.placement_group_bundle_index})")


class NodeLabelSchedulingStrategy:
    """Ray's label-based scheduling; oxray nodes carry no labels yet, so
    using it raises a clear error at submission."""

    def __init__(self, hard, *, soft=None):
        self.hard = hard
        self.soft = soft
