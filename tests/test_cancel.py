"""cancel: queued and running tasks, force and recursive."""

import os
import time

import pytest

import oxray
from oxray.exceptions import TaskCancelledError, WorkerCrashedError
from barrier import arrive_and_wait
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


def test_a_cancelled_task_gets_keyboard_interrupt_and_cleans_up(cluster, tmp_path):
    started, cleaned = tmp_path / "started", tmp_path / "cleaned"

    @oxray.remote
    def careful():
        started.touch()
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            cleaned.touch()
            raise

    ref = careful.remote()
    assert wait_for(started.exists)
    oxray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        oxray.get(ref, timeout=20)
    assert cleaned.exists()


def test_a_task_blocked_in_get_is_interrupted(shutdown_only, tmp_path):
    oxray.init(num_cpus=2)
    started, cleaned = tmp_path / "started", tmp_path / "cleaned"

    @oxray.remote
    def never_ready():
        time.sleep(3600)

    @oxray.remote
    def waits(ref_box):
        started.touch()
        try:
            return oxray.get(ref_box[0])
        except KeyboardInterrupt:
            cleaned.touch()
            raise

    @oxray.remote
    def after(value):
        return value

    blocker = never_ready.remote()
    ref = waits.remote([blocker])
    dependent = after.remote(ref)
    assert wait_for(started.exists, timeout=30)
    oxray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        oxray.get(ref, timeout=20)
    with pytest.raises(TaskCancelledError):
        oxray.get(dependent, timeout=20)
    assert wait_for(cleaned.exists, timeout=10)
    oxray.cancel(blocker, force=True)
    # Both CPUs are free again: two tasks that can only finish together do.
    barrier = str(tmp_path / "barrier")

    @oxray.remote
    def together(name):
        from barrier import arrive_and_wait
        return arrive_and_wait(barrier, 2, name)

    assert oxray.get([together.remote(i) for i in range(2)], timeout=60) == [True, True]


def test_a_task_that_swallows_the_interrupt_still_counts_as_cancelled(cluster, tmp_path):
    started = tmp_path / "started"

    @oxray.remote
    def stubborn():
        started.touch()
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            return "ignored the cancel"

    ref = stubborn.remote()
    assert wait_for(started.exists)
    oxray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        oxray.get(ref, timeout=20)


def test_a_borrower_cancels_through_the_owner(cluster, tmp_path):
    @oxray.remote
    def stuck(directory):
        arrive_and_wait(directory, 2, "never")  # only the cancel ends it
        return "finished"

    @oxray.remote
    def cancel_it(refs):
        oxray.cancel(refs[0])
        return "sent"

    ref = stuck.remote(str(tmp_path / "b"))
    assert oxray.get(cancel_it.remote([ref])) == "sent"
    with pytest.raises(TaskCancelledError):
        oxray.get(ref, timeout=30)
