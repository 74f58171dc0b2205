"""A head that survives a restart, without Redis: its tables are journaled
to disk; killed and started again on the same port, it recovers them, the
other nodes keep running meanwhile and reconnect by themselves, and named
and detached actors are still there — the same processes, state intact."""

import os

import oxray
from oxray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from conftest import process_gone, wait_for


@oxray.remote(num_cpus=0)
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n

    def pid(self):
        return os.getpid()


@oxray.remote(num_cpus=1)
def where():
    return oxray.get_runtime_context().get_node_id()


def test_restarted_head_recovers_actors_and_nodes_rejoin(make_cluster):
    cluster, (head, worker) = make_cluster({"num_cpus": 0}, {"num_cpus": 1})
    on_worker = NodeAffinitySchedulingStrategy(worker.node_id, soft=False)
    keeper = Counter.options(name="keeper", namespace="kept", lifetime="detached", scheduling_strategy=on_worker).remote()
    assert oxray.get(keeper.incr.remote(), timeout=30) == 1
    pid = oxray.get(keeper.pid.remote(), timeout=30)
    old_head_pid = head.process.pid
    oxray.shutdown()  # this driver lives on the head's node, which dies now

    new_head = cluster.restart_head()
    assert process_gone(old_head_pid)
    assert new_head.address == head.address, "same port"
    assert worker.alive(), "the other node kept running"

    oxray.init(address=cluster.address)
    cluster.wait_for_nodes(timeout=30)  # the worker node reconnected
    found = oxray.get_actor("keeper", namespace="kept")
    assert oxray.get(found.incr.remote(), timeout=30) == 2, "same actor, state intact"
    assert oxray.get(found.pid.remote(), timeout=30) == pid
    assert oxray.get(where.remote(), timeout=30) == worker.node_id
    oxray.kill(found)


def test_actors_of_the_dead_head_start_again_after_its_restart(make_cluster):
    cluster, (head, worker) = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    on_head = NodeAffinitySchedulingStrategy(head.node_id, soft=True)
    lost = Counter.options(name="on-head", namespace="kept", lifetime="detached", max_restarts=1,
                           scheduling_strategy=on_head).remote()
    old_pid = oxray.get(lost.pid.remote(), timeout=30)
    oxray.shutdown()
    cluster.restart_head()
    assert wait_for(lambda: process_gone(old_pid), timeout=10)
    oxray.init(address=cluster.address)
    cluster.wait_for_nodes(timeout=30)
    again = oxray.get_actor("on-head", namespace="kept")
    assert oxray.get(again.incr.remote(), timeout=30) == 1, "restarted: its constructor ran again"
    assert oxray.get(again.pid.remote(), timeout=30) != old_pid
    oxray.kill(again)


def test_a_node_gives_up_when_the_head_stays_away(make_cluster, monkeypatch):
    monkeypatch.setenv("OXRAY_HEAD_RECONNECT_TIMEOUT_S", "1")
    cluster, (head, worker) = make_cluster({"num_cpus": 0}, {"num_cpus": 1})
    oxray.shutdown()
    cluster.remove_node(head, allow_graceful=False)
    assert wait_for(lambda: not worker.alive(), timeout=20), "the node stopped"


def test_placement_groups_come_back_and_bundles_of_the_old_head_move(make_cluster):
    from oxray.util import get_placement_group, placement_group, placement_group_table

    cluster, (head, worker) = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, connect=False)
    oxray.init(address=cluster.address, namespace="pgs")
    cluster.wait_for_nodes()
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD", name="kept-pg",
                         lifetime="detached")
    assert pg.wait(30)
    before = placement_group_table(pg)["bundles_to_node_id"]
    on_worker = [i for i, n in before.items() if n == worker.node_id]
    assert len(on_worker) == 1
    oxray.shutdown()
    new_head = cluster.restart_head()
    oxray.init(address=cluster.address, namespace="pgs")
    cluster.wait_for_nodes(timeout=30)
    pg = get_placement_group("kept-pg")

    def settled():
        t = placement_group_table(pg)
        return t["state"] == "CREATED" and set(t["bundles_to_node_id"].values()) == {
            new_head.node_id, worker.node_id}

    assert wait_for(settled, timeout=30), placement_group_table(pg)
    assert placement_group_table(pg)["bundles_to_node_id"][on_worker[0]] == worker.node_id, \
        "the bundle on the surviving node stayed reserved there"
    assert oxray.available_resources().get("CPU", 0) == 0, "both bundles hold their CPU"


def test_work_on_other_nodes_goes_on_while_the_head_is_down(make_cluster):
    import subprocess
    import sys
    import time

    from conftest import REPO

    cluster, (head, worker) = make_cluster({"num_cpus": 0}, {"num_cpus": 1})
    oxray.shutdown()
    # A driver of the worker node: its tasks and objects need no head.
    code = (
        "import sys, time, numpy as np, oxray\n"
        f"oxray.init(address={worker.session_dir!r})\n"
        "@oxray.remote\n"
        "def double(x): return 2 * x\n"
        "kept = oxray.put(np.arange(1 << 20))\n"
        "assert oxray.get(double.remote(1)) == 2\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()  # the head is down now\n"
        "for i in range(200):\n"
        "    assert oxray.get(double.remote(i), timeout=30) == 2 * i\n"
        "assert int(oxray.get(kept)[-1]) == (1 << 20) - 1\n"
        "print('done', flush=True)\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert driver.stdout.readline().strip() == "ready", driver.stderr.read()
        cluster.remove_node(head, allow_graceful=False)
        driver.stdin.write("go\n")
        driver.stdin.flush()
        out, err = driver.communicate(timeout=60)
        assert out.strip() == "done", err
        assert worker.alive()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    time.sleep(0.5)
    cluster.add_node(num_cpus=0)  # the head, back on its port
    oxray.init(address=cluster.address)
    cluster.wait_for_nodes(timeout=30)
