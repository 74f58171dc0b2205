"""InputNode: what a DAG's `execute()` arguments stand for, and
InputAttributeNode: one part of them (`inp[0]`, `inp.x`, `inp["x"]`)."""

from oxray.dag.dag_node import DAGNode

IN_CONTEXT_MANAGER = "__in_context_manager__"


class InputNode(DAGNode):
    """The input of a DAG, used as a context manager while building it:

        with InputNode() as inp:
            dag = add.bind(f.bind(inp[0]), inp.y)
        dag.execute(1, y=2)

    Executed with one positional argument (and no keywords), it stands for
    that value; otherwise for a DAGInputData of all of them, whose parts
    `inp[i]` (positional) and `inp.key` / `inp["key"]` (keyword) give. With
    one value, `inp[i]`, `inp["key"]` and `inp.key` index, key and read an
    attribute of it. A DAG has at most one InputNode."""

    def __init__(self, *args, input_type=None, _other_args_to_resolve=None, **kwargs):
        if args or kwargs:
            raise ValueError("InputNode should not take any args or kwargs.")
        # One InputAttributeNode per key, so `inp.x is inp.x`.
        self.input_attribute_nodes = {}
        # The inputs' types, as Ray records them for its Gradio visualizer.
        self.input_type = input_type
        super().__init__([], {}, {}, dict(_other_args_to_resolve or {}))

    def set_context(self, key, val):
        """Records a value of the node's context (whether it is used as a
        context manager)."""
        self._bound_other_args_to_resolve[key] = val

    def _in_context_manager(self):
        return bool(self._bound_other_args_to_resolve.get(IN_CONTEXT_MANAGER))

    def __enter__(self):
        self.set_context(IN_CONTEXT_MANAGER, True)
        return self

    def __exit__(self, *exc_info):
        # The node stays usable afterwards: DAGs execute outside the block.
        return None

    def _execute_impl(self, args, kwargs, other, execution):
        if not self._in_context_manager():
            raise AssertionError(
                "InputNode is a singleton instance that should be only used in context manager for dag building "
                "and execution. See the docstring of class InputNode for examples."
            )
        if len(execution.args) == 1 and not execution.kwargs:
            return execution.args[0]
        return DAGInputData(*execution.args, **execution.kwargs)

    def __getattr__(self, key):
        # Dunder names are Python's own probes (copy, pickle): not inputs.
        if key.startswith("__") and key.endswith("__") or "input_attribute_nodes" not in self.__dict__:
            return super().__getattr__(key)
        return self._attribute_node(key, "__getattr__")

    def __getitem__(self, key):
        if not isinstance(key, (str, int)):
            raise AssertionError("Please only use int index or str as first-level key to access fields of dag input.")
        return self._attribute_node(key, "__getitem__")

    def _attribute_node(self, key, accessor_method):
        # `inp.x` and `inp["x"]` are one node, as in Ray (keyed by key alone).
        node = self.input_attribute_nodes.get(key)
        if node is None:
            input_type = None
            if isinstance(self.input_type, dict) and key in self.input_type:
                input_type = getattr(self.input_type[key], "__name__", str(self.input_type[key]))
            node = self.input_attribute_nodes[key] = InputAttributeNode(self, key, accessor_method, input_type)
        return node

    def _body_str(self):
        return "__InputNode__"


class InputAttributeNode(DAGNode):
    """One part of a DAG's input: `inp[0]` (an index), `inp.x` (an
    attribute, or a keyword of `execute()`) or `inp["x"]` (a key)."""

    def __init__(self, dag_input_node, key, accessor_method, input_type=None):
        self._dag_input_node = dag_input_node
        self._key = key
        self._accessor_method = accessor_method
        super().__init__([], {}, {}, {
            "dag_input_node": dag_input_node,
            "key": key,
            "accessor_method": accessor_method,
            "result_type_string": input_type,
        })

    @property
    def key(self):
        """The index, attribute name or key this node reads."""
        return self._key

    def _execute_impl(self, args, kwargs, other, execution):
        value = other["dag_input_node"]  # the InputNode's result
        if isinstance(value, DAGInputData):
            return value[self._key]
        if isinstance(self._key, str) and self._accessor_method == "__getattr__":
            return getattr(value, self._key)
        return value[self._key]

    def _body_str(self):
        return f'["{self._key}"]'


class DAGInputData:
    """The input of a DAG executed with several arguments (or keywords):
    `data[i]` is the i-th positional one, `data["key"]` a keyword one."""

    def __init__(self, *args, **kwargs):
        self._args = list(args)
        self._kwargs = kwargs

    def __getitem__(self, key):
        if isinstance(key, int):
            return self._args[key]
        if isinstance(key, str):
            return self._kwargs[key]
        raise ValueError("Please only use int index or str as first-level key to access fields of dag input.")
