"""The state API's task listing (`oxray.util.state.list_tasks`, `oxray list
tasks`): pending, running and finished tasks of every process."""

import os
import tempfile
import time

import pytest

import oxray
from oxray.util.state import list_tasks

from conftest import wait_for


def _by_name(name):
    return [t for t in list_tasks(limit=None) if t["name"].endswith(name)]


@oxray.remote
def wait_for_file(path):
    while not os.path.exists(path):
        time.sleep(0.01)
    return "done"


def test_finished_and_failed_tasks(cluster):
    @oxray.remote
    def fine():
        return 1

    @oxray.remote
    def broken():
        raise ValueError("no")

    oxray.get(fine.remote())
    with pytest.raises(ValueError):
        oxray.get(broken.remote())
    [ok] = _by_name("fine")
    [bad] = _by_name("broken")
    assert ok["state"] == "FINISHED" and ok["error_type"] is None and ok["type"] == "NORMAL_TASK"
    assert bad["state"] == "FAILED" and bad["error_type"] == "TASK_EXECUTION_EXCEPTION"
    assert ok["job_id"] == oxray.get_runtime_context().get_job_id()


def test_running_and_pending_tasks(cluster):
    flag = os.path.join(tempfile.mkdtemp(), "go")
    running = [wait_for_file.remote(flag) for _ in range(2)]  # the cluster's 2 CPUs
    queued = wait_for_file.remote(flag)

    @oxray.remote
    def after(x):
        return x

    waits_for_arg = after.remote(queued)

    def states():
        return sorted(t["state"] for t in _by_name("wait_for_file"))

    assert wait_for(lambda: states() == ["PENDING_NODE_ASSIGNMENT", "RUNNING", "RUNNING"], timeout=20), states()
    assert all(t["worker_id"] for t in _by_name("wait_for_file") if t["state"] == "RUNNING")
    assert [t["state"] for t in _by_name("after")] == ["PENDING_ARGS_AVAIL"]
    open(flag, "w").close()
    assert oxray.get(running + [queued, waits_for_arg]) == ["done"] * 4
    assert states() == ["FINISHED"] * 3


def test_actor_and_nested_tasks(cluster):
    @oxray.remote
    class Counter:
        def incr(self):
            return 1

    @oxray.remote
    def parent():
        return oxray.get(child.remote())

    @oxray.remote
    def child():
        return 2

    c = Counter.remote()
    oxray.get([c.incr.remote() for _ in range(3)])
    calls = _by_name("Counter.incr")
    assert len(calls) == 3 and {t["type"] for t in calls} == {"ACTOR_TASK"}
    assert {t["actor_id"] for t in calls} == {c._actor_id.hex()}
    assert oxray.get(parent.remote()) == 2
    # The child was submitted (and is owned) by the worker that ran parent.
    assert [t["state"] for t in _by_name("child")] == ["FINISHED"]


def test_filters_and_limit(cluster):
    @oxray.remote
    def numbered(i):
        if i % 2:
            raise KeyError(i)
        return i

    refs = [numbered.remote(i) for i in range(6)]
    oxray.wait(refs, num_returns=6)
    name = _by_name("numbered")[0]["name"]
    failed = list_tasks(filters=[("name", "=", name), ("state", "=", "FAILED")])
    assert len(failed) == 3 and all(t["error_type"] == "TASK_EXECUTION_EXCEPTION" for t in failed)
    assert len(list_tasks(limit=2)) == 2
    with pytest.raises(ValueError, match="cannot filter"):
        list_tasks(filters=[("colour", "=", "red")])
    with pytest.raises(ValueError, match="predicate"):
        list_tasks(filters=[("state", "~", "x")])
