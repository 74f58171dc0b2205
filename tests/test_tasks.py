"""Remote functions: submission, arguments, returns, options, parallelism."""

import os
import time

import pytest

import oxray
from barrier import arrive_and_wait


@oxray.remote
def add_one(x):
    return x + 1


@oxray.remote
def echo(*args, **kwargs):
    return args, kwargs


def test_remote_returns_ref_and_get_returns_value(cluster):
    ref = add_one.remote(1)
    assert isinstance(ref, oxray.ObjectRef)
    assert oxray.get(ref) == 2
    assert oxray.get([add_one.remote(i) for i in range(20)]) == list(range(1, 21))


def test_walkthrough_regular_and_remote_function(cluster):
    def regular_function():
        return 1

    @oxray.remote
    def remote_function():
        return 1

    assert regular_function() == 1
    object_id = remote_function.remote()
    assert oxray.get(object_id) == 1


def test_args_and_kwargs(cluster):
    assert oxray.get(echo.remote(1, "a", k=[1, 2])) == ((1, "a"), {"k": [1, 2]})
    assert oxray.get(echo.remote()) == ((), {})


def test_ref_argument_becomes_value_and_chains(cluster):
    y1 = add_one.remote(0)
    chained = add_one.remote(y1)
    assert oxray.get(chained) == 2
    put_ref = oxray.put(41)
    assert oxray.get(add_one.remote(x=put_ref)) == 42


def test_callee_waits_for_argument(cluster, tmp_path):
    @oxray.remote
    def slow_value(path):
        time.sleep(0.5)
        open(path, "w").write("made")
        return "made"

    @oxray.remote
    def read_after(value, path):
        return value, open(path).read()

    p = str(tmp_path / "flag")
    assert oxray.get(read_after.remote(slow_value.remote(p), p)) == ("made", "made")


def test_nested_refs_arrive_as_refs(cluster):
    @oxray.remote
    def inspect(container):
        inner = container["ref"]
        return isinstance(inner, oxray.ObjectRef), oxray.get(inner), isinstance(container["list"][0], oxray.ObjectRef)

    r = oxray.put(5)
    assert oxray.get(inspect.remote({"ref": r, "list": [r]})) == (True, 5, True)


def test_returned_refs_are_usable(cluster):
    @oxray.remote
    def make_refs():
        return [oxray.put(i) for i in range(3)]

    refs = oxray.get(make_refs.remote())
    assert all(isinstance(r, oxray.ObjectRef) for r in refs)
    assert oxray.get(refs) == [0, 1, 2]


def test_multiple_returns_and_legacy_spelling(cluster):
    @oxray.remote(num_returns=3)
    def three():
        return 1, 2, 3

    @oxray.remote(num_return_vals=3)
    def return_multiple():
        return 1, 2, 3

    a, b, c = three.remote()
    assert oxray.get([a, b, c]) == [1, 2, 3]
    a_id, b_id, c_id = return_multiple.remote()
    assert oxray.get(c_id) == 3


def test_num_returns_zero_and_mismatch(cluster):
    @oxray.remote(num_returns=0)
    def nothing():
        return None

    assert nothing.remote() is None

    @oxray.remote(num_returns=2)
    def wrong():
        return 1, 2, 3

    a, b = wrong.remote()
    with pytest.raises(ValueError, match="num_returns=2"):
        oxray.get(a)


def test_calling_remote_function_directly_raises(cluster):
    with pytest.raises(TypeError, match=r"add_one.remote\(\)"):
        add_one(1)


def test_options_override(cluster):
    @oxray.remote(num_returns=2)
    def pair():
        return 1, 2

    assert oxray.get(pair.options(num_returns=1).remote()) == (1, 2)
    with pytest.raises(ValueError, match="Invalid option keyword"):
        pair.options(bogus=1)
    with pytest.raises(ValueError, match="Invalid option keyword"):
        oxray.remote(bogus=1)(lambda: 1)


def test_decorator_misuse(cluster):
    with pytest.raises(TypeError, match="decorator"):
        oxray.remote(1, 2)


def test_tasks_run_in_parallel(cluster, tmp_path):
    @oxray.remote
    def party(d, i):
        return arrive_and_wait(d, 2, i)

    d = str(tmp_path / "barrier")
    assert oxray.get([party.remote(d, i) for i in range(2)]) == [True, True]


def test_four_sleeps_overlap(cluster_4cpu):
    @oxray.remote
    def sleeper():
        time.sleep(1)
        return os.getpid()

    t = time.monotonic()
    pids = oxray.get([sleeper.remote() for _ in range(4)])
    assert time.monotonic() - t < 3.5
    assert len(set(pids)) == 4


def test_closures_and_lambdas_ship_by_value(cluster):
    k = 10
    f = oxray.remote(lambda x: x * k)
    assert oxray.get(f.remote(3)) == 30


def test_unpicklable_argument_is_named(cluster):
    import threading

    lock = threading.Lock()
    with pytest.raises(TypeError, match="Could not serialize the argument <unlocked _thread.lock"):
        add_one.remote(lock)


def test_unpicklable_return_value_is_reported(cluster):
    @oxray.remote
    def returns_lock():
        import threading
        return threading.Lock()

    with pytest.raises(TypeError, match="Could not serialize the return value"):
        oxray.get(returns_lock.remote())


def test_many_tasks(cluster):
    refs = [add_one.remote(i) for i in range(2000)]
    assert sum(oxray.get(refs)) == sum(range(1, 2001))


def test_plain_tasks_run_in_at_most_one_pooled_worker_per_cpu(cluster):
    @oxray.remote
    def pid():
        return os.getpid()

    assert len(set(oxray.get([pid.remote() for _ in range(500)]))) <= 2
