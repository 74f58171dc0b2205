"""`@remote` on a class: ActorClass, ActorHandle, ActorMethod, and
`exit_actor`."""

import inspect
import os
import pickle

import cloudpickle

from oxray import _native
from oxray._native import ObjectRef
from oxray import exceptions
from oxray._private import generators
from oxray._private import options as _options
from oxray._private import signatures
from oxray._private import worker as _worker
from oxray.remote_function import Registration, pack_arguments, task_env_vars, unwrap_returns

# Method name of the call that ends an actor once every earlier call is done
# (sent by the runtime when the last handle anywhere goes away).
TERMINATE_METHOD = "__oxray_terminate__"
# The call that stores a value on behalf of another process
# (`put(value, _owner=actor)`): the actor owns it, the caller borrows it.
PUT_METHOD = "__oxray_put__"
# Keyword argument that carries an actor's `concurrency_groups` to its
# worker with the constructor's arguments (removed before the constructor).
CONCURRENCY_GROUPS_KWARG = "__oxray_concurrency_groups__"
# Key of a method's signature in the method table handles carry.
_SIGNATURE = "__oxray_signature__"
# Whether a method is a generator (its calls stream by default).
_GENERATOR = "__oxray_generator__"
# Index that marks the reference-counted id standing for an actor's handles.
_HANDLES_INDEX = b"\xff\xff\xff\xff"


def _method_table(cls):
    """{name: options} of the methods callable through a handle, and whether
    any is `async def` (then the actor runs calls on an event loop)."""
    methods, is_async = {}, False
    for name, member in inspect.getmembers(cls):
        if not (inspect.isfunction(member) or inspect.ismethod(member)):
            continue
        if name.startswith("__") and name.endswith("__") and name not in ("__call__",):
            continue
        opts = dict(getattr(member, "__oxray_method_options__", {}))
        _options.validate(opts, _options.METHOD_OPTIONS, "actor methods")
        # Plain methods take self first; static methods take nothing, and
        # class methods come bound already.
        is_static = isinstance(inspect.getattr_static(cls, name, None), staticmethod)
        opts[_SIGNATURE] = signatures.light_signature(
            member, drop_first=not (is_static or inspect.ismethod(member))
        )
        opts[_GENERATOR] = generators.is_generator_function(member)
        methods[name] = opts
        if inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member):
            is_async = True
    return methods, is_async


class ActorMethod:
    """A method of an actor handle: call `.remote()` on it."""

    def __init__(self, handle, name, options):
        self._handle = handle
        self._name = name
        self._options = options
        self._function_name = f"{handle._class_name}.{name}"

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of running 'object.{self._name}()', try "
            f"'object.{self._name}.remote()'."
        )

    def remote(self, *args, **kwargs):
        return self._handle._call(self._name, args, kwargs, self._options, self._function_name)

    def options(self, **options):
        _options.validate(options, _options.METHOD_OPTIONS, "actor methods")
        # (the method's signature stays in self._options)
        group = options.get("concurrency_group")
        if group is not None and group != self._options.get("concurrency_group"):
            raise ValueError(
                "Choosing a concurrency group per call is not supported by oxray yet: declare it on the method "
                f"with @oxray.method(concurrency_group={group!r})."
            )
        return ActorMethod(self._handle, self._name, {**self._options, **options})

    def bind(self, *args, **kwargs):
        """A ClassMethodNode: this call on the live actor in a DAG
        (`oxray.dag`); a tuple of them, one per return, for several returns."""
        from oxray.dag.class_node import bind_actor_method

        return bind_actor_method(self, args, kwargs)


class ActorHandle:
    """A handle on an actor: `handle.method.remote(...)` calls it. Handles can
    be passed to tasks and other actors.

    Each handle holds a reference, counted by the runtime like an ObjectRef's
    (and lent across processes the same way), on an id that stands for the
    actor's handles; when the last one anywhere goes, the process that
    created the actor ends it, after the calls already made."""

    def __init__(self, actor_id, class_name, methods, max_task_retries=0, owner=None, detached=True,
                 handles_ref=None, max_pending_calls=-1):
        self._actor_id = actor_id
        self._max_pending_calls = max(0, max_pending_calls)
        self._plans = {}
        self._class_name = class_name
        self._methods = methods
        self._max_task_retries = max_task_retries
        self._owner = owner
        self._detached = detached
        if handles_ref is None and not detached and owner:
            handles_ref = ObjectRef._rebuild(actor_id + _HANDLES_INDEX, owner)
        self._handles_ref = handles_ref

    def __getattr__(self, name):
        methods = self.__dict__.get("_methods")
        if methods is not None and name in methods:
            return ActorMethod(self, name, methods[name])
        if name == "__ray_terminate__":
            # Ray's way to end an actor after the calls already sent.
            return ActorMethod(self, TERMINATE_METHOD, {})
        raise AttributeError(f"'ActorHandle' object has no attribute '{name}'")

    def _call(self, method, args, kwargs, options, function_name=None):
        _worker.session()
        plan = self._plans.get(id(options))
        if plan is None or plan[0] is not options:
            plan = self._plan(method, options, function_name)
        _, arguments, (num_returns, kind, backpressure), retries, retry_blob, function_name = plan
        if kwargs or len(args) != arguments.arity:
            arguments.check(args, kwargs)
        blob, refs, nested = pack_arguments(args, kwargs, function_name)
        returns = _native.submit_actor_task(self._actor_id, method, function_name, blob, refs, num_returns, retries,
                                            nested, retry_blob, self._max_pending_calls, self._class_name,
                                            kind, backpressure)
        if kind == generators.STREAMING:
            return generators.ObjectRefGenerator(returns[0])
        return unwrap_returns(returns, num_returns)

    def _plan(self, method, options, function_name):
        """What calls with one options dict (a method's, or one
        `.options()` result) need, computed once."""
        retries = options.get("max_task_retries", self._max_task_retries)
        retry_exceptions = options.get("retry_exceptions")
        plan = (
            options,
            signatures.checker(options.get(_SIGNATURE)),
            generators.returns_of(options, options.get(_GENERATOR, False),
                                  f"The method {function_name or f'{self._class_name}.{method}'}"),
            -1 if retries is None else retries,
            cloudpickle.dumps(retry_exceptions) if retry_exceptions else b"",
            function_name or f"{self._class_name}.{method}",
        )
        if len(self._plans) > 64:
            self._plans.clear()
        self._plans[id(options)] = plan
        return plan

    def _metadata(self):
        return (self._actor_id, self._class_name, self._methods, self._max_task_retries, self._owner,
                self._detached)

    def __reduce__(self):
        # The counted ref travels with the handle, so the receiver holds one.
        return (_rebuild_handle, self._metadata() + (self._handles_ref, self._max_pending_calls or -1))

    def __repr__(self):
        return f"Actor({self._class_name}, {self._actor_id.hex()})"

    def __eq__(self, other):
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self):
        return hash(self._actor_id)


def _rebuild_handle(actor_id, class_name, methods, max_task_retries, owner=None, detached=True, handles_ref=None,
                    max_pending_calls=-1):
    return ActorHandle(actor_id, class_name, methods, max_task_retries, owner, detached, handles_ref,
                       max_pending_calls)


class ActorClass:
    """A class turned remote by `@oxray.remote`: `Cls.remote(...)` starts an
    actor and returns its handle."""

    def __init__(self, cls, options=None):
        options = dict(options or {})
        _options.validate(options, _options.ACTOR_OPTIONS, "actors")
        self._cls = cls
        self._default_options = options
        self._methods, self._is_async = _method_table(cls)
        self._init_arguments = signatures.checker(
            signatures.light_signature(cls.__init__, drop_first=True) if cls.__init__ is not object.__init__ else ()
        )
        self._registration = Registration(cls, f"the actor class {cls.__name__}")
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__doc__ = cls.__doc__
        self.__module__ = cls.__module__

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of '{self.__name__}()', use "
            f"'{self.__name__}.remote()'."
        )

    def remote(self, *args, **kwargs):
        """Starts the actor; returns its handle at once."""
        return self._submit(args, kwargs, self._default_options)

    def options(self, **options):
        """A copy of this actor class with some options overridden."""
        _options.validate(options, _options.ACTOR_OPTIONS, "actors")
        return _options.OptionsWrapper(self, options, {**self._default_options, **options})

    def bind(self, *args, **kwargs):
        """A ClassNode: this actor in a DAG (`oxray.dag`), created by each
        `execute()`; bind calls on it with `node.method.bind(...)`."""
        from oxray.dag.class_node import ClassNode

        return ClassNode(self, args, kwargs, self._default_options)

    def __getattr__(self, name):
        # Class attributes stay reachable through the decorated name (code
        # inside the methods reads `Cls.X`).
        cls = self.__dict__.get("_cls")
        if cls is None or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)
        return getattr(cls, name)

    def __mro_entries__(self, bases):
        # `class B(A)` with A an actor class lands here.
        raise ActorClassInheritanceException(
            f"Attempted to define a subclass of actor class '{self.__name__}'. Inheriting from actor classes is "
            "not currently supported. You can instead inherit from a non-actor base class and make the derived "
            "class an actor class (with @oxray.remote)."
        )

    def _remote(self, args=None, kwargs=None, **actor_options):
        """Ray's lower-level form: `Cls._remote(args=[...], kwargs={...},
        name=..., ...)`, options as keywords."""
        if actor_options:
            return self.options(**actor_options).remote(*(args or ()), **(kwargs or {}))
        return self._submit(tuple(args or ()), dict(kwargs or {}), self._default_options)

    def _submit(self, args, kwargs, options):
        session = _worker.auto_init()
        class_id = self._registration.id_for(session)
        get = options.get
        lifetime = get("lifetime")
        if lifetime not in (None, "detached", "non_detached"):
            raise ValueError("actor `lifetime` argument must be one of 'detached', 'non_detached' and 'None'.")
        name = get("name") or ""
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        if get("get_if_exists") and not name:
            raise ValueError("The actor name must be specified to use `get_if_exists`.")
        self._init_arguments.check(args, kwargs)
        namespace = get("namespace") or session.namespace
        max_concurrency = get("max_concurrency") or (1000 if self._is_async else 1)
        max_task_retries = get("max_task_retries") or 0
        groups = get("concurrency_groups") or {}
        for method, method_options in self._methods.items():
            group = method_options.get("concurrency_group")
            if group is not None and group not in groups:
                raise ValueError(
                    f"The method {method} of {self.__name__} uses the concurrency group '{group}', which the actor "
                    f"does not declare in concurrency_groups (declared: {sorted(groups)})."
                )
        if groups:
            kwargs = {**kwargs, CONCURRENCY_GROUPS_KWARG: dict(groups)}
        blob, refs, nested = pack_arguments(args, kwargs, self.__name__)
        actor_id = os.urandom(16)
        owner = _native.context()["address"]
        detached = lifetime == "detached"
        handle_blob = pickle.dumps((actor_id, self.__name__, self._methods, max_task_retries, owner, detached,
                                    None, get("max_pending_calls") or -1))
        info = _native.create_actor(
            actor_id, class_id, self.__name__, blob, refs,
            _options.resource_shape(options, default_cpus=0),
            name, namespace, lifetime == "detached",
            -1 if get("max_restarts") == -1 else int(get("max_restarts") or 0),
            int(max_concurrency), bool(get("get_if_exists")), handle_blob, nested,
            _options.placement(options), _options.placement_group_context(options),
            task_env_vars(session, options),
        )
        if info["actor_id"] != actor_id:  # get_if_exists found one
            return ActorHandle(*pickle.loads(info["handle"]))
        return ActorHandle(actor_id, self.__name__, self._methods, max_task_retries, owner, detached,
                           max_pending_calls=get("max_pending_calls") or -1)


class ActorClassInheritanceException(TypeError):
    """Raised when a class tries to inherit from an actor class."""


class ActorExit(BaseException):
    """Raised by `exit_actor` to end the actor after the current call."""


def exit_actor():
    """Ends the current actor: the calling task's caller sees the actor's
    death, and queued calls fail with ActorDiedError."""
    executor = _worker.session().executor if _worker.is_initialized() else None
    if executor is None or executor.actor is None:
        raise TypeError("exit_actor API is called on a non-actor worker.")
    raise ActorExit()


def get_actor(name, namespace=None):
    """The handle of the live actor named `name` (in `namespace`, by default
    the job's)."""
    session = _worker.session()
    if not isinstance(name, str) or not name:
        raise ValueError("Please supply a non-empty value to get_actor")
    info = _native.actor_info(name=name, namespace=namespace or session.namespace or "")
    return ActorHandle(*pickle.loads(info["handle"]))


def kill(actor, *, no_restart=True):
    """Kills an actor at once: pending and later calls raise ActorDiedError.
    With no_restart=False it is restarted if max_restarts allows."""
    _worker.session()
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"ray.kill() only supported for actors. For tasks, try ray.cancel(). Got: {actor}.")
    _native.kill_actor(actor._actor_id, no_restart)


__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "exit_actor", "get_actor", "kill", "exceptions"]
