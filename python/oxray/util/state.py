"""Listing cluster state (Ray's `ray.util.state`)."""

from oxray import _native
from oxray.runtime_context import job_id_hex
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
            "node_id": a["node_id"] or None,
            "death_cause": a["death_message"] or None,
        })
    return out


_FILTER_OPS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b}
_TASK_KEYS = {"task_id", "attempt_number", "name", "func_or_class_name", "state", "type", "job_id", "actor_id",
              "worker_id", "node_id", "error_type"}


def list_tasks(filters=None, limit=100, detail=False):
    """Tasks on the cluster as dicts, as Ray's `list_tasks`: pending,
    running, and recently finished (each owner keeps its last 10,000).
    `filters` is a list of `(key, "=" or "!=", value)`; at most `limit`
    tasks are returned, the newest last."""
    _worker.session()
    checks = []
    for f in filters or []:
        try:
            key, op, value = f
        except (TypeError, ValueError):
            raise ValueError(f"a filter is a (key, predicate, value) tuple, got {f!r}") from None
        if op not in _FILTER_OPS:
            raise ValueError(f"unsupported filter predicate {op!r}: use '=' or '!='")
        if key not in _TASK_KEYS:
            raise ValueError(f"cannot filter tasks on {key!r}; the keys are {sorted(_TASK_KEYS)}")
        checks.append((key, _FILTER_OPS[op], value))
    out = []
    for t in _native.list_tasks():
        row = {
            "task_id": t["task_id"].hex(),
            "attempt_number": t["attempt_number"],
            "name": t["name"],
            "func_or_class_name": t["name"],
            "state": t["state"],
            "type": t["type"],
            "job_id": job_id_hex(t["job_id"]),
            "actor_id": t["actor_id"].hex() or None,
            "worker_id": t["worker_id"].hex() or None,
            "node_id": t["node_id"].hex() or None,
            "error_type": t["error_type"] or None,
        }
        if all(test(str(row[key]), str(value)) for key, test, value in checks):
            out.append(row)
    return out[-limit:] if limit is not None else out


def list_nodes():
    """Every node of the cluster, as dicts."""
    return [
        {"node_id": n["NodeID"], "state": "ALIVE" if n["Alive"] else "DEAD", "node_ip": n["NodeManagerAddress"],
         "node_name": n["NodeManagerHostname"], "is_head_node": n["IsHead"], "resources_total": n["Resources"]}
        for n in _worker.nodes()
    ]


def list_objects():
    """Objects in this node's shared-memory store: size, who created them,
    why they are kept, and whether they are spilled to disk. (Small values
    live inline with their owner and are not listed.)"""
    _worker.session()
    stats = _native.store_stats()
    out = []
    for o in stats["objects"]:
        if o["spilled"]:
            reason = "spilled to disk (its owner still holds a reference)"
        elif o["pins"]:
            reason = f"pinned: mapped by {o['pins']} reader(s)"
        else:
            reason = "held by its owner's ObjectRef"
        out.append({
            "object_id": o["object_id"],
            "object_size": o["size"],
            "creator_pid": o["creator_pid"],
            "pin_reason": reason,
            "spilled": o["spilled"],
        })
    return out


def memory_summary():
    """Totals of the shared-memory store, as a dict."""
    _worker.session()
    s = _native.store_stats()
    return {
        "capacity_bytes": s["capacity"],
        "used_bytes": s["used"],
        "pinned_bytes": s["pinned_bytes"],
        "spilled_bytes": s["spilled_bytes"],
        "spilled_objects": s["spilled_objects"],
        "spill_dir": s["spill_dir"],
        "num_objects": len(s["objects"]),
    }
