"""Keys of a node's `other_args_to_resolve`, spelled as Ray spells them."""

# The ClassNode (or live ActorHandle) a ClassMethodNode calls.
PARENT_CLASS_NODE_KEY = "parent_class_node"
# The call bound just before on the same ClassNode: executed first, so the
# calls of one bound actor run in the order they were bound.
PREV_CLASS_METHOD_CALL_KEY = "prev_class_method_call"
# The order of `.bind()` calls on one live actor handle.
BIND_INDEX_KEY = "bind_index"
# Marks the node standing for one return value of a multi-return call.
IS_CLASS_METHOD_OUTPUT_KEY = "is_class_method_output"
# Marks a serialized node's type (kept for Ray compatibility).
DAGNODE_TYPE_KEY = "__dag_node_type__"
