"""The process-wide session: `init`, `shutdown` and the object API
(`get`, `put`, `wait`, `cancel`) over the native core worker."""

import asyncio
import atexit
import concurrent.futures
import contextvars
import os
import secrets
import sys
import threading

from oxray import _native
from oxray import exceptions
from oxray._private import node as _node
from oxray._private import job_env
from oxray._private import options as _options
from oxray._private import runtime_env_packages
from oxray._private import serialization
from oxray._native import ObjectRef

# Bound once: `get` reads them on every call.
_PICKLED = serialization.PICKLED
_ErrorValue = serialization.ErrorValue
_deserialize = serialization.deserialize
_loads = serialization.pickle.loads


class _Session:
    """What `init` set up in this process."""

    def __init__(self, mode, context, daemon=None, namespace=None, resources=None):
        self.mode = mode
        self.context = context
        self.daemon = daemon
        self.namespace = namespace
        self.resources = resources or {}
        self.registered_functions = set()
        # Worker mode: ids of the GPUs of the task running now.
        self.gpu_ids = []
        # Worker mode: the executor running pushed tasks.
        self.executor = None
        # Worker mode: the placement group the running task (or this actor)
        # is in, and the one its child tasks go to by default.
        self.current_placement_group = None
        self.captured_placement_group = None
        # The runtime_env tasks submitted here start from: the job's (from
        # `init`), or in a worker the running task's.
        self.runtime_env = None
        # The dashboard process `init(include_dashboard=True)` started.
        self.dashboard = None


_session = None
_lock = threading.RLock()

# The task the calling code runs in (a worker's executor sets it): per
# thread, and per asyncio task on an async actor's loop.
RUNNING_TASK = contextvars.ContextVar("oxray_running_task", default=None)


def session():
    """The active session; raises when oxray is not initialized."""
    s = _session
    if s is None:
        raise exceptions.RaySystemError(
            "oxray is not initialized (or was shut down): call oxray.init() before using the API"
        )
    return s


def auto_init():
    """The session, starting a local cluster first when none runs, as Ray's
    first `remote()`, `put`, `get` or `wait` does (connecting to
    `RAY_ADDRESS` when it is set); `RAY_ENABLE_AUTO_CONNECT=0` turns this
    off."""
    s = _session
    if s is not None:
        return s
    if os.environ.get("RAY_ENABLE_AUTO_CONNECT", "1") not in ("0", "false", "False"):
        init(ignore_reinit_error=True)
    return session()


def is_initialized():
    """Whether `init` has been called (and `shutdown` has not)."""
    return _session is not None


# The keyword arguments of Ray's `init` beyond those named in the signature;
# `options.SUPPORT` says which ones oxray does not act on.
_INIT_OPTIONS = {
    "include_dashboard", "dashboard_host", "dashboard_port", "configure_logging", "logging_level",
    "logging_format", "log_to_driver", "runtime_env", "local_mode", "_temp_dir", "_system_config",
    "_memory", "_redis_password", "_node_ip_address", "storage", "job_config", "_enable_object_reconstruction",
    "_metrics_export_port", "_tracing_startup_hook", "logging_config", "labels", "_plasma_directory",
    "_node_name", "object_spilling_directory", "enable_resource_isolation", "system_reserved_cpu",
    "system_reserved_memory", "_cgroup_path", "_include_log_monitor", "dashboard_agent_listen_port",
}


def init(address=None, *, num_cpus=None, num_gpus=None, resources=None, object_store_memory=None,
         ignore_reinit_error=False, namespace=None, **kwargs):
    """Starts an embedded local cluster (or connects to one) and this
    process's core worker. Returns a context describing the session."""
    global _session
    unknown = set(kwargs) - _INIT_OPTIONS
    if unknown:
        raise TypeError(f"init() got an unexpected keyword argument '{sorted(unknown)[0]}'")
    _options.check_support(kwargs, "init()")
    # A submitted job's driver runs in the job's runtime_env (oxray._private.job_env).
    runtime_env, kwargs["job_config"] = job_env.apply_injected(kwargs.get("runtime_env"), kwargs.get("job_config"))
    if kwargs.get("job_config") is not None:
        # The job's runtime_env, namespace and code search path (oxray.job_config.for_init).
        from oxray import job_config as _job_config
        runtime_env, namespace = _job_config.for_init(kwargs["job_config"], runtime_env, namespace)
    if runtime_env is not None:
        _options.check_runtime_env(runtime_env)
        # The job's working_dir and py_modules are packed now (a missing or
        # oversized directory fails before a cluster starts), uploaded below.
        runtime_env = runtime_env_packages.for_job(runtime_env)
    log_to_driver = kwargs.get("log_to_driver", True) is not False
    with _lock:
        if _session is not None:
            if ignore_reinit_error:
                return RayContext(_session)
            raise RuntimeError(
                "Maybe you called oxray.init twice by accident? This error can be suppressed by passing in "
                "'ignore_reinit_error=True' or by calling 'oxray.shutdown()' prior to 'oxray.init()'."
            )
        if namespace is not None and not isinstance(namespace, str):
            raise TypeError(f"namespace must be a string, got {type(namespace).__name__}")
        address = address or os.environ.get("OXRAY_ADDRESS") or os.environ.get("RAY_ADDRESS") or None
        worker_id = secrets.token_hex(16)
        if address not in (None, "local"):
            if num_cpus is not None or num_gpus is not None or resources or object_store_memory is not None:
                raise ValueError(
                    "When connecting to an existing cluster, num_cpus, num_gpus, resources and "
                    "object_store_memory must not be provided."
                )
            _warn_dashboard_options(kwargs, connecting=True)
            socket_path, node_ip = _node.resolve_address(address)
            session_dir = os.path.dirname(socket_path)
            listen = os.path.join(session_dir, f"driver-{os.getpid()}-{worker_id[:6]}.sock")
            context = _native.connect(socket_path, "driver", worker_id, False, listen, node_ip or None,
                                      log_to_driver)
            namespace = namespace or f"anonymous-{secrets.token_hex(8)}"
            _session = _Session("driver", context, None, namespace)
            _native.set_unhandled_error_hook(_report_unhandled)
            _run_driver_hooks()
            _session.runtime_env = runtime_env
            runtime_env_packages.upload_job(runtime_env)
            job_env.record_driver(kwargs["job_config"])
            return RayContext(_session)
        _warn_dashboard_options(kwargs, connecting=False)
        totals = node_resources(num_cpus, num_gpus, resources, object_store_memory, kwargs.get("_memory"))
        session_dir = _node.new_session_dir(base=kwargs.get("_temp_dir"))
        try:
            daemon = _node.LocalDaemon(session_dir, totals, prestart_workers=int(totals["CPU"]),
                                       spill_dir=kwargs.get("object_spilling_directory"),
                                       metrics_port=kwargs.get("_metrics_export_port"))
        except Exception:
            import shutil
            shutil.rmtree(session_dir, ignore_errors=True)
            raise
        try:
            context = _native.connect(daemon.socket_path, "driver", worker_id, True,
                                      os.path.join(session_dir, f"driver-{os.getpid()}.sock"), None, log_to_driver)
        except Exception:
            daemon.process.kill()
            daemon.stop()
            raise
        namespace = namespace or f"anonymous-{secrets.token_hex(8)}"
        _session = _Session("driver", context, daemon, namespace, totals)
        _native.set_unhandled_error_hook(_report_unhandled)
        _run_driver_hooks()
        _session.runtime_env = runtime_env
        runtime_env_packages.upload_job(runtime_env)
        if kwargs.get("include_dashboard"):
            _start_dashboard(_session, kwargs.get("dashboard_host"), kwargs.get("dashboard_port"))
        return RayContext(_session)


def _start_dashboard(s, host, port):
    """Starts the dashboard of the embedded cluster (stopped by `shutdown`);
    when it cannot start, stops the cluster and raises, as Ray does for
    `include_dashboard=True`."""
    from oxray.dashboard import launcher

    try:
        s.dashboard = launcher.start_dashboard(s.daemon.session_dir, s.daemon.session_dir, host, port,
                                               watch_pid=s.daemon.process.pid)
    except ValueError:
        shutdown()  # refused as asked (e.g. exposed without a token)
        raise
    except Exception as e:
        shutdown()
        raise RuntimeError(f"Failed to start the dashboard: {e}") from None


def _warn_dashboard_options(kwargs, connecting):
    """`dashboard_host`/`dashboard_port` act only with `include_dashboard=True`
    on a cluster `init` starts (unlike Ray, `init` starts no dashboard by
    default); say so instead of dropping them silently."""
    import warnings

    given = [k for k in ("dashboard_host", "dashboard_port") if kwargs.get(k) is not None]
    if kwargs.get("include_dashboard") and connecting:
        given.insert(0, "include_dashboard")
    elif kwargs.get("include_dashboard"):
        return
    if given:
        where = ("the cluster's head runs its own dashboard (`oxray start --head`)" if connecting
                 else "oxray.init() starts a dashboard only with include_dashboard=True")
        warnings.warn(f"{', '.join(given)} of init() has no effect here: {where}.", stacklevel=3)


def node_resources(num_cpus, num_gpus, resources, object_store_memory, memory=None):
    """A node's resource totals from `init`'s (or `oxray start`'s)
    arguments, detecting what is not given."""
    for key, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus), ("object_store_memory", object_store_memory),
                       ("_memory", memory)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"{key} must be a non-negative number, got {value!r}")
    resources = dict(resources or {})
    for name, amount in resources.items():
        if name in ("CPU", "GPU"):
            raise ValueError("Use the 'num_cpus' and 'num_gpus' keyword instead of 'CPU' and 'GPU' in 'resources' keyword")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f"resource {name!r} must be a non-negative number, got {amount!r}")
    total_mem = _node.total_memory_bytes()
    totals = {
        "CPU": _node.detect_cpus() if num_cpus is None else num_cpus,
        "GPU": _node.detect_gpus() if num_gpus is None else num_gpus,
        "memory": int(total_mem * 0.7) if memory is None else int(memory),
        "object_store_memory": int(total_mem * 0.3) if object_store_memory is None else int(object_store_memory),
    }
    if totals["GPU"]:
        # As Ray: a node with GPUs offers its accelerator type, which
        # tasks ask for with `accelerator_type=`.
        kind = _node.detect_accelerator_type()
        if kind:
            totals[f"accelerator_type:{kind}"] = 1
    totals.update(resources)
    totals["CPU"] = totals.get("CPU") or 0
    return {k: v for k, v in totals.items() if v or k == "CPU"}


# Called (without arguments) each time this process connects as a driver:
# modules that take over the worker output relayed to the driver register
# here (oxray.experimental.tqdm_ray's progress bars, imported before init).
DRIVER_HOOKS = []


def _run_driver_hooks():
    for hook in list(DRIVER_HOOKS):
        try:
            hook()
        except Exception as e:  # a hook's failure must not fail init
            print(f"oxray: a driver hook failed: {type(e).__name__}: {e}", file=sys.stderr)


def _report_unhandled(data, metadata):
    """Called by the runtime with an error value this process owns that was
    dropped without anyone reading it; silent while
    RAY_IGNORE_UNHANDLED_ERRORS is set, as in Ray."""
    if os.environ.get("RAY_IGNORE_UNHANDLED_ERRORS", "0") not in ("", "0"):
        return
    value = serialization.deserialize(data, metadata)
    error = value.error if isinstance(value, serialization.ErrorValue) else value
    if "INTENDED_USER_EXIT" in str(error):
        return  # the actor ended as asked (exit_actor, __ray_terminate__): nothing went wrong
    _unhandled_error_handler(error)


def _unhandled_error_handler(error):
    """Prints an error nobody handled, as Ray does (replaceable, as Ray's
    `_unhandled_error_handler`)."""
    print(f"Unhandled error (suppress with 'RAY_IGNORE_UNHANDLED_ERRORS=1'): {error}", file=sys.stderr, flush=True)


def connect_worker(daemon_socket, worker_id, session_dir):
    """Connects a worker process's core worker (called by worker_main)."""
    global _session
    context = _native.connect(daemon_socket, "worker", worker_id, False,
                              os.path.join(session_dir, f"w-{worker_id[:16]}.sock"),
                              os.environ.get("OXRAY_NODE_IP") or None)
    _session = _Session("worker", context)
    _native.set_unhandled_error_hook(_report_unhandled)
    return _session


def forget_metrics():
    """Removes this process's `oxray.util.metrics` from the cluster, when it
    recorded any (a clean exit ends its series, as in Ray)."""
    metrics = sys.modules.get("oxray._private.metrics_export")
    if metrics is not None:
        metrics.REGISTRY.forget()


def shutdown():
    """Stops the local cluster this driver started (every daemon and worker
    process) and disconnects. Safe to call when not initialized."""
    global _session
    with _lock:
        s = _session
        _session = None
        if s is None:
            return
        if s.dashboard is not None:
            s.dashboard.stop()
        forget_metrics()
        _native.shutdown(stop_cluster=s.daemon is not None)
        if s.daemon is not None:
            s.daemon.stop()


atexit.register(shutdown)


def _dashboard_url(s):
    """HOST:PORT of the cluster's dashboard (Ray's `dashboard_url`, no
    scheme), or None when it runs none."""
    if s.dashboard is not None:
        return s.dashboard.url.split("://", 1)[1]
    from oxray.dashboard import launcher

    info = launcher.read_ready_file(s.context["session_dir"])
    if info and _node._pid_alive(int(info.get("pid", 0))):
        return info["url"].split("://", 1)[1]
    return None


class RayContext(dict):
    """What `init` returns: a dict of session facts, usable as a context
    manager that shuts down on exit."""

    def __init__(self, s):
        super().__init__(
            node_id=s.context["node_id"],
            session_dir=s.context["session_dir"],
            address=s.context["address"],
            job_id=s.context["job_id"],
        )
        self.dashboard_url = _dashboard_url(s)
        if self.dashboard_url:
            self["webui_url"] = self.dashboard_url
        self.address_info = dict(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutdown()


# --- objects -------------------------------------------------------------

def _raise_if_error(value):
    if isinstance(value, serialization.ErrorValue):
        raise value.error
    return value


def _check_timeout(timeout):
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"'timeout' must be None or a non-negative number, got {timeout!r}")


def get(object_refs, *, timeout=None):
    """The value of one ref, or a list of values for a list of refs. Raises
    the task's exception (as a RayTaskError that is also an instance of the
    original class), or GetTimeoutError after `timeout` seconds."""
    if _session is None:
        auto_init()
    if timeout is not None:
        _check_timeout(timeout)
    if isinstance(object_refs, ObjectRef):
        # One ref: the common case, kept to a single native call and no
        # intermediate lists.
        ((data, metadata, nested),) = _native.get([object_refs], timeout)
        value = _loads(data) if metadata == _PICKLED else _deserialize(data, metadata, nested)
        if isinstance(value, _ErrorValue):
            raise value.error
        return value
    if not isinstance(object_refs, (list, tuple)):
        raise ValueError(
            f"Invalid type of object refs, {type(object_refs)}, is given. 'object_refs' must either be an "
            "ObjectRef or a list of ObjectRefs."
        )
    refs = list(object_refs)
    for r in refs:
        if not isinstance(r, ObjectRef):
            raise ValueError(
                f"'object_refs' must either be an ObjectRef or a list of ObjectRefs; the list contains "
                f"an object of type {type(r).__name__}."
            )
    values = [_deserialize(*p) for p in _native.get(refs, timeout)]
    for v in values:
        _raise_if_error(v)
    return values


def put(value, *, _owner=None):
    """Stores `value` in the object store and returns its ref. With
    `_owner=actor`, the actor owns the object: it outlives this process
    while referenced, and is lost with the actor."""
    if _session is None:
        auto_init()
    if isinstance(value, ObjectRef):
        raise TypeError(
            "Calling 'put' on an ObjectRef is not allowed. If you really want to do this, you can wrap the "
            "ObjectRef in a list and call 'put' on it."
        )
    if _owner is not None:
        return _put_owned_by(value, _owner)
    return _native.put(serialization.serialize(value, "the value passed to put"))


_PUT_OPTIONS = {}


def _put_owned_by(value, owner):
    from oxray.actor import PUT_METHOD, ActorHandle

    if not isinstance(owner, ActorHandle):
        raise TypeError(f"_owner must be an actor handle, got {type(owner).__name__}")
    running = RUNNING_TASK.get()
    if running is not None and running.actor_id == owner._actor_id:
        # The actor itself: it owns what it puts (a call to itself could
        # wait behind the one running).
        return _native.put(serialization.serialize(value, "the value passed to put"))
    (ref,) = get(owner._call(PUT_METHOD, (value,), {}, _PUT_OPTIONS))
    return ref


def wait(object_refs, *, num_returns=1, timeout=None, fetch_local=True):
    """Returns (ready, not_ready) once `num_returns` refs are ready or
    `timeout` seconds pass. Both lists keep the input's order."""
    auto_init()
    if isinstance(object_refs, ObjectRef) or not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"wait() expected a list of ObjectRef, got {type(object_refs)}")
    refs = object_refs if type(object_refs) is list else list(object_refs)
    if not refs:
        return [], []
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns}.")
    if num_returns > len(refs):
        raise ValueError("num_returns cannot be greater than the number of objects provided to wait.")
    if timeout is not None:
        _check_timeout(timeout)
    if not isinstance(fetch_local, bool):
        raise TypeError("fetch_local must be a bool")
    # Element types and uniqueness are checked natively, in one pass.
    try:
        return _native.wait(refs, num_returns, timeout, fetch_local)
    except TypeError:
        from oxray._private.generators import ObjectRefGenerator

        if not any(isinstance(r, ObjectRefGenerator) for r in refs):
            raise
        return _wait_with_generators(refs, num_returns, timeout, fetch_local)


def _wait_with_generators(refs, num_returns, timeout, fetch_local):
    """`wait` over refs and ObjectRefGenerators, as Ray's: a generator is
    ready when its next value (or its end) can be taken without waiting."""
    import time

    from oxray._private.generators import ObjectRefGenerator

    deadline = None if timeout is None else time.monotonic() + timeout
    plain = [r for r in refs if not isinstance(r, ObjectRefGenerator)]
    delay = 0.0005
    while True:
        done = set(_native.wait(plain, len(plain), 0, fetch_local)[0]) if plain else set()
        ready = [r for r in refs if (r.next_ready() if isinstance(r, ObjectRefGenerator) else r in done)]
        if len(ready) >= num_returns or (deadline is not None and time.monotonic() >= deadline):
            ready = ready[:num_returns]
            chosen = {id(r) for r in ready}
            return ready, [r for r in refs if id(r) not in chosen]
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def cancel(object_ref, *, force=False, recursive=True):
    """Cancels the task that produces `object_ref`. A queued task never runs;
    a running one is interrupted (killed with `force=True`). `get` then
    raises TaskCancelledError."""
    session()
    from oxray._private.generators import ObjectRefGenerator

    if isinstance(object_ref, ObjectRefGenerator):
        object_ref = object_ref.completed()
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"cancel() only supports ObjectRef or ObjectRefGenerator, got {type(object_ref)}")
    _native.cancel(object_ref, force, recursive)


def _ref_future(ref):
    """A concurrent.futures.Future that resolves to the ref's value."""
    fut = concurrent.futures.Future()

    def done():
        try:
            value = _raise_if_error(serialization.deserialize(*_native.get([ref], None)[0]))
        except BaseException as e:  # delivered to the future's consumer
            fut.set_exception(e)
        else:
            fut.set_result(value)

    _native.on_ready(ref, done)
    return fut


def _ref_as_future(ref):
    """An asyncio Future (of the running or current event loop) that
    resolves to the ref's value."""
    return asyncio.wrap_future(_ref_future(ref))


def _ref_await(ref):
    return asyncio.wrap_future(_ref_future(ref)).__await__()


# --- cluster -------------------------------------------------------------

def nodes():
    """The cluster's nodes, as Ray's list of dicts."""
    session()
    out = []
    for n in _native.cluster_info():
        resources = dict(n["total"])
        if n["alive"]:
            resources[f"node:{n['ip']}"] = 1.0
            if n["is_head"]:
                resources["node:__internal_head__"] = 1.0
        out.append({
            "NodeID": n["node_id"],
            "Alive": n["alive"],
            "NodeManagerAddress": n["ip"],
            "NodeManagerHostname": n["hostname"],
            "NodeManagerPort": _port_of(n["address"]),
            "NodeName": n["ip"],
            "DaemonAddress": n["address"],
            "Resources": resources if n["alive"] else {},
            "alive": n["alive"],
            "IsHead": n["is_head"],
        })
    return out


def _port_of(address):
    tcp = _node.address_part(address, "tcp")
    return int(tcp.rsplit(":", 1)[1]) if tcp else 0


def cluster_resources():
    """Total resources of the cluster's live nodes."""
    session()
    return _sum_resources("total")


def available_resources():
    """Resources not in use right now on the cluster's live nodes."""
    session()
    return _sum_resources("available")


def _sum_resources(field):
    out = {}
    for n in _native.cluster_info():
        if not n["alive"]:
            continue
        for k, v in n[field].items():
            out[k] = out.get(k, 0.0) + v
        # Ray's per-node resources: the node's address, and the head's marker.
        key = f"node:{n['ip']}"
        out[key] = out.get(key, 0.0) + 1.0
        if n["is_head"]:
            out["node:__internal_head__"] = 1.0
    return out


def get_gpu_ids():
    """The GPU ids assigned to the current task (empty in the driver)."""
    s = session()
    return list(s.gpu_ids)
