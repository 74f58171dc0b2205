"""Listing cluster state (Ray's `ray.util.state`)."""

from oxray import _native
from oxray._private import worker as _worker


def list_actors():
    """Every actor of the cluster, as dicts."""
    _worker.session()
    out = []
    for a in _native.list_actors():
        out.append({
            "actor_id": a["actor_id"].hex(),
            "class_name": a["class_name"],
            "state": a["state"],
            "name": a["name"],
            "namespace": a["namespace"],
            "pid": a["pid"],
            "num_restarts": a["num_restarts"],
            "death_cause": a["death_message"] or None,
        })
    return out


def list_nodes():
    """Every node of the cluster, as dicts."""
    return [
        {"node_id": n["NodeID"], "state": "ALIVE" if n["Alive"] else "DEAD",
         "node_name": n["NodeManagerHostname"], "is_head_node": n["IsHead"], "resources_total": n["Resources"]}
        for n in _worker.nodes()
    ]
