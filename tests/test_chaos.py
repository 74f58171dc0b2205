"""Chaos: worker nodes are killed at random while a workload of 1,000 tasks
with dependencies and a few actors runs. Every result must be right (lost
objects rebuilt, tasks retried, actors restarted), and afterwards no
resources stay held and none of the killed nodes' processes are left."""

import os
import random
import threading
import time

import numpy as np

import oxray
from conftest import descendants, process_gone, wait_for

LEAVES = 500  # and as many tasks that combine two leaves: 1,000 tasks
WIDTH = 20_000  # int64s per leaf: 160 KB, so leaves live in the nodes' stores


@oxray.remote(num_cpus=1, max_retries=-1)
def leaf(i):
    time.sleep(0.002)
    return np.full(WIDTH, i, dtype=np.int64)


@oxray.remote(num_cpus=1, max_retries=-1)
def combine(x, y):
    return int(x.sum() + y.sum())


@oxray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class Doubler:
    def double(self, x):
        return 2 * x


def test_random_node_kills_lose_no_result(make_cluster):
    cluster, nodes = make_cluster(
        {"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1})
    head, workers = nodes[0], nodes[1:]
    rng = random.Random(7)
    doublers = [Doubler.remote() for _ in range(3)]
    killed = []
    stop = threading.Event()

    def chaos():
        # Three times: kill a random worker node, then add a fresh one.
        for _ in range(3):
            if stop.wait(rng.uniform(0.4, 0.9)):
                return
            victim = rng.choice(workers)
            workers.remove(victim)
            killed.append((victim, descendants(victim.process.pid)))
            cluster.remove_node(victim, allow_graceful=False)
            workers.append(cluster.add_node(num_cpus=1))

    killer = threading.Thread(target=chaos)
    started = time.monotonic()
    killer.start()
    try:
        leaves = [leaf.remote(i) for i in range(LEAVES)]
        sums = [combine.remote(leaves[i], leaves[(i + 1) % LEAVES]) for i in range(LEAVES)]
        doubled = [doublers[i % 3].double.remote(i) for i in range(60)]
        got = oxray.get(sums, timeout=240)
        assert got == [WIDTH * (i + (i + 1) % LEAVES) for i in range(LEAVES)]
        assert oxray.get(doubled, timeout=120) == [2 * i for i in range(60)]
        # Leaves whose node died are rebuilt when read again.
        spot = [leaves[i] for i in range(0, LEAVES, 50)]
        assert [int(v[0]) for v in oxray.get(spot, timeout=120)] == list(range(0, LEAVES, 50))
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 3
    assert time.monotonic() - started < 240
    del leaves, sums, spot

    total = oxray.cluster_resources()["CPU"]
    assert total == 4
    assert wait_for(lambda: oxray.available_resources().get("CPU", 0) == total, timeout=30), \
        oxray.available_resources()
    left = [pid for _, pids in killed for pid in pids if not process_gone(pid)]
    assert wait_for(lambda: all(process_gone(p) for p in left), timeout=15), left
    stores = [f"/dev/shm/oxray-{os.path.basename(node.session_dir)}" for node, _ in killed]
    assert not [s for s in stores if os.path.exists(s)], "killed nodes' stores are removed"
