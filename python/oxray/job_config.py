"""`JobConfig`: a job's settings, passed as `init(job_config=...)` (Ray's
`ray.job_config.JobConfig`)."""

import copy
import os

from oxray._private import code_search


class JobConfig:
    """The configuration of a job (the driver's `init`):

    - `code_search_path`: directories (or files, standing for their
      directory) where the job's workers look for modules first, as a
      PYTHONPATH of the job;
    - `runtime_env`: the job's runtime environment, used when `init` gets
      no `runtime_env` of its own (`init`'s replaces it, as in Ray);
    - `metadata`: an opaque dict of strings, kept with the config;
    - `ray_namespace`: the job's namespace when `init` names none;
    - `default_actor_lifetime`: "non_detached" (the default); "detached"
      is refused by `init` (pass `lifetime="detached"` per actor);
    - `jvm_options`: accepted for compatibility (oxray runs no Java).
    """

    def __init__(self, jvm_options=None, code_search_path=None, runtime_env=None, _client_job=False,
                 metadata=None, ray_namespace=None, default_actor_lifetime="non_detached",
                 _disable_job_level_lineage_reconstruction=False, _py_driver_sys_path=None):
        self.jvm_options = jvm_options or []
        code_search_path = code_search_path or []
        if not isinstance(code_search_path, (list, tuple)):
            # A string would be read as one path per character.
            raise TypeError(f"The type of code search path is incorrect: {type(code_search_path)}")
        for entry in code_search_path:
            if not isinstance(entry, (str, os.PathLike)):
                raise TypeError(f"code_search_path entries must be paths, got {entry!r}")
        self.code_search_path = code_search_path
        self._client_job = _client_job
        self.metadata = metadata or {}
        self.ray_namespace = ray_namespace
        self.set_runtime_env(runtime_env)
        self.set_default_actor_lifetime(default_actor_lifetime)
        self._disable_job_level_lineage_reconstruction = _disable_job_level_lineage_reconstruction
        self._py_driver_sys_path = _py_driver_sys_path or []
        self.py_logging_config = None

    def set_metadata(self, key, value):
        """Adds (or replaces) one metadata entry."""
        self.metadata[key] = value

    def set_runtime_env(self, runtime_env, validate=False):
        """Replaces the job's runtime_env (None: none). With `validate`,
        checks it as `init` would."""
        self.runtime_env = runtime_env if runtime_env is not None else {}
        if validate:
            self.runtime_env = self._validate_runtime_env()

    def set_ray_namespace(self, ray_namespace):
        """Sets the job's namespace."""
        self.ray_namespace = ray_namespace

    def set_default_actor_lifetime(self, default_actor_lifetime):
        """Sets the default lifetime of the job's actors: "detached" or
        "non_detached"."""
        if default_actor_lifetime not in ("detached", "non_detached"):
            raise ValueError("Default actor lifetime must be one of `detached`, `non_detached`")
        self.default_actor_lifetime = default_actor_lifetime

    def set_py_logging_config(self, logging_config=None):
        """Kept for compatibility: oxray does not configure the workers'
        logging."""
        self.py_logging_config = logging_config

    def _validate_runtime_env(self):
        from oxray._private import options
        from oxray.runtime_env import RuntimeEnv

        options.check_runtime_env(self.runtime_env)
        env = self.runtime_env
        return env if isinstance(env, RuntimeEnv) else RuntimeEnv(**env)

    def _get_serialized_runtime_env(self):
        """The job's runtime_env as JSON."""
        return self._validate_runtime_env().serialize()

    @classmethod
    def from_json(cls, job_config_json):
        """A JobConfig from its dict form (the keys of the constructor)."""
        return cls(
            jvm_options=job_config_json.get("jvm_options"),
            code_search_path=job_config_json.get("code_search_path"),
            runtime_env=job_config_json.get("runtime_env"),
            metadata=job_config_json.get("metadata"),
            ray_namespace=job_config_json.get("ray_namespace"),
            default_actor_lifetime=job_config_json.get("default_actor_lifetime", "non_detached"),
        )

    def __repr__(self):
        return (f"JobConfig(code_search_path={self.code_search_path!r}, runtime_env={self.runtime_env!r}, "
                f"metadata={self.metadata!r}, ray_namespace={self.ray_namespace!r}, "
                f"default_actor_lifetime={self.default_actor_lifetime!r})")


def for_init(job_config, runtime_env, namespace):
    """What `init(job_config=..., runtime_env=..., namespace=...)` starts
    the job with: `(runtime_env, namespace)`. The job's runtime_env is
    `init`'s, else the config's (Ray replaces, not merges, them); its
    code_search_path travels in the runtime_env's env_vars to every task
    and actor of the job (see oxray._private.code_search)."""
    if not isinstance(job_config, JobConfig):
        raise TypeError(f"job_config must be a JobConfig, got {type(job_config).__name__}")
    if job_config.default_actor_lifetime != "non_detached":
        raise ValueError(
            "The option 'job_config' of init() is not supported by oxray with "
            "default_actor_lifetime='detached': pass lifetime='detached' to each actor instead."
        )
    env = runtime_env if runtime_env else job_config.runtime_env
    if namespace is None:
        namespace = job_config.ray_namespace
    if job_config.code_search_path:
        env = copy.deepcopy(dict(env or {}))
        paths = [os.path.abspath(os.fspath(p)) for p in job_config.code_search_path]
        env_vars = dict(env.get("env_vars") or {})
        env_vars[code_search.ENV_VAR] = os.pathsep.join(paths)
        env["env_vars"] = env_vars
    return (env or None), namespace
