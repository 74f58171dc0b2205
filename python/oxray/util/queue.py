"""`Queue`: a first-in first-out queue shared by tasks and actors (Ray's
`ray.util.queue`). The items live in an async actor, so any process holding
the queue (it can be passed to tasks and actors) puts and gets."""

import asyncio
import queue
from collections.abc import Iterable

import oxray


class Empty(queue.Empty):
    """Raised by a non-blocking get, or a get that timed out, on an empty
    queue."""


class Full(queue.Full):
    """Raised by a non-blocking put, or a put that timed out, on a full
    queue."""


def _check_timeout(timeout):
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class Queue:
    """A FIFO queue: `Queue(maxsize=0)` is unbounded. `actor_options` are
    passed to the actor that holds the items (`num_cpus`, `name`, ...)."""

    def __init__(self, maxsize: int = 0, actor_options: dict = None):
        self.maxsize = maxsize
        self.actor = oxray.remote(_QueueActor).options(**(actor_options or {})).remote(maxsize)

    def __len__(self):
        return self.size()

    def size(self) -> int:
        """The number of items in the queue."""
        return oxray.get(self.actor.qsize.remote())

    def qsize(self) -> int:
        """The number of items in the queue."""
        return self.size()

    def empty(self) -> bool:
        """Whether the queue is empty."""
        return oxray.get(self.actor.empty.remote())

    def full(self) -> bool:
        """Whether the queue holds `maxsize` items."""
        return oxray.get(self.actor.full.remote())

    def put(self, item, block: bool = True, timeout: float = None) -> None:
        """Adds an item. When full: waits (up to `timeout` seconds, then
        raises Full) if `block`, else raises Full at once."""
        if not block:
            oxray.get(self.actor.put_nowait.remote(item))
            return
        _check_timeout(timeout)
        oxray.get(self.actor.put.remote(item, timeout))

    async def put_async(self, item, block: bool = True, timeout: float = None) -> None:
        """`put` for asyncio code."""
        if not block:
            await self.actor.put_nowait.remote(item)
            return
        _check_timeout(timeout)
        await self.actor.put.remote(item, timeout)

    def get(self, block: bool = True, timeout: float = None):
        """Removes and returns the oldest item. When empty: waits (up to
        `timeout` seconds, then raises Empty) if `block`, else raises Empty
        at once."""
        if not block:
            return oxray.get(self.actor.get_nowait.remote())
        _check_timeout(timeout)
        return oxray.get(self.actor.get.remote(timeout))

    async def get_async(self, block: bool = True, timeout: float = None):
        """`get` for asyncio code."""
        if not block:
            return await self.actor.get_nowait.remote()
        _check_timeout(timeout)
        return await self.actor.get.remote(timeout)

    def put_nowait(self, item) -> None:
        """`put(item, block=False)`."""
        return self.put(item, block=False)

    def put_nowait_batch(self, items) -> None:
        """Adds all `items` at once, or none of them (raises Full) if they do
        not all fit."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        oxray.get(self.actor.put_nowait_batch.remote(list(items)))

    def get_nowait(self):
        """`get(block=False)`."""
        return self.get(block=False)

    def get_nowait_batch(self, num_items: int) -> list:
        """Removes and returns `num_items` items at once, or none (raises
        Empty) if fewer are queued."""
        if not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        return oxray.get(self.actor.get_nowait_batch.remote(num_items))

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """Ends the queue's actor: after the calls already made, or at once
        with `force` (also when they take longer than `grace_period_s`)."""
        if self.actor is not None:
            if force:
                oxray.kill(self.actor, no_restart=True)
            else:
                done = self.actor.__ray_terminate__.remote()
                _, not_done = oxray.wait([done], timeout=grace_period_s)
                if not_done:
                    oxray.kill(self.actor, no_restart=True)
        self.actor = None


class _QueueActor:
    """Holds the items; async, so blocked puts and gets wait concurrently."""

    def __init__(self, maxsize):
        self.maxsize = maxsize
        self.queue = asyncio.Queue(maxsize)

    def qsize(self):
        return self.queue.qsize()

    def empty(self):
        return self.queue.empty()

    def full(self):
        return self.queue.full()

    async def put(self, item, timeout=None):
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except asyncio.TimeoutError:
            raise Full from None

    async def put_nowait(self, item):
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            raise Full from None

    async def put_nowait_batch(self, items):
        if self.maxsize > 0 and len(items) + self.qsize() > self.maxsize:
            raise Full(f"Cannot add {len(items)} items to queue of size {self.qsize()} and maxsize {self.maxsize}.")
        for item in items:
            self.queue.put_nowait(item)

    async def get(self, timeout=None):
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise Empty from None

    async def get_nowait(self):
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            raise Empty from None

    async def get_nowait_batch(self, num_items):
        if num_items > self.qsize():
            raise Empty(f"Cannot get {num_items} items from queue of size {self.qsize()}.")
        return [self.queue.get_nowait() for _ in range(num_items)]
