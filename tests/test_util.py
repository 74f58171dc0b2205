"""ray.util on oxray: ActorPool, queue.Queue and multiprocessing.Pool, through
the public API."""

import multiprocessing as std_mp
import os
import tempfile

import pytest

import oxray
from oxray.util import ActorPool
from oxray.util.multiprocessing import Pool
from oxray.util.queue import Empty, Full, Queue

from barrier import arrive_and_wait


@oxray.remote
class Doubler:
    def double(self, v):
        return 2 * v

    def fail_on(self, v):
        if v == 3:
            raise ValueError("three")
        return v

    def pid(self, _):
        return os.getpid()

    def meet(self, args):
        directory, parties, name = args
        return arrive_and_wait(directory, parties, name)


# --- ActorPool -----------------------------------------------------------------

def test_pool_map_keeps_order_and_unordered_gives_all(cluster):
    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    assert list(pool.map(lambda a, v: a.double.remote(v), range(10))) == [2 * v for v in range(10)]
    assert sorted(pool.map_unordered(lambda a, v: a.double.remote(v), range(10))) == [2 * v for v in range(10)]


def test_pool_runs_on_every_actor_at_once(cluster):
    actors = [Doubler.remote(), Doubler.remote()]
    pool = ActorPool(actors)
    d = tempfile.mkdtemp()
    # Both calls can only finish together: they must run on both actors.
    assert list(pool.map(lambda a, v: a.meet.remote(v), [(d, 2, 0), (d, 2, 1)])) == [True, True]


def test_pool_submit_queues_beyond_its_actors(cluster):
    pool = ActorPool([Doubler.remote()])
    for v in range(5):
        pool.submit(lambda a, v: a.double.remote(v), v)
    assert not pool.has_free()
    assert [pool.get_next() for _ in range(5)] == [0, 2, 4, 6, 8]
    assert not pool.has_next()
    with pytest.raises(StopIteration):
        pool.get_next()
    assert pool.has_free()


def test_pool_get_next_timeout_and_errors(cluster):
    @oxray.remote
    class Slow:
        def wait(self, path):
            import time
            while not os.path.exists(path):
                time.sleep(0.01)
            return "done"

    pool = ActorPool([Slow.remote()])
    flag = os.path.join(tempfile.mkdtemp(), "go")
    pool.submit(lambda a, v: a.wait.remote(v), flag)
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.1)
    assert pool.has_next(), "a timed-out result stays unless ignored"
    open(flag, "w").close()
    assert pool.get_next(timeout=30) == "done"

    failing = ActorPool([Doubler.remote()])
    for v in (1, 3, 4):
        failing.submit(lambda a, v: a.fail_on.remote(v), v)
    assert failing.get_next() == 1
    with pytest.raises(ValueError, match="three"):
        failing.get_next()
    assert failing.get_next() == 4, "the actor is free again after a failed call"


def test_pool_push_pop_idle(cluster):
    a, b = Doubler.remote(), Doubler.remote()
    pool = ActorPool([a])
    popped = pool.pop_idle()
    assert popped == a and pool.pop_idle() is None
    pool.submit(lambda actor, v: actor.double.remote(v), 21)
    assert pool.has_next() is False, "no actor: the work waits"
    pool.push(b)
    assert pool.get_next() == 42
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(b)
    with pytest.raises(TypeError, match="ObjectRef"):
        pool.submit(lambda actor, v: v, 1)


# --- Queue ---------------------------------------------------------------------

def test_queue_fifo_and_nonblocking_errors(cluster):
    q = Queue(maxsize=2)
    assert q.empty() and q.size() == 0 and len(q) == 0
    q.put(1)
    q.put_nowait(2)
    assert q.full() and q.qsize() == 2
    with pytest.raises(Full):
        q.put_nowait(3)
    with pytest.raises(Full):
        q.put(3, timeout=0.05)
    assert q.get() == 1 and q.get_nowait() == 2
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(timeout=0.05)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    q.shutdown()


def test_queue_batches(cluster):
    q = Queue(maxsize=3)
    q.put_nowait_batch([1, 2])
    with pytest.raises(Full):
        q.put_nowait_batch([3, 4])
    assert q.size() == 2, "a batch that does not fit adds nothing"
    with pytest.raises(Empty):
        q.get_nowait_batch(3)
    assert q.get_nowait_batch(2) == [1, 2]
    with pytest.raises(TypeError):
        q.put_nowait_batch(5)
    with pytest.raises(ValueError):
        q.get_nowait_batch(-1)
    q.shutdown(force=True)


def test_queue_between_tasks_and_blocking_get(cluster):
    q = Queue()

    @oxray.remote
    def consumer(queue, n):
        return [queue.get(timeout=30) for _ in range(n)]

    @oxray.remote
    def producer(queue, n):
        for i in range(n):
            queue.put(i)
        return n

    # The consumer starts first and blocks until the producer's items come.
    got = consumer.remote(q, 20)
    assert oxray.get(producer.remote(q, 20)) == 20
    assert oxray.get(got) == list(range(20))
    q.shutdown()


def test_queue_async_api(cluster):
    import asyncio

    q = Queue()

    async def roundtrip():
        await q.put_async("x")
        return await q.get_async(timeout=10)

    assert asyncio.run(roundtrip()) == "x"
    q.shutdown()


# --- multiprocessing.Pool ------------------------------------------------------

def _square(x):
    return x * x


def _add(a, b):
    return a + b


def test_mp_pool_map_starmap_apply(cluster):
    with Pool(processes=2) as pool:
        assert pool.map(_square, range(20)) == [x * x for x in range(20)]
        assert pool.map(_square, range(7), chunksize=3) == [x * x for x in range(7)]
        assert pool.starmap(_add, [(1, 2), (3, 4)]) == [3, 7]
        assert pool.apply(_add, (2, 3)) == 5
        assert pool.apply(lambda a, b=0: a - b, (5,), {"b": 2}) == 3
        assert list(pool.imap(_square, range(5))) == [0, 1, 4, 9, 16]
        assert sorted(pool.imap_unordered(_square, range(5))) == [0, 1, 4, 9, 16]


def test_mp_pool_async_results_and_callbacks(cluster):
    import threading

    got = []
    done = threading.Event()
    with Pool(processes=2) as pool:
        r = pool.map_async(_square, [1, 2, 3], callback=lambda v: (got.append(v), done.set()))
        assert r.get(timeout=30) == [1, 4, 9]
        assert done.wait(30) and got == [[1, 4, 9]]
        assert r.ready() and r.successful()

        def boom(x):
            raise KeyError(x)

        errors = []
        bad = pool.apply_async(boom, (7,), error_callback=errors.append)
        with pytest.raises(KeyError):
            bad.get(timeout=30)
        assert not bad.successful()

        def slow(path):
            import time
            while not os.path.exists(path):
                time.sleep(0.01)
            return 1

        flag = os.path.join(tempfile.mkdtemp(), "go")
        pending = pool.apply_async(slow, (flag,))
        with pytest.raises(std_mp.TimeoutError):
            pending.get(timeout=0.1)
        open(flag, "w").close()
        assert pending.get(timeout=30) == 1


def test_mp_pool_initializer_runs_in_every_process_and_in_parallel(cluster):
    d = tempfile.mkdtemp()

    def init(directory):
        os.environ["POOL_INIT"] = directory

    def meet(name):
        return os.environ["POOL_INIT"] == d and arrive_and_wait(d, 2, name)

    with Pool(processes=2, initializer=init, initargs=(d,)) as pool:
        assert pool.map(meet, [0, 1], chunksize=1) == [True, True]


def test_mp_pool_close_and_terminate(cluster):
    pool = Pool(processes=1)
    assert pool.map(_square, [3]) == [9]
    with pytest.raises(ValueError, match="still running"):
        pool.join()
    pool.close()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map(_square, [1])
    pool.join()
    with pytest.raises(ValueError, match="at least 1"):
        Pool(processes=0)


def test_list_named_actors_and_node_ip(cluster):
    @oxray.remote
    class Named:
        def ping(self):
            return 1

    here = Named.options(name="util-here").remote()
    there = Named.options(name="util-there", namespace="util-other").remote()
    oxray.get([here.ping.remote(), there.ping.remote()])
    assert "util-here" in oxray.util.list_named_actors()
    assert "util-there" not in oxray.util.list_named_actors()
    everywhere = oxray.util.list_named_actors(all_namespaces=True)
    assert {"name": "util-there", "namespace": "util-other"} in everywhere
    oxray.kill(here)
    oxray.kill(there)
    assert oxray.util.get_node_ip_address() == "127.0.0.1"


class _Point:
    def __init__(self, x):
        self.x = x


def test_a_registered_serializer_is_used_and_can_be_removed(cluster):
    oxray.util.register_serializer(_Point, serializer=lambda p: p.x * 10, deserializer=lambda v: ("rebuilt", v))
    try:
        assert oxray.get(oxray.put(_Point(3))) == ("rebuilt", 30)

        @oxray.remote
        def echo(value):
            return value

        assert oxray.get(echo.remote([_Point(1)])) == [("rebuilt", 10)]
    finally:
        oxray.util.deregister_serializer(_Point)
    assert oxray.get(oxray.put(_Point(4))).x == 4


def test_inspect_serializability_names_the_culprit():
    import threading

    lock = threading.Lock()

    def uses_lock():
        return lock

    ok, failures = oxray.util.inspect_serializability(uses_lock, name="uses_lock")
    assert not ok
    assert [f.name for f in failures] == ["lock"]
    assert oxray.util.inspect_serializability(lambda: 1) == (True, set())


# --- ActorPool: dead actors, several returns, timeouts -------------------------

@oxray.remote
class PoolWorker:
    def run(self, v):
        if v == "die":
            os._exit(1)
        return 2 * v, os.getpid()

    @oxray.method(num_returns=2)
    def split(self, v):
        return v, -v

    def wait_for(self, path):
        import time
        while not os.path.exists(path):
            time.sleep(0.01)
        return "done"

    def double(self, v):
        return 2 * v


def _drain(pool, next_result):
    """(results, how many raised ActorDiedError) until the pool is empty."""
    results, died = [], 0
    while pool.has_next():
        try:
            results.append(next_result())
        except oxray.exceptions.ActorDiedError:
            died += 1
    return results, died


def test_pool_evicts_an_actor_that_dies_and_runs_queued_work_on_the_others(cluster):
    pool = ActorPool([PoolWorker.remote(), PoolWorker.remote()])
    for v in ["die", 1, 2, 3]:
        pool.submit(lambda a, v: a.run.remote(v), v)
    with pytest.raises(oxray.exceptions.ActorDiedError):
        pool.get_next()  # the call that killed its actor fails, as in Ray
    results, died = _drain(pool, pool.get_next)
    assert died == 0 and [r[0] for r in results] == [2, 4, 6], "queued work ran on the live actor"
    assert len({pid for _, pid in results}) == 1
    survivor = pool.pop_idle()
    assert survivor is not None and pool.pop_idle() is None, "the dead actor left the pool"
    pool.push(survivor)
    assert [r[0] for r in pool.map(lambda a, v: a.run.remote(v), [4, 5])] == [8, 10]


def test_pool_evicts_a_killed_actor_with_unordered_results(cluster):
    alive, killed = PoolWorker.remote(), PoolWorker.remote()
    oxray.kill(killed)
    pool = ActorPool([alive, killed])
    for v in range(4):
        pool.submit(lambda a, v: a.run.remote(v), v)
    results, died = _drain(pool, pool.get_next_unordered)
    # The killed actor's one call fails; everything else runs on the other.
    assert died == 1 and len(results) == 3
    assert {r[0] for r in results} < {0, 2, 4, 6}
    assert pool.pop_idle() == alive and pool.pop_idle() is None


def test_pool_methods_with_several_returns(cluster):
    pool = ActorPool([PoolWorker.remote(), PoolWorker.remote()])
    split = lambda a, v: a.split.remote(v)  # noqa: E731 (a list of two refs)
    assert list(pool.map(split, [1, 2, 3])) == [[1, -1], [2, -2], [3, -3]]
    assert sorted(pool.map_unordered(split, [1, 2, 3])) == [[1, -1], [2, -2], [3, -3]]
    pool.submit(split, 5)
    assert pool.get_next(timeout=30) == [5, -5]
    pool.submit(split, 6)
    assert pool.get_next_unordered(timeout=30) == [6, -6]
    # Refs of separate calls: the actor is busy until all are ready.
    pool.submit(lambda a, v: [a.double.remote(v), a.double.remote(v + 1)], 10)
    assert pool.get_next_unordered() == [20, 22]
    with pytest.raises(TypeError, match="ObjectRef"):
        pool.submit(lambda a, v: [a.double.remote(v), v], 1)
    assert pool.has_free(), "a rejected submission gives its actor back"


def test_pool_timeouts_and_ignored_results(cluster):
    flag = os.path.join(tempfile.mkdtemp(), "go")
    pool = ActorPool([PoolWorker.remote()])
    pool.submit(lambda a, v: a.wait_for.remote(v), flag)
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=0.1)
    assert pool.has_next(), "a timed-out result stays unless ignored"
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next_unordered(timeout=0.1, ignore_if_timedout=True)
    assert not pool.has_next() and pool.has_free(), "ignored: the actor counts as free"
    pool.submit(lambda a, v: a.wait_for.remote(v), flag)
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next(timeout=0.1, ignore_if_timedout=True)
    assert not pool.has_next()
    open(flag, "w").close()
    # Work given next runs once the ignored calls are done.
    pool.submit(lambda a, v: a.double.remote(v), 4)
    assert pool.get_next(timeout=30) == 8


def test_pool_map_drops_results_not_collected(cluster):
    pool = ActorPool([PoolWorker.remote(), PoolWorker.remote()])
    pool.submit(lambda a, v: a.double.remote(v), 100)
    assert list(pool.map(lambda a, v: a.double.remote(v), [1, 2])) == [2, 4]
    pool.submit(lambda a, v: a.double.remote(v), 100)
    assert sorted(pool.map_unordered(lambda a, v: a.double.remote(v), [1, 2])) == [2, 4]
    assert not pool.has_next()
