"""MultiOutputNode: a DAG with several outputs."""

from oxray.dag.dag_node import DAGNode


class MultiOutputNode(DAGNode):
    """Ends a DAG with several outputs: `MultiOutputNode([a, b]).execute()`
    gives the list of their results (ObjectRefs), running the nodes they
    share once."""

    def __init__(self, args, other_args_to_resolve=None):
        if isinstance(args, tuple):
            args = list(args)
        if not isinstance(args, list):
            raise ValueError(f"Invalid input type for `args`, {type(args)}.")
        super().__init__(args, {}, {}, other_args_to_resolve or {})

    def _execute_impl(self, args, kwargs, other, execution):
        return list(args)

    def _body_str(self):
        return "__MultiOutputNode__"
