"""`oxray.timeline()`: the tasks and actor calls the cluster ran, as Chrome
trace events (chrome://tracing, Perfetto), shaped as Ray's."""

import json

from oxray import _native
from oxray._private import worker as _worker
from oxray.runtime_context import job_id_hex


def timeline(filename=None):
    """The finished tasks and actor calls of the cluster (each process keeps
    its last 10,000) as a list of Chrome trace events: one complete ("X")
    event per run, on a row per worker process, grouped by node. With
    `filename`, writes them there as JSON and returns None, as Ray does."""
    _worker.session()
    ips = {n["node_id"]: n["ip"] for n in _native.cluster_info()}
    events = []
    for t in _native.list_tasks():
        start, end = t["start_time_us"], t["end_time_us"]
        if not start or not end:
            continue  # not run yet, or running: no complete event
        node = t["node_id"].hex()
        kind = "actor_task" if t["type"] == "ACTOR_TASK" else "task"
        events.append({
            "cat": f"{kind}::{t['name']}",
            "name": f"{kind}::{t['name']}",
            "pid": f"Node {ips.get(node, node[:8])}",
            "tid": f"worker {t['worker_pid']} ({t['worker_id'].hex()[:8]})",
            "ts": start,
            "dur": end - start,
            "ph": "X",
            "cname": "rail_response" if not t["error_type"] else "terrible",
            "args": {
                "task_id": t["task_id"].hex(),
                "job_id": job_id_hex(t["job_id"]),
                "attempt_number": t["attempt_number"],
                "state": t["state"],
                "error_type": t["error_type"] or None,
                "actor_id": t["actor_id"].hex() or None,
                "node_id": node,
                "worker_pid": t["worker_pid"],
            },
        })
    events.sort(key=lambda e: e["ts"])
    if filename is None:
        return events
    with open(filename, "w") as f:
        json.dump(events, f)
    return None
