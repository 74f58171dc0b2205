"""oxray: Ray's core API on a Rust runtime. `import oxray as ray` and use it
as Ray."""

from oxray import actor, exceptions
from oxray._native import ObjectRef
from oxray.actor import ActorClass, ActorHandle, get_actor, kill
from oxray._private.worker import (
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_gpu_ids,
    init,
    is_initialized,
    nodes,
    put,
    shutdown,
    wait,
)
from oxray.remote_function import RemoteFunction
from oxray._private.generators import DynamicObjectRefGenerator, ObjectRefGenerator
from oxray.runtime_context import get_runtime_context
from oxray._private.timeline import timeline

__version__ = "0.1.0"

# Ray's older name for ObjectRef.
ObjectID = ObjectRef


def remote(*args, **kwargs):
    """Turns a function into a remote function (`@oxray.remote` or
    `@oxray.remote(num_cpus=..., ...)`)."""
    if len(args) == 1 and not kwargs and callable(args[0]):
        return _make_remote(args[0], {})
    if args or not kwargs:
        raise TypeError(
            "The @oxray.remote decorator must be applied either with no arguments and no parentheses, "
            "for example '@oxray.remote', or it must be applied using some of the arguments in the list "
            "['num_cpus', 'num_gpus', 'resources', 'memory', 'num_returns', 'max_retries', ...], for "
            "example '@oxray.remote(num_returns=2, resources={\"CustomResource\": 1})'."
        )
    return lambda target: _make_remote(target, kwargs)


def _make_remote(target, options):
    import inspect

    if inspect.isclass(target):
        return ActorClass(target, options)
    if not callable(target):
        raise TypeError("The @oxray.remote decorator must be applied to either a function or a class.")
    return RemoteFunction(target, options)


def method(*args, **kwargs):
    """Annotates an actor method's options (num_returns, ...)."""
    def decorate(m):
        m.__oxray_method_options__ = kwargs
        return m
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


__all__ = [
    "ActorClass", "ActorHandle", "actor", "get_actor", "kill",
    "DynamicObjectRefGenerator", "ObjectID", "ObjectRef", "ObjectRefGenerator", "RemoteFunction", "available_resources", "cancel", "cluster_resources", "exceptions",
    "get", "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "method", "nodes", "put",
    "remote", "shutdown", "timeline", "wait",
]

from oxray import util  # noqa: E402  (Ray makes ray.util available on import)
from oxray import job_config, runtime_env  # noqa: E402  (Ray's `ray.job_config`, `ray.runtime_env`)


def install_as_ray(version=None):
    """Makes `import ray` (here, and in worker processes started from now
    on) resolve to oxray; see `oxray._private.ray_compat`."""
    from oxray._private import ray_compat

    return ray_compat.install_as_ray(version)


def uninstall_as_ray():
    """Undoes `install_as_ray()` in this process."""
    from oxray._private import ray_compat

    return ray_compat.uninstall_as_ray()


__all__ += ["install_as_ray", "uninstall_as_ray"]


def _install_import_hooks():
    # Runs on every `import oxray`, so in worker processes too (the zygote
    # and worker_main import oxray before running anything): `import ray`
    # resolves to oxray where OXRAY_AS_RAY is set, and a worker finds its
    # job's code_search_path modules.
    import os

    from oxray._private import code_search

    if os.environ.get("OXRAY_AS_RAY", "").lower() not in ("", "0", "false", "no", "off"):
        from oxray._private import ray_compat

        ray_compat.install_from_environment()
    if "OXRAY_DAEMON_SOCKET" in os.environ:
        code_search.install()


_install_import_hooks()
