"""Utilities on top of the core API (Ray's `ray.util`): `ActorPool`,
`queue.Queue`, `multiprocessing.Pool`, placement groups, scheduling
strategies and the state API."""

from oxray.util.actor_pool import ActorPool
from oxray.util.serialization import deregister_serializer, inspect_serializability, register_serializer
from oxray.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)



def list_named_actors(all_namespaces=False):
    """The names of the live named actors of the job's namespace; with
    `all_namespaces`, `{"name", "namespace"}` dicts for every namespace."""
    from oxray import _native
    from oxray._private import worker as _worker

    session = _worker.session()
    named = [a for a in _native.list_actors() if a["name"] and a["state"] != "DEAD"]
    if all_namespaces:
        return [{"name": a["name"], "namespace": a["namespace"]} for a in named]
    return [a["name"] for a in named if a["namespace"] == session.namespace]


def get_node_ip_address():
    """The IP address of the node this process runs on."""
    from oxray import _native
    from oxray._private import worker as _worker

    if not _worker.is_initialized():
        return "127.0.0.1"
    me = _native.context()["node_id"]
    for n in _native.cluster_info():
        if n["node_id"] == me:
            return n["ip"] or "127.0.0.1"
    return "127.0.0.1"


__all__ = [
    "ActorPool", "PlacementGroup", "deregister_serializer", "get_node_ip_address", "inspect_serializability",
    "list_named_actors", "register_serializer", "get_current_placement_group", "get_placement_group", "placement_group",
    "placement_group_table", "remove_placement_group",
]
