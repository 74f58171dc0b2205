"""Options of `@remote`, `.options()`, `@method` and `init()`: each one oxray
accepts either works, warns that it is advisory, or raises naming itself."""

import os
import threading
import time
import warnings

import pytest

import oxray
from oxray.exceptions import PendingCallsLimitExceeded

from conftest import run_driver


# --- no option is dropped silently -----------------------------------------------

@pytest.mark.parametrize("option, value", [
    ("label_selector", {"zone": "a"}),
    ("fallback_strategy", [{"label_selector": {"zone": "b"}}]),
])
def test_an_unsupported_task_option_raises_naming_itself(option, value):
    def f():
        return 1

    with pytest.raises(ValueError, match=option):
        oxray.remote(**{option: value})(f)
    with pytest.raises(ValueError, match=option):
        oxray.remote(f).options(**{option: value})


def test_an_unsupported_option_at_its_default_is_accepted():
    @oxray.remote(label_selector=None, fallback_strategy=None)
    def f():
        return 1

    assert f is not None


def test_an_advisory_option_warns_once(cluster):
    @oxray.remote
    def f():
        return 2

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = f.options(object_store_memory=1 << 20)
        f.options(object_store_memory=2 << 20)
    assert oxray.get(g.remote()) == 2
    messages = [str(w.message) for w in caught if "object_store_memory" in str(w.message)]
    assert len(messages) <= 1  # once per process (an earlier test may have seen it)


@pytest.mark.parametrize("kwargs, name", [
    ({"local_mode": True}, "local_mode"),
    ({"labels": {"zone": "a"}}, "labels"),
    ({"storage": "/tmp/x"}, "storage"),
    ({"runtime_env": {"pip": ["requests"]}}, "pip"),
    ({"runtime_env": {"bogus": 1}}, "bogus"),
])
def test_init_refuses_what_it_cannot_honour(shutdown_only, kwargs, name):
    with pytest.raises(ValueError, match=name):
        oxray.init(num_cpus=1, **kwargs)
    assert not oxray.is_initialized()


def test_an_actor_method_option_is_checked_at_decoration():
    with pytest.raises(ValueError, match="bogus"):
        @oxray.remote
        class A:
            @oxray.method(bogus=1)
            def f(self):
                return 1


# --- runtime_env env_vars ----------------------------------------------------------

def test_env_vars_of_the_job_task_and_parent_reach_the_task(shutdown_only):
    oxray.init(num_cpus=1, runtime_env={"env_vars": {"OXRAY_T_JOB": "job", "OXRAY_T_X": "job"}})

    @oxray.remote
    def read(*names):
        return [os.environ.get(n) for n in names]

    @oxray.remote
    def parent():
        return oxray.get(read.remote("OXRAY_T_JOB", "OXRAY_T_P"))

    assert oxray.get(read.remote("OXRAY_T_JOB", "OXRAY_T_X")) == ["job", "job"]
    # The task's own variables override the job's, one by one.
    own = read.options(runtime_env={"env_vars": {"OXRAY_T_X": "task"}})
    assert oxray.get(own.remote("OXRAY_T_JOB", "OXRAY_T_X")) == ["job", "task"]
    # ...and only for that task: the worker's environment is restored.
    assert oxray.get(read.remote("OXRAY_T_X")) == ["job"]
    # A child task inherits its parent's.
    with_p = parent.options(runtime_env={"env_vars": {"OXRAY_T_P": "parent"}})
    assert oxray.get(with_p.remote()) == ["job", "parent"]


def test_an_actor_keeps_its_env_vars(cluster):
    @oxray.remote(runtime_env={"env_vars": {"OXRAY_T_ACTOR": "yes"}})
    class A:
        def read(self):
            return os.environ.get("OXRAY_T_ACTOR")

    a = A.remote()
    assert oxray.get([a.read.remote(), a.read.remote()]) == ["yes", "yes"]


# --- actors -------------------------------------------------------------------------

def test_max_pending_calls_raises_pending_calls_limit_exceeded(cluster, tmp_path):
    gate_file = tmp_path / "open"

    @oxray.remote
    def gate(path):
        while not os.path.exists(path):
            time.sleep(0.01)
        return 1

    @oxray.remote(max_pending_calls=2)
    class Echo:
        def f(self, x):
            return x

    a = Echo.remote()
    g = gate.remote(str(gate_file))
    # Calls waiting for an argument stay pending until the gate opens.
    first = [a.f.remote(g), a.f.remote(g)]
    with pytest.raises(PendingCallsLimitExceeded, match="max_pending_calls"):
        a.f.remote(g)
    gate_file.touch()
    assert oxray.get(first, timeout=60) == [1, 1]
    assert oxray.get(a.f.remote(2)) == 2


def test_max_pending_calls_frees_up_as_calls_finish(cluster):
    @oxray.remote(max_pending_calls=1)
    class One:
        def f(self, x):
            return x

    a = One.remote()
    for i in range(5):
        assert oxray.get(a.f.remote(i)) == i


def test_concurrency_groups_run_apart_from_the_default_group(cluster, tmp_path):
    from barrier import arrive_and_wait

    @oxray.remote(concurrency_groups={"io": 2, "compute": 1})
    class Grouped:
        @oxray.method(concurrency_group="io")
        def io(self, directory, name):
            # Both io calls must run at once for either to return.
            arrive_and_wait(directory, 2, name)
            return threading.current_thread().name

        @oxray.method(concurrency_group="compute")
        def compute(self):
            return threading.current_thread().name

        def default(self):
            return threading.current_thread().name

    g = Grouped.remote()
    io = [g.io.remote(str(tmp_path), i) for i in range(2)]
    names = oxray.get(io + [g.compute.remote(), g.default.remote()], timeout=60)
    assert all("io" in n for n in names[:2]) and names[0] != names[1]
    assert "compute" in names[2] and "default" in names[3]


def test_an_async_actor_limits_each_group(cluster):
    @oxray.remote(concurrency_groups={"one": 1})
    class Async:
        def __init__(self):
            self.running = 0
            self.most = 0

        @oxray.method(concurrency_group="one")
        async def serial(self):
            import asyncio
            self.running += 1
            self.most = max(self.most, self.running)
            await asyncio.sleep(0.05)
            self.running -= 1
            return self.most

        async def free(self):
            return 1

    a = Async.remote()
    assert max(oxray.get([a.serial.remote() for _ in range(4)])) == 1
    assert oxray.get(a.free.remote()) == 1


def test_a_method_in_an_undeclared_group_is_refused(cluster):
    @oxray.remote
    class Bad:
        @oxray.method(concurrency_group="io")
        def f(self):
            return 1

    with pytest.raises(ValueError, match="io"):
        Bad.remote()


def test_retry_exceptions_on_an_actor_method(cluster):
    @oxray.remote(max_task_retries=2)
    class Flaky:
        def __init__(self):
            self.calls = 0

        @oxray.method(retry_exceptions=[ValueError])
        def once_more(self):
            self.calls += 1
            if self.calls < 3:
                raise ValueError("not yet")
            return self.calls

        def never(self):
            self.calls += 1
            raise ValueError("no retry")

    a = Flaky.remote()
    assert oxray.get(a.once_more.remote()) == 3
    with pytest.raises(ValueError):
        oxray.get(a.never.remote())
    assert oxray.get(a.once_more.remote()) == 5


# --- resources and init --------------------------------------------------------------

def test_accelerator_type_needs_a_node_with_that_accelerator(shutdown_only):
    oxray.init(num_cpus=1, resources={"accelerator_type:T4": 1})

    @oxray.remote
    def f():
        return "ran"

    assert oxray.get(f.options(accelerator_type="T4").remote(), timeout=30) == "ran"
    ready, _ = oxray.wait([f.options(accelerator_type="V100").remote()], timeout=0.5)
    assert ready == []


def test_log_to_driver_false_keeps_worker_output_away():
    code = (
        "import oxray\n"
        "oxray.init(num_cpus=1, log_to_driver={flag})\n"
        "@oxray.remote\n"
        "def f():\n"
        "    print('from-the-worker', flush=True)\n"
        "    return 1\n"
        "oxray.get(f.remote())\n"
        "import time; time.sleep(0.5)\n"
        "oxray.shutdown()\n"
    )
    shown = run_driver(code.format(flag=True))
    hidden = run_driver(code.format(flag=False))
    assert shown.returncode == 0 and hidden.returncode == 0, hidden.stderr
    assert "from-the-worker" in shown.stdout
    assert "from-the-worker" not in hidden.stdout + hidden.stderr


def test_temp_dir_and_memory_shape_the_local_cluster(shutdown_only, tmp_path):
    context = oxray.init(num_cpus=1, _temp_dir=str(tmp_path), _memory=3 << 30)
    assert context["session_dir"].startswith(str(tmp_path))
    assert oxray.cluster_resources()["memory"] == 3 << 30
    oxray.shutdown()
    time.sleep(0)  # the session directory is removed with the cluster


# --- max_calls --------------------------------------------------------------------

def test_max_calls_replaces_the_worker_after_that_many_calls(cluster):
    @oxray.remote(max_calls=2)
    def pid():
        return os.getpid()

    pids = [oxray.get(pid.remote()) for _ in range(6)]
    assert all(pids.count(p) <= 2 for p in pids), pids
    assert len(set(pids)) >= 3
    # Many at once: still never more than 2 calls per worker.
    many = oxray.get([pid.remote() for _ in range(12)])
    assert all(many.count(p) <= 2 for p in many), many


def test_max_calls_cannot_be_set_in_options():
    @oxray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="max_calls"):
        f.options(max_calls=1)
