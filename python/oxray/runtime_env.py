"""`RuntimeEnv` and `RuntimeEnvConfig` (Ray's `ray.runtime_env`): a runtime
environment as a dict with typed accessors. `get_runtime_context()
.runtime_env` returns one; `init`, `@remote` and `.options()` accept one
wherever they accept a runtime_env dict (oxray applies its `env_vars`,
`working_dir`, `py_modules` and `excludes`)."""

import json

# The fields Ray's RuntimeEnv names; others are plugin fields, kept as given.
_FIELDS = (
    "py_modules", "py_executable", "java_jars", "working_dir", "conda", "pip", "uv", "container",
    "excludes", "env_vars", "_ray_release", "_ray_commit", "_inject_current_ray", "config", "nsight",
    "rocprof_sys", "mpi", "image_uri", "worker_process_setup_hook",
)


class RuntimeEnvConfig(dict):
    """Options of a runtime environment's set-up (`setup_timeout_seconds`,
    `eager_install`, `log_files`). oxray sets nothing up, so they are
    advisory."""

    known_fields = {"setup_timeout_seconds", "eager_install", "log_files"}

    def __init__(self, setup_timeout_seconds=600, eager_install=True, log_files=None):
        super().__init__()
        if not isinstance(setup_timeout_seconds, int) or isinstance(setup_timeout_seconds, bool):
            raise TypeError(f"setup_timeout_seconds must be of type int, got: {type(setup_timeout_seconds)}")
        if setup_timeout_seconds <= 0 and setup_timeout_seconds != -1:
            raise ValueError(
                f"Invalid setup_timeout_seconds {setup_timeout_seconds}: it must be positive or -1 (no timeout)."
            )
        if not isinstance(eager_install, bool):
            raise TypeError(f"eager_install must be a boolean, got {type(eager_install)}")
        self["setup_timeout_seconds"] = setup_timeout_seconds
        self["eager_install"] = eager_install
        if log_files is not None and not isinstance(log_files, list):
            raise TypeError(f"log_files must be a list of strings or None, got {log_files!r}")
        self["log_files"] = log_files or []

    @classmethod
    def default_config(cls):
        """The default set-up options."""
        return cls()

    def to_dict(self):
        """A plain dict of the options."""
        return dict(self)


class RuntimeEnv(dict):
    """A runtime environment: a dict of its given fields (`env_vars`,
    `working_dir`, `pip`, `config`, ...) plus accessors. Constructing one
    accepts every Ray field; using one with oxray applies `env_vars`,
    `working_dir`, `py_modules` and `excludes`, and refuses fields oxray
    cannot set up (see `init`)."""

    known_fields = set(_FIELDS)

    def __init__(self, *, py_modules=None, working_dir=None, pip=None, conda=None, container=None,
                 env_vars=None, worker_process_setup_hook=None, nsight=None, config=None, _validate=True,
                 mpi=None, image_uri=None, uv=None, **kwargs):
        super().__init__()
        given = dict(py_modules=py_modules, working_dir=working_dir, pip=pip, conda=conda, container=container,
                     env_vars=env_vars, worker_process_setup_hook=worker_process_setup_hook, nsight=nsight,
                     config=config, mpi=mpi, image_uri=image_uri, uv=uv, **kwargs)
        for name, value in given.items():
            if value is not None:
                self[name] = value
        if _validate:
            env_vars = self.get("env_vars")
            if env_vars is not None and not (
                isinstance(env_vars, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items())
            ):
                raise TypeError("runtime_env['env_vars'] must be a dict of str to str.")
            config = self.get("config")
            if isinstance(config, dict) and not isinstance(config, RuntimeEnvConfig):
                self["config"] = RuntimeEnvConfig(**config)

    def set(self, name, value):
        """Sets one field."""
        self[name] = value

    def get(self, name, default=None, data_class=None):
        """The value of a field (`default` when absent)."""
        value = super().get(name, default)
        if data_class is not None and isinstance(value, dict):
            return data_class(**value)
        return value

    @classmethod
    def deserialize(cls, serialized_runtime_env):
        """A RuntimeEnv from `serialize()`'s JSON."""
        return cls(_validate=False, **json.loads(serialized_runtime_env))

    def serialize(self):
        """The runtime environment as JSON (keys sorted)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self):
        """A plain dict of the fields (nested configs too)."""
        return {k: (dict(v) if isinstance(v, RuntimeEnvConfig) else v) for k, v in self.items()}

    def env_vars(self):
        """The environment variables (empty when none)."""
        return self.get("env_vars", {})

    def has_working_dir(self):
        """Whether a working_dir is given."""
        return self.get("working_dir") is not None

    def working_dir(self):
        """The working_dir ("" when none)."""
        return self.get("working_dir", "")

    def py_modules(self):
        """The py_modules (empty when none)."""
        return list(self.get("py_modules") or [])

    def py_executable(self):
        """The Python executable to run workers with, or None."""
        return self.get("py_executable")

    def java_jars(self):
        """The java_jars (empty when none)."""
        return list(self.get("java_jars") or [])

    def has_conda(self):
        """Whether a conda environment is given."""
        return bool(self.get("conda"))

    def has_pip(self):
        """Whether pip packages are given."""
        return bool(self.get("pip"))

    def has_uv(self):
        """Whether uv packages are given."""
        return bool(self.get("uv"))

    def image_uri(self):
        """The container image, or None."""
        return self.get("image_uri")

    def plugins(self):
        """`(name, value)` of the fields Ray does not name itself."""
        return [(k, v) for k, v in self.items() if k not in self.known_fields]


__all__ = ["RuntimeEnv", "RuntimeEnvConfig"]
