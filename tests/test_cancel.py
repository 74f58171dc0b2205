"""cancel: queued and running tasks, force and recursive."""

import os
import time

import pytest

import oxray
from oxray.exceptions import TaskCancelledError, WorkerCrashedError
from conftest import wait_for


@oxray.remote
def sleeper(seconds, path=None):
    if path:
        open(path, "w").close()
    time.sleep(seconds)
    return "finished"


def test_cancel_running_task(cluster, tmp_path):
    flag = str(tmp_path / "started")
    ref = sleeper.remote(30, flag)
    assert wait_for(lambda: os.path.exists(flag))
    t = time.monotonic()
    oxray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        oxray.get(ref, timeout=20)
    assert time.monotonic() - t < 10


def test_cancel_queued_task(cluster, tmp_path):
    flags = [str(tmp_path / f"s{i}") for i in range(2)]
    blockers = [sleeper.remote(2, f) for f in flags]
    queued = sleeper.remote(0, str(tmp_path / "queued"))
    oxray.cancel(queued)
    with pytest.raises(TaskCancelledError):
        oxray.get(queued, timeout=20)
    assert not os.path.exists(tmp_path / "queued")
    assert oxray.get(blockers) == ["finished", "finished"]


def test_force_cancel_kills_worker(cluster, tmp_path):
    @oxray.remote
    def ignore_interrupts(path):
        open(path, "w").close()
        while True:
            try:
                time.sleep(60)
            except BaseException:
                pass

    flag = str(tmp_path / "started")
    ref = ignore_interrupts.remote(flag)
    assert wait_for(lambda: os.path.exists(flag))
    oxray.cancel(ref, force=True)
    with pytest.raises((TaskCancelledError, WorkerCrashedError)) as info:
        oxray.get(ref, timeout=20)
    assert isinstance(info.value, TaskCancelledError)


def test_cancel_finished_task_is_noop(cluster):
    ref = sleeper.remote(0)
    assert oxray.get(ref) == "finished"
    oxray.cancel(ref)
    assert oxray.get(ref) == "finished"


def test_recursive_cancel_reaches_children(cluster, tmp_path):
    child_flag = str(tmp_path / "child")

    @oxray.remote
    def parent(path):
        child = sleeper.remote(30, path)
        return oxray.get(child)

    ref = parent.remote(child_flag)
    assert wait_for(lambda: os.path.exists(child_flag), timeout=20)
    oxray.cancel(ref, recursive=True)
    with pytest.raises(TaskCancelledError):
        oxray.get(ref, timeout=20)


def test_cancel_rejects_non_refs(cluster):
    with pytest.raises(TypeError):
        oxray.cancel(1)


def test_cluster_usable_after_cancels(cluster):
    assert oxray.get([sleeper.remote(0) for _ in range(4)]) == ["finished"] * 4
