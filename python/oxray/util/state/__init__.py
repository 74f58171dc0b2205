"""Listing cluster state, as Ray's `ray.util.state`.

    from oxray.util.state import list_actors, list_tasks, summarize_tasks
    list_actors(filters=[("state", "=", "ALIVE")])[0].pid
    list_tasks(limit=10, detail=True)
    summarize_tasks()["cluster"]["summary"]

`list_*` return rows (`ActorState`, `TaskState`, ...: attribute and item
access), `get_*` one row or None, `summarize_*` dicts. Fields oxray does not
know are None; see each row class in `oxray.util.state.common`.
"""

from oxray import _native
from oxray._private import worker as _worker
from oxray.util.state.api import (
    get_actor,
    get_node,
    get_objects,
    get_placement_group,
    get_task,
    get_worker,
    list_actors,
    list_jobs,
    list_nodes,
    list_objects,
    list_placement_groups,
    list_tasks,
    list_workers,
)
from oxray.util.state.common import (
    ActorState,
    JobState,
    NodeState,
    ObjectState,
    PlacementGroupState,
    TaskState,
    WorkerState,
)
from oxray.util.state.logs import get_log, list_logs
from oxray.util.state.summaries import summarize_actors, summarize_objects, summarize_tasks


def memory_summary():
    """Totals of this node's shared-memory store, as a dict (oxray's)."""
    _worker.session()
    s = _native.store_stats(objects=False)
    return {
        "capacity_bytes": s["capacity"],
        "used_bytes": s["used"],
        "pinned_bytes": s["pinned_bytes"],
        "spilled_bytes": s["spilled_bytes"],
        "spilled_objects": s["spilled_objects"],
        "spill_dir": s["spill_dir"],
        "num_objects": s["num_objects"],
    }


__all__ = [
    "ActorState", "JobState", "NodeState", "ObjectState", "PlacementGroupState", "TaskState", "WorkerState",
    "get_actor", "get_log", "get_node", "get_objects", "get_placement_group", "get_task", "get_worker",
    "list_actors", "list_jobs", "list_logs", "list_nodes", "list_objects", "list_placement_groups", "list_tasks",
    "list_workers", "memory_summary", "summarize_actors", "summarize_objects", "summarize_tasks",
]
