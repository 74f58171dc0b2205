"""`Pool`: Python's `multiprocessing.Pool` API on oxray actors (Ray's
`ray.util.multiprocessing`). Swap the import and the work runs in the
cluster's workers instead of forked children."""

import itertools
import os
import threading

import oxray

__all__ = ["Pool", "AsyncResult", "TimeoutError"]

# multiprocessing raises its own TimeoutError class from AsyncResult.get.
from multiprocessing import TimeoutError  # noqa: E402


class _PoolActor:
    """One pool process: runs the initializer once, then batches of calls."""

    def __init__(self, initializer=None, initargs=None):
        if initializer is not None:
            initializer(*(initargs or ()))

    def run_batch(self, func, batch, star):
        if star:
            return [func(*args) for args in batch]
        return [func(args) for args in batch]


class AsyncResult:
    """The result of `apply_async` / `map_async` / `starmap_async`."""

    def __init__(self, refs, single, callback=None, error_callback=None):
        self._refs = refs
        self._single = single
        self._value = None
        self._error = None
        self._done = False
        self._callback = callback
        self._error_callback = error_callback
        self._lock = threading.Lock()
        if callback is not None or error_callback is not None:
            # Like multiprocessing, callbacks run as soon as the result is
            # ready, without the caller asking for it.
            threading.Thread(target=self._collect, name="oxray-pool-callback", daemon=True).start()

    def _collect(self, timeout=None):
        if self._done:
            return
        ready, _ = oxray.wait(self._refs, num_returns=len(self._refs), timeout=timeout)
        if len(ready) < len(self._refs):
            raise TimeoutError()
        with self._lock:  # the callback thread and get() may both get here
            if self._done:
                return
            try:
                batches = oxray.get(self._refs)
                values = list(itertools.chain.from_iterable(batches))
                self._value = values[0] if self._single else values
            except Exception as e:  # the task's exception, raised again by get()
                self._error = e
            self._done = True
        if self._error is None and self._callback is not None:
            self._callback(self._value)
        if self._error is not None and self._error_callback is not None:
            self._error_callback(self._error)

    def get(self, timeout=None):
        """The result, waiting up to `timeout` seconds (then raises
        multiprocessing.TimeoutError). Raises the call's exception if it
        failed."""
        self._collect(timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def wait(self, timeout=None):
        """Waits until the result is ready or `timeout` seconds pass."""
        oxray.wait(self._refs, num_returns=len(self._refs), timeout=timeout)

    def ready(self):
        """Whether the result is ready."""
        ready, _ = oxray.wait(self._refs, num_returns=len(self._refs), timeout=0)
        return len(ready) == len(self._refs)

    def successful(self):
        """Whether the call completed without raising; ValueError if it is
        not ready yet."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        self._collect()
        return self._error is None


class Pool:
    """A pool of `processes` actors (default: the cluster's CPUs), each
    running `initializer(*initargs)` first. `ray_remote_args` are the
    actors' options (`num_cpus`, `resources`, ...)."""

    def __init__(self, processes=None, initializer=None, initargs=None, maxtasksperchild=None,
                 context=None, ray_address=None, ray_remote_args=None):
        if not oxray.is_initialized():
            oxray.init(address=ray_address)
        if processes is None:
            processes = max(1, int(oxray.cluster_resources().get("CPU", os.cpu_count() or 1)))
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        options = {"num_cpus": 1, **(ray_remote_args or {})}
        actor_class = oxray.remote(_PoolActor).options(**options)
        self._processes = processes
        self._actors = [actor_class.remote(initializer, initargs) for _ in range(processes)]
        self._next_actor = itertools.cycle(range(processes))
        self._running = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.terminate()

    def _check_running(self):
        if not self._running:
            raise ValueError("Pool not running")

    def _submit(self, func, batch, star):
        actor = self._actors[next(self._next_actor)]
        return actor.run_batch.remote(func, batch, star)

    def _chunks(self, iterable, chunksize):
        items = list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), self._processes * 4)
            chunksize += bool(extra)
        chunksize = max(1, chunksize)
        return [items[i:i + chunksize] for i in range(0, len(items), chunksize)]

    def apply(self, func, args=(), kwds=None):
        """`func(*args, **kwds)` in a pool process; waits for the result."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func, args=(), kwds=None, callback=None, error_callback=None):
        """`func(*args, **kwds)` in a pool process; returns an AsyncResult."""
        self._check_running()
        kwds = kwds or {}
        call = (lambda *a: func(*a, **kwds)) if kwds else func
        return AsyncResult([self._submit(call, [tuple(args)], True)], True, callback, error_callback)

    def map(self, func, iterable, chunksize=None):
        """`[func(x) for x in iterable]`, computed in the pool."""
        return self.map_async(func, iterable, chunksize).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        """`map` that returns an AsyncResult."""
        return self._map_async(func, iterable, chunksize, False, callback, error_callback)

    def starmap(self, func, iterable, chunksize=None):
        """`[func(*args) for args in iterable]`, computed in the pool."""
        return self.starmap_async(func, iterable, chunksize).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        """`starmap` that returns an AsyncResult."""
        return self._map_async(func, iterable, chunksize, True, callback, error_callback)

    def _map_async(self, func, iterable, chunksize, star, callback, error_callback):
        self._check_running()
        refs = [self._submit(func, c, star) for c in self._chunks(iterable, chunksize)]
        return AsyncResult(refs, False, callback, error_callback)

    def imap(self, func, iterable, chunksize=1):
        """Yields `func(x)` for each x, in order, as results arrive."""
        self._check_running()
        refs = [self._submit(func, c, False) for c in self._chunks(iterable, chunksize)]
        return itertools.chain.from_iterable(oxray.get(ref) for ref in refs)

    def imap_unordered(self, func, iterable, chunksize=1):
        """Yields `func(x)` for each x, in the order they finish."""
        self._check_running()
        pending = [self._submit(func, c, False) for c in self._chunks(iterable, chunksize)]

        def as_finished(pending):
            while pending:
                ready, pending = oxray.wait(pending, num_returns=1)
                yield from oxray.get(ready[0])

        return as_finished(pending)

    def close(self):
        """Accepts no more work; the work already submitted finishes."""
        self._running = False

    def terminate(self):
        """Stops the pool's processes at once."""
        self._running = False
        for actor in self._actors:
            oxray.kill(actor)
        self._actors = []

    def join(self):
        """Waits for the pool's processes to exit; call `close` or
        `terminate` first."""
        if self._running:
            raise ValueError("Pool is still running")
        for actor in self._actors:
            oxray.wait([actor.__ray_terminate__.remote()])
        self._actors = []
