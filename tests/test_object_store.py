"""The shared-memory object store: zero-copy numpy, reference counting,
eviction and spilling, through the public API."""

import dataclasses
import os

import numpy as np
import pytest

import oxray
from oxray import _native
from oxray.exceptions import ObjectStoreFullError
from conftest import run_driver, wait_for

MB = 1 << 20


@pytest.fixture
def small_store(tmp_path):
    oxray.shutdown()
    try:
        oxray.init(num_cpus=2, object_store_memory=500 * MB, object_spilling_directory=str(tmp_path / "spill"))
        yield tmp_path / "spill"
    finally:
        oxray.shutdown()


def store_used():
    return _native.store_stats()["used"]


@dataclasses.dataclass
class Holder:
    name: str
    arrays: list


def test_numpy_get_is_zero_copy_and_read_only(cluster):
    a = np.arange(2_000_000, dtype=np.float64)
    ref = oxray.put(a)
    b = oxray.get(ref)
    c = oxray.get(ref)
    assert np.array_equal(a, b)
    assert not b.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        b[0] = 1
    # Both gets view the same shared memory: no copy was made.
    assert b.__array_interface__["data"][0] == c.__array_interface__["data"][0]


def test_nested_arrays_in_lists_dicts_dataclasses(cluster):
    value = {"x": [np.ones(300_000), np.zeros(10)], "h": Holder("h", [np.full(200_000, 7, dtype=np.int32)])}
    got = oxray.get(oxray.put(value))
    assert np.array_equal(got["x"][0], value["x"][0])
    assert got["h"].name == "h" and got["h"].arrays[0][123] == 7
    assert not got["h"].arrays[0].flags.writeable


def test_small_values_stay_inline(cluster):
    before = store_used()
    refs = [oxray.put(np.ones(100)) for _ in range(50)]
    assert store_used() == before
    assert oxray.get(refs[0]).sum() == 100


def test_large_arguments_and_returns_use_the_store(cluster):
    @oxray.remote
    def total(x):
        return float(x.sum()), x.flags.writeable

    @oxray.remote
    def make(n):
        return np.ones(n)

    a = np.ones(1_000_000)
    assert oxray.get(total.remote(a)) == (1_000_000.0, False)
    assert oxray.get(total.remote(oxray.put(a))) == (1_000_000.0, False)
    big = oxray.get(make.remote(2_000_000))
    assert big.shape == (2_000_000,) and not big.flags.writeable


def test_dropping_refs_frees_store_memory(cluster):
    base = store_used()
    ref = oxray.put(np.zeros(10 * MB // 8))
    assert store_used() >= base + 10 * MB
    del ref
    assert wait_for(lambda: store_used() <= base, timeout=5)


def test_view_keeps_object_pinned_after_ref_is_dropped(cluster):
    base = store_used()
    ref = oxray.put(np.arange(3 * MB // 8, dtype=np.int64))
    arr = oxray.get(ref)
    del ref
    # The array still reads the shared memory, which must not be freed.
    assert store_used() >= base + 3 * MB
    assert arr[-1] == 3 * MB // 8 - 1
    del arr
    assert wait_for(lambda: store_used() <= base, timeout=5)


def test_put_and_drop_100mb_in_a_loop_on_1gb_store(shutdown_only):
    oxray.init(num_cpus=1, object_store_memory=1 << 30)
    arr = np.zeros(100 * MB // 8)
    for _ in range(100):
        ref = oxray.put(arr)
        del ref
    assert store_used() <= 101 * MB


def test_spilling_holds_more_than_memory(small_store):
    refs = [oxray.put(np.full(100 * MB // 8, i, dtype=np.int64)) for i in range(20)]  # 2 GB live
    stats = _native.store_stats()
    assert stats["spilled_objects"] > 0 and stats["spilled_bytes"] > 0
    assert any(small_store.iterdir())
    for i in (0, 7, 19):
        arr = oxray.get(refs[i])
        assert arr[0] == i and arr[-1] == i
        del arr
    del refs
    assert wait_for(lambda: _native.store_stats()["spilled_objects"] == 0, timeout=10)


def test_with_memory_pinned_a_put_goes_to_disk(small_store):
    held = [oxray.get(oxray.put(np.ones(100 * MB // 8))) for _ in range(4)]  # pinned by the arrays
    big = np.arange(200 * MB // 8, dtype=np.int64)
    ref = oxray.put(big)
    assert _native.store_stats()["spilled_bytes"] >= 200 * MB
    assert np.array_equal(oxray.get(ref), big)
    del held


def test_an_object_larger_than_the_store_is_stored_on_disk(small_store):
    big = np.arange(600 * MB // 8, dtype=np.int64)
    ref = oxray.put(big)

    @oxray.remote
    def total(x):
        return int(x.sum())

    assert oxray.get(total.remote(ref)) == int(big.sum())
    value = oxray.get(ref)
    assert np.array_equal(value, big)
    assert list(small_store.iterdir())  # its file
    del value, ref
    assert wait_for(lambda: not list(small_store.iterdir()), timeout=10)


def test_a_put_fails_only_when_the_disk_fails_too(shutdown_only, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the spill directory should be")
    oxray.init(num_cpus=1, object_store_memory=100 * MB, object_spilling_directory=str(blocked))
    with pytest.raises(ObjectStoreFullError) as info:
        oxray.put(np.ones(200 * MB // 8))
    message = str(info.value)
    assert "memory is full" in message and str(100 * MB) in message and str(blocked) in message
    assert "bytes free" in message


def test_missing_spill_file_is_a_clear_error(small_store):
    refs = [oxray.put(np.full(100 * MB // 8, i)) for i in range(6)]
    spilled = [p for p in small_store.iterdir()]
    assert spilled
    for p in spilled:
        p.unlink()
    with pytest.raises(oxray.exceptions.ObjectLostError, match="spill"):
        oxray.get(refs[0])
    del refs


def test_dead_process_releases_its_pins(cluster):
    @oxray.remote
    def hold_and_die(arr):
        assert arr.sum() > 0  # the worker maps (and pins) the argument
        os._exit(1)

    base = store_used()
    ref = oxray.put(np.ones(5 * MB // 8))
    with pytest.raises(oxray.exceptions.WorkerCrashedError):
        oxray.get(hold_and_die.options(max_retries=0).remote(ref))
    del ref
    assert wait_for(lambda: store_used() <= base, timeout=10)


def test_holds_lent_to_an_actor_that_dies_come_back(cluster):
    @oxray.remote
    class Keeper:
        def keep(self, refs):
            self.refs = refs  # a borrower now: the ref is nested in the argument
            return len(refs)

    base = store_used()
    ref = oxray.put(np.ones(5 * MB // 8))
    keeper = Keeper.remote()
    assert oxray.get(keeper.keep.remote([ref])) == 1
    oxray.kill(keeper)
    del ref
    # The hold lent to the dead actor came back, so the object is freed.
    assert wait_for(lambda: store_used() <= base, timeout=10)


def test_objects_of_a_driver_that_exits_leave_the_store(make_cluster):
    cluster, _ = make_cluster({"num_cpus": 1})
    base = store_used()
    code = (
        "import os, numpy as np, oxray\n"
        f"oxray.init(address={cluster.address!r})\n"
        "refs = [oxray.put(np.ones(4 << 20)) for _ in range(3)]\n"
        "print('stored', flush=True)\n"
        "os._exit(0)\n"  # no shutdown: nothing is released on the way out
    )
    done = run_driver(code)
    assert done.returncode == 0 and "stored" in done.stdout, done.stderr
    assert wait_for(lambda: store_used() <= base, timeout=10), _native.store_stats()


def test_memory_listing(cluster):
    ref = oxray.put(np.ones(MB))
    stats = _native.store_stats()
    sizes = {o["object_id"]: o["size"] for o in stats["objects"]}
    assert ref.hex() in sizes and sizes[ref.hex()] >= 8 * MB
    assert stats["capacity"] > 0


def test_list_objects_api(cluster):
    from oxray.util import state

    ref = oxray.put(np.ones(MB))
    arr = oxray.get(ref)
    rows = {r["object_id"]: r for r in state.list_objects()}
    row = rows[ref.hex()]
    assert row["object_size"] >= 8 * MB
    assert row["creator_pid"] == os.getpid()
    assert "pinned" in row["pin_reason"] and not row["spilled"]
    del arr
    summary = state.memory_summary()
    assert summary["used_bytes"] >= 8 * MB and summary["num_objects"] >= 1


def test_nested_refs_live_while_their_container_does(cluster):
    base = store_used()
    inner = oxray.put(np.ones(4 * MB // 8))
    outer = oxray.put({"inner": inner})
    inner_hex = inner.hex()
    del inner
    got = oxray.get(outer)["inner"]
    assert got.hex() == inner_hex
    assert oxray.get(got).sum() == 4 * MB // 8
    del got
    assert store_used() >= base + 4 * MB  # still held by `outer`
    del outer
    assert wait_for(lambda: store_used() <= base, timeout=5)


def test_nested_refs_shipped_to_tasks_stay_alive(cluster):
    @oxray.remote
    class Keeper:
        def keep(self, box):
            self.ref = box["ref"]

        def read(self):
            return float(oxray.get(self.ref).sum())

    inner = oxray.put(np.ones(2 * MB // 8))
    box = oxray.put({"ref": inner})
    k = Keeper.remote()
    oxray.get(k.keep.remote(box))
    del inner, box
    # The actor still holds the nested ref: its value must survive.
    assert oxray.get(k.read.remote()) == 2 * MB // 8


def test_refs_nested_in_arguments_are_freed_after_use(cluster):
    @oxray.remote
    def total(box):
        return float(oxray.get(box[0]).sum())

    base = store_used()
    inner = oxray.put(np.ones(3 * MB // 8))
    assert oxray.get(total.remote([inner])) == 3 * MB // 8
    del inner
    assert wait_for(lambda: store_used() <= base, timeout=10)


def test_borrowed_ref_lives_until_the_borrower_drops_it(cluster):
    @oxray.remote
    class Holder:
        def keep(self, box):
            self.ref = box[0]

        def read(self):
            return float(oxray.get(self.ref).sum())

        def drop(self):
            self.ref = None

    base = store_used()
    inner = oxray.put(np.ones(3 * MB // 8))
    h = Holder.remote()
    oxray.get(h.keep.remote([inner]))
    del inner
    assert oxray.get(h.read.remote()) == 3 * MB // 8  # the borrower keeps it alive
    oxray.get(h.drop.remote())
    assert wait_for(lambda: store_used() <= base, timeout=10)


def test_ref_returned_by_a_task_is_freed_by_its_owner(cluster):
    @oxray.remote
    def make():
        return [oxray.put(np.ones(3 * MB // 8))]

    base = store_used()
    box = oxray.get(make.remote())
    assert oxray.get(box[0]).sum() == 3 * MB // 8
    assert store_used() >= base + 3 * MB
    del box
    assert wait_for(lambda: store_used() <= base, timeout=10)


def test_arrays_stay_valid_after_shutdown_and_a_new_init(shutdown_only):
    # An array read from the store keeps its mapping: after shutdown() it
    # still reads (no crash), and a new session's objects never show
    # through it.
    out = run_driver(
        "import oxray, numpy as np\n"
        "oxray.init(num_cpus=1)\n"
        "a = oxray.get(oxray.put(np.ones(10_000_000)))\n"
        "oxray.shutdown()\n"
        "print(a.sum())\n"
        "oxray.init(num_cpus=1)\n"
        "b = oxray.get(oxray.put(np.full(10_000_000, 2.0)))\n"
        "print(a.sum(), b.sum())\n"
        "oxray.shutdown()\n"
        "print(a.sum(), b.sum())\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["10000000.0", "10000000.0", "20000000.0", "10000000.0", "20000000.0"]
