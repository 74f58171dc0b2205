"""Running libraries that `import ray` themselves on oxray.

`install_as_ray()` puts a finder first on `sys.meta_path` that answers every
`import ray` / `import ray.X` of the process with oxray:

- `ray` is a thin module of its own that forwards every attribute to
  `oxray` but reports a Ray version (`ray.__version__`), so that libraries'
  version checks pass while `oxray.__version__` stays oxray's;
- `ray.X.Y` is the very module object `oxray.X.Y` (also registered under the
  `ray.X.Y` name), so classes are shared and isinstance checks hold between
  code written against either name;
- a few Ray names that oxray spells differently are mapped (`_SPECIAL`);
- `ray.data`, which oxray does not provide but some libraries import at
  start-up, is a stub whose members raise NotImplementedError when used.

`OXRAY_AS_RAY=1` in the environment makes `import oxray` install it, and
`install_as_ray()` sets that variable, so worker processes started
afterwards (they inherit the driver's environment through the node daemon,
and import oxray) alias `ray` too."""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
import warnings

# The environment variable that turns the alias on in every process that
# imports oxray (workers included).
ENV_VAR = "OXRAY_AS_RAY"
# Overrides the Ray version the alias reports.
VERSION_ENV_VAR = "OXRAY_AS_RAY_VERSION"
# The Ray version the alias reports by default: a 2.x release whose
# documented core API oxray follows, recent enough for libraries' minimum
# version checks.
DEFAULT_RAY_VERSION = "2.40.0"


def ray_version():
    """The Ray version oxray reports (`ray.__version__` of the alias, the
    dashboard's `/api/version`): OXRAY_AS_RAY_VERSION, else
    DEFAULT_RAY_VERSION."""
    return os.environ.get(VERSION_ENV_VAR) or DEFAULT_RAY_VERSION

# Ray module names whose oxray module has another name.
_SPECIAL = {
    # Ray's `ray.util.multiprocessing` is a package with `pool` inside;
    # oxray's is one module holding the same names.
    "ray.util.multiprocessing.pool": "oxray.util.multiprocessing",
    # Ray's deprecated top-level spelling, still read by libraries (modin).
    "ray.ray_constants": "oxray._private.ray_constants",
    # Where Ray's ObjectRef (and ObjectID) are defined.
    "ray._raylet": "oxray._native",
}

# Ray names that are packages in Ray but plain modules in oxray: aliased as
# packages so that `import ray.util.multiprocessing.pool` finds its parent
# to be one.
_AS_PACKAGE = {"ray.util.multiprocessing"}

# Ray libraries oxray does not provide, which libraries built on Ray core
# still import at start-up: stubs (and so are their submodules).
_STUBS = ("ray.data",)

# Submodules Ray's `import ray` makes reachable as attributes of `ray`
# (eagerly, or lazily as `ray.data`): the alias imports them on first use.
_LAZY_ATTRIBUTES = {
    "_private", "_raylet", "actor", "cloudpickle", "dag", "data", "exceptions", "job_config",
    "ray_constants", "remote_function", "runtime_context", "runtime_env", "types", "util",
}


def _target_of(fullname):
    """The oxray module a `ray...` module name stands for."""
    if fullname in _SPECIAL:
        return _SPECIAL[fullname]
    return "oxray" + fullname[len("ray"):]


def _is_stub(fullname):
    return any(fullname == s or fullname.startswith(s + ".") for s in _STUBS)


def _ray_module():
    """The `ray` alias module, installing the alias first. A pickled `ray`
    module (a global of a function defined in an aliased driver) is rebuilt
    with this in the process that unpickles it."""
    install_as_ray(_warn_late=False)
    return importlib.import_module("ray")


class RayModule(types.ModuleType):
    """The module `import ray` gives under the alias: every attribute is
    oxray's, except the version (Ray's, see `DEFAULT_RAY_VERSION`) and the
    module's own identity."""

    def __getattr__(self, name):
        import oxray

        try:
            return getattr(oxray, name)
        except AttributeError:
            pass
        if name in _LAZY_ATTRIBUTES:
            try:
                return importlib.import_module(f"ray.{name}")
            except ModuleNotFoundError:
                pass
        raise AttributeError(f"module 'ray' has no attribute '{name}' (oxray does not provide it)")

    def __dir__(self):
        import oxray

        return sorted(set(super().__dir__()) | set(dir(oxray)))

    def __reduce__(self):
        # Pickled by name, a module would need the alias in the process
        # that unpickles it; this rebuilds it there whatever that process's
        # environment says.
        return (_ray_module, ())

    def __repr__(self):
        return f"<module 'ray' (oxray {self.__oxray_version__} as Ray {self.__version__})>"


def _new_ray_module(spec):
    import oxray

    module = RayModule("ray", "Ray's API, served by oxray (see oxray.install_as_ray).")
    module.__version__ = ray_version()
    module.__commit__ = f"oxray-{oxray.__version__}"
    module.__oxray_version__ = oxray.__version__
    module.__file__ = oxray.__file__
    module.__path__ = []  # a package: `ray.X` imports come to the finder
    return module


class _RayLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return _new_ray_module(spec)

    def exec_module(self, module):
        pass


class _AliasLoader(importlib.abc.Loader):
    """Loads `ray.X` as the module object `oxray.X` itself."""

    def __init__(self, target):
        self.target = target
        self._own_spec = None

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self._own_spec = getattr(module, "__spec__", None)
        return module

    def exec_module(self, module):
        alias = module.__spec__.name
        # The import system stamped the alias's spec on the shared module;
        # oxray's module keeps its own (reload, pickling by module name and
        # tracebacks read it).
        if self._own_spec is not None:
            module.__spec__ = self._own_spec
        # A submodule shadowed by a same-named member (`util.placement_group`
        # the function) is registered under its alias now: importing it
        # later then finds it loaded, and the import system does not set
        # the module over the member, which it does on a first load.
        prefix = self.target + "."
        for name, loaded in list(sys.modules.items()):
            child = name[len(prefix):]
            if name.startswith(prefix) and "." not in child and getattr(module, child, loaded) is not loaded:
                sys.modules.setdefault(f"{alias}.{child}", loaded)


class _Unavailable:
    """A member of a stubbed Ray library: using it raises."""

    _where = "ray"

    def __new__(cls, *args, **kwargs):
        raise NotImplementedError(
            f"{cls._where}.{cls.__name__} is not available: oxray provides Ray's core API only "
            f"({cls._where} is a stub under oxray.install_as_ray())."
        )


class _StubModule(types.ModuleType):
    """A Ray library oxray does not provide: importing it works (libraries
    import it at start-up), using any of its members raises
    NotImplementedError."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        # A class, so that `isinstance(x, ray.data.Dataset)` is merely False.
        member = type(name, (_Unavailable,), {"_where": self.__name__, "__module__": self.__name__})
        setattr(self, name, member)
        return member


class _StubLoader(importlib.abc.Loader):
    def create_module(self, spec):
        module = _StubModule(spec.name, f"Stub of {spec.name}: oxray does not provide it.")
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


class RayAliasFinder(importlib.abc.MetaPathFinder):
    """The `sys.meta_path` finder that resolves `ray` and `ray.*` to oxray
    (see the module's docstring)."""

    def find_spec(self, fullname, path=None, target=None):
        """The spec of `ray` or `ray.X` (None for other names, and for
        Ray modules oxray does not have)."""
        if fullname != "ray" and not fullname.startswith("ray."):
            return None
        if fullname == "ray":
            return importlib.machinery.ModuleSpec("ray", _RayLoader(), is_package=True)
        if _is_stub(fullname):
            return importlib.machinery.ModuleSpec(fullname, _StubLoader(), is_package=True)
        name = _target_of(fullname)
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None:
            # oxray has no such module: the import fails as for a missing
            # Ray module (the alias packages' search paths hold nothing).
            return None
        is_package = found.submodule_search_locations is not None or fullname in _AS_PACKAGE
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(name), is_package=is_package)


def _finders():
    return [f for f in sys.meta_path if isinstance(f, RayAliasFinder)]


def is_installed():
    """Whether `import ray` resolves to oxray in this process."""
    return bool(_finders())


def install_as_ray(version=None, *, _warn_late=True):
    """Makes every `import ray` and `import ray.X` of this process resolve to
    oxray, and (through the `OXRAY_AS_RAY` environment variable it sets) of
    the worker processes started afterwards, so that libraries written for
    Ray run on oxray unchanged.

    `ray` reports Ray version `version` (default `DEFAULT_RAY_VERSION`, or
    `OXRAY_AS_RAY_VERSION`); `oxray.__version__` is unchanged. Call it before
    `init()` (or before the library starts the cluster): workers of a cluster
    started earlier did not inherit the setting. Raises RuntimeError when a
    real `ray` is already imported. Idempotent; `uninstall_as_ray()` undoes
    it."""
    existing = sys.modules.get("ray")
    if existing is not None and not isinstance(existing, RayModule):
        raise RuntimeError(
            f"a real `ray` is already imported ({getattr(existing, '__file__', existing)!r}); "
            "oxray.install_as_ray() must run before anything imports it"
        )
    if version is not None:
        if not isinstance(version, str) or not version:
            raise TypeError(f"version must be a non-empty string, got {version!r}")
        os.environ[VERSION_ENV_VAR] = version
        if isinstance(existing, RayModule):
            existing.__version__ = version
    # Set even when already installed: workers must inherit it.
    os.environ[ENV_VAR] = "1"
    if is_installed():
        return
    sys.meta_path.insert(0, RayAliasFinder())
    if _warn_late:
        from oxray._private import worker as _worker

        if _worker.is_initialized() and _worker.session().mode == "driver":
            warnings.warn(
                "oxray.install_as_ray() was called after init(): the cluster's worker processes did not "
                "inherit OXRAY_AS_RAY=1, so libraries that `import ray` inside tasks may fail there. "
                "Call it before init() (or start the nodes with OXRAY_AS_RAY=1 set).",
                stacklevel=2,
            )


def uninstall_as_ray():
    """Undoes `install_as_ray()` in this process: removes the finder, the
    `ray` and `ray.*` modules it registered, and the environment variables
    (workers already started keep theirs)."""
    for finder in _finders():
        sys.meta_path.remove(finder)
    for name in [n for n in sys.modules if n == "ray" or n.startswith("ray.")]:
        module = sys.modules[name]
        if isinstance(module, (RayModule, _StubModule)) or getattr(module, "__name__", "").startswith("oxray"):
            del sys.modules[name]
    # What aliasing left on oxray's own modules.
    mp = sys.modules.get("oxray.util.multiprocessing")
    if mp is not None:
        mp.__dict__.pop("__path__", None)
        if mp.__dict__.get("pool") is mp:
            del mp.pool
    os.environ.pop(ENV_VAR, None)
    os.environ.pop(VERSION_ENV_VAR, None)


def install_from_environment():
    """Installs the alias when `OXRAY_AS_RAY` is set (to anything but 0,
    false or empty): how workers, and drivers that opt in by environment,
    get it on `import oxray`."""
    value = os.environ.get(ENV_VAR, "")
    if value and value.lower() not in ("0", "false", "no", "off"):
        existing = sys.modules.get("ray")
        if existing is not None and not isinstance(existing, RayModule):
            return  # a real ray was imported first: leave it alone
        install_as_ray(_warn_late=False)
