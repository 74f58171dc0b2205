"""Errors: task exceptions, propagation, crashed workers, retries and bad
input."""

import os
import time

import pytest

import oxray
from oxray.exceptions import RayError, RayTaskError, WorkerCrashedError


class CustomError(Exception):
    pass


@oxray.remote
def raise_value_error():
    raise ValueError("bad value")


def test_task_error_is_instance_of_cause(cluster):
    with pytest.raises(ValueError, match="bad value") as info:
        oxray.get(raise_value_error.remote())
    err = info.value
    assert isinstance(err, RayTaskError) and isinstance(err, RayError)
    assert type(err).__name__ == "RayTaskError(ValueError)"
    assert "raise_value_error" in str(err)
    assert "Traceback" not in str(err).splitlines()[0]
    assert 'raise ValueError("bad value")' in err.traceback_str
    assert isinstance(err.cause, ValueError)


def test_custom_exception_class(cluster):
    @oxray.remote
    def f():
        raise CustomError("mine")

    with pytest.raises(CustomError):
        oxray.get(f.remote())


def test_unpicklable_exception_keeps_its_text(cluster):
    @oxray.remote
    def f():
        import threading

        class Weird(Exception):
            def __init__(self):
                super().__init__("weird")
                self.lock = threading.Lock()

        raise Weird()

    with pytest.raises(RayTaskError, match="weird"):
        oxray.get(f.remote())


def test_failure_propagates_through_dependents(cluster):
    @oxray.remote
    def plus(x):
        return x + 1

    ref = plus.remote(plus.remote(raise_value_error.remote()))
    with pytest.raises(ValueError, match="bad value"):
        oxray.get(ref)


def test_get_in_task_of_failed_ref_reraises(cluster):
    @oxray.remote
    def getter(refs):
        return oxray.get(refs[0])

    with pytest.raises(ValueError, match="bad value"):
        oxray.get(getter.remote([raise_value_error.remote()]))


def test_get_list_raises_first_error(cluster):
    with pytest.raises(ValueError):
        oxray.get([oxray.put(1), raise_value_error.remote()])


def test_worker_crash_is_retried_then_reported(cluster, tmp_path):
    counter = tmp_path / "attempts"

    @oxray.remote(max_retries=2)
    def die(path):
        with open(path, "a") as f:
            f.write("x")
        os._exit(1)

    with pytest.raises(WorkerCrashedError):
        oxray.get(die.remote(str(counter)), timeout=60)
    assert counter.read_text() == "xxx"


def test_worker_crash_recovers_on_retry(cluster, tmp_path):
    marker = tmp_path / "crashed-once"

    @oxray.remote
    def flaky(path):
        if not os.path.exists(path):
            open(path, "w").close()
            os._exit(1)
        return "ok"

    assert oxray.get(flaky.remote(str(marker)), timeout=60) == "ok"


def test_segfault_is_a_crash(cluster):
    @oxray.remote(max_retries=0)
    def segfault():
        import ctypes
        ctypes.string_at(0)

    with pytest.raises(WorkerCrashedError):
        oxray.get(segfault.remote(), timeout=60)


def test_cluster_keeps_working_after_crashes(cluster):
    @oxray.remote
    def ok():
        return 1

    assert sum(oxray.get([ok.remote() for _ in range(20)])) == 20


def test_retry_exceptions(cluster, tmp_path):
    counter = tmp_path / "n"

    @oxray.remote(max_retries=3, retry_exceptions=True)
    def fail_twice(path):
        with open(path, "a") as f:
            f.write("x")
        if len(open(path).read()) < 3:
            raise CustomError("not yet")
        return "third time"

    assert oxray.get(fail_twice.remote(str(counter))) == "third time"

    counter2 = tmp_path / "m"

    @oxray.remote(max_retries=3, retry_exceptions=[KeyError])
    def wrong_kind(path):
        with open(path, "a") as f:
            f.write("x")
        raise CustomError("never retried")

    with pytest.raises(CustomError):
        oxray.get(wrong_kind.remote(str(counter2)))
    assert counter2.read_text() == "x"


def test_exceptions_are_not_retried_by_default(cluster, tmp_path):
    counter = tmp_path / "n"

    @oxray.remote
    def fail(path):
        with open(path, "a") as f:
            f.write("x")
        raise CustomError("once")

    with pytest.raises(CustomError):
        oxray.get(fail.remote(str(counter)))
    assert counter.read_text() == "x"


def test_bad_options_raise_value_error(cluster):
    @oxray.remote
    def f():
        return 1

    for bad in [dict(num_cpus=-1), dict(num_gpus="x"), dict(memory=-5), dict(resources={"Custom": -1}),
                dict(num_returns=-1), dict(max_retries=-2), dict(num_gpus=1.5)]:
        with pytest.raises((ValueError, TypeError)):
            f.options(**bad)
    with pytest.raises(ValueError):
        oxray.remote(num_cpus=-1)(lambda: 1)
    with pytest.raises(ValueError, match="num_cpus' and 'num_gpus"):
        f.options(resources={"GPU": 1})


def test_exception_classes_exist():
    ex = oxray.exceptions
    for name in ["RayError", "RayTaskError", "GetTimeoutError", "RayTimeoutError", "TaskCancelledError",
                 "WorkerCrashedError", "ObjectLostError", "RaySystemError", "RayActorError", "ActorDiedError",
                 "ObjectStoreFullError", "OutOfMemoryError"]:
        assert issubclass(getattr(ex, name), ex.RayError)
    assert issubclass(ex.GetTimeoutError, TimeoutError)


def test_ctrl_c_interrupts_a_blocked_get(shutdown_only):
    import signal
    import subprocess
    import sys

    from conftest import REPO

    code = (
        "import time, oxray\n"
        "oxray.init(num_cpus=1)\n"
        "@oxray.remote\n"
        "def forever():\n"
        "    time.sleep(3600)\n"
        "ref = forever.remote()\n"
        "print('waiting', flush=True)\n"
        "for call in (lambda: oxray.get(ref), lambda: oxray.wait([ref])):\n"
        "    try:\n"
        "        call()\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted', flush=True)\n"
        "oxray.shutdown()\n"
    )
    import select

    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=REPO)

    def line(timeout=20):
        ready, _, _ = select.select([p.stdout], [], [], timeout)
        assert ready, "the driver is still blocked"
        return p.stdout.readline().strip()

    try:
        assert line() == "waiting"
        for _ in range(2):
            # Each SIGINT ends one blocked call.
            time.sleep(0.5)
            p.send_signal(signal.SIGINT)
            assert line() == "interrupted"
        assert p.wait(timeout=30) == 0, p.stderr.read()
    finally:
        p.kill()
        p.wait()


def test_errors_nobody_reads_are_reported_once(cluster, monkeypatch):
    from conftest import wait_for
    from oxray._private import worker as _worker

    seen = []
    monkeypatch.setattr(_worker, "_unhandled_error_handler", seen.append)

    @oxray.remote(max_retries=0)
    def fails():
        raise ValueError("nobody looked")

    @oxray.remote
    class Failing:
        def fails(self):
            raise ValueError("nobody looked either")

    actor = Failing.remote()
    # Dropped before or after the error arrived: reported either way.
    x1, x2 = fails.remote(), actor.fails.remote()
    del x1, x2
    assert wait_for(lambda: len(seen) == 2)
    assert all(isinstance(e, ValueError) and isinstance(e, RayTaskError) for e in seen)

    # Errors read by `get`, or by a task that depended on them, are handled:
    # only the dependent's own error (dropped unread) is reported.
    x1, x2 = fails.remote(), actor.fails.remote()
    with pytest.raises(ValueError):
        oxray.get([x1, x2])

    @oxray.remote
    def use(value):
        return value

    @oxray.remote
    def read_nested(refs):
        try:
            oxray.get(refs[0])
        except ValueError:
            return "read"

    # A borrower that reads it (from the owner) handles it too.
    borrowed = fails.remote()
    assert oxray.get(read_nested.remote([borrowed])) == "read"
    dependent = use.remote(fails.remote())
    del x1, x2, dependent, borrowed
    assert wait_for(lambda: len(seen) == 3)

    # Suppressed by the environment variable when reported, as in Ray.
    import threading

    import numpy as np

    from oxray import _native

    monkeypatch.setenv("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    ref = fails.remote()
    oxray.wait([ref])
    del ref
    # Reports run in order on the runtime's callback thread, as do the
    # callbacks of shared-memory values: this one runs after the report.
    reported = threading.Event()
    marker = oxray.put(np.zeros(1 << 20, dtype=np.uint8))
    _native.on_ready(marker, reported.set)
    assert reported.wait(10)
    monkeypatch.delenv("RAY_IGNORE_UNHANDLED_ERRORS")
    ref = fails.remote()
    oxray.wait([ref])
    del ref
    assert wait_for(lambda: len(seen) == 4)
    time.sleep(0.2)
    assert len(seen) == 4


def test_an_unhandled_error_is_printed_by_the_driver():
    from conftest import run_driver

    out = run_driver(
        "import oxray, time\n"
        "oxray.init(num_cpus=1)\n"
        "@oxray.remote(max_retries=0)\n"
        "def f():\n"
        "    raise KeyError('never read')\n"
        "r = f.remote()\n"
        "oxray.wait([r])\n"
        "del r\n"
        "time.sleep(0.5)\n"
        "oxray.shutdown()\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("Unhandled error (suppress with 'RAY_IGNORE_UNHANDLED_ERRORS=1')") == 1
    assert "never read" in out.stderr


def test_an_intended_actor_exit_is_not_an_unhandled_error(cluster, monkeypatch):
    from conftest import wait_for
    from oxray._private import worker as _worker

    seen = []
    monkeypatch.setattr(_worker, "_unhandled_error_handler", seen.append)

    @oxray.remote
    class Leaving:
        def leave(self):
            oxray.actor.exit_actor()

    @oxray.remote(max_retries=0)
    def fails():
        raise ValueError("reported")

    actor = Leaving.remote()
    ref = actor.leave.remote()
    oxray.wait([ref])
    del ref
    after = fails.remote()
    oxray.wait([after])
    del after
    # Reports come in order: the failure's arrives after the exit's would.
    assert wait_for(lambda: len(seen) == 1)
    assert isinstance(seen[0], ValueError)
