"""put, get, wait and ObjectRef behaviour."""

import asyncio
import time

import pytest

import oxray
from oxray.exceptions import GetTimeoutError, RayTimeoutError


@oxray.remote
def sleep_then(value, seconds):
    time.sleep(seconds)
    return value


def test_put_get_round_trip(cluster):
    for value in [1, "s", b"b", None, [1, {"a": (2, 3)}], {1, 2}, 3.5]:
        assert oxray.get(oxray.put(value)) == value


def test_put_of_ref_is_refused(cluster):
    with pytest.raises(TypeError, match="wrap the ObjectRef in a list"):
        oxray.put(oxray.put(1))


def test_get_rejects_non_refs(cluster):
    with pytest.raises(ValueError, match="ObjectRef or a list of ObjectRefs"):
        oxray.get(1)
    with pytest.raises(ValueError, match="ObjectRef or a list of ObjectRefs"):
        oxray.get([oxray.put(1), 2])


def test_get_timeout_raises_all_aliases(cluster):
    ref = sleep_then.remote(1, 3)
    t = time.monotonic()
    with pytest.raises(GetTimeoutError):
        oxray.get(ref, timeout=0.3)
    assert time.monotonic() - t < 2.5
    assert RayTimeoutError is GetTimeoutError
    with pytest.raises(TimeoutError):
        oxray.get(ref, timeout=0)
    assert oxray.get(ref) == 1


def test_walkthrough_timeout_example(cluster):
    @oxray.remote
    def long_running_function():
        time.sleep(3)

    obj_id = long_running_function.remote()
    try:
        oxray.get(obj_id, timeout=0.5)
        timed_out = False
    except RayTimeoutError:
        timed_out = True
    assert timed_out


def test_wait_orders_and_counts(cluster):
    fast = [oxray.put(i) for i in range(3)]
    slow = sleep_then.remote("slow", 2)
    refs = [slow] + fast
    ready, remaining = oxray.wait(refs, num_returns=2, timeout=10)
    assert ready == fast[:2]
    assert remaining == [slow, fast[2]]
    ready, remaining = oxray.wait(refs, num_returns=4, timeout=0.2)
    assert ready == fast and remaining == [slow]
    ready, remaining = oxray.wait(refs, num_returns=4)
    assert ready == refs and remaining == []


def test_wait_argument_checks(cluster):
    r = oxray.put(1)
    with pytest.raises(ValueError, match="unique"):
        oxray.wait([r, r], num_returns=1)
    with pytest.raises(TypeError):
        oxray.wait(r)
    with pytest.raises(ValueError, match="greater than"):
        oxray.wait([r], num_returns=2)
    with pytest.raises(ValueError, match="Invalid number"):
        oxray.wait([r], num_returns=0)
    assert oxray.wait([]) == ([], [])


def test_object_ref_identity(cluster):
    r = oxray.put(1)
    assert len(r.hex()) == 40
    assert r == r and hash(r) == hash(r)
    assert r != oxray.put(1)
    assert repr(r) == f"ObjectRef({r.hex()})"
    assert len(r.binary()) == 20
    same = oxray.get(oxray.put([r]))[0]
    assert same == r and hash(same) == hash(r) and same is not r
    assert {r: 1}[same] == 1


def test_refs_inside_put_values(cluster):
    inner = oxray.put("inner")
    outer = oxray.put({"x": inner})
    del inner
    got = oxray.get(outer)["x"]
    assert oxray.get(got) == "inner"


def test_await_ref_and_future(cluster):
    async def main():
        a = await sleep_then.remote("a", 0.1)
        both = await asyncio.gather(sleep_then.remote(1, 0.1), sleep_then.remote(2, 0.1))
        return a, both

    assert asyncio.run(main()) == ("a", [1, 2])
    fut = sleep_then.remote(7, 0.1).future()
    assert fut.result(timeout=10) == 7


def test_await_large_objects_in_the_shared_store(cluster):
    import numpy as np

    @oxray.remote
    def big(n):
        return np.full(n, 7, dtype=np.uint8)

    async def main():
        put_ref = oxray.put(np.arange(1_000_000))
        return await put_ref, await big.remote(2_000_000)

    put_value, task_value = asyncio.run(main())
    assert put_value[-1] == 999_999 and task_value.sum() == 14_000_000
    fut = big.remote(300_000).future()
    assert fut.result(timeout=30).shape == (300_000,)


def test_future_carries_task_error(cluster):
    @oxray.remote
    def fail():
        raise KeyError("k")

    with pytest.raises(KeyError):
        fail.remote().future().result(timeout=10)


def test_dropped_refs_free_their_values(cluster):
    from oxray import _native

    base = _native.num_stored()
    refs = [oxray.put(i) for i in range(100)]
    assert _native.num_stored() >= base + 100
    del refs
    assert _native.num_stored() <= base
    results = [sleep_then.remote(i, 0) for i in range(50)]
    oxray.get(results)
    del results
    assert _native.num_stored() <= base


def test_a_ref_whose_owner_died_raises_owner_died_error(cluster):
    @oxray.remote
    class Maker:
        def make(self):
            # A value owned by this actor, handed out by reference.
            return [oxray.put("kept by the actor")]

    maker = Maker.remote()
    [ref] = oxray.get(maker.make.remote())
    oxray.kill(maker)
    # Once a call fails, the actor's process is gone.
    with pytest.raises(oxray.exceptions.RayActorError):
        oxray.get(maker.make.remote(), timeout=30)
    with pytest.raises(oxray.exceptions.OwnerDiedError) as err:
        oxray.get(ref, timeout=30)
    assert isinstance(err.value, oxray.exceptions.ObjectLostError)


def test_a_bytearray_comes_back_as_bytes(cluster):
    assert oxray.get(oxray.put(bytearray(b"abc"))) == b"abc"
    assert type(oxray.get(oxray.put(bytearray(b"abc")))) is bytes
    assert type(oxray.get(oxray.put(bytearray(300_000)))) is bytes


def test_as_future_in_asyncio(cluster):
    import asyncio

    @oxray.remote
    def double(x):
        return 2 * x

    async def main():
        fut = double.remote(21).as_future()
        assert isinstance(fut, asyncio.Future)
        return await fut

    assert asyncio.run(main()) == 42


def test_names_ray_programs_import(cluster):
    import oxray.cloudpickle
    import oxray.types

    assert oxray.ObjectID is oxray.ObjectRef and oxray.types.ObjectRef is oxray.ObjectRef
    assert oxray.cloudpickle.loads(oxray.cloudpickle.dumps(lambda: 5))() == 5

    @oxray.remote
    def pair(a, b=0):
        return a, b

    refs = pair._remote(args=[1], kwargs={"b": 2}, num_returns=2)
    assert oxray.get(refs) == [1, 2]
    assert oxray.get(pair._remote(args=[3])) == (3, 0)

    @oxray.remote
    class Named:
        def ping(self):
            return "pong"

    actor = Named._remote(name="via-_remote")
    assert oxray.get(oxray.get_actor("via-_remote").ping.remote()) == "pong"
    oxray.kill(actor)


def test_put_with_an_actor_as_owner(cluster):
    import numpy as np

    from oxray.exceptions import ObjectLostError, RayActorError

    @oxray.remote
    class Owner:
        def ping(self):
            return "pong"

    owner = Owner.remote()
    big = oxray.put(np.arange(300_000), _owner=owner)
    small = oxray.put("hello", _owner=owner)
    assert oxray.get(small) == "hello"

    @oxray.remote
    def total(a):
        return int(a.sum())

    assert oxray.get(total.remote(big)) == sum(range(300_000))
    # The actor owns it: the object goes with the actor.
    lost = oxray.put("gone with its owner", _owner=owner)
    oxray.kill(owner)
    with pytest.raises(RayActorError):
        oxray.get(owner.ping.remote())
    with pytest.raises(ObjectLostError):
        oxray.get(lost, timeout=10)
    with pytest.raises(TypeError, match="actor handle"):
        oxray.put(1, _owner="not an actor")
