"""Checking the options of `@remote`, `.options()`, `@method` and
`init()`, with Ray's names, defaults and messages.

Every option of Ray's API that oxray accepts either works, is purely
advisory (accepted; a warning says what oxray does not do with it), or is not
supported (a value other than its default raises ValueError naming it), so
that no option is dropped silently. `SUPPORT` records which."""

import numbers
import warnings

from oxray._private import runtime_env_packages

# Options accepted for remote functions.
TASK_OPTIONS = {
    "accelerator_type", "enable_task_events", "label_selector", "max_calls", "max_retries",
    "memory", "name", "num_cpus", "num_gpus", "num_returns", "num_return_vals",
    "object_store_memory", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "resources", "retry_exceptions", "runtime_env",
    "scheduling_strategy", "_metadata", "_labels", "fallback_strategy", "_generator_backpressure_num_objects",
}

# Options accepted for actors.
ACTOR_OPTIONS = {
    "accelerator_type", "allow_out_of_order_execution", "concurrency_groups", "enable_task_events",
    "get_if_exists", "label_selector", "lifetime", "max_concurrency", "max_pending_calls", "max_restarts",
    "max_task_retries", "memory", "name", "namespace", "num_cpus", "num_gpus", "object_store_memory",
    "placement_group", "placement_group_bundle_index", "placement_group_capture_child_tasks", "resources",
    "runtime_env", "scheduling_strategy", "_metadata", "_labels", "fallback_strategy",
}

# Options accepted for actor methods (`@method` and `.options()` on a method).
METHOD_OPTIONS = {
    "num_returns", "name", "concurrency_group", "max_task_retries", "retry_exceptions", "enable_task_events",
    "_generator_backpressure_num_objects", "tensor_transport",
}

ADVISORY = "advisory"
UNSUPPORTED = "unsupported"

# The options oxray does not act on, with what it does instead (advisory)
# or why it cannot (unsupported). Options absent here work as in Ray.
SUPPORT = {
    # tasks and actors
    "object_store_memory": (ADVISORY, "object store reservations are not enforced; the object is stored as usual"),
    "label_selector": (UNSUPPORTED, "oxray's nodes carry no labels"),
    "fallback_strategy": (UNSUPPORTED, "oxray's nodes carry no labels to fall back on"),
    "tensor_transport": (UNSUPPORTED, "objects always travel through the object store"),
    # init()
    # (include_dashboard, dashboard_host and dashboard_port work: see worker.init)
    "dashboard_agent_listen_port": (ADVISORY, "oxray's dashboard runs no per-node agent"),
    "configure_logging": (ADVISORY, "oxray does not configure Python's logging"),
    "logging_level": (ADVISORY, "oxray does not configure Python's logging"),
    "logging_format": (ADVISORY, "oxray does not configure Python's logging"),
    "logging_config": (ADVISORY, "oxray does not configure Python's logging"),
    "_system_config": (ADVISORY, "Ray's internal settings have no oxray counterpart"),
    "_redis_password": (ADVISORY, "oxray runs no Redis"),
    "_node_ip_address": (ADVISORY, "a local cluster listens on a Unix socket only"),
    "_node_name": (ADVISORY, "nodes are named by their ids"),
    "_plasma_directory": (ADVISORY, "the object store lives in /dev/shm"),
    "_include_log_monitor": (ADVISORY, "workers' output reaches the driver through the daemon"),
    "_enable_object_reconstruction": (ADVISORY, "lost objects are always reconstructed where lineage allows"),
    "local_mode": (UNSUPPORTED, "it is deprecated in Ray; tasks always run in worker processes (remove the option)"),
    "storage": (UNSUPPORTED, "Ray removed cluster storage; pass paths to your tasks instead"),
    "_tracing_startup_hook": (UNSUPPORTED, "oxray has no tracing hooks"),
    "labels": (UNSUPPORTED, "oxray's nodes carry no labels"),
    "enable_resource_isolation": (UNSUPPORTED, "oxray does not isolate resources with cgroups"),
    "system_reserved_cpu": (UNSUPPORTED, "oxray does not isolate resources with cgroups"),
    "system_reserved_memory": (UNSUPPORTED, "oxray does not isolate resources with cgroups"),
    "_cgroup_path": (UNSUPPORTED, "oxray does not isolate resources with cgroups"),
}

_warned = set()


def _given(value):
    """Whether an option holds something other than its default (None,
    False, 0 or empty all mean "not given")."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return False
    if isinstance(value, (dict, list, tuple, set, str)) and not value:
        return False
    return True


def check_support(options, what):
    """Raises ValueError for a given option oxray does not support, and
    warns once per process for a given advisory one."""
    for key, value in options.items():
        rule = SUPPORT.get(key)
        if rule is None or not _given(value):
            continue
        kind, reason = rule
        if kind == UNSUPPORTED:
            raise ValueError(f"The option '{key}' of {what} is not supported by oxray: {reason}.")
        if key not in _warned:
            _warned.add(key)
            warnings.warn(f"The option '{key}' of {what} has no effect in oxray: {reason}.", stacklevel=4)


def _check_amount(key, value):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"The keyword '{key}' only accepts None, 0 or a positive number, got {value!r}.")
    if value < 0 or value != value:
        raise ValueError(f"The keyword '{key}' only accepts None, 0 or a positive number, got {value!r}.")
    if key == "num_gpus" and value > 1 and int(value) != value:
        raise ValueError(f"num_gpus greater than 1 must be a whole number, got {value!r}.")


def validate(options, valid, kind):
    """Raises ValueError/TypeError naming the first bad option."""
    for key in options:
        if key not in valid:
            raise ValueError(
                f"Invalid option keyword {key} for {kind}. Valid ones are {sorted(valid)}."
            )
    check_support(options, kind)
    for key, value in options.items():
        if key in ("num_cpus", "num_gpus", "memory", "object_store_memory"):
            _check_amount(key, value)
        elif key == "resources" and value is not None:
            if not isinstance(value, dict):
                raise TypeError(f"The 'resources' option must be a dict, got {type(value).__name__}.")
            for name, amount in value.items():
                if not isinstance(name, str):
                    raise TypeError(f"Resource names must be strings, got {name!r}.")
                if name in ("CPU", "GPU"):
                    raise ValueError(
                        "Use the 'num_cpus' and 'num_gpus' keyword instead of 'CPU' and 'GPU' in "
                        "'resources' keyword"
                    )
                _check_amount(f"resources[{name!r}]", amount)
        elif key in ("num_returns", "num_return_vals") and value is not None:
            if value in ("streaming", "dynamic"):
                pass
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"The keyword '{key}' only accepts None, 0, a positive integer, 'streaming' (for generators), "
                    f"or 'dynamic', got {value!r}."
                )
        elif key == "_generator_backpressure_num_objects" and value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"_generator_backpressure_num_objects must be an integer, got {value!r}.")
        elif key in ("max_retries", "max_restarts", "max_task_retries") and value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise ValueError(
                    f"The keyword '{key}' only accepts -1, 0 or a positive integer, got {value!r}."
                )
        elif key == "max_concurrency" and value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"max_concurrency must be a positive integer, got {value!r}.")
        elif key == "max_calls" and value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"The keyword 'max_calls' only accepts 0 or a positive integer, got {value!r}.")
        elif key == "max_pending_calls" and value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < -1 or value == 0:
                raise ValueError(f"max_pending_calls must be -1 or a positive integer, got {value!r}.")
        elif key in ("accelerator_type", "name", "concurrency_group") and value is not None:
            if not isinstance(value, str):
                raise TypeError(f"The option '{key}' must be a string, got {type(value).__name__}.")
        elif key == "concurrency_groups" and value is not None:
            _check_concurrency_groups(value)
        elif key == "runtime_env" and value is not None:
            check_runtime_env(value)
        elif key == "retry_exceptions" and value is not None:
            ok = isinstance(value, bool) or (
                isinstance(value, (list, tuple))
                and all(isinstance(e, type) and issubclass(e, BaseException) for e in value)
            )
            if not ok:
                raise TypeError(
                    "The keyword 'retry_exceptions' only accepts a bool or a list of exception classes, "
                    f"got {value!r}."
                )


def _check_concurrency_groups(groups):
    if isinstance(groups, (list, tuple)):
        raise ValueError(
            "concurrency_groups must be a dict of group name to max concurrency, for example "
            "{'io': 2, 'compute': 4}."
        )
    if not isinstance(groups, dict):
        raise TypeError(f"concurrency_groups must be a dict, got {type(groups).__name__}.")
    for name, limit in groups.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"A concurrency group's name must be a non-empty string, got {name!r}.")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"The max concurrency of group '{name}' must be a positive integer, got {limit!r}.")


# The runtime_env fields oxray applies; the others Ray knows are refused.
_RUNTIME_ENV_FIELDS = {"env_vars", "config", "working_dir", "py_modules", "excludes"}
_RUNTIME_ENV_KNOWN = {
    "pip", "conda", "uv", "container", "image_uri", "nsight",
    "worker_process_setup_hook", "java_jars", "py_executable", "_ray_release", "_inject_current_ray",
}


def check_runtime_env(env):
    """Raises for a runtime_env oxray cannot honour: only `env_vars`,
    `working_dir`, `py_modules` and `excludes` (and the advisory `config`)
    are applied so far."""
    if not isinstance(env, dict):
        raise TypeError(f"runtime_env must be a dict, got {type(env).__name__}.")
    for field, value in env.items():
        if field in _RUNTIME_ENV_FIELDS:
            continue
        if field in _RUNTIME_ENV_KNOWN:
            if not _given(value):
                continue
            raise ValueError(
                f"runtime_env['{field}'] is not supported by oxray yet: only 'env_vars', 'working_dir', "
                "'py_modules' and 'excludes' are applied. "
                "Install what the tasks need in the nodes' Python environment instead."
            )
        raise ValueError(f"Unknown runtime_env field '{field}'.")
    env_vars = env.get("env_vars")
    if env_vars is not None:
        if not isinstance(env_vars, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()
        ):
            raise TypeError("runtime_env['env_vars'] must be a dict of str to str.")
    runtime_env_packages.check(env)


def env_vars_of(job_env, env):
    """The environment variables a task or actor runs with: the job's,
    overridden per variable by its own `runtime_env` (as Ray merges them),
    as a sorted tuple of pairs (empty: none). Its own working_dir and
    py_modules replace the job's (or parent's) field by field, carried in
    a reserved variable (see runtime_env_packages)."""
    merged = dict((job_env or {}).get("env_vars") or {})
    merged.update((env or {}).get("env_vars") or {})
    runtime_env_packages.add_packages(merged, env)
    return tuple(sorted(merged.items()))


def normalize(options):
    """Folds legacy spellings into the current ones."""
    if "num_return_vals" in options:
        options = dict(options)
        legacy = options.pop("num_return_vals")
        options.setdefault("num_returns", legacy)
    return options


class OptionsWrapper:
    """What `.options(...)` returns: `remote()` with the merged options,
    and `options()` again to override more."""

    def __init__(self, parent, overrides, merged):
        self._parent = parent
        self._overrides = overrides
        self._merged = merged

    def remote(self, *args, **kwargs):
        return self._parent._submit(args, kwargs, self._merged)

    def options(self, **more):
        return self._parent.options(**{**self._overrides, **more})

    def bind(self, *args, **kwargs):
        """A DAG node (`oxray.dag`) with the merged options: a FunctionNode
        for a remote function, a ClassNode for an actor class."""
        from oxray.dag.class_node import ClassNode
        from oxray.dag.function_node import FunctionNode
        from oxray.remote_function import RemoteFunction

        node_type = FunctionNode if isinstance(self._parent, RemoteFunction) else ClassNode
        return node_type(self._parent, args, kwargs, self._merged)


def resource_shape(options, default_cpus):
    """The resources one task (or actor) occupies, as (name, amount) pairs."""
    num_cpus = options.get("num_cpus")
    shape = {"CPU": default_cpus if num_cpus is None else num_cpus}
    if options.get("num_gpus"):
        shape["GPU"] = options["num_gpus"]
    if options.get("memory"):
        shape["memory"] = options["memory"]
    for name, amount in (options.get("resources") or {}).items():
        shape[name] = amount
    if options.get("accelerator_type"):
        # As Ray: a sliver of the accelerator's resource, which only nodes
        # with that accelerator have.
        shape[f"accelerator_type:{options['accelerator_type']}"] = 0.001
    out = [(k, float(v)) for k, v in shape.items() if v]
    group, index = _placement_group_of(options)
    if group is not None:
        from oxray.util.placement_group import group_shape
        out = group_shape(out, group, index)
    return out


def placement_group_context(options):
    """`(group id, capture child tasks)` of the group a task or actor runs
    in, as the runtime carries it to the worker; None outside groups."""
    from oxray.util import scheduling_strategies as ss

    group, _ = _placement_group_of(options)
    if group is None:
        return None
    strategy = options.get("scheduling_strategy")
    if isinstance(strategy, ss.PlacementGroupSchedulingStrategy):
        capture = strategy.placement_group_capture_child_tasks
    else:
        capture = options.get("placement_group_capture_child_tasks")
    return (group.id.binary(), bool(capture))


def with_captured_group(options, session):
    """The options a task submitted from inside a group that captures its
    child tasks runs with: in that group, unless it chose otherwise."""
    captured = getattr(session, "captured_placement_group", None)
    if captured is None or options.get("scheduling_strategy") is not None or options.get("placement_group") is not None:
        return options
    from oxray.util import scheduling_strategies as ss
    from oxray.util.placement_group import PlacementGroup, PlacementGroupID

    group = PlacementGroup(PlacementGroupID(captured))
    strategy = ss.PlacementGroupSchedulingStrategy(group, -1, placement_group_capture_child_tasks=True)
    return {**options, "scheduling_strategy": strategy}


def _placement_group_of(options):
    """The placement group (and bundle index) a task or actor runs in:
    from a PlacementGroupSchedulingStrategy, or Ray's older
    `placement_group=` options."""
    from oxray.util import scheduling_strategies as ss

    strategy = options.get("scheduling_strategy")
    if isinstance(strategy, ss.PlacementGroupSchedulingStrategy):
        return strategy.placement_group, strategy.placement_group_bundle_index
    group = options.get("placement_group")
    if group is not None and group != "default":
        return group, options.get("placement_group_bundle_index", -1)
    return None, None



def placement(options):
    """The `scheduling_strategy` option as the runtime takes it: `None` for
    the default, else `(kind, node_id_hex, soft)`."""
    from oxray.util import scheduling_strategies as ss

    strategy = options.get("scheduling_strategy")
    if strategy is None or strategy == "DEFAULT":
        return None
    if strategy == "SPREAD":
        return ("SPREAD", "", False)
    if isinstance(strategy, ss.NodeAffinitySchedulingStrategy):
        return ("NODE_AFFINITY", strategy.node_id, strategy.soft)
    if isinstance(strategy, ss.PlacementGroupSchedulingStrategy):
        return None  # the group's bundle resources pin it (see placement_group_shape)
    if isinstance(strategy, ss.NodeLabelSchedulingStrategy):
        raise ValueError("NodeLabelSchedulingStrategy is not supported by oxray: its nodes carry no labels")
    raise ValueError(
        f"Invalid scheduling_strategy {strategy!r}: use \"DEFAULT\", \"SPREAD\", "
        "NodeAffinitySchedulingStrategy or PlacementGroupSchedulingStrategy"
    )
