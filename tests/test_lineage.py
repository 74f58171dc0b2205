"""Objects lost with a node: the owner rebuilds them by running the task
that made them again (lineage reconstruction), recursively through lost
arguments, for itself and for borrowers; where it cannot, `get` raises
Ray's error saying why. Calls in flight to a frozen node fail over."""

import os
import signal
import time

import numpy as np
import pytest

import oxray
from oxray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from conftest import descendants, wait_for

# Large enough to live in a node's shared store rather than inline.
N = 200_000


def on(node):
    """Prefer `node`, but run anywhere once it is gone (as a rebuild must)."""
    return NodeAffinitySchedulingStrategy(node.node_id, soft=True)


@oxray.remote(num_cpus=1, max_retries=2)
def produce(tag):
    return oxray.get_runtime_context().get_node_id(), np.full(N, tag, dtype=np.int64)


@oxray.remote(num_cpus=1, max_retries=2)
def add_one(pair):
    _, values = pair
    return oxray.get_runtime_context().get_node_id(), values + 1


@oxray.remote(num_cpus=1, max_retries=0)
def produce_once(tag):
    return np.full(N, tag, dtype=np.int64)


def ready_without_fetching(ref):
    ready, _ = oxray.wait([ref], timeout=60, fetch_local=False)
    assert ready, "the task did not finish"


def alive(node_id):
    return any(n["NodeID"] == node_id and n["Alive"] for n in oxray.nodes())


def test_object_lost_with_its_node_is_rebuilt_elsewhere(make_cluster):
    cluster, (head, a, b) = make_cluster({"num_cpus": 0}, {"num_cpus": 1}, {"num_cpus": 1})
    ref = produce.options(scheduling_strategy=on(a)).remote(7)
    ready_without_fetching(ref)
    cluster.remove_node(a, allow_graceful=False)
    node, values = oxray.get(ref, timeout=60)
    assert node == b.node_id, "the task ran again on the surviving node"
    assert values.shape == (N,) and int(values.sum()) == 7 * N


def test_rebuild_goes_back_through_lost_arguments(make_cluster):
    cluster, (head, a, b) = make_cluster({"num_cpus": 0}, {"num_cpus": 1}, {"num_cpus": 1})
    first = produce.options(scheduling_strategy=on(a)).remote(1)
    second = add_one.options(scheduling_strategy=on(a)).remote(first)
    ready_without_fetching(second)
    del first  # only the lineage keeps it now
    cluster.remove_node(a, allow_graceful=False)
    node, values = oxray.get(second, timeout=60)
    assert node == b.node_id
    assert int(values[0]) == 2 and int(values.sum()) == 2 * N


def test_a_borrower_reads_the_rebuilt_object(make_cluster):
    cluster, (head, a, b) = make_cluster({"num_cpus": 0}, {"num_cpus": 1}, {"num_cpus": 1})

    @oxray.remote(num_cpus=0)
    class Holder:
        def keep(self, refs):
            self.refs = refs

        def total(self):
            _, values = oxray.get(self.refs[0], timeout=60)
            return int(values.sum())

    holder = Holder.options(scheduling_strategy=NodeAffinitySchedulingStrategy(b.node_id, soft=False)).remote()
    ref = produce.options(scheduling_strategy=on(a)).remote(3)
    ready_without_fetching(ref)
    oxray.get(holder.keep.remote([ref]), timeout=30)
    cluster.remove_node(a, allow_graceful=False)
    assert oxray.get(holder.total.remote(), timeout=60) == 3 * N


def test_no_rebuild_without_retries(make_cluster):
    cluster, (head, a, b) = make_cluster({"num_cpus": 0}, {"num_cpus": 1}, {"num_cpus": 1})
    ref = produce_once.options(scheduling_strategy=on(a)).remote(5)
    ready_without_fetching(ref)
    cluster.remove_node(a, allow_graceful=False)
    with pytest.raises(oxray.exceptions.ObjectReconstructionFailedError) as info:
        oxray.get(ref, timeout=60)
    assert info.value.reason == "OBJECT_UNRECONSTRUCTABLE_RETRIES_DISABLED"
    assert isinstance(info.value, oxray.exceptions.ObjectLostError)
    assert "max_retries" in str(info.value)


def test_rebuilds_stop_when_retries_are_used_up(make_cluster):
    cluster, (head, a, b, c) = make_cluster(
        {"num_cpus": 0}, {"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1})
    ref = produce.options(max_retries=1, scheduling_strategy=on(a)).remote(2)
    ready_without_fetching(ref)
    cluster.remove_node(a, allow_graceful=False)

    def rebuilt():
        from oxray.util.state import list_tasks
        return any(t["name"] == "produce" and t["attempt_number"] >= 1 and t["state"] == "FINISHED"
                   for t in list_tasks())

    assert wait_for(rebuilt, timeout=30)  # the one retry rebuilt it, on B or C
    # Both go (no copy is left anywhere); a fresh node could run it again,
    # but the retries are used up.
    cluster.remove_node(b, allow_graceful=False)
    cluster.remove_node(c, allow_graceful=False)
    cluster.add_node(num_cpus=1)
    with pytest.raises(oxray.exceptions.ObjectReconstructionFailedError) as info:
        oxray.get(ref, timeout=60)
    assert info.value.reason == "OBJECT_UNRECONSTRUCTABLE_MAX_ATTEMPTS_EXCEEDED"


def test_calls_to_a_frozen_node_fail_over(make_cluster, monkeypatch):
    monkeypatch.setenv("OXRAY_HEALTH_CHECK_PERIOD_MS", "250")
    cluster, (head, a, b) = make_cluster({"num_cpus": 0}, {"num_cpus": 1}, {"num_cpus": 1})

    @oxray.remote(num_cpus=1, max_retries=1)
    def where(seconds):
        time.sleep(seconds)
        return oxray.get_runtime_context().get_node_id()

    oxray.get(where.options(scheduling_strategy=on(a)).remote(0), timeout=30)  # a worker exists there
    ref = where.options(scheduling_strategy=on(a)).remote(2)
    assert wait_for(lambda: oxray.available_resources().get("CPU", 0) == 1, timeout=20)
    # The whole host stops: its daemon and its workers, connections open.
    frozen = descendants(a.process.pid)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        assert oxray.get(ref, timeout=30) == b.node_id
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def test_a_whole_copy_on_a_live_node_becomes_the_primary(make_cluster):
    cluster, (head, a, b) = make_cluster({"num_cpus": 0}, {"num_cpus": 1}, {"num_cpus": 1})

    @oxray.remote(num_cpus=1)
    def total(pair):
        return int(pair[1].sum())

    # max_retries=0: it could not be rebuilt; the copy must serve.
    ref = produce.options(max_retries=0, scheduling_strategy=on(a)).remote(4)
    ready_without_fetching(ref)
    on_b = NodeAffinitySchedulingStrategy(b.node_id, soft=False)
    assert oxray.get(total.options(scheduling_strategy=on_b).remote(ref), timeout=60) == 4 * N  # a copy on B
    cluster.remove_node(a, allow_graceful=False)
    node, values = oxray.get(ref, timeout=60)
    assert node == a.node_id, "not run again: the copy on B became the primary"
    assert int(values.sum()) == 4 * N
