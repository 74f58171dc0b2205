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
    # The error message (a detail column, as in Ray) is what the task
    # raised, with the traceback of the user's code.
    assert bad["error_message"] is None
    [bad] = [t for t in list_tasks(limit=None, detail=True) if t["name"].endswith("broken")]
    [ok] = [t for t in list_tasks(limit=None, detail=True) if t["name"].endswith("fine")]
    assert ok["error_message"] is None
    lines = bad["error_message"].splitlines()
    assert "broken()" in lines[0] and '    raise ValueError("no")' in lines and lines[-1] == "ValueError: no"


def test_each_failed_attempt_keeps_its_error_message(cluster, tmp_path):
    marker = tmp_path / "attempts"

    @oxray.remote(max_retries=1, retry_exceptions=True)
    def flaky(path):
        with open(path, "a") as f:
            f.write("x")
        with open(path) as f:
            raise RuntimeError(f"attempt {len(f.read())}")

    with pytest.raises(RuntimeError, match="attempt 2"):
        oxray.get(flaky.remote(str(marker)))
    rows = sorted((t for t in list_tasks(limit=None, detail=True) if t["name"].endswith("flaky")),
                  key=lambda t: t["attempt_number"])
    assert [t["attempt_number"] for t in rows] == [0, 1]
    assert [t["error_message"].splitlines()[-1] for t in rows] == ["RuntimeError: attempt 1",
                                                                    "RuntimeError: attempt 2"]


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


# ----- the rest of the state API: rows, filters, get_*, summaries ---------

from oxray.util import state  # noqa: E402


@oxray.remote
class Named:
    def pid(self):
        return os.getpid()


def _actors_named(prefix):
    return [a for a in state.list_actors(limit=None) if a.name.startswith(prefix)]


def test_rows_read_as_attributes_and_as_dict_items(cluster):
    a = Named.options(name="rows-a").remote()
    pid = oxray.get(a.pid.remote())
    [row] = _actors_named("rows-a")
    assert isinstance(row, state.ActorState)
    assert row.state == row["state"] == row.get("state") == "ALIVE"
    assert row.pid == pid and row.class_name == "Named" and row.actor_id == a._actor_id.hex()
    assert row.node_id == oxray.get_runtime_context().get_node_id()
    assert row.asdict()["ray_namespace"] == row.ray_namespace
    assert dict(row)["name"] == "rows-a" and "state" in row
    assert row.get("colour", "none") == "none"
    with pytest.raises(KeyError):
        row["colour"]
    # Detail columns are None unless asked for, as Ray's.
    assert row.num_restarts is None and row.job_id is None
    [full] = [r for r in state.list_actors(detail=True, limit=None) if r.name == "rows-a"]
    assert full.num_restarts == 0
    oxray.kill(a)


def test_actor_filters_limit_and_order(cluster):
    actors = [Named.options(name=f"flt-{i}").remote() for i in range(3)]
    oxray.get([x.pid.remote() for x in actors])
    oxray.kill(actors[1])
    assert wait_for(lambda: [a.name for a in _actors_named("flt-") if a.state == "DEAD"] == ["flt-1"])
    dead = state.list_actors(filters=[("state", "=", "dead"), ("class_name", "=", "Named")], limit=None)
    assert "flt-1" in [a.name for a in dead] and all(a.state == "DEAD" for a in dead)
    alive = [a.name for a in state.list_actors(filters=[("state", "!=", "DEAD")], limit=None)]
    assert "flt-0" in alive and "flt-2" in alive and "flt-1" not in alive
    # Ray's order: by id; then the first `limit`.
    every = state.list_actors(limit=None)
    assert [a.actor_id for a in every] == sorted(a.actor_id for a in every)
    assert [a.actor_id for a in state.list_actors(limit=2)] == [a.actor_id for a in every[:2]]
    with pytest.warns(UserWarning, match="multiple '=' filters"):
        assert state.list_actors(filters=[("name", "=", "flt-0"), ("name", "=", "flt-2")]) == []
    with pytest.raises(ValueError, match="cannot filter actors on 'colour'"):
        state.list_actors(filters=[("colour", "=", "red")])
    with pytest.raises(ValueError, match="predicate"):
        state.list_actors(filters=[("state", ">", "x")])
    with pytest.raises(ValueError, match="limit"):
        state.list_actors(limit=-1)
    for a in actors:
        oxray.kill(a)


def test_filter_values_are_converted_to_the_column_type(cluster):
    a = Named.options(name="typed").remote()
    pid = oxray.get(a.pid.remote())
    [row] = state.list_actors(filters=[("pid", "=", str(pid))])
    assert row.name == "typed"
    assert state.list_actors(filters=[("pid", "=", pid)]) == [row]
    [node] = state.list_nodes(filters=[("is_head_node", "=", "true")])
    assert node.is_head_node is True
    assert state.list_nodes(filters=[("is_head_node", "=", "0")]) == []
    with pytest.raises(ValueError, match="integer"):
        state.list_actors(filters=[("pid", "=", "many")])
    oxray.kill(a)


def test_get_actor_and_get_task(cluster):
    a = Named.options(name="got").remote()
    oxray.get(a.pid.remote())
    got = state.get_actor(a._actor_id.hex())
    assert got.name == "got" and got.num_restarts == 0  # detail columns filled
    assert state.get_actor("ab" * 16) is None

    @oxray.remote
    def traced():
        return 1

    ref = traced.remote()
    oxray.get(ref)
    task = state.get_task(ref)
    assert isinstance(task, state.TaskState) and task.name == "traced" and task.state == "FINISHED"
    assert task.language == "PYTHON" and task.attempt_number == 0
    assert state.get_task(task.task_id.upper()) == task  # ids compare case-insensitively
    assert state.get_task("00" * 16) is None
    [call] = [t for t in state.list_tasks(filters=[("actor_id", "=", a._actor_id.hex())])]
    assert call.type == "ACTOR_TASK" and call.worker_pid == got.pid
    oxray.kill(a)


def test_nodes(cluster):
    [node] = state.list_nodes()
    me = oxray.get_runtime_context().get_node_id()
    assert node.node_id == me and node.state == "ALIVE" and node.is_head_node
    assert node.resources_total["CPU"] == 2 and node.resources_total[f"node:{node.node_ip}"] == 1
    assert node.node_name == node.node_ip and node.labels == {}
    assert state.get_node(me) == state.list_nodes(detail=True)[0]
    assert state.get_node("00" * 16) is None


def test_objects(cluster):
    np = pytest.importorskip("numpy")

    @oxray.remote
    def make():
        return np.ones(1 << 20)

    put = oxray.put(np.zeros(1 << 20))
    made = make.remote()
    oxray.wait([made])
    rows = {o.object_id: o for o in state.list_objects(limit=None)}
    p, m = rows[put.hex()], rows[made.hex()]
    assert p.object_size >= 8 << 20 and p.creator_pid == os.getpid() and not p.spilled
    assert p.call_site == "disabled" and p.reference_type in ("PINNED_IN_MEMORY", "UNKNOWN_STATUS")
    assert m.task_status == "FINISHED" and m.attempt_number == 1 and m.creator_pid != os.getpid()
    [again] = state.get_objects(made.hex())
    assert again == m
    assert state.get_objects("00" * 20) == []
    big = state.list_objects(filters=[("object_size", "=", str(p.object_size)), ("object_id", "=", put.hex())])
    assert [o.object_id for o in big] == [put.hex()]
    summary = state.summarize_objects()["cluster"]
    assert summary["summary_by"] == "callsite" and summary["callsite_enabled"] is False
    assert summary["total_objects"] >= 2 and summary["total_size_mb"] >= 16
    assert summary["summary"]["disabled"]["task_state_counts"]["FINISHED"] >= 1
    del put, made


def test_placement_groups(cluster):
    from oxray.util import placement_group, remove_placement_group

    pg = placement_group([{"CPU": 0.5}, {"CPU": 0.5}], name="state-pg")
    oxray.get(pg.ready())
    [row] = state.list_placement_groups(filters=[("name", "=", "state-pg")])
    assert row.state == "CREATED" and row.placement_group_id == pg.id.hex() and row.bundles is None
    full = state.get_placement_group(pg.id.hex())
    assert full.is_detached is False
    assert [b["unit_resources"] for b in full.bundles] == [{"CPU": 0.5}, {"CPU": 0.5}]
    assert {b["node_id"] for b in full.bundles} == {oxray.get_runtime_context().get_node_id()}
    remove_placement_group(pg)
    assert wait_for(lambda: state.get_placement_group(pg.id.hex()).state == "REMOVED")
    assert state.get_placement_group("00" * 16) is None


def test_workers_and_jobs(cluster):
    ctx = oxray.get_runtime_context()
    a = Named.options(name="wk").remote()
    pid = oxray.get(a.pid.remote())
    me = state.get_worker(ctx.get_worker_id())
    assert me.worker_type == "DRIVER" and me.pid == os.getpid() and me.is_alive and me.node_id == ctx.get_node_id()
    [actor_process] = state.list_workers(filters=[("pid", "=", pid)])
    assert actor_process.worker_type == "WORKER" and actor_process.is_alive
    assert state.get_worker("00" * 16) is None
    [job] = state.list_jobs(filters=[("job_id", "=", ctx.get_job_id())])
    assert job.type == "DRIVER" and job.status == "RUNNING" and job.driver_info["pid"] == str(os.getpid())
    assert job.submission_id is None
    oxray.kill(a)


def test_summaries(cluster):
    @oxray.remote
    def summed(i):
        if i == 0:
            raise ValueError(i)
        return i

    @oxray.remote
    class Summed:
        def m(self):
            return 1

    refs = [summed.remote(i) for i in range(4)]
    oxray.wait(refs, num_returns=4)
    s = Summed.remote()
    oxray.get(s.m.remote())
    tasks = state.summarize_tasks()["cluster"]
    assert tasks["summary_by"] == "func_name"
    group = tasks["summary"]["summed"]
    assert group["type"] == "NORMAL_TASK" and group["state_counts"] == {"FINISHED": 3, "FAILED": 1}
    assert tasks["summary"]["Summed.m"]["type"] == "ACTOR_TASK"
    assert tasks["total_tasks"] >= 4 and tasks["total_actor_tasks"] >= 1
    only = state.summarize_tasks(filters=[("state", "=", "FAILED"), ("name", "=", "summed")])["cluster"]
    assert list(only["summary"]) == ["summed"] and only["summary"]["summed"]["state_counts"] == {"FAILED": 1}
    actors = state.summarize_actors()["cluster"]
    assert actors["summary_by"] == "class" and actors["summary"]["Summed"]["state_counts"]["ALIVE"] >= 1
    assert actors["total_actors"] == len(state.list_actors(limit=None))
    oxray.kill(s)


def test_state_api_needs_a_session(shutdown_only):
    with pytest.raises(oxray.exceptions.RaySystemError, match="not initialized"):
        state.list_actors()
