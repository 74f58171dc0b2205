"""Finding the DAG nodes nested inside a bound argument (a list, a dict,
any picklable object) and rebuilding that argument with each node replaced
by its result, as Ray's `_PyObjScanner` does.

The argument is pickled with the nodes, ObjectRefs and actor handles kept
aside by identity (pickle's persistent ids), then unpickled with each node
swapped for its result. Refs and handles are never pickled here: outside a
task submission, pickling a ref would mark it as escaped."""

import io
import pickle

from oxray._native import ObjectRef
from oxray._private.serialization import _Pickler

# Values that can hold no node, skipped without pickling.
_PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes, bytearray, range)


def _is_node(value):
    # Imported late: dag_node imports this module.
    from oxray.dag.dag_node import DAGNode

    return isinstance(value, DAGNode)


def _kept_by_identity(value):
    from oxray.actor import ActorHandle

    return isinstance(value, (ObjectRef, ActorHandle)) or _is_node(value)


class _Finder(_Pickler):
    """Pickles a value, keeping nodes, refs and handles aside (and large
    buffers, such as arrays' data, out of the stream: they are not copied)."""

    def __init__(self, buf, buffers):
        super().__init__(buf, protocol=5, buffer_callback=buffers.append)
        self.kept = []
        self._index = {}

    def persistent_id(self, obj):
        if type(obj) in _PLAIN_TYPES or not _kept_by_identity(obj):
            return None
        index = self._index.get(id(obj))
        if index is None:
            index = self._index[id(obj)] = len(self.kept)
            self.kept.append(obj)
        return index


class _Replacer(pickle.Unpickler):
    """Unpickles a `_Finder` stream, putting each kept object back (a node
    as `replace(node)`)."""

    def __init__(self, data, buffers, kept, replace):
        super().__init__(io.BytesIO(data), buffers=buffers)
        self._kept = kept
        self._replace = replace

    def persistent_load(self, index):
        obj = self._kept[index]
        return self._replace(obj) if _is_node(obj) else obj


def find_nodes(value):
    """The DAG nodes in `value`, each once, in the order pickle meets them:
    `[value]` for a node itself, `[]` when there are none or `value` cannot
    be pickled (its task's submission then reports that)."""
    if _is_node(value):
        return [value]
    if type(value) in _PLAIN_TYPES:
        return []
    finder = _Finder(_Discard(), [])
    try:
        finder.dump(value)
    except Exception:
        return []
    return [obj for obj in finder.kept if _is_node(obj)]


def replace_nodes(value, replace):
    """A copy of `value` with every node in it replaced by `replace(node)`
    (`replace(value)` for a node itself)."""
    if _is_node(value):
        return replace(value)
    buf, buffers = io.BytesIO(), []
    finder = _Finder(buf, buffers)
    finder.dump(value)
    return _Replacer(buf.getvalue(), buffers, finder.kept, replace).load()


class _Discard:
    """A file that forgets what is written (finding needs no stream)."""

    def write(self, data):
        return len(data)
