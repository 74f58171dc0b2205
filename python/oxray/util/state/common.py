"""The rows the state API returns, shaped as Ray's `ray.util.state.common`.

Each row is a dataclass with Ray's fields in Ray's order; it reads as an
object (`row.state`) and as a dict (`row["state"]`, `row.get("state")`).
A field that oxray does not know is None, never a guess. A few rows carry
oxray's own extra fields after Ray's (marked in their docstrings).
"""

import dataclasses
from dataclasses import dataclass, field, fields

#: How many rows a `list_*` call returns unless told otherwise (Ray's default).
DEFAULT_LIMIT = 100
#: Accepted for Ray compatibility; oxray's queries have their own deadlines.
DEFAULT_RPC_TIMEOUT = 30


def state_column(*, filterable, detail=False, format_fn=None, table=True):
    """A dataclass field with the state API's metadata, as Ray's: whether
    `filters` may name it, whether it is filled only with `detail=True`,
    how the CLI's table writes it, and (oxray) whether the table shows it
    without `--detail`."""
    return field(default=None, metadata={"filterable": filterable, "detail": detail, "format_fn": format_fn,
                                         "table": table})


class Humanify:
    """Readable forms of raw values, as Ray's CLI writes them in tables."""

    @staticmethod
    def memory(x):
        """Bytes as `1.500 GiB` (Ray's format)."""
        for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if x >= size:
                return f"{x / size:.3f} {unit}"
        return f"{x:.3f} B"

    @staticmethod
    def node_resources(resources):
        """A node's resources with its memory amounts in readable units."""
        return {k: Humanify.memory(v) if "memory" in k else v for k, v in resources.items()}


class StateSchema:
    """Base of the state rows: dataclass fields plus dict-style access, as
    Ray's `StateSchema` (`row["key"]`, `row.get(key)`, `row.asdict()`)."""

    @classmethod
    def list_columns(cls, detail=True):
        """The column names in order; without `detail`, only the base ones."""
        return [f.name for f in fields(cls) if detail or not f.metadata.get("detail")]

    @classmethod
    def columns(cls):
        """Every column name."""
        return set(cls.list_columns(detail=True))

    @classmethod
    def filterable_columns(cls):
        """The columns `filters` may name."""
        return {f.name for f in fields(cls) if f.metadata.get("filterable")}

    @classmethod
    def base_columns(cls):
        """The columns filled without `detail`."""
        return set(cls.list_columns(detail=False))

    @classmethod
    def detail_columns(cls):
        """The columns filled with `detail=True` (all of them)."""
        return set(cls.list_columns(detail=True))

    @classmethod
    def table_columns(cls, detail=False):
        """The columns the CLI's table shows (every column with `--detail`)."""
        return [f.name for f in fields(cls)
                if detail or not (f.metadata.get("detail") or not f.metadata.get("table", True))]

    @classmethod
    def humanify(cls, row):
        """A copy of the dict `row` with values made readable for a table."""
        out = dict(row)
        for f in fields(cls):
            fn = f.metadata.get("format_fn")
            if fn is not None and out.get(f.name) is not None:
                out[f.name] = fn(out[f.name])
        return out

    @classmethod
    def from_dict(cls, data, detail=True):
        """A row from a dict of every column; without `detail`, the detail
        columns are None (as Ray's)."""
        keep = cls.columns() if detail else cls.base_columns()
        return cls(**{k: (v if k in keep else None) for k, v in data.items() if k in cls.columns()})

    def asdict(self):
        """The row as a plain dict (a deep copy)."""
        return dataclasses.asdict(self)

    def __getitem__(self, key):
        if not isinstance(key, str) or key not in self.columns():
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key, value):
        if not isinstance(key, str) or key not in self.columns():
            raise KeyError(key)
        setattr(self, key, value)

    def __contains__(self, key):
        return key in self.columns()

    def get(self, key, default=None):
        """The value of column `key`, or `default` when there is no such column."""
        return getattr(self, key, default) if key in self.columns() else default

    def keys(self):
        """The column names, in order."""
        return self.list_columns(detail=True)


@dataclass
class ActorState(StateSchema):
    """An actor, as Ray's `ActorState`. Not known to oxray (None): `job_id`,
    `serialized_runtime_env`, `required_resources`, `is_detached`,
    `placement_group_id`, `repr_name`, the restart breakdowns, `call_site`,
    `label_selector`, `fallback_strategy`."""

    actor_id: str = state_column(filterable=True)
    class_name: str = state_column(filterable=True)
    state: str = state_column(filterable=True)
    job_id: str = state_column(filterable=True)
    name: str = state_column(filterable=True)
    node_id: str = state_column(filterable=True)
    pid: int = state_column(filterable=True)
    ray_namespace: str = state_column(filterable=True)
    serialized_runtime_env: str = state_column(filterable=False, detail=True)
    required_resources: dict = state_column(filterable=False, detail=True)
    death_cause: dict = state_column(filterable=False, detail=True)
    is_detached: bool = state_column(filterable=False, detail=True)
    placement_group_id: str = state_column(filterable=True, detail=True)
    repr_name: str = state_column(filterable=True, detail=True)
    num_restarts: int = state_column(filterable=False, detail=True)
    num_restarts_due_to_lineage_reconstruction: int = state_column(filterable=False, detail=True)
    num_restarts_due_to_node_preemption: int = state_column(filterable=False, detail=True)
    call_site: str = state_column(filterable=False, detail=True)
    label_selector: dict = state_column(filterable=False, detail=True)
    fallback_strategy: dict = state_column(filterable=False, detail=True)


@dataclass
class PlacementGroupState(StateSchema):
    """A placement group, as Ray's `PlacementGroupState`. Not known to oxray
    (None): `creator_job_id`, `stats`, `topology_strategy`,
    `topology_assignments`."""

    placement_group_id: str = state_column(filterable=True)
    name: str = state_column(filterable=True)
    creator_job_id: str = state_column(filterable=True)
    state: str = state_column(filterable=True)
    bundles: list = state_column(filterable=False, detail=True)
    is_detached: bool = state_column(filterable=True, detail=True)
    stats: dict = state_column(filterable=False, detail=True)
    topology_strategy: dict = state_column(filterable=False, detail=True)
    topology_assignments: dict = state_column(filterable=False, detail=True)


@dataclass
class NodeState(StateSchema):
    """A node, as Ray's `NodeState` (`node_name` is the node's IP, Ray's
    default). Not known to oxray (None): `state_message`, `start_time_ms`,
    `end_time_ms`. oxray's nodes carry no labels (`{}`)."""

    node_id: str = state_column(filterable=True)
    node_ip: str = state_column(filterable=True)
    is_head_node: bool = state_column(filterable=True)
    state: str = state_column(filterable=True)
    state_message: str = state_column(filterable=False)
    node_name: str = state_column(filterable=True)
    resources_total: dict = state_column(filterable=False, format_fn=Humanify.node_resources)
    labels: dict = state_column(filterable=False)
    start_time_ms: int = state_column(filterable=False, detail=True)
    end_time_ms: int = state_column(filterable=False, detail=True)


@dataclass
class WorkerState(StateSchema):
    """A worker or driver process, as Ray's `WorkerState`. oxray lists the
    calling process, the processes of its actors, and the workers running
    tasks now; `worker_id` is None for an actor's process that runs no task
    at the moment, and `pid` for a task worker. Not known to oxray (None):
    `exit_type`, `exit_detail`, the launch/start/end times, `debugger_port`,
    `num_paused_threads`."""

    worker_id: str = state_column(filterable=True)
    is_alive: bool = state_column(filterable=True)
    worker_type: str = state_column(filterable=True)
    exit_type: str = state_column(filterable=True)
    node_id: str = state_column(filterable=True)
    ip: str = state_column(filterable=True)
    pid: int = state_column(filterable=True)
    exit_detail: str = state_column(filterable=False, detail=True)
    worker_launch_time_ms: int = state_column(filterable=False, detail=True)
    worker_launched_time_ms: int = state_column(filterable=False, detail=True)
    start_time_ms: int = state_column(filterable=False, detail=True)
    end_time_ms: int = state_column(filterable=False, detail=True)
    debugger_port: int = state_column(filterable=True, detail=True)
    num_paused_threads: int = state_column(filterable=True, detail=True)


@dataclass
class JobState(StateSchema):
    """A job (one driver), as Ray's `JobState` for driver jobs. oxray knows
    the jobs whose tasks it lists plus the caller's own; `entrypoint`,
    `status` ("RUNNING") and `driver_info` only for the caller's own job.
    Not known to oxray (None): `submission_id` (oxray has no job
    submission), `message`, `error_type`, the start/end times, `metadata`,
    `runtime_env`, `driver_agent_http_address`, `driver_exit_code`."""

    job_id: str = state_column(filterable=True)
    submission_id: str = state_column(filterable=True)
    entrypoint: str = state_column(filterable=False)
    type: str = state_column(filterable=True)
    status: str = state_column(filterable=True)
    message: str = state_column(filterable=False)
    error_type: str = state_column(filterable=False)
    driver_info: dict = state_column(filterable=False)
    start_time: int = state_column(filterable=False, detail=True)
    end_time: int = state_column(filterable=False, detail=True)
    metadata: dict = state_column(filterable=False, detail=True)
    runtime_env: dict = state_column(filterable=False, detail=True)
    driver_agent_http_address: str = state_column(filterable=False, detail=True)
    driver_node_id: str = state_column(filterable=False, detail=True)
    driver_exit_code: int = state_column(filterable=False, detail=True)


@dataclass
class TaskState(StateSchema):
    """A task attempt, as Ray's `TaskState`. `func_or_class_name` is the
    task's name (oxray records one name: the `name` option when given, else
    the function's). `worker_pid` is known for actor tasks of actors that
    never restarted; `node_id` and `worker_id` while the task runs.
    `error_message` (detail) is what a failed attempt raised, with its
    traceback, as the worker that ran it reported (the last 16 KiB).
    `language` is always "PYTHON". Not known to oxray (None):
    `parent_task_id`, `required_resources`, `runtime_env_info`,
    `placement_group_id`, `events`, `profiling_data`, `task_log_info`,
    `is_debugger_paused`, `call_site`, `label_selector`,
    `fallback_strategy`."""

    task_id: str = state_column(filterable=True)
    attempt_number: int = state_column(filterable=True)
    name: str = state_column(filterable=True)
    state: str = state_column(filterable=True)
    job_id: str = state_column(filterable=True)
    actor_id: str = state_column(filterable=True)
    type: str = state_column(filterable=True)
    func_or_class_name: str = state_column(filterable=True)
    parent_task_id: str = state_column(filterable=True)
    node_id: str = state_column(filterable=True)
    worker_id: str = state_column(filterable=True)
    worker_pid: int = state_column(filterable=True)
    error_type: str = state_column(filterable=True)
    language: str = state_column(filterable=True, detail=True)
    required_resources: dict = state_column(filterable=False, detail=True)
    runtime_env_info: dict = state_column(filterable=False, detail=True)
    placement_group_id: str = state_column(filterable=True, detail=True)
    events: list = state_column(filterable=False, detail=True)
    profiling_data: dict = state_column(filterable=False, detail=True)
    creation_time_ms: int = state_column(filterable=False, detail=True)
    start_time_ms: int = state_column(filterable=False, detail=True)
    end_time_ms: int = state_column(filterable=False, detail=True)
    task_log_info: dict = state_column(filterable=False, detail=True)
    error_message: str = state_column(filterable=False, detail=True)
    is_debugger_paused: bool = state_column(filterable=True, detail=True)
    call_site: str = state_column(filterable=False, detail=True)
    label_selector: dict = state_column(filterable=False, detail=True)
    fallback_strategy: dict = state_column(filterable=False, detail=True)


@dataclass
class ObjectState(StateSchema):
    """An object in a node's shared-memory store, as Ray's `ObjectState`
    (small values live inline with their owner and are not listed); every
    node's store is listed.
    `task_status` and `attempt_number` come from the task that created it
    when that task is still listed (else "NIL" and None, as Ray);
    `reference_type` is PINNED_IN_MEMORY while a reader maps it, else
    UNKNOWN_STATUS; `call_site` is "disabled" (oxray records no call
    sites). `pid` and `ip` are the owner's (the pid when the owner is a
    process of the node holding the object). Not known to oxray (None):
    `type`. oxray's extra fields: `creator_pid` (the process that wrote
    it), `spilled`, `pin_reason`, and where it is: `node_id`, `node_ip`."""

    object_id: str = state_column(filterable=True)
    object_size: int = state_column(filterable=True, format_fn=Humanify.memory)
    task_status: str = state_column(filterable=True)
    attempt_number: int = state_column(filterable=True)
    reference_type: str = state_column(filterable=True)
    call_site: str = state_column(filterable=True)
    type: str = state_column(filterable=True)
    pid: int = state_column(filterable=True)
    ip: str = state_column(filterable=True)
    creator_pid: int = state_column(filterable=True)
    spilled: bool = state_column(filterable=True)
    pin_reason: str = state_column(filterable=False, table=False)
    node_id: str = state_column(filterable=True, table=False)
    node_ip: str = state_column(filterable=True)


#: Resource name (as the CLI spells it) -> its row class.
SCHEMAS = {
    "actors": ActorState,
    "placement-groups": PlacementGroupState,
    "nodes": NodeState,
    "workers": WorkerState,
    "jobs": JobState,
    "tasks": TaskState,
    "objects": ObjectState,
}

#: Resource -> the column that names a row (what `get_*` looks up).
ID_COLUMNS = {
    "actors": "actor_id",
    "placement-groups": "placement_group_id",
    "nodes": "node_id",
    "workers": "worker_id",
    "jobs": "job_id",
    "tasks": "task_id",
    "objects": "object_id",
}
