"""`ActorPool`: spread work over a fixed set of actors (Ray's
`ray.util.ActorPool`)."""

import time

import oxray
from oxray.exceptions import ActorDiedError


class ActorPool:
    """Runs work on a pool of actors, one call per idle actor.

    `fn(actor, value)` starts the work and returns its ObjectRef (or a list
    of refs, for a method with several returns: its result is then the list
    of values); the actor counts as busy until the result is collected
    (`get_next`, `get_next_unordered`, or iterating `map`). Work submitted
    while every actor is busy waits in the pool and starts as actors come
    free.

    An actor whose call raises ActorDiedError leaves the pool (as in Ray):
    that call's error reaches the caller, and queued work runs on the others.

        pool = ActorPool([a1, a2])
        list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3, 4]))
    """

    def __init__(self, actors):
        self._idle_actors = list(actors)
        # key (a ref, or a tuple of refs) -> (submission index, actor), for
        # work that has started and whose result is not collected yet.
        self._future_to_actor = {}
        # submission index -> what fn returned, for the same work.
        self._index_to_future = {}
        self._next_task_index = 0
        self._next_return_index = 0
        # (fn, value) waiting for an idle actor, oldest first.
        self._pending_submits = []

    def map(self, fn, values):
        """Applies `fn` to every value; returns an iterator over the results
        in the order of `values`. Results of earlier submissions not yet
        collected are dropped first (those not ready yet are ignored)."""
        while self.has_next():
            try:
                self.get_next_unordered(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass
        return self._submit_all(fn, values, self.get_next)

    def map_unordered(self, fn, values):
        """Like `map`, but the iterator gives each result as soon as it is
        ready. Results of earlier submissions not yet collected are waited
        for and dropped first (as Ray does)."""
        while self.has_next():
            self.get_next_unordered()
        return self._submit_all(fn, values, self.get_next_unordered)

    def _submit_all(self, fn, values, next_result):
        for v in values:
            self.submit(fn, v)

        def results():
            while self.has_next():
                yield next_result()

        return results()

    def submit(self, fn, value):
        """Starts `fn(actor, value)` on an idle actor, or queues it until one
        is free. Collect the result with `get_next` or `get_next_unordered`."""
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        future = fn(actor, value)
        try:
            key = _key_of(future)
        except TypeError:
            self._idle_actors.append(actor)
            raise
        self._future_to_actor[key] = (self._next_task_index, actor)
        self._index_to_future[self._next_task_index] = future
        self._next_task_index += 1

    def has_next(self):
        """Whether any started work's result has not been collected yet."""
        return bool(self._future_to_actor)

    def get_next(self, timeout=None, ignore_if_timedout=False):
        """The next result in submission order, waiting up to `timeout`
        seconds (then raises TimeoutError, and the result stays next). With
        `ignore_if_timedout`, a result that timed out is skipped for good and
        its actor counts as free. A call's error is raised here."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        future = self._index_to_future[self._next_return_index]
        key = _key_of(future)
        timed_out = timeout is not None and not _all_ready(key, timeout)
        if timed_out and not ignore_if_timedout:
            raise TimeoutError("Timed out waiting for result")
        actor = self._forget(key)
        if timed_out:
            raise self._ignore(future, actor)
        return self._get_result(future, actor)

    def get_next_unordered(self, timeout=None, ignore_if_timedout=False):
        """Any ready result, waiting up to `timeout` seconds (then raises
        TimeoutError; with `ignore_if_timedout`, the oldest outstanding
        result is skipped for good). Once used, `get_next` may raise
        ValueError: results are no longer returned in order."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        key = self._wait_any(timeout)
        if key is None:
            if not ignore_if_timedout:
                raise TimeoutError("Timed out waiting for result")
            key = next(iter(self._future_to_actor))
            future = self._index_to_future[self._future_to_actor[key][0]]
            raise self._ignore(future, self._forget(key))
        future = self._index_to_future[self._future_to_actor[key][0]]
        return self._get_result(future, self._forget(key))

    def has_free(self):
        """Whether an actor is idle and no queued work waits for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self):
        """Removes an idle actor from the pool and returns it (None if none
        is free)."""
        return self._idle_actors.pop() if self.has_free() else None

    def push(self, actor):
        """Adds an actor to the pool; queued work starts on it at once."""
        busy = [a for _, a in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)

    def _wait_any(self, timeout):
        """The key of started work whose results are all ready, waiting up to
        `timeout` seconds; None if there is none by then."""
        # Each ref not known ready yet -> the key of the work it belongs to.
        pending = {ref: key for key in self._future_to_actor for ref in _refs(key)}
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = oxray.wait(list(pending), num_returns=1, timeout=remaining)
            if not ready:
                return None
            key = pending.pop(ready[0])
            if not any(ref in pending for ref in _refs(key)):
                return key

    def _forget(self, key):
        """Stops tracking started work; returns the actor that runs it."""
        index, actor = self._future_to_actor.pop(key)
        del self._index_to_future[index]
        self._next_return_index = max(self._next_return_index, index + 1)
        return actor

    def _ignore(self, future, actor):
        """Drops timed-out work; returns the TimeoutError to raise."""
        # As Ray: the actor counts as free at once (work given to it next
        # queues behind the ignored call on the actor itself).
        self._return_actor(actor)
        return TimeoutError(f"Timed out waiting for result. The task {future} has been ignored.")

    def _get_result(self, future, actor):
        alive = True
        try:
            return oxray.get(future if isinstance(future, oxray.ObjectRef) else list(future))
        except ActorDiedError:
            # Evicted: submit() would otherwise keep choosing the dead actor.
            alive = False
            raise
        finally:
            self._return_actor(actor, alive)

    def _return_actor(self, actor, alive=True):
        if alive:
            self._idle_actors.append(actor)
        if self._pending_submits and self._idle_actors:
            self.submit(*self._pending_submits.pop(0))


def _key_of(future):
    """How the pool tracks what `fn` returned: the ref, or a tuple of refs."""
    if isinstance(future, oxray.ObjectRef):
        return future
    if isinstance(future, (list, tuple)) and future and all(isinstance(f, oxray.ObjectRef) for f in future):
        return tuple(future)
    raise TypeError(
        "ActorPool: fn(actor, value) must return the ObjectRef of a call on the actor (or a list of ObjectRefs), "
        f"got {type(future).__name__}"
    )


def _refs(key):
    return key if isinstance(key, tuple) else (key,)


def _all_ready(key, timeout):
    refs = list(_refs(key))
    ready, _ = oxray.wait(refs, num_returns=len(refs), timeout=timeout)
    return len(ready) == len(refs)
