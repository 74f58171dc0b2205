"""`list_*` and `get_*` of the state API, with Ray's signatures.

Every `list_*` takes `filters` (a list of `(key, "=" | "!=", value)`, all
of which must hold; string values compare case-insensitively), `limit`
(default 100; None for no limit) and `detail` (fill the detail columns
too). Rows are sorted by their id, then limited, as Ray does. `get_*`
returns one row with every column, or None. `address`, `timeout`,
`raise_on_missing_output` and `_explain` are accepted for compatibility:
oxray answers from the cluster this process is connected to (call
`oxray.init()` first).
"""

from oxray._private import worker as _worker
from oxray.util.state import filters as _filters
from oxray.util.state import sources
from oxray.util.state.common import DEFAULT_LIMIT, DEFAULT_RPC_TIMEOUT, ID_COLUMNS, SCHEMAS

_SINGULAR = {"placement-groups": "placement groups"}


def _raw(resource, include_self):
    if resource == "actors":
        return sources.actors()
    if resource == "tasks":
        return sources.tasks()
    if resource == "nodes":
        return sources.nodes()
    if resource == "objects":
        return sources.objects()
    if resource == "placement-groups":
        return sources.placement_groups()
    if resource == "workers":
        return sources.workers(include_self=include_self)
    if resource == "jobs":
        return sources.jobs(include_self=include_self)
    raise ValueError(f"unknown state resource {resource!r}; the resources are {', '.join(SCHEMAS)}")


def _sort_key(resource):
    id_column = ID_COLUMNS[resource]
    if resource == "tasks":
        return lambda r: (r["task_id"], r["attempt_number"])
    if resource == "workers":
        return lambda r: (r["worker_id"] is None, r["worker_id"] or "", r["pid"] or 0)
    return lambda r: r[id_column] or ""


def query(resource, filters=None, limit=DEFAULT_LIMIT, detail=False, include_self=True):
    """The rows of `resource` ("actors", "tasks", "placement-groups", ...)
    that pass `filters`, at most `limit`, and how many passed in all.
    (`include_self=False` leaves out the calling process's own worker and
    job, as the CLI wants.)"""
    _worker.session()
    schema = SCHEMAS[resource]
    checked = _filters.check_filters(filters, schema, _SINGULAR.get(resource, resource))
    rows, total = _filters.apply(_raw(resource, include_self), checked, _sort_key(resource), limit)
    return [schema.from_dict(r, detail=detail) for r in rows], total


def _list(resource, filters, limit, detail):
    return query(resource, filters, limit, detail)[0]


def list_actors(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_RPC_TIMEOUT, detail=False,
                raise_on_missing_output=True, _explain=False):
    """Actors of the cluster, alive and dead, as `ActorState` rows."""
    return _list("actors", filters, limit, detail)


def list_placement_groups(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_RPC_TIMEOUT,
                          detail=False, raise_on_missing_output=True, _explain=False):
    """Placement groups of the cluster as `PlacementGroupState` rows."""
    return _list("placement-groups", filters, limit, detail)


def list_nodes(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_RPC_TIMEOUT, detail=False,
               raise_on_missing_output=True, _explain=False):
    """Nodes of the cluster, alive and dead, as `NodeState` rows."""
    return _list("nodes", filters, limit, detail)


def list_jobs(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_RPC_TIMEOUT, detail=False,
              raise_on_missing_output=True, _explain=False):
    """Jobs (drivers) as `JobState` rows: those with listed tasks, and the
    caller's own."""
    return _list("jobs", filters, limit, detail)


def list_workers(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_RPC_TIMEOUT, detail=False,
                 raise_on_missing_output=True, _explain=False):
    """Worker and driver processes as `WorkerState` rows: the caller, each
    actor's process, and each worker running a task now."""
    return _list("workers", filters, limit, detail)


def list_tasks(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_RPC_TIMEOUT, detail=False,
               exclude_driver=True, raise_on_missing_output=True, _explain=False):
    """Tasks of the cluster as `TaskState` rows, one per attempt: pending,
    running, and recently finished (each owner keeps its last 10,000)."""
    return _list("tasks", filters, limit, detail)


def list_objects(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_RPC_TIMEOUT, detail=False,
                 raise_on_missing_output=True, _explain=False):
    """Objects in every node's shared-memory store as `ObjectState` rows:
    size, the state of the task that made them, who wrote them, why they
    are kept, and whether they are spilled to disk. (Small values live
    inline with their owner and are not listed.)"""
    return _list("objects", filters, limit, detail)


def _get(resource, id):
    rows, _ = query(resource, [(ID_COLUMNS[resource], "=", id)], limit=None, detail=True)
    return rows


def get_actor(id, address=None, timeout=DEFAULT_RPC_TIMEOUT, _explain=False):
    """The actor with hex id `id` as an `ActorState`, or None."""
    rows = _get("actors", id)
    return rows[0] if rows else None


def get_placement_group(id, address=None, timeout=DEFAULT_RPC_TIMEOUT, _explain=False):
    """The placement group with hex id `id` as a `PlacementGroupState`, or None."""
    rows = _get("placement-groups", id)
    return rows[0] if rows else None


def get_node(id, address=None, timeout=DEFAULT_RPC_TIMEOUT, _explain=False):
    """The node with hex id `id` as a `NodeState`, or None."""
    rows = _get("nodes", id)
    return rows[0] if rows else None


def get_worker(id, address=None, timeout=DEFAULT_RPC_TIMEOUT, _explain=False):
    """The worker with hex id `id` as a `WorkerState`, or None."""
    rows = _get("workers", id)
    return rows[0] if rows else None


def get_task(id, address=None, timeout=DEFAULT_RPC_TIMEOUT, _explain=False):
    """The task with hex id `id` (or the task that creates the ObjectRef
    `id`) as a `TaskState`; a list of them when it ran more than once
    (retries); None when it is not listed."""
    if not isinstance(id, str):
        task_id = id.task_id()
        id = task_id if isinstance(task_id, str) else task_id.hex()
    rows = _get("tasks", id)
    if not rows:
        return None
    return rows[0] if len(rows) == 1 else rows


def get_objects(id, address=None, timeout=DEFAULT_RPC_TIMEOUT, _explain=False):
    """The entries of the object with hex id `id` as a list of
    `ObjectState` (empty when no node's store holds it)."""
    return _get("objects", id)
