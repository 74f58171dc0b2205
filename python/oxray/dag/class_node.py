"""ClassNode: a bound actor class (`Cls.bind(...)`), and ClassMethodNode:
a bound actor call (`Cls.bind().method.bind(...)` or
`handle.method.bind(...)`)."""

from oxray.dag.constants import IS_CLASS_METHOD_OUTPUT_KEY, PARENT_CLASS_NODE_KEY, PREV_CLASS_METHOD_CALL_KEY
from oxray.dag.dag_node import DAGNode
from oxray.dag.input_node import InputNode


class ClassNode(DAGNode):
    """An actor in a DAG: each `execute()` of a DAG containing it creates the
    actor (once per execute, shared by all its calls in that DAG), with the
    options it was bound with. `node.method.bind(...)` binds a call on it;
    calls bound on one ClassNode run in the order they were bound, each
    after the ones bound before it."""

    def __init__(self, cls, cls_args, cls_kwargs, cls_options, other_args_to_resolve=None):
        # The ActorClass (Ray keeps the plain class and re-wraps it).
        self._body = cls
        # The last call bound on this actor: the next one runs after it.
        self._last_call = None
        super().__init__(cls_args, cls_kwargs, cls_options, other_args_to_resolve)
        if any(isinstance(child, InputNode) for child in self._get_all_child_nodes()):
            raise ValueError(
                "InputNode handles user dynamic input the DAG, and cannot be used as args, kwargs, or "
                "other_args_to_resolve in ClassNode constructor because it is not available at class construction "
                "or binding time."
            )

    def _execute_impl(self, args, kwargs, other, execution):
        # The options were validated (and merged over the class's) when bound.
        return self._body._submit(tuple(args), kwargs, self._bound_options)

    def __getattr__(self, name):
        body = self.__dict__.get("_body")
        # Dunder names are Python's own probes (copy, pickle): not methods.
        if body is None or name.startswith("__") and name.endswith("__"):
            return super().__getattr__(name)
        if name not in body._methods:
            if name in ("bind", "remote"):
                return super().__getattr__(name)
            raise AttributeError(f"type object '{body.__name__}' has no attribute '{name}'")
        return _UnboundClassMethodNode(self, name, {})

    def _body_str(self):
        return getattr(self._body, "__name__", str(self._body))


class _UnboundClassMethodNode:
    """`class_node.method`: `.bind(...)` binds a call of it, `.options(...)`
    sets the call's options first."""

    def __init__(self, actor, method_name, options):
        self._actor = actor
        self._method_name = method_name
        self._options = options

    def bind(self, *args, **kwargs):
        """A ClassMethodNode calling the method with these arguments, after
        the calls bound on the same actor before it."""
        other_args_to_resolve = {
            PARENT_CLASS_NODE_KEY: self._actor,
            PREV_CLASS_METHOD_CALL_KEY: self._actor._last_call,
        }
        node = ClassMethodNode(self._method_name, args, kwargs, self._options, other_args_to_resolve)
        self._actor._last_call = node
        return node

    def options(self, **options):
        """Sets the call's options (`num_returns`, `name`, ...) as
        `handle.method.options()` takes them; returns self."""
        self._options = options
        return self

    def __getattr__(self, attr):
        if attr == "remote":
            raise AttributeError(
                ".remote() cannot be used on ClassMethodNodes. Use .bind() instead to express an symbolic actor call."
            )
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{attr}'")


class ClassMethodNode(DAGNode):
    """A call of an actor method in a DAG: each `execute()` calls it on the
    actor (its ClassNode's, or a live handle's) and gives the call's
    ObjectRef, or the list of them for `num_returns` > 1.

    A node made by `handle.method.bind()` for one return value of a
    multi-return call (`is_class_method_output`) gives that value's ref."""

    def __init__(self, method_name, method_args, method_kwargs, method_options, other_args_to_resolve):
        self._method_name = method_name
        self._parent_class_node = other_args_to_resolve.get(PARENT_CLASS_NODE_KEY)
        # Bound before on the same ClassNode: runs first (as a child node).
        self._prev_class_method_call = other_args_to_resolve.get(PREV_CLASS_METHOD_CALL_KEY)
        self._is_class_method_output = other_args_to_resolve.get(IS_CLASS_METHOD_OUTPUT_KEY, False)
        super().__init__(method_args, method_kwargs, method_options, other_args_to_resolve)

    def _execute_impl(self, args, kwargs, other, execution):
        if self._is_class_method_output:
            refs, index = args  # the multi-return call's refs, and which one
            return refs[index]
        handle = other[PARENT_CLASS_NODE_KEY]  # the ClassNode's actor, or a handle
        method = getattr(handle, self._method_name)
        if self._bound_options:
            method = method.options(**self._bound_options)
        return method.remote(*args, **kwargs)

    def get_method_name(self):
        """The name of the method called."""
        return self._method_name

    @property
    def is_class_method_call(self):
        """Whether this node is a call (not one output of a call)."""
        return not self._is_class_method_output

    @property
    def is_class_method_output(self):
        """Whether this node stands for one return value of a multi-return call."""
        return self._is_class_method_output

    @property
    def class_method_call(self):
        """For an output node, the call it is an output of; else None."""
        return self._bound_args[0] if self._is_class_method_output else None

    @property
    def output_idx(self):
        """For an output node, which return value it stands for; else None."""
        return self._bound_args[1] if self._is_class_method_output else None

    @property
    def num_returns(self):
        """How many values the call returns (those of its call, for an
        output node)."""
        if self._is_class_method_output:
            return self.class_method_call.num_returns
        if "num_returns" in self._bound_options:
            return self._bound_options["num_returns"]
        parent = self._parent_class_node
        methods = parent._body._methods if isinstance(parent, ClassNode) else parent._methods
        return methods.get(self._method_name, {}).get("num_returns", 1)

    def _body_str(self):
        return f"{self._method_name}()"


def bind_actor_method(method, args, kwargs):
    """What `handle.method.bind(...)` gives: a ClassMethodNode calling the
    live actor, or, for a method with several returns, a tuple of nodes,
    one per return value. The arguments are checked against the method's
    signature now, as Ray does."""
    from oxray._private import options as _options
    from oxray._private import signatures
    from oxray.actor import _SIGNATURE

    try:
        signatures.checker(method._options.get(_SIGNATURE)).check(args, kwargs)
    except TypeError as e:
        raise TypeError(
            f"{e}. The given arguments to `bind` do not match the signature of `{method._name}`. "
            f"args: {args}. kwargs: {kwargs}."
        ) from None
    # What `.options()` changed from the method's declared options, as
    # `.options()` takes them again at execution (the method table also
    # holds internal keys, which `.options()` refuses).
    declared = method._handle._methods.get(method._name, {})
    options = {
        k: v for k, v in method._options.items()
        if k in _options.METHOD_OPTIONS and (k not in declared or declared[k] != v)
    }
    node = ClassMethodNode(method._name, args, kwargs, options, {PARENT_CLASS_NODE_KEY: method._handle})
    num_returns = node.num_returns
    if not isinstance(num_returns, int) or num_returns <= 1:
        return node
    return tuple(
        ClassMethodNode(
            f"return_idx_{i}", (node, i), {}, {},
            {IS_CLASS_METHOD_OUTPUT_KEY: True, PARENT_CLASS_NODE_KEY: method._handle},
        )
        for i in range(num_returns)
    )
