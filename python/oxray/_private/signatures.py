"""Checking a call's arguments against the function's signature when
`.remote()` is called, as Ray does, so that a wrong call fails in the
caller with Python's own TypeError rather than later in a worker.

Signatures travel with actor handles, so they are kept in a light,
picklable form: `(name, kind, has_default)` per parameter."""

import inspect

_CACHE = {}
_DEFAULT = object()


def light_signature(function, drop_first=False):
    """The parameters of `function` as `(name, kind, has_default)` tuples
    (without `self` for methods when `drop_first`); None when Python cannot
    tell (builtins), and then calls are not checked."""
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return None
    if drop_first and params and params[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD
    ):
        params = params[1:]
    return tuple((p.name, int(p.kind), p.default is not inspect.Parameter.empty) for p in params)


def _plain_arity(light):
    """n when the parameters are n plain positional ones without defaults
    (the common case, checked without binding), else -1."""
    if all(kind == int(inspect.Parameter.POSITIONAL_OR_KEYWORD) and not default for _, kind, default in light):
        return len(light)
    return -1


class Checker:
    """Checks calls against one signature (built once)."""

    __slots__ = ("_signature", "arity")

    def __init__(self, light):
        self._signature = None if light is None else inspect.Signature([
            inspect.Parameter(name, inspect._ParameterKind(kind),
                              default=_DEFAULT if default else inspect.Parameter.empty)
            for name, kind, default in light
        ])
        # Callers skip `check` when no keywords and this many positional
        # arguments are given (-1: always check).
        self.arity = -1 if light is None else _plain_arity(light)

    def check(self, args, kwargs):
        """Raises TypeError as Python would for this call."""
        if self._signature is None or (not kwargs and len(args) == self.arity):
            return
        self._signature.bind(*args, **kwargs)


def checker(light):
    """The (shared) checker of a light signature."""
    found = _CACHE.get(light)
    if found is None:
        found = _CACHE[light] = Checker(light)
    return found
