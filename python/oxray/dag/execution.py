"""One `execute()` of a DAG: runs every node once, children first."""


class Execution:
    """The state of one `DAGNode.execute()` call: the DAG's inputs and each
    node's result so far (so a node that several others use runs once)."""

    def __init__(self, args, kwargs):
        self.args = args
        self.kwargs = kwargs
        self._results = {}  # id(node) -> result
        self._done = []  # the nodes run, keeping their ids valid
        self._input_node = None

    def run(self, root):
        """Runs the DAG ending at `root`; returns root's result."""
        # Children first, in the order Ray's recursive walk submits them,
        # without recursion (a long chain of calls must not hit Python's limit).
        for node in _children_first(root):
            self.result_of(node)
        return self._results[id(root)]

    def result_of(self, node):
        """The node's result in this execution, running it on first use."""
        key = id(node)
        if key not in self._results:
            self._check_single_input(node)
            args, kwargs, other = node._resolve(self.result_of)
            self._results[key] = node._execute_impl(args, kwargs, other, self)
            self._done.append(node)
        return self._results[key]

    def _check_single_input(self, node):
        from oxray.dag.input_node import InputNode

        if isinstance(node, InputNode):
            if self._input_node is not None and self._input_node is not node:
                raise AssertionError("Each DAG should only have one unique InputNode.")
            self._input_node = node


def _children_first(root):
    """The DAG's nodes, each after every node it uses (depth first)."""
    order, seen = [], {id(root)}
    stack = [(root, iter(root._get_all_child_nodes()))]
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            order.append(node)
        elif id(child) not in seen:
            seen.add(id(child))
            stack.append((child, iter(child._get_all_child_nodes())))
    return order
