"""Multi-node clusters on loopback (`cluster_utils.Cluster`): placement by
resources, spillback, SPREAD, node affinity, infeasible tasks, placement
groups across nodes, actors found from other drivers, objects moved between
nodes, node removal and the cluster token."""

import hashlib
import os
import shutil
import time

import numpy as np
import pytest

import oxray
from oxray.cluster_utils import Cluster
from oxray.util import get_placement_group, placement_group, placement_group_table, remove_placement_group
from oxray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy
from barrier import arrive_and_wait
from conftest import run_driver, wait_for


@oxray.remote(num_cpus=1)
def node_id():
    return oxray.get_runtime_context().get_node_id()


@oxray.remote(num_cpus=1)
def node_id_at_barrier(directory, parties, name):
    arrive_and_wait(directory, parties, name, timeout=20)
    return oxray.get_runtime_context().get_node_id()


def alive_nodes():
    return {n["NodeID"]: n for n in oxray.nodes() if n["Alive"]}


def test_custom_resources_place_tasks(make_cluster):
    _, (head, a, b) = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"res_a": 1}},
                                   {"num_cpus": 1, "resources": {"res_b": 2}})
    nodes = alive_nodes()
    assert set(nodes) == {head.node_id, a.node_id, b.node_id}
    assert nodes[a.node_id]["Resources"]["res_a"] == 1
    assert nodes[b.node_id]["Resources"]["res_b"] == 2
    assert "res_a" not in nodes[head.node_id]["Resources"] and "res_b" not in nodes[head.node_id]["Resources"]
    assert nodes[head.node_id]["IsHead"] and not nodes[a.node_id]["IsHead"]
    assert all(n["Resources"]["node:127.0.0.1"] == 1 for n in nodes.values())
    total = oxray.cluster_resources()
    assert total["CPU"] == 3 and total["res_a"] == 1 and total["res_b"] == 2

    on_a = [node_id.options(resources={"res_a": 1}).remote() for _ in range(3)]
    on_b = [node_id.options(resources={"res_b": 1}).remote() for _ in range(3)]
    assert oxray.get(on_a, timeout=60) == [a.node_id] * 3
    assert oxray.get(on_b, timeout=60) == [b.node_id] * 3
    for nid in oxray.get(on_a + on_b):
        assert "res_a" in nodes[nid]["Resources"] or "res_b" in nodes[nid]["Resources"]


def test_spillback_three_nodes_at_once(make_cluster, tmp_path):
    _, nodes = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1})
    d = str(tmp_path / "barrier")
    refs = [node_id_at_barrier.remote(d, 3, i) for i in range(3)]
    got = oxray.get(refs, timeout=60)
    assert set(got) == {n.node_id for n in nodes}


def test_cpus_come_back_after_spilled_tasks(make_cluster, tmp_path):
    _, (head, worker) = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    for round_ in range(2):
        d = str(tmp_path / f"barrier{round_}")
        got = oxray.get([node_id_at_barrier.remote(d, 2, i) for i in range(2)], timeout=60)
        assert sorted(got) == sorted([head.node_id, worker.node_id])
        # Every lease went back: both CPUs are free again, and each node
        # runs a task pinned to it.
        assert wait_for(lambda: oxray.available_resources().get("CPU") == 2, timeout=5), \
            oxray.available_resources()
        for n in (head, worker):
            pinned = node_id.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False))
            ref = pinned.remote()
            assert oxray.wait([ref], timeout=10)[0] == [ref], f"a task pinned to {n} never ran"
            assert oxray.get(ref) == n.node_id


def test_spread_over_three_nodes(make_cluster, tmp_path):
    _, nodes = make_cluster({"num_cpus": 2}, {"num_cpus": 2}, {"num_cpus": 2})
    d = str(tmp_path / "barrier")
    refs = [node_id_at_barrier.options(scheduling_strategy="SPREAD").remote(d, 3, i) for i in range(3)]
    got = oxray.get(refs, timeout=60)
    assert sorted(got) == sorted(n.node_id for n in nodes)


def test_node_affinity(make_cluster):
    cluster, (head, a, b) = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1})
    for target in (head, a, b):
        hard = NodeAffinitySchedulingStrategy(target.node_id, soft=False)
        assert oxray.get([node_id.options(scheduling_strategy=hard).remote() for _ in range(2)],
                         timeout=60) == [target.node_id] * 2

    gone = b.node_id
    cluster.remove_node(b)
    assert wait_for(lambda: gone not in alive_nodes(), timeout=15)

    hard = node_id.options(scheduling_strategy=NodeAffinitySchedulingStrategy(gone, soft=False)).remote()
    with pytest.raises(oxray.exceptions.TaskUnschedulableError) as err:
        oxray.get(hard, timeout=30)
    assert gone in str(err.value)

    soft = node_id.options(scheduling_strategy=NodeAffinitySchedulingStrategy(gone, soft=True)).remote()
    assert oxray.get(soft, timeout=30) in {head.node_id, a.node_id}


def test_infeasible_task_waits_for_a_node_that_fits(make_cluster):
    cluster, _ = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    ref = node_id.options(resources={"late": 1}).remote()
    ready, pending = oxray.wait([ref], timeout=1)
    assert ready == [] and pending == [ref]
    late = cluster.add_node(num_cpus=1, resources={"late": 1})
    assert oxray.get(ref, timeout=60) == late.node_id
    assert oxray.cluster_resources()["late"] == 1


def pg_entry(pg):
    return placement_group_table(pg)


def bundle_nodes(pg):
    entry = pg_entry(pg)
    return [entry["bundles_to_node_id"][i] for i in range(len(entry["bundles"]))]


def run_in_bundles(pg, count):
    refs = [node_id.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote()
            for i in range(count)]
    return oxray.get(refs, timeout=60)


def test_placement_group_strategies(make_cluster):
    cluster, nodes = make_cluster({"num_cpus": 2}, {"num_cpus": 2}, {"num_cpus": 2})
    ids = {n.node_id for n in nodes}
    cpus = oxray.cluster_resources()["CPU"]
    assert cpus == 6

    pack = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
    assert pack.wait(30)
    placed = bundle_nodes(pack)
    assert len(set(placed)) == 1 and placed[0] in ids
    assert pg_entry(pack)["state"] == "CREATED"
    assert run_in_bundles(pack, 2) == placed
    remove_placement_group(pack)
    assert wait_for(lambda: oxray.available_resources().get("CPU") == cpus)

    strict_pack = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    assert strict_pack.wait(30)
    placed = bundle_nodes(strict_pack)
    assert len(set(placed)) == 1
    assert run_in_bundles(strict_pack, 2) == placed
    remove_placement_group(strict_pack)
    assert wait_for(lambda: oxray.available_resources().get("CPU") == cpus)

    for strategy in ("SPREAD", "STRICT_SPREAD"):
        pg = placement_group([{"CPU": 1}] * 3, strategy=strategy)
        assert pg.wait(30), strategy
        placed = bundle_nodes(pg)
        assert set(placed) == ids, (strategy, placed)
        assert run_in_bundles(pg, 3) == placed
        remove_placement_group(pg)
        assert wait_for(lambda: oxray.available_resources().get("CPU") == cpus)


def test_placement_group_reserves_and_returns_cpus(make_cluster):
    _, nodes = make_cluster({"num_cpus": 2}, {"num_cpus": 2})
    pg = placement_group([{"CPU": 2}, {"CPU": 1}], strategy="SPREAD", name="reserved")
    oxray.get(pg.ready(), timeout=30)
    assert wait_for(lambda: oxray.available_resources().get("CPU") == 1)
    assert oxray.cluster_resources()["CPU"] == 4
    placed = bundle_nodes(pg)
    assert len(set(placed)) == 2 and set(placed) == {n.node_id for n in nodes}

    found = get_placement_group("reserved")
    assert found == pg and found.bundle_specs == [{"CPU": 2}, {"CPU": 1}]
    assert run_in_bundles(found, 2) == placed

    remove_placement_group(pg)
    assert wait_for(lambda: oxray.available_resources().get("CPU") == 4)
    assert wait_for(lambda: pg_entry(pg)["state"] == "REMOVED")
    with pytest.raises(ValueError):
        get_placement_group("reserved")


def test_strict_spread_waits_for_a_new_node(make_cluster):
    cluster, nodes = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    assert not pg.wait(1)
    assert pg_entry(pg)["state"] == "PENDING"
    # Nothing is held while the group waits (all-or-nothing).
    assert oxray.available_resources()["CPU"] == 2
    assert oxray.get(node_id.remote(), timeout=30) in {n.node_id for n in nodes}

    new = cluster.add_node(num_cpus=1)
    assert pg.wait(30)
    placed = bundle_nodes(pg)
    assert set(placed) == {n.node_id for n in nodes} | {new.node_id}
    assert run_in_bundles(pg, 3) == placed
    assert wait_for(lambda: oxray.available_resources().get("CPU", 0) == 0)
    remove_placement_group(pg)
    assert wait_for(lambda: oxray.available_resources().get("CPU") == 3)


@oxray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def inc(self):
        self.n += 1
        return self.n, oxray.get_runtime_context().get_node_id()


def test_named_actor_on_worker_found_by_another_driver(make_cluster):
    cluster, (_, worker) = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"actor_box": 1}})
    c = Counter.options(name="shared", namespace="mn", resources={"actor_box": 1}).remote()
    assert oxray.get(c.inc.remote(), timeout=60) == (1, worker.node_id)
    out = run_driver(
        "import oxray\n"
        f"oxray.init(address={cluster.address!r}, namespace='mn')\n"
        "c = oxray.get_actor('shared')\n"
        "n, nid = oxray.get(c.inc.remote(), timeout=60)\n"
        "print(n, nid)\n"
        "oxray.shutdown()\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", worker.node_id]
    assert oxray.get(c.inc.remote(), timeout=60) == (3, worker.node_id)
    again = oxray.get_actor("shared", namespace="mn")
    assert oxray.get(again.inc.remote(), timeout=60) == (4, worker.node_id)


def test_detached_actor_outlives_its_driver(make_cluster):
    cluster, (_, worker) = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"actor_box": 2}},
                                        connect=False)
    cluster.wait_for_nodes()
    out = run_driver(
        "import oxray\n"
        f"oxray.init(address={cluster.address!r}, namespace='mn')\n"
        "@oxray.remote\n"
        "class Keeper:\n"
        "    def __init__(self):\n"
        "        self.items = []\n"
        "    def add(self, x):\n"
        "        self.items.append(x)\n"
        "        return list(self.items), oxray.get_runtime_context().get_node_id()\n"
        "k = Keeper.options(name='keeper', lifetime='detached', resources={'actor_box': 1}).remote()\n"
        "t = Keeper.options(name='temporary', resources={'actor_box': 1}).remote()\n"
        "print(oxray.get(k.add.remote('first'), timeout=20)[1], oxray.get(t.add.remote(0), timeout=20)[1])\n",
        timeout=40,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [worker.node_id, worker.node_id]

    oxray.init(address=cluster.address, namespace="mn")
    k = oxray.get_actor("keeper")
    assert oxray.get(k.add.remote("second"), timeout=60) == (["first", "second"], worker.node_id)
    # The driver's non-detached actor died with it.
    assert wait_for(lambda: _named_gone("temporary"), timeout=15)
    oxray.kill(k)
    assert wait_for(lambda: _named_gone("keeper"), timeout=15)


def test_actors_without_resources_run_on_any_node(make_cluster):
    """An actor that asks for nothing may land on the head: it must run
    there like anywhere else, for this driver and for another one."""
    cluster, nodes = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    ids = {n.node_id for n in nodes}
    actors = [Counter.remote() for _ in range(3)]
    got = oxray.get([a.inc.remote() for a in actors], timeout=20)
    assert [g[0] for g in got] == [1, 1, 1] and {g[1] for g in got} <= ids
    on_head = Counter.options(name="on_head", namespace="mn", scheduling_strategy=NodeAffinitySchedulingStrategy(
        cluster.head_node.node_id, soft=False)).remote()
    assert oxray.get(on_head.inc.remote(), timeout=20) == (1, cluster.head_node.node_id)
    out = run_driver(
        "import oxray\n"
        f"oxray.init(address={cluster.address!r}, namespace='mn')\n"
        "print(*oxray.get(oxray.get_actor('on_head').inc.remote(), timeout=20))\n",
        timeout=40,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", cluster.head_node.node_id]


def _named_gone(name):
    try:
        oxray.get_actor(name)
        return False
    except ValueError:
        return True


SMALL = b"tiny\x00value"
MEDIUM = bytes(range(256)) * 800  # 200 KiB: in the shared-memory store
BIG_N = 20 * (1 << 20) // 8       # 20 MiB of int64


def big_array():
    return np.arange(BIG_N, dtype=np.int64) * 3 + 7


def digest(value):
    if isinstance(value, np.ndarray):
        value = value.tobytes()
    return hashlib.sha256(value).hexdigest()


@oxray.remote(num_cpus=1)
def make_values():
    return SMALL, MEDIUM, big_array()


@oxray.remote(num_cpus=1)
def make_one(kind):
    return {"small": SMALL, "medium": MEDIUM, "big": big_array()}[kind]


@oxray.remote(num_cpus=1)
def describe(value):
    return digest(value), type(value).__name__, oxray.get_runtime_context().get_node_id()


def test_objects_move_between_nodes(make_cluster):
    _, (head, a, b, c) = make_cluster({"num_cpus": 1, "object_store_memory": 128 << 20},
                                      *({"num_cpus": 1, "resources": {r: 1}, "object_store_memory": 128 << 20}
                                        for r in ("node_a", "node_b", "node_c")))
    on_a = {"node_a": 1}
    # Made on node A, got on the driver (connected to the head).
    refs = {kind: make_one.options(resources=on_a).remote(kind) for kind in ("small", "medium", "big")}
    small, medium, big = (oxray.get(refs[k], timeout=60) for k in ("small", "medium", "big"))
    assert small == SMALL
    assert medium == MEDIUM
    assert isinstance(big, np.ndarray) and big.dtype == np.int64 and big.shape == (BIG_N,)
    assert np.array_equal(big, big_array())
    assert not big.flags.writeable
    # Several values in one return, made on A too.
    s2, m2, b2 = oxray.get(make_values.options(resources=on_a).remote(), timeout=60)
    assert s2 == SMALL and m2 == MEDIUM and np.array_equal(b2, big_array())

    # Made on A, passed by reference to a task on B.
    for kind, expected in (("small", SMALL), ("medium", MEDIUM), ("big", big_array())):
        got = oxray.get(describe.options(resources={"node_b": 1}).remote(refs[kind]), timeout=60)
        assert got[0] == digest(expected) and got[2] == b.node_id, kind
    assert oxray.get(describe.options(resources={"node_b": 1}).remote(refs["big"]), timeout=60)[1] == "ndarray"

    # Put on the driver, read on C and on A.
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 1 << 62, size=BIG_N, dtype=np.int64)
    puts = [oxray.put(SMALL), oxray.put(MEDIUM), oxray.put(noise)]
    for ref, expected in zip(puts, (SMALL, MEDIUM, noise)):
        for res, node in (("node_c", c), ("node_a", a)):
            got = oxray.get(describe.options(resources={res: 1}).remote(ref), timeout=60)
            assert got[0] == digest(expected) and got[2] == node.node_id, res
    # A ref nested in a list is not resolved: the task gets it itself.
    @oxray.remote(num_cpus=1, resources={"node_c": 1})
    def fetch(refs):
        return [digest(v) for v in oxray.get(refs)]

    assert oxray.get(fetch.remote([puts[2], refs["medium"]]), timeout=60) == [digest(noise), digest(MEDIUM)]
    assert np.array_equal(oxray.get(puts[2]), noise)


def test_a_node_with_a_copy_serves_the_next_reader(make_cluster):
    from oxray import _native

    _, (head, a, b, c) = make_cluster({"num_cpus": 0},
                                      *({"num_cpus": 1, "resources": {r: 1}} for r in ("node_a", "node_b", "node_c")))

    @oxray.remote(num_cpus=1)
    def served(_=None):
        return _native.store_stats()["bytes_served"]

    @oxray.remote(num_cpus=1)
    def total(values):
        return int(values.sum())

    size = 32 << 20
    ref = oxray.put(np.ones(size // 8, dtype=np.int64))  # on the head's node
    before = oxray.get(served.options(resources={"node_b": 1}).remote())
    assert oxray.get(total.options(resources={"node_b": 1}).remote(ref), timeout=60) == size // 8
    assert oxray.get(total.options(resources={"node_c": 1}).remote(ref), timeout=60) == size // 8
    # The head's node sent the object once; node B, which held a whole
    # copy, sent it to node C.
    assert _native.store_stats()["bytes_served"] < 2 * size
    assert oxray.get(served.options(resources={"node_b": 1}).remote()) - before >= size


def test_remove_node(make_cluster):
    cluster, (head, a, b) = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 2, "resources": {"doomed": 1}})
    assert oxray.cluster_resources()["CPU"] == 4
    cluster.remove_node(b)

    def dead_listed():
        entry = [n for n in oxray.nodes() if n["NodeID"] == b.node_id]
        return entry and not entry[0]["Alive"]

    assert wait_for(dead_listed, timeout=15)
    assert wait_for(lambda: oxray.cluster_resources().get("CPU") == 2, timeout=15)
    assert "doomed" not in oxray.cluster_resources()
    assert set(alive_nodes()) == {head.node_id, a.node_id}
    got = oxray.get([node_id.remote() for _ in range(6)], timeout=60)
    assert set(got) <= {head.node_id, a.node_id}
    pinned = NodeAffinitySchedulingStrategy(a.node_id, soft=False)
    assert oxray.get(node_id.options(scheduling_strategy=pinned).remote(), timeout=60) == a.node_id


def test_wrong_token_is_refused(make_cluster):
    from oxray._private import node as _node

    cluster, _ = make_cluster({"num_cpus": 1}, connect=False)
    session_dir = _node.new_session_dir("h")
    daemon = None
    try:
        with pytest.raises(RuntimeError) as err:
            daemon = _node.LocalDaemon(session_dir, {"CPU": 1, "object_store_memory": 64 << 20}, prestart_workers=0,
                                       owned=False, node_ip="127.0.0.1", port=0, head_address=cluster.address,
                                       token="wrong-token-0123456789")
        assert "wrong cluster token" in str(err.value)
        # The head still has its one node and takes drivers.
        oxray.init(address=cluster.address)
        assert [n["NodeID"] for n in oxray.nodes()] == [cluster.head_node.node_id]
        assert oxray.get(node_id.remote(), timeout=60) == cluster.head_node.node_id
    finally:
        if daemon is not None:
            daemon.process.kill()
            daemon.stop()
        shutil.rmtree(session_dir, ignore_errors=True)
        store = os.path.join("/dev/shm", "oxray-" + os.path.basename(session_dir))
        if os.path.exists(store):  # left by the refused daemon: see the next test
            os.remove(store)


def test_refused_node_leaves_no_store_file(make_cluster):
    """A node that fails to join exits without leaving its shared-memory
    store behind (standing nodes' stores are not swept up later)."""
    from oxray._private import node as _node

    cluster, _ = make_cluster({"num_cpus": 1}, connect=False)
    session_dir = _node.new_session_dir("h")
    store = os.path.join("/dev/shm", "oxray-" + os.path.basename(session_dir))
    try:
        with pytest.raises(RuntimeError, match="wrong cluster token"):
            _node.LocalDaemon(session_dir, {"CPU": 1, "object_store_memory": 64 << 20}, prestart_workers=0,
                              owned=False, node_ip="127.0.0.1", port=0, head_address=cluster.address,
                              token="wrong-token-0123456789")
        assert not os.path.exists(store), f"{store} left behind"
    finally:
        shutil.rmtree(session_dir, ignore_errors=True)
        if os.path.exists(store):
            os.remove(store)


def test_worker_output_of_other_nodes_reaches_the_driver(make_cluster):
    cluster, (head, worker) = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"far": 1}}, connect=False)
    out = run_driver(
        "import oxray, time\n"
        f"oxray.init(address={cluster.address!r})\n"
        "@oxray.remote(resources={'far': 1})\n"
        "def speak():\n"
        "    print('hello from far away')\n"
        "    return 1\n"
        "oxray.get(speak.remote())\n"
        "time.sleep(0.5)\n"
    )
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if "hello from far away" in ln]
    assert lines and "ip=127.0.0.1" in lines[0] and lines[0].startswith("(speak pid="), out.stdout


def test_wait_fetch_local_copies_objects_to_this_node(make_cluster):
    cluster, (head, worker) = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"maker": 1}})

    @oxray.remote(resources={"maker": 1})
    def make(seed):
        return np.full(2_000_000, seed, dtype=np.uint64)

    def here(ref):
        from oxray.util.state import list_objects

        me = oxray.get_runtime_context().get_node_id()
        return any(o["object_id"] == ref.hex() and o["node_id"] == me for o in list_objects())

    far = make.remote(1)
    ready, _ = oxray.wait([far], fetch_local=False, timeout=60)
    assert ready == [far] and not here(far), "fetch_local=False leaves it on its node"
    near = make.remote(2)
    ready, _ = oxray.wait([near], fetch_local=True, timeout=60)
    assert ready == [near] and here(near), "fetch_local=True brings a copy here"
    assert int(oxray.get(near)[123]) == 2 and int(oxray.get(far)[-1]) == 1


def test_pulls_wait_for_room_instead_of_failing(make_cluster):
    # Node B's store holds one 60 MiB object at a time; two tasks there
    # read four such objects made on A, each holding its array a moment:
    # a pull finds the store full of pinned data, and waits for room.
    mib = 1 << 20
    _, (head, a, b) = make_cluster({"num_cpus": 0},
                                   {"num_cpus": 1, "resources": {"node_a": 1}, "object_store_memory": 512 * mib},
                                   {"num_cpus": 2, "resources": {"node_b": 2}, "object_store_memory": 100 * mib})

    @oxray.remote(num_cpus=1, resources={"node_a": 1})
    def make(i):
        return np.full(60 * mib // 8, i, dtype=np.int64)

    @oxray.remote(num_cpus=1, resources={"node_b": 1})
    def read_each(refs):
        out = []
        for r in refs:
            values = oxray.get(r, timeout=120)
            time.sleep(0.3)
            out.append(int(values[0]) + int(values[-1]))
            del values
        return out

    refs = [make.remote(i) for i in range(4)]
    oxray.wait(refs, num_returns=4, timeout=120, fetch_local=False)
    got = oxray.get([read_each.remote(refs[:2]), read_each.remote(refs[2:])], timeout=180)
    assert got == [[0, 2], [4, 6]]


def test_gcs_address_is_the_heads_address_drivers_connect_to(make_cluster):
    c, _ = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    gcs = oxray.get_runtime_context().gcs_address
    assert gcs == c.address
    out = run_driver(
        f"import oxray\noxray.init(address={gcs!r})\nprint(len(oxray.nodes()))\noxray.shutdown()\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"


def test_state_api_and_dashboard_sources_list_every_nodes_objects(make_cluster):
    """`list_objects` asks every node's daemon for its store: an array made
    on the worker node is listed with that node's id, as is one put here."""
    from oxray.util.state import list_objects
    from oxray.util.state import sources

    _, (head, worker) = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"far": 1}})
    made = make_one.options(resources={"far": 1}).remote("big")
    oxray.wait([made], fetch_local=False)
    here = oxray.put(big_array())
    rows = {o.object_id: o for o in list_objects(limit=None, detail=True)}
    far = node_id.options(resources={"far": 1}).remote()
    worker_id = oxray.get(far)
    assert rows[made.hex()].node_id == worker_id and rows[made.hex()].object_size >= BIG_N * 8
    assert rows[here.hex()].node_id == oxray.get_runtime_context().get_node_id() != worker_id
    assert {o.node_ip for o in rows.values()} == {"127.0.0.1"}
    # This driver owns both (it submitted the task, and put the other): its
    # pid is known where it is a process of the node, its IP everywhere.
    assert (rows[here.hex()].pid, rows[here.hex()].ip) == (os.getpid(), "127.0.0.1")
    assert (rows[made.hex()].pid, rows[made.hex()].ip) == (None, "127.0.0.1")
    stores = {n["node_id"]: stats for n, stats in sources.node_stores()}
    assert set(stores) == {worker_id, oxray.get_runtime_context().get_node_id()}
    assert all(s["capacity"] > 0 and s["num_objects"] == len(s["objects"]) for s in stores.values())
    # The totals alone (the dashboard's overview) count without listing.
    totals = {n["node_id"]: stats for n, stats in sources.node_stores(objects=False)}
    assert all(s["objects"] == [] for s in totals.values())
    assert {k: s["num_objects"] for k, s in totals.items()} == {k: s["num_objects"] for k, s in stores.items()}
