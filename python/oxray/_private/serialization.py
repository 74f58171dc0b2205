"""Turning Python values into (data, metadata, nested refs) and back.

Values are pickled with protocol 5 (cloudpickle where plain pickle cannot
cope: lambdas, closures, classes defined in __main__). Refs pickled inside a
value are captured so that the runtime knows the value contains them.
"""

import io
import pickle
import struct
import types
from collections import ChainMap

import cloudpickle

from oxray import _native
from oxray import exceptions

PICKLED = b"P"
# A pickle stream plus out-of-band buffers, laid out as crates/oxray-core's
# layout.rs writes it.
BUFFERED = b"B"
TASK_ERROR = b"T"
WORKER_CRASHED = b"W"
CANCELLED = b"C"
LOST = b"L"
SYSTEM_ERROR = b"S"
ACTOR_DIED = b"A"
ACTOR_INIT_FAILED = b"D"
UNSCHEDULABLE = b"U"
OWNER_DIED = b"O"
RECONSTRUCTION_FAILED = b"R"

_PLAIN_TYPES = (type(None), bool, int, float, str, bytes)


def _code_reduce_keeping_filename(code):
    # cloudpickle >= 3.1 renames every shipped code object's file to
    # "<dynamic-code>"; keep the real one so remote tracebacks show the
    # user's file and source lines, as Ray's do.
    constructor, args = cloudpickle.cloudpickle._code_reduce(code)
    args = tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)
    return constructor, args


# Serializers users registered (`oxray.util.register_serializer`), by class.
CUSTOM_REDUCERS = {}


class _Pickler(cloudpickle.Pickler):
    dispatch_table = ChainMap(
        CUSTOM_REDUCERS, {types.CodeType: _code_reduce_keeping_filename}, cloudpickle.Pickler.dispatch_table
    )


def dumps(value):
    """Pickles `value`; raises the pickler's error when it cannot."""
    if type(value) in _PLAIN_TYPES:
        return pickle.dumps(value, protocol=5)
    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(value)
    return buf.getvalue()


def serialize(value, what="value"):
    """Returns (pickle stream, out-of-band buffers, metadata, nested refs)
    for `value`. Large contiguous buffers (numpy arrays) stay out of the
    stream, so the runtime copies them once, straight into shared memory.

    `what` names the value in the error raised when it cannot be pickled.
    A bytearray is stored as bytes, which is what Ray hands back for it."""
    if type(value) is bytearray:
        value = bytes(value)
    if type(value) in _PLAIN_TYPES:
        return pickle.dumps(value, protocol=5), [], PICKLED, []
    _native.begin_ref_capture()
    buffers = []
    try:
        buf = io.BytesIO()
        _Pickler(buf, protocol=5, buffer_callback=buffers.append).dump(value)
        main = buf.getvalue()
    except Exception as e:
        raise TypeError(f"Could not serialize {what} {_describe(value)}: {type(e).__name__}: {e}") from e
    finally:
        nested = _native.end_ref_capture()
    return main, [b.raw() for b in buffers], PICKLED, nested


def error_parts(data, kind):
    """A serialized error object of `kind`."""
    return data, [], kind, []


def _describe(value):
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= 200 else text[:200] + "..."


class ErrorValue:
    """A value whose `get` must raise `error`."""

    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error


def deserialize(data, metadata, nested=None):
    """The value of a stored object; an error object becomes an ErrorValue."""
    kind = metadata[:1]
    if kind == PICKLED or not kind:
        return pickle.loads(data)
    if kind == BUFFERED:
        return _loads_buffered(data)
    if kind == TASK_ERROR:
        try:
            err = pickle.loads(data)
        except Exception as e:  # the exception's class cannot be rebuilt here
            err = exceptions.RayTaskError("unknown", f"(the error could not be deserialized: {e})", None)
        if isinstance(err, exceptions.RayTaskError):
            err = err.as_instanceof_cause()
        return ErrorValue(err)
    if kind == ACTOR_INIT_FAILED:
        try:
            cause = pickle.loads(data)
        except Exception as e:
            cause = exceptions.RayTaskError("__init__", f"(the error could not be deserialized: {e})", None)
        return ErrorValue(exceptions.ActorDiedError(
            cause=cause,
            error_msg=f"The actor died because of an error raised in its creation task, {cause}",
        ))
    message = bytes(data).decode("utf-8", "replace")
    if kind == ACTOR_DIED:
        return ErrorValue(exceptions.ActorDiedError(error_msg=message))
    if kind == WORKER_CRASHED:
        return ErrorValue(exceptions.WorkerCrashedError(message))
    if kind == CANCELLED:
        return ErrorValue(exceptions.TaskCancelledError(error_message=message))
    if kind == LOST:
        return ErrorValue(exceptions.ObjectLostError(message))
    if kind == OWNER_DIED:
        return ErrorValue(exceptions.OwnerDiedError(message))
    if kind == RECONSTRUCTION_FAILED:
        reason, _, text = message.partition("\n")
        cls = (exceptions.ObjectReconstructionFailedMaxAttemptsExceededError
               if reason == "OBJECT_UNRECONSTRUCTABLE_MAX_ATTEMPTS_EXCEEDED"
               else exceptions.ObjectReconstructionFailedError)
        return ErrorValue(cls(f"{text}\n\n[{reason}]", reason=reason))
    if kind == UNSCHEDULABLE:
        return ErrorValue(exceptions.TaskUnschedulableError(message))
    return ErrorValue(exceptions.RaySystemError(message))


def _loads_buffered(data):
    """Unpickles a value laid out with its buffers; the buffers are views of
    `data` (the shared store's memory for large values), never copies."""
    view = memoryview(data)
    magic, count, main_len = struct.unpack_from("<4sIQ", view, 0)
    if magic != b"OXR1":
        raise exceptions.RaySystemError("corrupt object: bad layout header")
    entries = struct.unpack_from(f"<{2 * count}Q", view, 16)
    start = 16 + 16 * count
    main = view[start:start + main_len]
    buffers = [view[entries[2 * i]:entries[2 * i] + entries[2 * i + 1]] for i in range(count)]
    return pickle.loads(main, buffers=buffers)
