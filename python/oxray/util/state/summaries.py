"""`summarize_tasks`, `summarize_actors` and `summarize_objects`: counts
per function, class and call site, as Ray's. Each returns a dict keyed by
"cluster" (Ray's shape: `{"cluster": {"summary": {...}, totals...,
"summary_by": ...}}`). `filters` (an oxray extension, as Ray's
SummaryApiOptions) narrows the rows summarized."""

from oxray.util.state.api import query
from oxray.util.state.common import DEFAULT_RPC_TIMEOUT


def _count(counts, key):
    counts[key] = counts.get(key, 0) + 1


def summarize_tasks(address=None, timeout=DEFAULT_RPC_TIMEOUT, raise_on_missing_output=True, _explain=False,
                    filters=None):
    """Tasks grouped by name (the `name` option, else the function's):
    their type and how many are in each state; with the number of normal
    tasks, actor tasks and actor creations."""
    tasks, _ = query("tasks", filters, limit=None)
    summary = {}
    totals = {"NORMAL_TASK": 0, "ACTOR_TASK": 0, "ACTOR_CREATION_TASK": 0}
    for t in tasks:
        key = t.name or t.func_or_class_name
        group = summary.setdefault(key, {"func_or_class_name": key, "type": t.type, "state_counts": {}})
        _count(group["state_counts"], t.state)
        if t.type in totals:
            totals[t.type] += 1
    return {"cluster": {
        "summary": summary,
        "total_tasks": totals["NORMAL_TASK"],
        "total_actor_tasks": totals["ACTOR_TASK"],
        "total_actor_scheduled": totals["ACTOR_CREATION_TASK"],
        "summary_by": "func_name",
    }}


def summarize_actors(address=None, timeout=DEFAULT_RPC_TIMEOUT, raise_on_missing_output=True, _explain=False,
                     filters=None):
    """Actors grouped by class: how many are in each state."""
    actors, _ = query("actors", filters, limit=None)
    summary = {}
    for a in actors:
        group = summary.setdefault(a.class_name, {"class_name": a.class_name, "state_counts": {}})
        _count(group["state_counts"], a.state)
    return {"cluster": {"summary": summary, "total_actors": len(actors), "summary_by": "class"}}


def summarize_objects(address=None, timeout=DEFAULT_RPC_TIMEOUT, raise_on_missing_output=True, _explain=False,
                      filters=None):
    """Objects of every node's store grouped by call site (all under
    "disabled": oxray records no call sites): how many, their size in MiB,
    and counts by creating task state, attempt and reference type.
    `total_num_workers` and `total_num_nodes` count the owners oxray knows
    (None when it knows none)."""
    objects, _ = query("objects", filters, limit=None)
    summary = {}
    owners = {}
    total_size_mb = 0.0
    for o in objects:
        key = o.call_site
        group = summary.setdefault(key, {
            "total_objects": 0, "total_size_mb": 0.0, "total_num_workers": None, "total_num_nodes": None,
            "task_state_counts": {}, "task_attempt_number_counts": {}, "ref_type_counts": {},
        })
        _count(group["task_state_counts"], o.task_status)
        _count(group["task_attempt_number_counts"], str(o.attempt_number))
        _count(group["ref_type_counts"], o.reference_type)
        group["total_objects"] += 1
        if o.object_size is not None and o.object_size >= 0:
            group["total_size_mb"] += o.object_size / 2**20
            total_size_mb += o.object_size / 2**20
        pids, ips = owners.setdefault(key, (set(), set()))
        if o.pid is not None:
            pids.add(o.pid)
        if o.ip is not None:
            ips.add(o.ip)
    for key, (pids, ips) in owners.items():
        summary[key]["total_num_workers"] = len(pids) or None
        summary[key]["total_num_nodes"] = len(ips) or None
    return {"cluster": {
        "summary": summary,
        "total_objects": len(objects),
        "total_size_mb": total_size_mb,
        "callsite_enabled": False,
        "summary_by": "callsite",
    }}
