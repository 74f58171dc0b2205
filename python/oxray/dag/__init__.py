"""Ray's DAG API (`ray.dag`): build a graph of tasks and actor calls with
`.bind()` instead of `.remote()`, then run it with `dag.execute(...)`.

    from oxray.dag import InputNode, MultiOutputNode

    with InputNode() as inp:
        dag = add.bind(f.bind(inp[0]), inp.y)
    oxray.get(dag.execute(1, y=2))

Like Ray's, it is imported explicitly (`import oxray.dag` or `from
oxray.dag import ...`); `import oxray` alone does not load it. Compiled
graphs (`experimental_compile`) are not supported."""

from oxray.dag.class_node import ClassMethodNode, ClassNode
from oxray.dag.constants import (
    BIND_INDEX_KEY,
    DAGNODE_TYPE_KEY,
    IS_CLASS_METHOD_OUTPUT_KEY,
    PARENT_CLASS_NODE_KEY,
    PREV_CLASS_METHOD_CALL_KEY,
)
from oxray.dag.dag_node import DAGNode
from oxray.dag.function_node import FunctionNode
from oxray.dag.input_node import DAGInputData, InputAttributeNode, InputNode
from oxray.dag.output_node import MultiOutputNode

__all__ = [
    "BIND_INDEX_KEY", "ClassMethodNode", "ClassNode", "DAGInputData", "DAGNODE_TYPE_KEY", "DAGNode", "FunctionNode",
    "InputAttributeNode", "InputNode", "IS_CLASS_METHOD_OUTPUT_KEY", "MultiOutputNode", "PARENT_CLASS_NODE_KEY",
    "PREV_CLASS_METHOD_CALL_KEY",
]
