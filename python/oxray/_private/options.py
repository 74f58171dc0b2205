"""Checking the options of `@remote` and `.options()`, with Ray's names,
defaults and messages."""

import numbers

# Options accepted for remote functions; those we do not act on yet are
# accepted so that Ray programs run unchanged.
TASK_OPTIONS = {
    "accelerator_type", "enable_task_events", "label_selector", "max_calls", "max_retries",
    "memory", "name", "num_cpus", "num_gpus", "num_returns", "num_return_vals",
    "object_store_memory", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "resources", "retry_exceptions", "runtime_env",
    "scheduling_strategy", "_metadata", "_labels", "fallback_strategy",
}


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
    for key, value in options.items():
        if key not in valid:
            raise ValueError(
                f"Invalid option keyword {key} for {kind}. Valid ones are {sorted(valid)}."
            )
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
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"The keyword '{key}' only accepts 0 or a positive integer, got {value!r}.")
        elif key in ("max_retries", "max_restarts", "max_task_retries") and value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise ValueError(
                    f"The keyword '{key}' only accepts -1, 0 or a positive integer, got {value!r}."
                )
        elif key == "max_concurrency" and value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"max_concurrency must be a positive integer, got {value!r}.")
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
        return self._parent._remote(args, kwargs, self._merged)

    def options(self, **more):
        return self._parent.options(**{**self._overrides, **more})

    def bind(self, *args, **kwargs):
        raise NotImplementedError("DAG building (.bind) is not supported by oxray yet")


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

# Options accepted for actors.
ACTOR_OPTIONS = {
    "accelerator_type", "allow_out_of_order_execution", "concurrency_groups", "enable_task_events",
    "get_if_exists", "label_selector", "lifetime", "max_concurrency", "max_pending_calls", "max_restarts",
    "max_task_retries", "memory", "name", "namespace", "num_cpus", "num_gpus", "object_store_memory",
    "placement_group", "placement_group_bundle_index", "placement_group_capture_child_tasks", "resources",
    "runtime_env", "scheduling_strategy", "_metadata", "_labels", "fallback_strategy",
}


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
