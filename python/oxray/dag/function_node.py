"""FunctionNode: a bound call of a remote function (`f.bind(...)`)."""

from oxray.dag.dag_node import DAGNode


class FunctionNode(DAGNode):
    """A call of a remote function in a DAG: each `execute()` submits it as
    one task (with the options it was bound with) and gives its ObjectRef,
    or the list of them for `num_returns` > 1."""

    def __init__(self, func_body, func_args, func_kwargs, func_options, other_args_to_resolve=None):
        # The RemoteFunction (Ray keeps the plain function and re-wraps it).
        self._body = func_body
        super().__init__(func_args, func_kwargs, func_options, other_args_to_resolve)

    def _execute_impl(self, args, kwargs, other, execution):
        # The options were validated (and merged over the function's) when bound.
        return self._body._submit(tuple(args), kwargs, self._bound_options)

    def _body_str(self):
        return getattr(self._body, "_function_name", str(self._body))
