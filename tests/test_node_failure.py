"""What happens when a node dies: it is marked dead (at once when killed,
after the health-check threshold when frozen), its tasks run again on other
nodes, and its actors restart elsewhere."""

import os
import signal
import time

import pytest

import oxray
from conftest import wait_for


@pytest.fixture
def fast_health_checks(monkeypatch):
    # Daemons read these at start: a frozen node is declared dead after
    # 4 x 250 ms instead of 4 x 1 s.
    monkeypatch.setenv("OXRAY_HEALTH_CHECK_PERIOD_MS", "250")
    monkeypatch.setenv("OXRAY_HEALTH_CHECK_FAILURE_THRESHOLD", "4")


def alive(node_id):
    return any(n["NodeID"] == node_id and n["Alive"] for n in oxray.nodes())


@oxray.remote(num_cpus=1, max_retries=2)
def slow_where(seconds):
    time.sleep(seconds)
    return oxray.get_runtime_context().get_node_id()


def test_killed_node_is_dead_at_once_and_resources_shrink(make_cluster):
    cluster, (head, worker) = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"doomed": 1}})
    assert oxray.cluster_resources()["CPU"] == 2
    cluster.remove_node(worker, allow_graceful=False)
    assert wait_for(lambda: not alive(worker.node_id), timeout=5), oxray.nodes()
    assert oxray.cluster_resources()["CPU"] == 1 and "doomed" not in oxray.cluster_resources()
    assert alive(head.node_id)


def test_frozen_node_is_declared_dead_and_stops_when_it_wakes(fast_health_checks, make_cluster):
    cluster, (head, worker) = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert wait_for(lambda: not alive(worker.node_id), timeout=15), oxray.nodes()
        assert time.monotonic() - started < 10
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    # Once awake it hears that it was declared dead, and stops.
    assert wait_for(lambda: worker.process.poll() is not None, timeout=15)
    assert alive(head.node_id)


def test_tasks_of_a_dead_node_run_again_elsewhere(make_cluster):
    cluster, (head, a, b) = make_cluster({"num_cpus": 0}, {"num_cpus": 1}, {"num_cpus": 1})
    refs = [slow_where.remote(3) for _ in range(2)]
    # Both run, one on each worker node; then one of those nodes dies.
    assert wait_for(lambda: oxray.available_resources().get("CPU", 0) == 0, timeout=20)
    cluster.remove_node(a, allow_graceful=False)
    got = oxray.get(refs, timeout=60)
    assert set(got) == {b.node_id}


def test_actor_restarts_on_another_node(make_cluster):
    cluster, (head, a, b) = make_cluster({"num_cpus": 0}, {"num_cpus": 1}, {"num_cpus": 1})

    @oxray.remote(num_cpus=1, max_restarts=1, max_task_retries=1)
    class Where:
        def node(self):
            ctx = oxray.get_runtime_context()
            return ctx.get_node_id(), ctx.was_current_actor_reconstructed

    actor = Where.remote()
    first, reconstructed = oxray.get(actor.node.remote(), timeout=30)
    assert not reconstructed
    doomed = a if first == a.node_id else b
    survivor = b if doomed is a else a
    cluster.remove_node(doomed, allow_graceful=False)
    assert oxray.get(actor.node.remote(), timeout=60) == (survivor.node_id, True)


def test_placement_group_bundles_of_a_dead_node_are_reserved_again(make_cluster):
    from oxray.util import placement_group, placement_group_table, remove_placement_group
    from oxray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    cluster, (head, a, b, c) = make_cluster({"num_cpus": 0}, {"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1})
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    assert pg.wait(30)
    placed = placement_group_table(pg)["bundles_to_node_id"]
    nodes = {n.node_id: n for n in (a, b, c)}
    doomed = nodes[placed[0]]
    spare = next(n for n in (a, b, c) if n.node_id not in placed.values())
    cluster.remove_node(doomed, allow_graceful=False)

    def moved():
        t = placement_group_table(pg)
        return t["state"] == "CREATED" and t["bundles_to_node_id"][0] == spare.node_id

    assert wait_for(moved, timeout=20), placement_group_table(pg)
    assert placement_group_table(pg)["bundles_to_node_id"][1] == placed[1], "the other bundle stays"

    @oxray.remote(num_cpus=1)
    def where():
        return oxray.get_runtime_context().get_node_id()

    strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)
    assert oxray.get(where.options(scheduling_strategy=strategy).remote(), timeout=30) == spare.node_id
    remove_placement_group(pg)
    assert wait_for(lambda: oxray.available_resources().get("CPU", 0) == 2, timeout=20)
