"""Actors: creation, ordered calls, handles, names, kill, errors,
concurrency, restarts and resources."""

import asyncio
import os
import time

import pytest

import oxray
from oxray.exceptions import ActorDiedError, RayActorError, RayTaskError
from barrier import arrive_and_wait
from conftest import process_gone, wait_for


@oxray.remote
class Counter(object):
    def __init__(self, start=0):
        self.value = start

    def increment(self):
        self.value += 1
        return self.value

    def get(self):
        return self.value

    def pid(self):
        return os.getpid()

    def fail(self):
        raise ValueError("method failed")

    @oxray.method(num_returns=2)
    def pair(self):
        return self.value, -self.value


def test_walkthrough_counter_example(cluster):
    counters = [Counter.remote() for _ in range(10)]
    results = oxray.get([c.increment.remote() for c in counters])
    assert results == [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    results = oxray.get([counters[0].increment.remote() for _ in range(5)])
    assert results == [2, 3, 4, 5, 6]


def test_walkthrough_actor_with_resources(cluster_4cpu):
    @oxray.remote(num_cpus=2, num_gpus=0.5)
    class Actor(object):
        def ping(self):
            return "pong"

    a = Actor.remote()
    assert oxray.get(a.ping.remote()) == "pong"


def test_constructor_args_and_options(cluster):
    c = Counter.options(name="with-options", max_restarts=1, max_task_retries=1).remote(start=10)
    assert oxray.get(c.increment.remote()) == 11
    r = oxray.put(100)
    c2 = Counter.remote(r)
    assert oxray.get(c2.get.remote()) == 100


def test_calls_run_in_order_with_shared_state(cluster):
    c = Counter.remote()
    refs = [c.increment.remote() for _ in range(200)]
    assert oxray.get(refs) == list(range(1, 201))


def test_each_actor_has_its_own_process(cluster):
    a, b = Counter.remote(), Counter.remote()
    pa, pb = oxray.get([a.pid.remote(), b.pid.remote()])
    assert pa != pb and os.getpid() not in (pa, pb)


def test_different_actors_run_in_parallel(cluster, tmp_path):
    @oxray.remote
    class Party:
        def meet(self, d, i):
            return arrive_and_wait(d, 3, i)

    parties = [Party.remote() for _ in range(3)]
    d = str(tmp_path / "b")
    assert oxray.get([p.meet.remote(d, i) for i, p in enumerate(parties)], timeout=60) == [True] * 3


def test_num_returns_on_methods(cluster):
    c = Counter.remote(3)
    a, b = c.pair.remote()
    assert oxray.get([a, b]) == [3, -3]
    one = c.pair.options(num_returns=1).remote()
    assert oxray.get(one) == (3, -3)


def test_handles_pass_to_tasks_and_actors(cluster):
    c = Counter.remote()

    @oxray.remote
    def bump(handle, n):
        return oxray.get([handle.increment.remote() for _ in range(n)])[-1]

    @oxray.remote
    class Caller:
        def __init__(self, handles):
            self.handle = handles["counter"]

        def call(self):
            return oxray.get(self.handle.increment.remote())

    assert oxray.get(bump.remote(c, 3)) == 3
    caller = Caller.remote({"counter": c})
    assert oxray.get(caller.call.remote()) == 4
    assert oxray.get(c.get.remote()) == 4


def test_method_error_keeps_actor_alive(cluster):
    c = Counter.remote()
    with pytest.raises(ValueError, match="method failed") as info:
        oxray.get(c.fail.remote())
    assert isinstance(info.value, RayTaskError)
    assert oxray.get(c.increment.remote()) == 1


def test_init_error_fails_every_call(cluster):
    @oxray.remote
    class Broken:
        def __init__(self):
            raise KeyError("bad init")

        def f(self):
            return 1

    b = Broken.remote()
    for _ in range(2):
        with pytest.raises(ActorDiedError) as info:
            oxray.get(b.f.remote(), timeout=30)
        assert "bad init" in str(info.value)
        assert isinstance(info.value.cause, RayTaskError)
        assert isinstance(info.value.cause.cause, KeyError)


def test_kill_fails_pending_and_later_calls(cluster):
    @oxray.remote
    class Slow:
        def sleep(self, s):
            time.sleep(s)
            return s

    s = Slow.remote()
    assert oxray.get(s.sleep.remote(0)) == 0
    pending = s.sleep.remote(30)
    oxray.kill(s)
    with pytest.raises(ActorDiedError, match="kill"):
        oxray.get(pending, timeout=30)
    with pytest.raises(ActorDiedError, match="kill"):
        oxray.get(s.sleep.remote(0), timeout=30)
    assert issubclass(ActorDiedError, RayActorError)
    with pytest.raises(ValueError, match="only supported for actors"):
        oxray.kill("not an actor")


def test_exit_actor(cluster):
    @oxray.remote
    class Quitter:
        def ping(self):
            return "pong"

        def quit(self):
            oxray.actor.exit_actor()

    q = Quitter.remote()
    assert oxray.get(q.ping.remote()) == "pong"
    with pytest.raises(ActorDiedError, match="exit_actor"):
        oxray.get(q.quit.remote(), timeout=30)
    with pytest.raises(ActorDiedError):
        oxray.get(q.ping.remote(), timeout=30)
    with pytest.raises(TypeError, match="non-actor"):
        oxray.actor.exit_actor()


def test_actor_ends_when_last_handle_goes(cluster):
    c = Counter.remote()
    pid = oxray.get(c.pid.remote())
    last = c.increment.remote()
    del c
    assert oxray.get(last) == 1  # calls made before the drop still finish
    assert wait_for(lambda: process_gone(pid), timeout=10)


def test_named_actors(cluster):
    c = Counter.options(name="named-counter").remote()
    oxray.get(c.increment.remote())
    same = oxray.get_actor("named-counter")
    assert oxray.get(same.increment.remote()) == 2
    with pytest.raises(ValueError, match="already taken"):
        Counter.options(name="named-counter").remote()
    again = Counter.options(name="named-counter", get_if_exists=True).remote()
    assert oxray.get(again.get.remote()) == 2
    with pytest.raises(ValueError, match="Failed to look up actor"):
        oxray.get_actor("no-such-actor")
    ns = Counter.options(name="named-counter", namespace="other").remote(start=50)
    assert oxray.get(oxray.get_actor("named-counter", namespace="other").get.remote()) == 50
    oxray.kill(c)
    assert wait_for(lambda: _lookup_fails("named-counter"), timeout=10)
    del ns


def _lookup_fails(name):
    try:
        oxray.get_actor(name)
        return False
    except ValueError:
        return True


def test_named_actor_visible_from_tasks(cluster):
    c = Counter.options(name="seen-from-task").remote()

    @oxray.remote
    def use():
        return oxray.get(oxray.get_actor("seen-from-task").increment.remote())

    assert oxray.get(use.remote()) == 1
    del c


def test_threaded_actor_runs_calls_concurrently(cluster, tmp_path):
    @oxray.remote(max_concurrency=3)
    class Threaded:
        def meet(self, d, i):
            return arrive_and_wait(d, 3, i)

    t = Threaded.remote()
    d = str(tmp_path / "b")
    assert oxray.get([t.meet.remote(d, i) for i in range(3)], timeout=60) == [True] * 3


def test_async_actor_runs_calls_concurrently(cluster):
    @oxray.remote
    class AsyncActor:
        def __init__(self):
            self.arrived = 0
            self.event = None

        async def meet(self, parties):
            if self.event is None:
                self.event = asyncio.Event()
            self.arrived += 1
            if self.arrived == parties:
                self.event.set()
            await asyncio.wait_for(self.event.wait(), timeout=30)
            return True

        def sync_method(self):
            return "sync"

    a = AsyncActor.remote()
    assert oxray.get([a.meet.remote(50) for _ in range(50)], timeout=60) == [True] * 50
    assert oxray.get(a.sync_method.remote()) == "sync"


def test_restart_reruns_init_and_retries(cluster, tmp_path):
    @oxray.remote(max_restarts=2, max_task_retries=1)
    class Phoenix:
        def __init__(self, path):
            with open(path, "a") as f:
                f.write("init\n")

        def pid(self):
            return os.getpid()

        def slow_pid(self, path):
            open(path, "w").close()
            time.sleep(3)
            return os.getpid()

        def die(self):
            os._exit(1)

    log = str(tmp_path / "log")
    p = Phoenix.remote(log)
    first = oxray.get(p.pid.remote())
    # A call that kills the process fails when it may not be retried...
    with pytest.raises(ActorDiedError):
        oxray.get(p.die.options(max_task_retries=0).remote(), timeout=60)
    # ...and the actor comes back, running __init__ again.
    second = oxray.get(p.pid.remote(), timeout=60)
    assert second != first
    assert open(log).read().count("init") == 2
    # A call in flight when the actor is killed is retried on the restart.
    flag = str(tmp_path / "started")
    pending = p.slow_pid.remote(flag)
    assert wait_for(lambda: os.path.exists(flag))
    oxray.kill(p, no_restart=False)
    third = oxray.get(pending, timeout=60)
    assert third not in (first, second)
    assert open(log).read().count("init") == 3
    # The restart budget is spent now.
    with pytest.raises(ActorDiedError, match="restarted 2 time"):
        oxray.get(p.die.remote(), timeout=60)
    with pytest.raises(ActorDiedError):
        oxray.get(p.pid.remote(), timeout=60)


def test_no_restart_by_default(cluster):
    c = Counter.remote()

    @oxray.remote
    class Crasher:
        def die(self):
            os._exit(1)

    x = Crasher.remote()
    with pytest.raises(ActorDiedError):
        oxray.get(x.die.remote(), timeout=60)
    assert oxray.get(c.increment.remote()) == 1


def test_actor_gpu_isolation(cluster_4cpu):
    @oxray.remote(num_gpus=1)
    class GpuActor:
        def visible(self):
            return os.environ.get("CUDA_VISIBLE_DEVICES"), oxray.get_gpu_ids()

    a, b = GpuActor.remote(), GpuActor.remote()
    (va, ia), (vb, ib) = oxray.get([a.visible.remote(), b.visible.remote()])
    assert {va, vb} == {"0", "1"}
    assert ia == [int(va)] and ib == [int(vb)]


def test_actor_resources_are_held(cluster_4cpu, tmp_path):
    @oxray.remote(num_cpus=3)
    class Big:
        def ping(self):
            return 1

    big = Big.remote()
    oxray.get(big.ping.remote())
    assert oxray.available_resources().get("CPU", 0) <= 1
    oxray.kill(big)
    assert wait_for(lambda: oxray.available_resources().get("CPU") == 4, timeout=10)


def test_bad_usage_errors(cluster):
    c = Counter.remote()
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        c.nope.remote()
    with pytest.raises(TypeError, match=r"increment.remote\(\)"):
        c.increment()
    with pytest.raises(TypeError, match=r"Counter.remote\(\)"):
        Counter()
    import threading

    with pytest.raises(TypeError, match="Could not serialize the argument"):
        Counter.remote(threading.Lock())
    with pytest.raises(ValueError, match="Invalid option keyword"):
        Counter.options(bogus=True)
    with pytest.raises(ValueError):
        Counter.options(max_concurrency=0)


def test_many_actors(cluster):
    actors = [Counter.remote() for _ in range(20)]
    assert oxray.get([a.increment.remote() for a in actors], timeout=120) == [1] * 20


def test_actor_lives_while_any_process_holds_a_handle(cluster):
    @oxray.remote
    class Holder:
        def keep(self, handles):
            self.handle = handles[0]

        def use(self):
            return oxray.get(self.handle.increment.remote())

        def drop(self):
            self.handle = None

    c = Counter.remote()
    pid = oxray.get(c.pid.remote())
    h = Holder.remote()
    oxray.get(h.keep.remote([c]))
    del c  # the creator's last handle: the holder's keeps the actor alive
    assert oxray.get(h.use.remote()) == 1
    assert oxray.get(h.use.remote()) == 2
    oxray.get(h.drop.remote())
    assert wait_for(lambda: process_gone(pid), timeout=10), "actor outlived its last handle"


def test_handle_passed_to_a_task_then_dropped_everywhere(cluster):
    @oxray.remote
    def bump(handles):
        return oxray.get(handles[0].increment.remote())

    c = Counter.remote()
    pid = oxray.get(c.pid.remote())
    assert oxray.get(bump.remote([c])) == 1
    del c
    assert wait_for(lambda: process_gone(pid), timeout=10)


def test_class_attributes_are_reachable_through_the_class(cluster):
    @oxray.remote
    class WithConstant:
        LIMIT = 5

        def limit(self):
            return WithConstant.LIMIT, type(self).LIMIT

    assert oxray.get(WithConstant.remote().limit.remote()) == (5, 5)
    assert WithConstant.LIMIT == 5


def test_an_intended_exit_runs_atexit_handlers_and_says_so(cluster, tmp_path):
    flag = tmp_path / "atexit-ran"

    @oxray.remote
    class Leaving:
        def __init__(self, path):
            import atexit
            atexit.register(lambda: open(path, "w").close())

        def leave(self):
            oxray.actor.exit_actor()

    a = Leaving.remote(str(flag))
    with pytest.raises(oxray.exceptions.ActorDiedError, match="INTENDED_USER_EXIT"):
        oxray.get(a.leave.remote())
    assert wait_for(flag.exists, timeout=10)
