"""Custom serializers and a serializability check, as Ray's
`ray.util.register_serializer` and `ray.util.inspect_serializability`."""

import inspect
from collections import namedtuple

import cloudpickle

from oxray._private import serialization as _serialization

FailureTuple = namedtuple("FailureTuple", ["obj", "name", "parent"])


def register_serializer(cls, *, serializer, deserializer):
    """Serializes instances of `cls` with `serializer(obj)` and rebuilds
    them with `deserializer(value)` (which travels with the value, so
    readers need no registration). Like Ray's, it applies to values
    serialized in the process that registered it."""
    if not isinstance(cls, type):
        raise TypeError(f"register_serializer takes a class, got {cls!r}")
    if not callable(serializer) or not callable(deserializer):
        raise TypeError("serializer and deserializer must be callables")

    def reduce(obj):
        return deserializer, (serializer(obj),)

    _serialization.CUSTOM_REDUCERS[cls] = reduce


def deregister_serializer(cls):
    """Forgets the serializer registered for `cls`."""
    _serialization.CUSTOM_REDUCERS.pop(cls, None)


def inspect_serializability(base_obj, name=None, depth=3, print_file=None):
    """Whether `base_obj` can be serialized, and if not, what inside it
    cannot: returns `(serializable, failures)`, failures being a set of
    `FailureTuple(obj, name, parent)` for the innermost culprits found
    within `depth` levels (closure variables, globals a function uses,
    attributes of an object)."""
    failures = set()
    ok = _inspect(base_obj, name or _name_of(base_obj), depth, None, failures, print_file)
    if not ok and not failures:
        failures.add(FailureTuple(base_obj, name or _name_of(base_obj), None))
    return ok, failures


def _name_of(obj):
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__


def _serializable(obj):
    try:
        cloudpickle.dumps(obj)
        return True
    except Exception:
        return False


def _inspect(obj, name, depth, parent, failures, print_file):
    if _serializable(obj):
        return True
    if print_file is not None:
        print(f"Serializing '{name}' {obj!r} failed.", file=print_file)
    if depth <= 0:
        failures.add(FailureTuple(_hashable(obj), name, _hashable(parent)))
        return False
    found = False
    for child_name, child in _children(obj):
        if not _inspect(child, child_name, depth - 1, obj, failures, print_file):
            found = True
    if not found:
        failures.add(FailureTuple(_hashable(obj), name, _hashable(parent)))
    return False


def _children(obj):
    """What `obj` holds that pickling it pickles too."""
    if inspect.isfunction(obj):
        closure = inspect.getclosurevars(obj)
        yield from closure.nonlocals.items()
        yield from closure.globals.items()
        return
    attributes = getattr(obj, "__dict__", None)
    if isinstance(attributes, dict):
        yield from attributes.items()


def _hashable(obj):
    try:
        hash(obj)
        return obj
    except TypeError:
        return repr(obj)
