"""Generator tasks and actor methods, as Ray's: streaming (an
ObjectRefGenerator yields a ref per value as it is produced), static
`num_returns=N`, and `num_returns="dynamic"`."""

import asyncio
import os

import numpy as np
import pytest

import oxray
from oxray import _native
from oxray.exceptions import RayTaskError, TaskCancelledError
from barrier import arrive_and_wait
from conftest import wait_for


def test_a_generator_function_streams_its_values(cluster):
    @oxray.remote
    def count(n):
        for i in range(n):
            yield i * 10

    gen = count.remote(4)
    assert isinstance(gen, oxray.ObjectRefGenerator)
    refs = list(gen)
    assert all(isinstance(r, oxray.ObjectRef) for r in refs)
    assert oxray.get(refs) == [0, 10, 20, 30]
    assert gen.is_finished()
    assert oxray.get(gen.completed()) is None


def test_values_arrive_while_the_task_still_runs(cluster, tmp_path):
    # The task yields, then waits for the consumer to have seen that value:
    # it can only finish if values reach the caller one by one.
    @oxray.remote
    def produce(directory):
        for i in range(3):
            yield i
            arrive_and_wait(os.path.join(directory, str(i)), 2, "producer")

    gen = produce.remote(str(tmp_path))
    for i in range(3):
        assert oxray.get(next(gen)) == i
        arrive_and_wait(os.path.join(tmp_path, str(i)), 2, "consumer")
    with pytest.raises(StopIteration):
        next(gen)


def test_an_error_surfaces_at_the_item_after_the_last_value(cluster):
    @oxray.remote
    def fails_after(n):
        for i in range(n):
            yield i
        raise ValueError("boom")

    gen = fails_after.remote(2)
    assert oxray.get(next(gen)) == 0
    assert oxray.get(next(gen)) == 1
    with pytest.raises(ValueError, match="boom") as info:
        oxray.get(next(gen))
    assert isinstance(info.value, RayTaskError)
    # The user's frames only: not the runtime's.
    assert "_private/generators.py" not in str(info.value)
    with pytest.raises(StopIteration):
        next(gen)


def test_large_values_stream_through_the_shared_store(cluster):
    @oxray.remote
    def arrays(n):
        for i in range(n):
            yield np.full(1 << 20, i, dtype=np.uint8)

    for i, ref in enumerate(arrays.remote(3)):
        value = oxray.get(ref)
        assert value.shape == (1 << 20,) and value[0] == i


def test_dropping_a_generator_frees_the_values_not_taken(cluster):
    @oxray.remote
    def arrays(n):
        for i in range(n):
            yield np.full(8 << 20, i, dtype=np.uint8)

    base = _native.store_stats()["used"]
    gen = arrays.remote(4)
    oxray.get(gen.completed())  # every value was produced, none taken
    assert _native.store_stats()["used"] >= base + 4 * (8 << 20)
    first = next(gen)
    del gen
    assert wait_for(lambda: _native.store_stats()["used"] <= base + (8 << 20) + (1 << 20), timeout=10)
    assert oxray.get(first)[0] == 0
    del first
    assert wait_for(lambda: _native.store_stats()["used"] <= base + (1 << 20), timeout=10)


def test_backpressure_pauses_the_producer(cluster):
    @oxray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def add(self):
            self.n += 1

        def get(self):
            return self.n

    counter = Counter.remote()

    @oxray.remote(_generator_backpressure_num_objects=2)
    def produce(counter, n):
        for i in range(n):
            oxray.get(counter.add.remote())
            yield i

    gen = produce.remote(counter, 10)
    assert wait_for(lambda: oxray.get(counter.get.remote()) >= 2, timeout=10)
    # Nothing consumed: the producer stops within the allowance.
    import time
    time.sleep(1.0)
    assert oxray.get(counter.get.remote()) <= 3
    assert oxray.get(list(gen)) == list(range(10))
    assert oxray.get(counter.get.remote()) == 10


def test_actor_generator_methods_stream_sync_and_async(cluster):
    @oxray.remote
    class Source:
        def numbers(self, n):
            for i in range(n):
                yield i

    @oxray.remote
    class AsyncSource:
        async def numbers(self, n):
            for i in range(n):
                await asyncio.sleep(0)
                yield i

    for actor in (Source.remote(), AsyncSource.remote()):
        assert oxray.get(list(actor.numbers.remote(4))) == [0, 1, 2, 3]


def test_async_for_over_a_generator(cluster):
    @oxray.remote
    def count(n):
        yield from range(n)

    async def consume():
        return [await ref async for ref in count.remote(5)]

    assert asyncio.run(consume()) == [0, 1, 2, 3, 4]


def test_a_task_consumes_another_tasks_generator(cluster):
    @oxray.remote
    def count(n):
        yield from range(n)

    @oxray.remote
    def total(n):
        return sum(oxray.get(ref) for ref in count.remote(n))

    assert oxray.get(total.remote(10)) == 45


def test_static_num_returns_splits_a_generator(cluster):
    @oxray.remote(num_returns=3)
    def three():
        yield "a"
        yield "b"
        yield "c"

    assert oxray.get(three.remote()) == ["a", "b", "c"]


def test_dynamic_returns_give_a_list_of_refs(cluster):
    @oxray.remote(num_returns="dynamic")
    def split(n):
        for i in range(n):
            yield np.full(200_000, i, dtype=np.uint8) if i == 0 else i

    with pytest.warns(DeprecationWarning, match="dynamic"):
        ref = split.remote(3)
    dynamic = oxray.get(ref)
    assert isinstance(dynamic, oxray.DynamicObjectRefGenerator)
    assert len(dynamic) == 3
    values = oxray.get(list(dynamic))
    assert values[0][0] == 0 and values[1:] == [1, 2]


def test_streaming_needs_a_generator_function(cluster):
    @oxray.remote
    def plain():
        return 1

    with pytest.raises(ValueError, match="generator"):
        plain.options(num_returns="streaming").remote()
    with pytest.raises(ValueError, match="num_returns"):
        plain.options(num_returns="many")


def test_cancelling_a_generator_ends_its_stream(cluster):
    @oxray.remote
    def forever():
        import time
        i = 0
        while True:
            yield i
            i += 1
            time.sleep(0.05)

    gen = forever.remote()
    assert oxray.get(next(gen)) == 0
    oxray.cancel(gen)
    with pytest.raises(TaskCancelledError):
        for ref in gen:
            oxray.get(ref)


def test_a_generator_cannot_be_passed_to_a_task(cluster):
    @oxray.remote
    def count():
        yield 1

    @oxray.remote
    def take(g):
        return g

    gen = count.remote()
    with pytest.raises(TypeError, match="ObjectRefGenerator"):
        take.remote(gen)
    list(gen)


def test_wait_takes_generators_as_ray_does(cluster, tmp_path):
    @oxray.remote
    def gated(directory):
        yield "first"
        arrive_and_wait(directory, 2, "producer")
        yield "second"

    @oxray.remote
    def plain():
        return 1

    gen = gated.remote(str(tmp_path / "gate"))
    ref = plain.remote()
    ready, not_ready = oxray.wait([gen, ref], num_returns=2, timeout=30)
    assert ready == [gen, ref] and not_ready == []
    assert oxray.get(next(gen)) == "first"
    # Its next value waits for the barrier: not ready yet.
    ready, not_ready = oxray.wait([gen], timeout=0.2)
    assert ready == [] and not_ready == [gen]
    arrive_and_wait(str(tmp_path / "gate"), 2, "consumer")
    ready, _ = oxray.wait([gen], timeout=30)
    assert ready == [gen] and oxray.get(next(gen)) == "second"
