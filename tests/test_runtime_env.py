"""Runtime environments with code: `working_dir`, `py_modules` and
`excludes` (Ray's runtime_env fields), job-wide and per task or actor."""

import importlib
import os
import sys
import uuid

import pytest

import oxray
from oxray import exceptions
from oxray._private import runtime_env_packages


def _name(prefix):
    """A module name no other test (or earlier run) uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _working_dir(tmp_path, module, value, dirname="wd"):
    """A working_dir with a module (`VALUE = value`) and a data file."""
    wd = tmp_path / dirname
    wd.mkdir()
    (wd / f"{module}.py").write_text(f"VALUE = {value!r}\n")
    (wd / "data.txt").write_text(f"data of {value}")
    return wd


def _import_value(module):
    try:
        return importlib.import_module(module).VALUE
    except ImportError:
        return None


def _probe(module):
    """What a task sees: the module's value, the data file read by relative
    path, its process, cwd, whether the module stays imported, and its
    runtime_env."""
    try:
        with open("data.txt") as f:
            data = f.read()
    except OSError:
        data = None
    return {
        "value": _import_value(module),
        "data": data,
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "in_modules": module in sys.modules,
        "env": dict(oxray.get_runtime_context().runtime_env),
    }


def _nested_probe(module, child_env=None):
    fn = oxray.remote(_probe)
    if child_env is not None:
        fn = fn.options(runtime_env=child_env)
    return oxray.get(fn.remote(module))


class _Holder:
    """An actor that imports its working_dir module in its constructor."""

    def __init__(self, module):
        self.module = importlib.import_module(module)

    def read(self, module):
        with open("data.txt") as f:
            return self.module.VALUE, f.read(), _import_value(module), os.getcwd()


def _files_here():
    out = []
    for root, dirs, files in os.walk("."):
        out += [os.path.relpath(os.path.join(root, f), ".") for f in files]
        out += [os.path.relpath(os.path.join(root, d), ".") + "/" for d in dirs]
    return sorted(out)


def _imports(*modules):
    return [_import_value(m) for m in modules]


# --- working_dir --------------------------------------------------------------------

def test_working_dir_in_tasks_and_actors_is_not_seen_by_later_tasks(shutdown_only, tmp_path):
    module, shadow = _name("rte_wd"), _name("rte_shadow")
    wd = _working_dir(tmp_path, module, "wd-one")
    (wd / f"{shadow}.py").write_text("VALUE = 'inside'\n")
    # A module of the same name on the workers' own path (they get the
    # driver's at init).
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / f"{shadow}.py").write_text("VALUE = 'outside'\n")
    sys.path.append(str(outside))
    try:
        oxray.init(num_cpus=1)
    finally:
        sys.path.remove(str(outside))
    probe = oxray.remote(_probe)
    before = oxray.get(probe.remote(module))
    assert before["value"] is None and before["data"] is None and before["env"] == {}

    with_dir = oxray.get(probe.options(runtime_env={"working_dir": str(wd)}).remote(module))
    assert with_dir["value"] == "wd-one" and with_dir["data"] == "data of wd-one"
    # A copy of the directory (downloaded on the node), not the original.
    assert with_dir["cwd"] != str(wd) and os.path.basename(os.path.dirname(with_dir["cwd"])) == "runtime_resources"
    uri = with_dir["env"]["working_dir"]
    assert uri.startswith("gcs://_ray_pkg_") and uri.endswith(".zip") and "env_vars" not in with_dir["env"]

    # Later, without the environment: a worker that ran a code environment
    # serves only that environment, so another worker runs it, and nothing
    # of the environment is there; the environment's next task goes back to
    # the worker set up for it.
    after = oxray.get(probe.remote(module))
    assert with_dir["pid"] == before["pid"] and after["pid"] != with_dir["pid"]
    assert after["value"] is None and not after["in_modules"] and after["cwd"] == before["cwd"]
    assert after["env"] == {}
    again = oxray.get(probe.options(runtime_env={"working_dir": str(wd)}).remote(module))
    assert again["pid"] == with_dir["pid"] and again["value"] == "wd-one"

    # The working_dir's module shadows the worker's own of the same name,
    # only while the task runs.
    imports = oxray.remote(_imports)
    assert oxray.get(imports.remote(shadow)) == ["outside"]
    assert oxray.get(imports.options(runtime_env={"working_dir": str(wd)}).remote(shadow)) == ["inside"]
    assert oxray.get(imports.remote(shadow)) == ["outside"]

    # An actor keeps its environment for life.
    holder = oxray.remote(_Holder).options(runtime_env={"working_dir": str(wd)}).remote(module)
    for _ in range(2):
        value, data, again, cwd = oxray.get(holder.read.remote(module))
        assert (value, data, again) == ("wd-one", "data of wd-one", "wd-one") and cwd == with_dir["cwd"]

    # A package missing from the cluster fails the task, not the worker.
    missing = "gcs://_ray_pkg_" + "0" * 40 + ".zip"
    with pytest.raises(exceptions.RuntimeEnvSetupError, match="not in the cluster"):
        oxray.get(probe.options(runtime_env={"working_dir": missing}).remote(module))
    assert oxray.get(probe.remote(module))["value"] is None


def test_py_modules_and_excludes(shutdown_only, tmp_path):
    package, single, imported = _name("rte_pkg"), _name("rte_file"), _name("rte_obj")
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("VALUE = 'package'\n")
    (tmp_path / package / "sub.py").write_text("VALUE = 'sub'\n")
    (tmp_path / f"{single}.py").write_text("VALUE = 'single file'\n")
    objects = tmp_path / "objects"
    (objects / imported).mkdir(parents=True)
    (objects / imported / "__init__.py").write_text("VALUE = 'module object'\n")

    wd = tmp_path / "project"
    for path in ["keep.txt", "secret.txt", "logs/run.log", "src/a.py", "src/b.log", "ignored/x.txt",
                 "__pycache__/c.pyc", ".git/HEAD", "deep/secret.txt"]:
        (wd / path).parent.mkdir(parents=True, exist_ok=True)
        (wd / path).write_text(path)
    (wd / ".gitignore").write_text("ignored/\n")

    oxray.init(num_cpus=1)
    sys.path.insert(0, str(objects))  # after init: the workers do not have it
    try:
        module_object = importlib.import_module(imported)
        env = {"py_modules": [str(tmp_path / package), str(tmp_path / f"{single}.py"), module_object]}
        fn = oxray.remote(_imports).options(runtime_env=env)
        assert oxray.get(fn.remote(package, f"{package}.sub", single, imported)) == [
            "package", "sub", "single file", "module object"]
        assert oxray.get(oxray.remote(_imports).remote(package, single, imported)) == [None, None, None]
    finally:
        sys.path.remove(str(objects))
        sys.modules.pop(imported, None)

    env = {"working_dir": str(wd), "excludes": ["/secret.txt", "logs/", "*.log"]}
    files = oxray.get(oxray.remote(_files_here).options(runtime_env=env).remote())
    assert files == sorted([".gitignore", "keep.txt", "src/", "src/a.py", "deep/", "deep/secret.txt"])


# --- job-wide, overrides, inheritance ---------------------------------------------------------

def test_job_env_task_override_and_child_inheritance(shutdown_only, tmp_path):
    module, helper = _name("rte_job"), _name("rte_helper")
    job_dir = _working_dir(tmp_path, module, "job", "job_dir")
    task_dir = _working_dir(tmp_path, module, "task", "task_dir")
    (tmp_path / helper).mkdir()  # a package: its directory is what py_modules ships
    (tmp_path / helper / "__init__.py").write_text("VALUE = 'helper'\n")
    oxray.init(num_cpus=2, runtime_env={"working_dir": str(job_dir), "py_modules": [str(tmp_path / helper)],
                                        "env_vars": {"RTE_VAR": "job"}})
    job_env = dict(oxray.get_runtime_context().runtime_env)
    assert sorted(job_env) == ["env_vars", "py_modules", "working_dir"]
    assert job_env["env_vars"] == {"RTE_VAR": "job"} and job_env["working_dir"].startswith("gcs://_ray_pkg_")

    probe = oxray.remote(_probe)
    got = oxray.get(probe.remote(module))
    assert (got["value"], got["data"]) == ("job", "data of job") and got["env"] == job_env
    assert oxray.get(oxray.remote(_imports).remote(helper)) == ["helper"]

    # A task's working_dir replaces the job's; its py_modules stay (field by field).
    own = {"working_dir": str(task_dir), "env_vars": {"RTE_OWN": "1"}}
    got = oxray.get(probe.options(runtime_env=own).remote(module))
    assert (got["value"], got["data"]) == ("task", "data of task")
    assert got["env"]["py_modules"] == job_env["py_modules"] and got["env"]["working_dir"] != job_env["working_dir"]
    assert got["env"]["env_vars"] == {"RTE_VAR": "job", "RTE_OWN": "1"}
    assert oxray.get(oxray.remote(_imports).options(runtime_env=own).remote(module, helper)) == ["task", "helper"]

    # A child task inherits its parent's environment, unless it sets its own.
    nested = oxray.remote(_nested_probe)
    child = oxray.get(nested.options(runtime_env=own).remote(module))
    assert (child["value"], child["data"]) == ("task", "data of task") and child["env"] == got["env"]
    child = oxray.get(nested.options(runtime_env=own).remote(module, {"working_dir": str(job_dir)}))
    assert child["value"] == "job" and child["env"]["working_dir"] == job_env["working_dir"]


def test_idle_workers_of_other_environments_are_retired(shutdown_only, tmp_path, monkeypatch):
    """A worker that ran one code environment serves only it; as new
    environments keep coming, the idle workers of the earlier ones are
    retired (after Ray's `idle_worker_killing_time_threshold_ms`) instead of
    piling up past one worker per CPU."""
    from conftest import process_gone, wait_for

    monkeypatch.setenv("RAY_idle_worker_killing_time_threshold_ms", "300")
    module = _name("rte_retire")
    oxray.init(num_cpus=1)
    probe = oxray.remote(_probe)
    pids = []
    for i in range(4):
        env = {"working_dir": str(_working_dir(tmp_path, module, f"v{i}", f"wd{i}"))}
        got = oxray.get(probe.options(runtime_env=env).remote(module))
        assert got["value"] == f"v{i}"
        pids.append(got["pid"])
    assert len(set(pids)) == 4, pids  # each environment in a worker of its own
    assert wait_for(lambda: all(process_gone(p) for p in pids[:-1]), timeout=30), pids
    # The pool is back to one worker per CPU; the last environment's stays.
    assert not process_gone(pids[-1])
    assert oxray.get(probe.remote(module))["value"] is None  # a plain task still gets a worker


# --- packing and uploading -----------------------------------------------------------------

def test_a_package_is_packed_and_uploaded_once(shutdown_only, tmp_path, monkeypatch):
    module = _name("rte_once")
    wd = _working_dir(tmp_path, module, "first")
    packs, puts = [], []
    real_pack, real_put = runtime_env_packages._Source.pack, runtime_env_packages._native.kv_put

    def pack(self):
        packs.append(self.path)
        return real_pack(self)

    def kv_put(namespace, key, value):
        if namespace == runtime_env_packages.KV_NAMESPACE and not key.endswith(b"#uploaded"):
            puts.append(key)
        return real_put(namespace, key, value)

    monkeypatch.setattr(runtime_env_packages._Source, "pack", pack)
    monkeypatch.setattr(runtime_env_packages._native, "kv_put", kv_put)
    oxray.init(num_cpus=1)
    fn = oxray.remote(_probe).options(runtime_env={"working_dir": str(wd)})
    results = oxray.get([fn.remote(module) for _ in range(4)])
    assert {r["value"] for r in results} == {"first"} and len({r["cwd"] for r in results}) == 1
    assert len(packs) == 1 and len(puts) == 1

    # Changed content is a new package; unchanged content is not packed again.
    (wd / f"{module}.py").write_text("VALUE = 'second, longer'\n")
    assert oxray.get(fn.remote(module))["value"] == "second, longer"
    assert oxray.get(fn.remote(module))["value"] == "second, longer"
    assert len(packs) == 2 and len(puts) == 2 and puts[0] != puts[1]


# --- what oxray refuses -------------------------------------------------------------------

@pytest.mark.parametrize("env, match", [
    ({"pip": ["requests"]}, "pip"),
    ({"conda": "env"}, "conda"),
    ({"uv": ["requests"]}, "uv"),
    ({"container": {"image": "x"}}, "container"),
    ({"image_uri": "docker.io/x"}, "image_uri"),
    ({"java_jars": ["a.jar"]}, "java_jars"),
    ({"nsight": "default"}, "nsight"),
    ({"working_dir": "s3://bucket/dir.zip"}, "local paths only"),
    ({"py_modules": ["https://example.com/m.zip"]}, "local paths only"),
    ({"py_modules": ["/x/m-1.0-py3-none-any.whl"]}, "whl"),
])
def test_unsupported_runtime_envs_raise_at_submission(env, match):
    def f():
        return 1

    with pytest.raises(ValueError, match=match):
        oxray.remote(runtime_env=env)(f)
    with pytest.raises(ValueError, match=match):
        oxray.remote(f).options(runtime_env=env)
    assert not oxray.is_initialized()


def test_init_refuses_missing_or_oversized_directories(shutdown_only, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="existing directory"):
        oxray.init(num_cpus=1, runtime_env={"working_dir": str(tmp_path / "missing")})
    (tmp_path / "big.bin").write_bytes(b"x" * 4096)
    monkeypatch.setattr(runtime_env_packages, "MAX_PACKAGE_BYTES", 1024)
    with pytest.raises(ValueError, match=r"maximum size of 0\.00MiB.*excludes"):
        oxray.init(num_cpus=1, runtime_env={"working_dir": str(tmp_path)})
    assert not oxray.is_initialized()
