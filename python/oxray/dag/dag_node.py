"""DAGNode: the base of every node of a DAG built with `.bind()`."""

import uuid

from oxray.dag import scanner


class DAGNode:
    """A node of a DAG built with `.bind()`: a task, an actor, an actor call,
    the DAG's input or its outputs. `execute()` runs the DAG that ends here.

    Bound arguments may be plain values, nodes, or values with nodes nested
    inside (lists, dicts, any picklable object). When the DAG executes, each
    node is replaced by its result: an ObjectRef (nested ones arrive as refs,
    top-level ones as values, as with `.remote()`), an actor handle, or an
    input value. A node used by several others runs once per `execute()`."""

    def __init__(self, args, kwargs, options, other_args_to_resolve=None):
        self._bound_args = args or []
        self._bound_kwargs = kwargs or {}
        self._bound_options = options or {}
        self._bound_other_args_to_resolve = other_args_to_resolve or {}
        # Stays the same for the node's lifetime (Ray's node identity).
        self._stable_uuid = uuid.uuid4().hex
        # The nodes inside each bound value, looked for once, at bind time, so
        # that values without nodes are passed as they are on every execute.
        self._arg_nodes = [scanner.find_nodes(a) for a in self._bound_args]
        self._kwarg_nodes = {k: scanner.find_nodes(v) for k, v in self._bound_kwargs.items()}
        self._other_nodes = {k: scanner.find_nodes(v) for k, v in self._bound_other_args_to_resolve.items()}

    def execute(self, *args, **kwargs):
        """Runs the DAG ending at this node; `args` and `kwargs` are what its
        InputNode stands for. Returns this node's result at once (tasks run
        in the background): an ObjectRef, a list of them (MultiOutputNode,
        or a call with several returns), or an actor handle (ClassNode).
        Every ClassNode in the DAG creates its actor anew on each call."""
        from oxray.dag.execution import Execution

        return Execution(args, kwargs).run(self)

    def experimental_compile(self, *args, **kwargs):
        """Ray's compiled graphs; not supported by oxray (use `execute()`)."""
        raise NotImplementedError("Compiled graphs (experimental_compile) are not supported by oxray; use execute()")

    def get_args(self):
        """The bound positional arguments."""
        return self._bound_args

    def get_kwargs(self):
        """A copy of the bound keyword arguments."""
        return dict(self._bound_kwargs)

    def get_options(self):
        """A copy of the options the node runs with (`.options()` merged over
        the `@remote` ones)."""
        return dict(self._bound_options)

    def get_other_args_to_resolve(self):
        """A copy of the node's other resolved values (its parent actor, its
        input node...)."""
        return dict(self._bound_other_args_to_resolve)

    def get_stable_uuid(self):
        """A hex id that stays the same for the node's lifetime."""
        return self._stable_uuid

    def _get_all_child_nodes(self):
        """The nodes this one uses (in its arguments, nested or not, and its
        other values), each once, in argument order."""
        children, seen = [], set()
        groups = [self._arg_nodes, self._kwarg_nodes.values(), self._other_nodes.values()]
        for nodes in (n for group in groups for n in group):
            for node in nodes:
                if id(node) not in seen:
                    seen.add(id(node))
                    children.append(node)
        return children

    def _resolve(self, result_of):
        """(args, kwargs, other) with every node replaced by `result_of(node)`."""

        def resolve(value, nodes):
            return scanner.replace_nodes(value, result_of) if nodes else value

        def resolve_all(values, nodes):
            # A value set after binding (InputNode's context) is scanned now.
            return {k: resolve(v, nodes[k] if k in nodes else scanner.find_nodes(v)) for k, v in values.items()}

        args = [resolve(a, n) for a, n in zip(self._bound_args, self._arg_nodes)]
        kwargs = resolve_all(self._bound_kwargs, self._kwarg_nodes)
        other = resolve_all(self._bound_other_args_to_resolve, self._other_nodes)
        return args, kwargs, other

    def _execute_impl(self, args, kwargs, other, execution):
        """Runs this node alone, its values already resolved; `execution`
        holds the DAG's inputs. Returns the node's result."""
        raise NotImplementedError

    def _body_str(self):
        return type(self).__name__

    def __str__(self):
        return (
            f"({type(self).__name__}, {self._stable_uuid})(body={self._body_str()}, args={self._bound_args!r}, "
            f"kwargs={self._bound_kwargs!r}, options={self._bound_options!r})"
        )

    __repr__ = __str__

    def __getattr__(self, name):
        # Only reached for missing attributes: say why `.bind`/`.remote` are
        # not there, as Ray does.
        if name == "bind":
            raise AttributeError(f".bind() cannot be used again on {type(self)} ")
        if name == "remote":
            raise AttributeError(
                f".remote() cannot be used on {type(self)}. To execute the task graph for this node, use .execute()."
            )
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
