"""Generator tasks, as Ray's: a generator function (or `num_returns=
"streaming"`) gives an `ObjectRefGenerator` that yields a ref per value as
the task produces it; `num_returns="dynamic"` gives one ref whose value is a
`DynamicObjectRefGenerator` of them all."""

import asyncio
import inspect
import warnings

from oxray import _native
from oxray._private import serialization

# What a task's yielded values become (the runtime's ReturnsKind).
FIXED, STREAMING, DYNAMIC = 0, 1, 2

_BACKPRESSURE_OPTION = "_generator_backpressure_num_objects"
_END = object()


def is_generator_function(function):
    """Whether calling `function` gives a generator (plain or async)."""
    return inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)


def returns_of(options, is_generator, name):
    """`(num_returns, kind, backpressure)` for the runtime from a task's or
    method's options: a generator defaults to streaming, as in Ray."""
    num_returns = options.get("num_returns")
    if num_returns is None:
        num_returns = "streaming" if is_generator else 1
    if num_returns == "streaming":
        if not is_generator:
            raise ValueError(
                "num_returns='streaming' can only be used with generator functions (functions that use "
                f"'yield'). {name} is not a generator function."
            )
        backpressure = options.get(_BACKPRESSURE_OPTION)
        return 1, STREAMING, -1 if backpressure is None else backpressure
    if num_returns == "dynamic":
        warnings.warn(
            "num_returns='dynamic' is deprecated and will be removed in a future Ray release. Use "
            "num_returns='streaming' instead.", DeprecationWarning, stacklevel=4,
        )
        return 1, DYNAMIC, -1
    return num_returns, FIXED, -1


class ObjectRefGenerator:
    """The refs of the values a streaming generator task yields, in order,
    each available as soon as the task produced it. Iterate it (`for`,
    `next`, `async for`); when the task raised, the ref after the last value
    raises its error on `get`."""

    def __init__(self, generator_ref):
        self._generator_ref = generator_ref
        self._exhausted = False

    def __iter__(self):
        return self

    def __next__(self):
        return self._next_sync()

    def _next_sync(self, timeout_s=None):
        """The next ref, waiting at most `timeout_s` seconds
        (GetTimeoutError past it); StopIteration at the end."""
        if self._exhausted:
            raise StopIteration
        more, ref = _native.stream_next(self._generator_ref, timeout_s)
        if not more:
            self._exhausted = True
            raise StopIteration
        # The task failed: its own return holds the error.
        return self._generator_ref if ref is None else ref

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._exhausted:
            raise StopAsyncIteration
        # The coroutine takes the value itself once it is there (a thread
        # that waited for it could take it after the coroutine was
        # cancelled, and lose it): poll, quickly at first.
        delay = 0.0005
        while not self.next_ready():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)
        ref = self._take()
        if ref is _END:
            raise StopAsyncIteration
        return ref

    def _take(self):
        """The next ref, or `_END` (StopIteration cannot cross a future)."""
        try:
            return self._next_sync()
        except StopIteration:
            return _END

    def next_ready(self):
        """Whether `next` would return without waiting."""
        return self._exhausted or _native.stream_ready(self._generator_ref)

    def is_finished(self):
        """Whether every ref was taken."""
        return self._exhausted

    def completed(self):
        """The ref of the task itself: ready when the task finished (its
        `get` raises the task's error, if any)."""
        return self._generator_ref

    def __reduce__(self):
        raise TypeError(
            "An ObjectRefGenerator cannot be passed to another task or actor; pass the refs it yields instead."
        )

    def __del__(self):
        try:
            _native.close_stream(self._generator_ref)
        except Exception:  # interpreter shutdown: nothing left to free
            pass

    def __repr__(self):
        return f"ObjectRefGenerator({self._generator_ref!r})"


class DynamicObjectRefGenerator:
    """The refs of every value a `num_returns="dynamic"` task yielded."""

    def __init__(self, refs):
        self._refs = list(refs)

    def __iter__(self):
        return iter(self._refs)

    def __len__(self):
        return len(self._refs)

    def __repr__(self):
        return f"DynamicObjectRefGenerator({self._refs!r})"


# --- the worker's side -------------------------------------------------------

def drain(task, result, put):
    """Runs a generator task's generator: reports each value to the caller
    (streaming), or stores them all and returns their list (dynamic)."""
    if not hasattr(result, "__iter__") or isinstance(result, (str, bytes)):
        raise ValueError(
            f"Task {task.function_name} was called with num_returns='{_kind_name(task)}' but returned a "
            f"{type(result).__name__}, not a generator."
        )
    if task.returns_kind == DYNAMIC:
        return DynamicObjectRefGenerator([put(value) for value in result])
    for index, value in enumerate(result):
        report(task, index, value)
    return None


async def drain_async(task, result, put):
    """`drain` for an async generator, on an async actor's event loop."""
    if not hasattr(result, "__aiter__"):
        return drain(task, result, put)
    loop = asyncio.get_running_loop()
    if task.returns_kind == DYNAMIC:
        return DynamicObjectRefGenerator([put(value) async for value in result])
    index = 0
    async for value in result:
        # The report waits for the caller (longer under backpressure): off
        # the loop, which other calls share, on threads of its own.
        await loop.run_in_executor(_reporters(), report, task, index, value)
        index += 1
    return None


_REPORTERS = None


def _reporters():
    """The threads async generators report their values from: their own,
    so that producers held back by backpressure never starve the default
    executor that other code of the actor uses."""
    global _REPORTERS
    if _REPORTERS is None:
        import concurrent.futures

        _REPORTERS = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="oxray-yield")
    return _REPORTERS


def report(task, index, value):
    """Sends one yielded value to the task's caller."""
    _native.report_generator_item(
        task, index, serialization.serialize(value, f"a value yielded by {task.function_name}")
    )


def _kind_name(task):
    return "dynamic" if task.returns_kind == DYNAMIC else "streaming"
