"""`ActorPool`: spread work over a fixed set of actors (Ray's
`ray.util.ActorPool`)."""

import oxray


class ActorPool:
    """Runs work on a fixed pool of actors, one call per idle actor.

    `fn(actor, value)` starts the work and returns its ObjectRef; the actor
    counts as busy until that ref is ready. Work submitted while every actor
    is busy waits in the pool and starts as actors come free.

        pool = ActorPool([a1, a2])
        list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3, 4]))
    """

    def __init__(self, actors):
        self._idle_actors = list(actors)
        # ref -> (submission index, actor), for work that has started.
        self._future_to_actor = {}
        # submission index -> ref, for results not yet returned.
        self._index_to_future = {}
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits = []

    def map(self, fn, values):
        """Applies `fn` to every value; yields results in the order given.
        Results of earlier submissions not yet collected are discarded."""
        return self._map(fn, values, self.get_next)

    def map_unordered(self, fn, values):
        """Like `map`, but yields each result as soon as it is ready."""
        return self._map(fn, values, self.get_next_unordered)

    def _map(self, fn, values, next_result):
        self._discard_pending_results()
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
        if not isinstance(future, oxray.ObjectRef):
            self._idle_actors.append(actor)
            raise TypeError(
                f"ActorPool: fn(actor, value) must return the ObjectRef of a call on the actor, "
                f"got {type(future).__name__}"
            )
        self._future_to_actor[future] = (self._next_task_index, actor)
        self._index_to_future[self._next_task_index] = future
        self._next_task_index += 1

    def has_next(self):
        """Whether any submitted result has not been returned yet."""
        return bool(self._future_to_actor)

    def get_next(self, timeout=None, ignore_if_timedout=False):
        """The next result in submission order, waiting up to `timeout`
        seconds (raises TimeoutError). With `ignore_if_timedout`, a result
        that timed out is skipped for good."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        future = self._index_to_future[self._next_return_index]
        if timeout is not None:
            ready, _ = oxray.wait([future], timeout=timeout)
            if not ready:
                if not ignore_if_timedout:
                    raise TimeoutError("Timed out waiting for result")
                self._return_actor(self._forget(future))
                raise TimeoutError(f"Timed out waiting for result. The task {future} has been ignored.")
        actor = self._forget(future)
        return self._result_then_return(future, actor)

    def get_next_unordered(self, timeout=None, ignore_if_timedout=False):
        """Any ready result, waiting up to `timeout` seconds (raises
        TimeoutError). Once used, `get_next` may no longer be called."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        ready, _ = oxray.wait(list(self._future_to_actor), num_returns=1, timeout=timeout)
        if not ready:
            if not ignore_if_timedout:
                raise TimeoutError("Timed out waiting for result")
            future = next(iter(self._future_to_actor))
            self._return_actor(self._forget(future))
            raise TimeoutError(f"Timed out waiting for result. The task {future} has been ignored.")
        future = ready[0]
        actor = self._forget(future)
        return self._result_then_return(future, actor)

    def has_free(self):
        """Whether an actor is idle and no queued work waits for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self):
        """Removes an idle actor from the pool and returns it (None if none
        is idle)."""
        return self._idle_actors.pop() if self.has_free() else None

    def push(self, actor):
        """Adds an actor to the pool; queued work starts on it at once."""
        busy = [a for _, a in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)

    def _forget(self, future):
        """Stops tracking `future`; returns the actor that ran it."""
        index, actor = self._future_to_actor.pop(future)
        del self._index_to_future[index]
        self._next_return_index = max(self._next_return_index, index + 1)
        return actor

    def _result_then_return(self, future, actor):
        # The actor is free again whether the call succeeded or raised.
        try:
            return oxray.get(future)
        finally:
            self._return_actor(actor)

    def _return_actor(self, actor):
        self._idle_actors.append(actor)
        if self._pending_submits:
            self.submit(*self._pending_submits.pop(0))

    def _discard_pending_results(self):
        while self.has_next():
            try:
                self.get_next_unordered(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass
