"""Utilities on top of the core API (Ray's `ray.util`): `ActorPool`,
`queue.Queue`, `multiprocessing.Pool`, placement groups, scheduling
strategies and the state API."""

from oxray.util.actor_pool import ActorPool
from oxray.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = [
    "ActorPool", "PlacementGroup", "get_current_placement_group", "get_placement_group", "placement_group",
    "placement_group_table", "remove_placement_group",
]
