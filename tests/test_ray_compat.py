"""Ray compatibility beyond `import oxray as ray`: the `ray` alias for
libraries that import Ray themselves (`oxray.install_as_ray()`, a real
library from PyPI driving the core API through it), joblib's "ray" backend,
`JobConfig`, and the runtime context's `runtime_env`."""

import contextlib
import importlib
import importlib.util
import os
import sys
import textwrap
import types
import warnings

import pytest

import oxray
from oxray._private import ray_compat
from oxray.job_config import JobConfig
from oxray.runtime_env import RuntimeEnv

from conftest import run_driver


def _real_ray_installed():
    """Whether this Python has a real `ray` the alias would shadow (a bare
    `ray` directory on the path, a namespace package, does not count)."""
    existing = sys.modules.get("ray")
    if existing is not None:
        return not isinstance(existing, ray_compat.RayModule)
    if ray_compat.is_installed():
        return False
    spec = importlib.util.find_spec("ray")
    return spec is not None and spec.origin not in (None, "namespace")


@contextlib.contextmanager
def _alias():
    """Installs the alias for one test and undoes it, even when the test
    fails: no later test sees `ray` (nor OXRAY_AS_RAY)."""
    if _real_ray_installed():
        pytest.skip("a real ray is installed here: the alias must not shadow it")
    oxray.install_as_ray()
    try:
        yield
    finally:
        oxray.shutdown()
        oxray.uninstall_as_ray()
        assert not ray_compat.is_installed()
        assert not [n for n in sys.modules if n == "ray" or n.startswith("ray.")]


@pytest.fixture
def ray_alias(shutdown_only):
    """`import ray` is oxray, for this test and the cluster it starts."""
    with _alias():
        yield


# --- the alias in the driver -------------------------------------------------

ALIASED = [
    "util", "util.queue", "util.actor_pool", "util.placement_group", "util.scheduling_strategies", "util.state",
    "util.multiprocessing", "util.joblib", "exceptions", "actor", "remote_function", "runtime_context",
    "runtime_env", "cluster_utils", "job_config", "types", "cloudpickle", "_private", "_private.ray_constants",
    "_private.services", "_private.worker",
]


def test_alias_maps_ray_modules_to_oxray_modules(ray_alias):
    import ray

    assert ray.__version__ == ray_compat.DEFAULT_RAY_VERSION
    assert oxray.__version__ != ray.__version__  # oxray's own stays
    assert ray.__name__ == "ray"
    assert os.environ["OXRAY_AS_RAY"] == "1"
    for name in ALIASED:
        aliased = importlib.import_module(f"ray.{name}")
        assert aliased is importlib.import_module(f"oxray.{name}"), name
        # oxray's module keeps its own identity.
        assert aliased.__spec__.name == f"oxray.{name}", name
    if importlib.util.find_spec("oxray.dag") is not None:
        import ray.dag

        assert ray.dag is importlib.import_module("oxray.dag")
    # Ray's spellings that oxray names otherwise.
    from ray.util.multiprocessing.pool import Pool

    assert Pool is oxray.util.multiprocessing.Pool
    assert ray.ray_constants is oxray._private.ray_constants
    assert ray.ray_constants.REDIS_DEFAULT_PASSWORD == ""
    from ray._raylet import ObjectRef

    assert ObjectRef is oxray.ObjectRef
    # The top-level API is oxray's.
    for name in ("init", "get", "put", "wait", "remote", "get_actor", "kill", "ObjectRef", "get_runtime_context"):
        assert getattr(ray, name) is getattr(oxray, name), name
    assert ray.job_config.JobConfig is JobConfig
    with pytest.raises(ImportError):
        import ray.no_such_module  # noqa: F401
    with pytest.raises(AttributeError):
        ray.no_such_attribute  # noqa: B018


def test_alias_objects_pass_isinstance_both_ways(ray_alias):
    import ray
    import ray.exceptions

    ray.init(num_cpus=1)
    ref = ray.put(41)
    assert isinstance(ref, oxray.ObjectRef) and isinstance(ref, ray.ObjectRef)

    @ray.remote
    def fail():
        raise KeyError("x")

    with pytest.raises(oxray.exceptions.RayTaskError) as info:
        ray.get(fail.remote())
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert isinstance(info.value, KeyError)


def test_ray_data_is_a_stub(ray_alias):
    from ray.data import from_pandas_refs

    import ray.data

    with pytest.raises(NotImplementedError, match="ray.data.from_pandas_refs is not available"):
        from_pandas_refs([])
    assert not isinstance(object(), ray.data.Dataset)


def test_pickled_alias_is_the_alias(ray_alias):
    import pickle

    import ray

    assert pickle.loads(pickle.dumps(ray)) is ray
    assert oxray.cloudpickle.loads(oxray.cloudpickle.dumps(ray)) is ray


def test_install_refuses_when_a_real_ray_is_imported():
    fake = types.ModuleType("ray")
    sys.modules["ray"] = fake
    try:
        with pytest.raises(RuntimeError, match="already imported"):
            oxray.install_as_ray()
        assert not ray_compat.is_installed()
        assert sys.modules["ray"] is fake
    finally:
        del sys.modules["ray"]
        os.environ.pop("OXRAY_AS_RAY", None)


def test_uninstall_removes_the_alias():
    with _alias():
        import ray.util.queue  # noqa: F401
        oxray.install_as_ray()  # a second install changes nothing
        assert len([f for f in sys.meta_path if isinstance(f, ray_compat.RayAliasFinder)]) == 1
    assert "OXRAY_AS_RAY" not in os.environ
    assert not hasattr(oxray.util.multiprocessing, "__path__")
    with pytest.raises(ImportError):
        import ray  # noqa: F401


# --- the alias in worker processes ----------------------------------------------

def _import_ray_in_worker():
    # Runs in a worker: a library's own `import ray` there.
    import ray
    import ray.util.queue

    return (ray.__version__, type(ray).__name__, ray.util.queue is sys.modules["oxray.util.queue"],
            os.environ.get("OXRAY_AS_RAY"), ray.get(ray.put("nested")))


class _RayUser:
    def probe(self):
        import ray

        return ray.__version__, ray.get_runtime_context().get_actor_id() is not None


def test_workers_alias_ray(ray_alias):
    import ray

    ray.init(num_cpus=2)
    version = ray_compat.DEFAULT_RAY_VERSION
    assert ray.get(ray.remote(_import_ray_in_worker).remote()) == (version, "RayModule", True, "1", "nested")
    actor = ray.remote(_RayUser).remote()
    assert ray.get(actor.probe.remote()) == (version, True)


_PROBE_SOURCE = textwrap.dedent("""
    import importlib

    def probe():
        queue = importlib.import_module("ray.util.queue")
        return ray.__version__, type(ray).__name__, queue.Queue.__module__
""")


def test_alias_installed_after_init_reaches_functions_that_use_it(shutdown_only):
    if _real_ray_installed():
        pytest.skip("a real ray is installed here: the alias must not shadow it")
    oxray.init(num_cpus=1)
    try:
        with pytest.warns(UserWarning, match="after init"):
            oxray.install_as_ray()
        import ray

        # A function of a module workers cannot import travels by value,
        # with its global `ray`: unpickling it installs the alias in a
        # worker that did not inherit OXRAY_AS_RAY.
        namespace = {"__name__": "oxray_alias_probe", "ray": ray}
        exec(_PROBE_SOURCE, namespace)
        result = ray.get(ray.remote(namespace["probe"]).remote())
        assert result == (ray_compat.DEFAULT_RAY_VERSION, "RayModule", "oxray.util.queue")
    finally:
        oxray.shutdown()
        oxray.uninstall_as_ray()


def test_environment_variable_installs_the_alias_in_driver_and_workers():
    if _real_ray_installed():
        pytest.skip("a real ray is installed here: the alias must not shadow it")
    code = textwrap.dedent("""
        import oxray
        import ray
        assert ray.__version__ == "2.9.3", ray.__version__
        assert oxray.__version__ != "2.9.3"
        ray.init(num_cpus=1)

        @ray.remote
        def version():
            import ray
            return ray.__version__

        print("VERSION", ray.get(version.remote()))
        ray.shutdown()
    """)
    proc = run_driver(code, env={"OXRAY_AS_RAY": "1", "OXRAY_AS_RAY_VERSION": "2.9.3"})
    assert proc.returncode == 0, proc.stderr
    assert "VERSION 2.9.3" in proc.stdout


# --- a real library that imports ray itself --------------------------------------

_MODIN_DRIVER = textwrap.dedent("""
    import os
    os.environ.update(MODIN_ENGINE="ray", MODIN_CPUS="2", MODIN_MEMORY=str(256 << 20))

    import oxray
    oxray.install_as_ray()

    import numpy as np
    import pandas
    import modin.pandas as mpd
    import ray

    data = {"a": np.arange(400), "b": np.arange(400) % 7}
    df = mpd.DataFrame(data)
    expected = pandas.DataFrame(data)
    # Modin started the cluster itself, through ray.init.
    assert ray.is_initialized() and oxray.cluster_resources()["CPU"] == 2
    parts = df._query_compiler._modin_frame._partitions
    assert all(isinstance(p._data, oxray.ObjectRef) for row in parts for p in row), parts
    assert df.sum().to_dict() == expected.sum().to_dict()
    assert (df.groupby("b").sum()._to_pandas() == expected.groupby("b").sum()).all().all()
    assert ((df * 2 + 1)._to_pandas() == expected * 2 + 1).all().all()
    pids = set(df.apply(lambda row: os.getpid(), axis=1)._to_pandas())
    assert os.getpid() not in pids and pids, pids
    print("MODIN OK", len(pids))
    ray.shutdown()
""")


def test_modin_runs_on_oxray_through_the_alias():
    """modin (pip install modin, no `ray` extra) with MODIN_ENGINE=ray: it
    imports ray, starts the cluster with ray.init and runs its partitions
    as remote tasks. In its own driver process: modin keeps process-wide
    engine state bound to the cluster it started."""
    if importlib.util.find_spec("modin") is None:
        pytest.skip("modin is not installed (requirements-dev.txt)")
    if _real_ray_installed():
        pytest.skip("a real ray is installed here: the alias must not shadow it")
    proc = run_driver(_MODIN_DRIVER, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MODIN OK" in proc.stdout, proc.stdout + proc.stderr


# --- joblib ------------------------------------------------------------------------

def _square_and_pid(i):
    return i * i, os.getpid()


def _fail_on_three(i):
    if i == 3:
        raise ValueError("three")
    return i


def test_joblib_backend_runs_on_the_cluster(cluster):
    joblib = pytest.importorskip("joblib")
    from oxray.util.joblib import register_ray

    register_ray()
    with joblib.parallel_backend("ray"):
        out = joblib.Parallel(n_jobs=2)(joblib.delayed(_square_and_pid)(i) for i in range(20))
    assert [v for v, _ in out] == [i * i for i in range(20)]
    pids = {pid for _, pid in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    # n_jobs=-1: one actor per cluster CPU.
    with joblib.parallel_backend("ray"):
        parallel = joblib.Parallel(n_jobs=-1)
        assert parallel(joblib.delayed(_square_and_pid)(i) for i in range(4))[3][0] == 9
        assert parallel._effective_n_jobs() == 2


def test_joblib_backend_errors_and_options(cluster):
    joblib = pytest.importorskip("joblib")
    from oxray.util.joblib import register_ray

    register_ray()
    with joblib.parallel_backend("ray"):
        with pytest.raises(ValueError, match="three"):
            joblib.Parallel(n_jobs=2)(joblib.delayed(_fail_on_three)(i) for i in range(6))
        # As Ray's pool: no more processes than the cluster's CPUs.
        with pytest.raises(ValueError, match="only 2 CPUs"):
            joblib.Parallel(n_jobs=3)(joblib.delayed(_square_and_pid)(i) for i in range(6))
    # ray_remote_args shape the pool's actors: half a CPU each leaves room.
    with joblib.parallel_backend("ray", ray_remote_args={"num_cpus": 0.5}):
        out = joblib.Parallel(n_jobs=2)(joblib.delayed(_square_and_pid)(i) for i in range(3))
    assert [v for v, _ in out] == [0, 1, 4]


def test_joblib_backend_through_the_alias(ray_alias):
    joblib = pytest.importorskip("joblib")
    from ray.util.joblib import register_ray

    import ray

    register_ray()
    ray.init(num_cpus=2)
    with joblib.parallel_backend("ray"):
        out = joblib.Parallel(n_jobs=2)(joblib.delayed(_square_and_pid)(i) for i in range(6))
    assert [v for v, _ in out] == [i * i for i in range(6)]


# --- JobConfig and runtime_env -------------------------------------------------------

def test_job_config_attributes():
    config = JobConfig(code_search_path=["/a"], runtime_env={"env_vars": {"A": "1"}}, metadata={"k": "v"},
                       ray_namespace="ns")
    assert config.code_search_path == ["/a"] and config.metadata == {"k": "v"}
    assert config.runtime_env == {"env_vars": {"A": "1"}} and config.ray_namespace == "ns"
    assert config.default_actor_lifetime == "non_detached" and config.jvm_options == []
    config.set_metadata("x", "y")
    assert config.metadata["x"] == "y"
    default = JobConfig()
    assert default.code_search_path == [] and default.runtime_env == {} and default.metadata == {}
    with pytest.raises(TypeError, match="code search path"):
        JobConfig(code_search_path="/a")
    with pytest.raises(ValueError, match="Default actor lifetime"):
        JobConfig(default_actor_lifetime="forever")
    assert JobConfig.from_json({"runtime_env": {"env_vars": {"B": "2"}}}).runtime_env == {"env_vars": {"B": "2"}}
    config.set_runtime_env({"env_vars": {"C": "3"}}, validate=True)
    assert isinstance(config.runtime_env, RuntimeEnv) and config.runtime_env == {"env_vars": {"C": "3"}}


def _env_and_module(name):
    import importlib

    try:
        value = importlib.import_module(name).VALUE
    except ImportError:
        value = None
    return os.environ.get("JOB_VAR"), value, dict(oxray.get_runtime_context().runtime_env)


def _nested_env_and_module(name):
    return oxray.get(oxray.remote(_env_and_module).remote(name))


class _ModuleUser:
    def value(self, name):
        return _env_and_module(name)


def _write_module(directory, name):
    (directory / f"{name}.py").write_text("VALUE = 'found in the code search path'\n")


def test_job_config_in_init(shutdown_only, tmp_path):
    name = f"oxray_csp_{os.getpid()}_{tmp_path.name.replace('-', '_')}"
    _write_module(tmp_path, name)
    assert importlib.util.find_spec(name) is None  # not on the driver's path
    config = JobConfig(code_search_path=[str(tmp_path)], runtime_env={"env_vars": {"JOB_VAR": "job"}},
                       metadata={"owner": "tests"}, ray_namespace="job-ns")
    oxray.init(num_cpus=2, job_config=config)
    expected = ("job", "found in the code search path", {"env_vars": {"JOB_VAR": "job"}})
    fn = oxray.remote(_env_and_module)
    assert oxray.get(fn.remote(name)) == expected
    assert oxray.get(oxray.remote(_nested_env_and_module).remote(name)) == expected
    actor = oxray.remote(_ModuleUser).remote()
    assert oxray.get(actor.value.remote(name)) == expected
    # A task's own runtime_env adds to the job's; the path stays.
    overridden = oxray.get(fn.options(runtime_env={"env_vars": {"JOB_VAR": "task"}}).remote(name))
    assert overridden[:2] == ("task", "found in the code search path")
    context = oxray.get_runtime_context()
    assert context.namespace == "job-ns"
    assert context.runtime_env == {"env_vars": {"JOB_VAR": "job"}}
    # The driver's own imports are not affected, as in Ray.
    assert importlib.util.find_spec(name) is None
    oxray.shutdown()

    # A file entry stands for its directory; without the config, no path.
    oxray.init(num_cpus=1, job_config=JobConfig(code_search_path=[str(tmp_path / f"{name}.py")]))
    assert oxray.get(fn.remote(name))[1] == "found in the code search path"
    oxray.shutdown()
    oxray.init(num_cpus=1)
    assert oxray.get(fn.remote(name)) == (None, None, {})


def test_init_runtime_env_replaces_the_job_configs(shutdown_only):
    config = JobConfig(runtime_env={"env_vars": {"JOB_VAR": "job", "OTHER": "x"}})
    oxray.init(num_cpus=1, job_config=config, runtime_env={"env_vars": {"JOB_VAR": "init"}}, namespace="mine")
    assert oxray.get_runtime_context().runtime_env == {"env_vars": {"JOB_VAR": "init"}}
    assert oxray.get_runtime_context().namespace == "mine"
    assert oxray.get(oxray.remote(_env_and_module).remote("no_such_module_here"))[0] == "init"


def test_init_refuses_what_job_config_cannot_do(shutdown_only):
    with pytest.raises(ValueError, match="detached"):
        oxray.init(num_cpus=1, job_config=JobConfig(default_actor_lifetime="detached"))
    with pytest.raises(TypeError, match="JobConfig"):
        oxray.init(num_cpus=1, job_config={"runtime_env": {}})
    with pytest.raises(ValueError, match="pip"):
        oxray.init(num_cpus=1, job_config=JobConfig(runtime_env={"pip": ["requests"]}))
    assert not oxray.is_initialized()


def _runtime_env_in_task():
    env = oxray.get_runtime_context().runtime_env
    return type(env).__name__, env.get("env_vars", {}), env.env_vars()


def test_runtime_context_runtime_env(shutdown_only):
    oxray.init(num_cpus=1)
    env = oxray.get_runtime_context().runtime_env
    assert isinstance(env, RuntimeEnv) and isinstance(env, dict) and env == {}
    assert env.get("env_vars", {}) == {}  # what libraries (modin) read
    oxray.shutdown()
    oxray.init(num_cpus=1, runtime_env={"env_vars": {"A": "1"}})
    context = oxray.get_runtime_context()
    assert context.runtime_env == {"env_vars": {"A": "1"}}
    assert RuntimeEnv.deserialize(context.get_runtime_env_string()) == {"env_vars": {"A": "1"}}
    fn = oxray.remote(_runtime_env_in_task)
    assert oxray.get(fn.remote()) == ("RuntimeEnv", {"A": "1"}, {"A": "1"})
    assert oxray.get(fn.options(runtime_env=RuntimeEnv(env_vars={"B": "2"})).remote())[1] == {"A": "1", "B": "2"}


def test_runtime_env_class():
    env = RuntimeEnv(env_vars={"A": "1"}, working_dir=None, config={"setup_timeout_seconds": 10})
    assert env == {"env_vars": {"A": "1"}, "config": {"setup_timeout_seconds": 10, "eager_install": True,
                                                            "log_files": []}}
    assert env.env_vars() == {"A": "1"} and not env.has_working_dir() and env.working_dir() == ""
    assert RuntimeEnv.deserialize(env.serialize()) == env
    with pytest.raises(TypeError, match="env_vars"):
        RuntimeEnv(env_vars={"A": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert RuntimeEnv(my_plugin={"x": 1}).plugins() == [("my_plugin", {"x": 1})]


def test_importing_a_shadowed_submodule_keeps_the_function(ray_alias):
    # `ray.util.placement_group` is both a module and (on ray.util) the
    # function; importing the module must not replace the function.
    import ray.util.placement_group  # noqa: F401

    import oxray.util

    assert callable(oxray.util.placement_group)
    assert oxray.util.placement_group is ray.util.placement_group
