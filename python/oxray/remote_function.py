"""`@remote` on a function: RemoteFunction and its `.remote()` and
`.options()`."""

import hashlib
import inspect

import cloudpickle

from oxray import _native
from oxray._native import ObjectRef
from oxray._private import generators
from oxray._private import options as _options
from oxray._private import runtime_env_packages
from oxray._private import serialization
from oxray._private import signatures
from oxray._private import worker as _worker

FUNCTION_NAMESPACE = "fn"
# Pickled functions and classes above this size are refused, as Ray does.
FUNCTION_SIZE_ERROR_THRESHOLD = 95 << 20


class ArgSlot:
    """Stands in a task's pickled arguments for a top-level ref argument; the
    worker puts the ref's value in its place."""

    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index

    def __reduce__(self):
        return (ArgSlot, (self.index,))


def pack_arguments(args, kwargs, what):
    """Pickles (args, kwargs) with top-level refs replaced by slots; returns
    (blob, top-level refs, refs nested deeper)."""
    if not args and not kwargs:
        return b"", [], []
    refs = []

    def slot(value):
        if isinstance(value, ObjectRef):
            refs.append(value)
            return ArgSlot(len(refs) - 1)
        if _is_large(value):
            # Large arguments go to the shared store once; the worker maps
            # them instead of receiving a copy in the task.
            refs.append(_worker.put(value))
            return ArgSlot(len(refs) - 1)
        return value

    packed = ([slot(a) for a in args], {k: slot(v) for k, v in kwargs.items()})
    _native.begin_ref_capture()
    try:
        data = serialization.dumps(packed)
    except Exception:
        _native.end_ref_capture()
        # Name the argument that cannot be pickled.
        for value in list(packed[0]) + list(packed[1].values()):
            try:
                serialization.dumps(value)
            except Exception as e:
                raise TypeError(
                    f"Could not serialize the argument {serialization._describe(value)} for a task or actor "
                    f"{what}: {type(e).__name__}: {e}"
                ) from e
        raise
    return data, refs, _native.end_ref_capture()


_AUTO_PUT_BYTES = 100 * 1024


def _is_large(value):
    """Whether an argument is big enough to pass through the shared store."""
    if isinstance(value, (bytes, bytearray)):
        return len(value) > _AUTO_PUT_BYTES
    nbytes = getattr(type(value), "nbytes", None) is not None and getattr(value, "nbytes", None)
    return isinstance(nbytes, int) and nbytes > _AUTO_PUT_BYTES


def task_env_vars(session, options):
    """The environment variables a task or actor submitted now runs with
    (as (name, value) pairs): those of the submitter's runtime_env (the
    job's, or the running task's), overridden by its own."""
    own = options.get("runtime_env")
    if session.runtime_env is None and not own:
        return ()
    return _options.env_vars_of(session.runtime_env, own)


def unwrap_returns(returns, num_returns):
    """What `.remote()` gives back: one ref, None for num_returns=0, or the
    list."""
    if num_returns == 1:
        return returns[0]
    if num_returns == 0:
        return None
    return returns


class Registration:
    """A function or actor class, pickled once and registered in the
    control service's function table under the hash of its pickle."""

    def __init__(self, target, what):
        self._target = target
        self._what = what
        self._id = None
        self._pickled = None

    def id_for(self, session):
        """The registered id, registering in this session on first use."""
        if self._id is None:
            try:
                self._pickled = serialization.dumps(self._target)
            except Exception as e:
                raise TypeError(
                    f"Could not serialize {self._what}: {type(e).__name__}: {e}. It must be picklable with "
                    "cloudpickle (check what it captures)."
                ) from e
            if len(self._pickled) > FUNCTION_SIZE_ERROR_THRESHOLD:
                size, self._pickled = len(self._pickled), None
                raise ValueError(
                    f"{self._what[:1].upper()}{self._what[1:]} is too large ({size >> 20} MiB > FUNCTION_SIZE_ERROR_THRESHOLD="
                    f"{FUNCTION_SIZE_ERROR_THRESHOLD >> 20} MiB). Check that its definition is not implicitly "
                    "capturing a large array or other object in scope. Tip: use oxray.put() to put large "
                    "objects in the object store."
                )
            self._id = hashlib.sha1(self._pickled).digest()
        if self._id not in session.registered_functions:
            _native.kv_put(FUNCTION_NAMESPACE, self._id, self._pickled)
            session.registered_functions.add(self._id)
        return self._id


class RemoteFunction:
    """A function turned remote by `@oxray.remote`: call `.remote()` to run
    it as a task."""

    def __init__(self, function, options=None):
        options = _options.normalize(dict(options or {}))
        _options.validate(options, _options.TASK_OPTIONS, "remote functions")
        if inspect.iscoroutinefunction(function):
            raise ValueError(
                "'async def' should not be used for remote tasks. You can wrap the async function with "
                "`asyncio.run(f())`. Async functions work as methods of actors."
            )
        self._arguments = signatures.checker(signatures.light_signature(function))
        self._function = function
        self._is_generator = generators.is_generator_function(function)
        self._default_options = options
        self._function_name = f"{function.__module__}.{function.__qualname__}"
        self._registration = Registration(function, f"the function {self._function_name}")
        self._prepared_cache = {}
        self.__name__ = function.__name__
        self.__qualname__ = function.__qualname__
        self.__doc__ = function.__doc__
        self.__module__ = function.__module__
        self.__wrapped__ = function

    def __call__(self, *args, **kwargs):
        raise TypeError(
            "Remote functions cannot be called directly. Instead of running "
            f"'{self.__name__}()', try '{self.__name__}.remote()'."
        )

    def remote(self, *args, **kwargs):
        """Runs the function as a task; returns an ObjectRef (a list of them
        for num_returns > 1)."""
        return self._submit(args, kwargs, self._default_options)

    def options(self, **options):
        """A copy of this remote function with some options overridden."""
        options = _options.normalize(options)
        _options.validate(options, _options.TASK_OPTIONS, "remote functions")
        if "max_calls" in options:
            raise ValueError("Setting 'max_calls' is not supported in '.options()'.")
        return _options.OptionsWrapper(self, options, {**self._default_options, **options})

    def bind(self, *args, **kwargs):
        """A FunctionNode: this call in a DAG (`oxray.dag`), run by
        `execute()`."""
        from oxray.dag.function_node import FunctionNode

        return FunctionNode(self, args, kwargs, self._default_options)

    def _prepared(self, options):
        """What submission needs from an options dict, computed once per
        dict (the defaults, or one `.options()` result)."""
        cached = self._prepared_cache.get(id(options))
        if cached is not None and cached[0] is options:
            return cached[1]
        get = options.get
        retry_exceptions = get("retry_exceptions", False)
        max_retries = get("max_retries", 3)
        prepared = (
            generators.returns_of(options, self._is_generator, f"The function {self._function_name}"),
            _options.resource_shape(options, default_cpus=1),
            -1 if max_retries is None else max_retries,
            b"" if not retry_exceptions else cloudpickle.dumps(retry_exceptions),
            get("name") or self.__name__,
            _options.placement(options),
            _options.placement_group_context(options),
            get("max_calls") or 0,
            bool(get("runtime_env")),
        )
        if len(self._prepared_cache) > 64:
            self._prepared_cache.clear()
        self._prepared_cache[id(options)] = (options, prepared)
        return prepared

    def _remote(self, args=None, kwargs=None, **task_options):
        """Ray's lower-level form: `f._remote(args=[...], kwargs={...},
        num_returns=2, ...)`, options as keywords."""
        if task_options:
            return self.options(**task_options).remote(*(args or ()), **(kwargs or {}))
        return self._submit(tuple(args or ()), dict(kwargs or {}), self._default_options)

    def _submit(self, args, kwargs, options):
        session = _worker.auto_init()
        function_id = self._registration.id_for(session)
        if session.captured_placement_group is not None:
            options = _options.with_captured_group(options, session)
        arguments = self._arguments
        if kwargs or len(args) != arguments.arity:
            arguments.check(args, kwargs)
        (num_returns, kind, backpressure), shape, max_retries, retry_blob, name, placement, group, max_calls, \
            own_env = self._prepared(options)
        env_vars = None if session.runtime_env is None and not own_env else task_env_vars(session, options) or None
        env_key = 0 if env_vars is None else runtime_env_packages.code_env_key(env_vars)
        blob, refs, nested = pack_arguments(args, kwargs, self._function_name)
        returns = _native.submit_task(
            function_id, name, blob, refs, num_returns, shape, max_retries, retry_blob,
            session.namespace or "", nested, placement, group, env_vars, max_calls, kind, backpressure, env_key,
        )
        if kind == generators.STREAMING:
            return generators.ObjectRefGenerator(returns[0])
        return unwrap_returns(returns, num_returns)
