"""`oxray.timeline()`: Chrome trace events of what ran, where and when."""

import json
import os

import pytest

import oxray
from barrier import arrive_and_wait


def test_timeline_shows_who_ran_what_and_when(cluster, tmp_path):
    @oxray.remote
    def meet(directory, name):
        arrive_and_wait(directory, 2, name)
        return os.getpid()

    @oxray.remote
    class Greeter:
        def hello(self):
            return "hi"

    @oxray.remote(max_retries=0)
    def fails():
        raise ValueError("no")

    pids = oxray.get([meet.remote(str(tmp_path / "b"), i) for i in range(2)])
    greeter = Greeter.remote()
    assert oxray.get(greeter.hello.remote()) == "hi"
    with pytest.raises(ValueError):
        oxray.get(fails.remote())

    events = oxray.timeline()
    meets = [e for e in events if e["name"] == "task::meet"]
    assert len(meets) == 2
    for e in events:
        assert e["ph"] == "X" and e["dur"] >= 0 and e["ts"] > 0
        assert e["pid"].startswith("Node ")
    # The two tasks met at a barrier: they ran at the same time, in two
    # workers, and the events say so.
    a, b = sorted(meets, key=lambda e: e["ts"])
    assert b["ts"] < a["ts"] + a["dur"]
    assert {e["args"]["worker_pid"] for e in meets} == set(pids)
    assert a["tid"] != b["tid"]
    assert [e for e in events if e["name"] == "actor_task::Greeter.hello"]
    failed = [e for e in events if e["name"] == "task::fails"]
    assert failed and failed[0]["args"]["error_type"] == "TASK_EXECUTION_EXCEPTION"

    path = tmp_path / "trace.json"
    assert oxray.timeline(filename=str(path)) is None
    assert len(json.loads(path.read_text())) >= len(events)


def test_task_times_in_the_state_api(cluster):
    from oxray.util.state import list_tasks

    @oxray.remote
    def work():
        return 1

    ref = work.remote()
    oxray.get(ref)
    rows = [t for t in list_tasks(filters=[("name", "=", "work")], detail=True)]
    assert rows
    row = rows[-1]
    assert row.creation_time_ms <= row.start_time_ms <= row.end_time_ms
    assert row.worker_pid and row.node_id
