"""DAGs (`oxray.dag`, Ray's `ray.dag`): `.bind()` on remote functions, actor
classes and actor methods, InputNode, MultiOutputNode and `execute()`,
through the public API."""

import os
import tempfile

import pytest

import oxray
from oxray.dag import (
    ClassMethodNode,
    ClassNode,
    DAGNode,
    FunctionNode,
    InputAttributeNode,
    InputNode,
    MultiOutputNode,
)

from barrier import arrive_and_wait
from conftest import run_driver


@oxray.remote
def inc(x):
    return x + 1


@oxray.remote
def add(a, b):
    return a + b


@oxray.remote
def ident(x):
    return x


@oxray.remote
def combine(a, items):
    """a + the plain first item + the values of the two refs after it."""
    return a + items[0] + sum(oxray.get(items[1:]))


@oxray.remote
def task_name():
    return oxray.get_runtime_context().get_task_name()


@oxray.remote
def record(path, value):
    """Appends a line to `path`: how many times the task ran."""
    with open(path, "a") as f:
        f.write(f"{value}\n")
    return value


@oxray.remote
def meet(directory, parties, name):
    return arrive_and_wait(directory, parties, name)


@oxray.remote
class Counter:
    def __init__(self, start=0):
        self.value = start

    def inc(self, by=1):
        self.value += by
        return self.value

    def get(self):
        return self.value

    def pid(self):
        return os.getpid()

    def resources(self):
        return oxray.get_runtime_context().get_assigned_resources()

    @oxray.method(num_returns=2)
    def pair(self):
        return self.value, -self.value


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


def test_dag_import_as_ray():
    # As Ray: `import oxray` alone does not load the DAG API; importing it works.
    code = (
        "import oxray\n"
        "assert not hasattr(oxray, 'dag')\n"
        "from oxray.dag import InputNode, MultiOutputNode, DAGNode, FunctionNode, ClassNode, ClassMethodNode\n"
        "import oxray.dag\n"
        "print(oxray.dag.InputNode is InputNode)\n"
    )
    proc = run_driver(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_function_dag_with_input_parts(cluster):
    with InputNode() as inp:
        dag = add.bind(inc.bind(inp[0]), inp.y)
    assert isinstance(dag, FunctionNode) and isinstance(dag, DAGNode)
    assert isinstance(inp[0], InputAttributeNode) and inp[0] is inp[0] and inp.y is inp.y
    assert oxray.get(dag.execute(1, y=10)) == 12
    # A DAG runs again with other inputs.
    assert oxray.get(dag.execute(5, y=100)) == 106


def test_input_node_forms(cluster):
    with InputNode() as inp:
        whole = inc.bind(inp)
        by_key = add.bind(inp["a"], inp["b"])
        by_index = add.bind(inp[0], inp[1])
        by_attribute = add.bind(inp.x, inp.y)
    assert oxray.get(whole.execute(1)) == 2
    assert oxray.get(by_key.execute({"a": 1, "b": 2})) == 3
    assert oxray.get(by_index.execute([3, 4])) == 7
    assert oxray.get(by_index.execute(3, 4)) == 7, "several arguments: inp[i] is the i-th"
    assert oxray.get(by_attribute.execute(Point(5, 6))) == 11
    assert oxray.get(by_attribute.execute(x=7, y=8)) == 15, "keywords: inp.key is the keyword"
    # An ObjectRef as input reaches the task as its value, as with .remote().
    assert oxray.get(whole.execute(oxray.put(41))) == 42


def test_multi_output_and_shared_nodes_run_once_per_execute(cluster):
    path = os.path.join(tempfile.mkdtemp(), "runs")
    with InputNode() as inp:
        shared = record.bind(path, inp)
        dag = MultiOutputNode([inc.bind(shared), ident.bind(shared), shared])
    refs = dag.execute(1)
    assert isinstance(refs, list) and all(isinstance(r, oxray.ObjectRef) for r in refs)
    assert oxray.get(refs) == [2, 1, 1]
    assert oxray.get(dag.execute(2)) == [3, 2, 2]
    with open(path) as f:
        assert f.read().split() == ["1", "2"], "the shared node ran once per execute"
    # Outputs may be input parts too.
    with InputNode() as inp:
        dag = MultiOutputNode([inp[0], inp.k])
    assert dag.execute(1, k=2) == [1, 2]


def test_nodes_nested_in_arguments(cluster):
    with InputNode() as inp:
        dag = ident.bind([inc.bind(inp), {"k": inc.bind(inp), "plain": 5}, (inc.bind(inp),)])
    as_list, as_dict, as_tuple = oxray.get(dag.execute(1))
    # As Ray (and .remote()): nested results arrive as refs.
    assert isinstance(as_list, oxray.ObjectRef) and oxray.get(as_list) == 2
    assert as_dict["plain"] == 5 and oxray.get(as_dict["k"]) == 2
    assert oxray.get(as_tuple[0]) == 2
    # Keyword arguments, and refs bound directly, work the same way.
    ref = oxray.put(10)
    with InputNode() as inp:
        dag = combine.bind(a=ref, items=[inp, ref, inc.bind(inp)])
    assert oxray.get(dag.execute(1)) == 10 + 1 + 10 + 2
    assert oxray.get(ident.bind([ref]).execute())[0] == ref


def test_independent_nodes_run_at_once(cluster):
    d = tempfile.mkdtemp()
    # Both tasks can only finish together: execute() submits both before any waits.
    dag = MultiOutputNode([meet.bind(d, 2, 0), meet.bind(d, 2, 1)])
    assert oxray.get(dag.execute(), timeout=60) == [True, True]


def test_class_node_creates_its_actor_once_per_execute(cluster):
    counter = Counter.bind(10)
    assert isinstance(counter, ClassNode)
    dag = MultiOutputNode([counter.pid.bind(), counter.pid.bind()])
    first, second = oxray.get(dag.execute()), oxray.get(dag.execute())
    assert first[0] == first[1], "one actor per execute"
    assert first != second, "a new actor on each execute"
    # A ClassNode alone executes to the actor's handle.
    handle = Counter.bind(7).execute()
    assert isinstance(handle, oxray.actor.ActorHandle) and oxray.get(handle.get.remote()) == 7


def test_calls_bound_on_one_actor_run_in_bind_order(cluster):
    counter = Counter.bind(0)
    counter.inc.bind(5)
    counter.inc.bind(2)
    last = counter.get.bind()
    assert isinstance(last, ClassMethodNode)
    # As Ray: the calls bound before run first, on the same actor.
    assert oxray.get(last.execute()) == 7
    assert oxray.get(last.execute()) == 7, "a fresh actor each time"
    with InputNode() as inp:
        counter = Counter.bind(1)
        dag = add.bind(counter.inc.bind(inp), counter.get.bind())
    assert oxray.get(dag.execute(10)) == 22


def test_bind_on_a_live_actor_handle(cluster):
    handle = Counter.remote(100)
    node = handle.inc.bind(1)
    assert isinstance(node, ClassMethodNode)
    # The same actor every time: its state carries over.
    assert oxray.get(node.execute()) == 101
    assert oxray.get(node.execute()) == 102
    # A method with several returns gives one node per return.
    first, second = handle.pair.bind()
    assert first.is_class_method_output and first.output_idx == 0 and first.num_returns == 2
    assert oxray.get(MultiOutputNode([first, second]).execute()) == [102, -102]
    with pytest.raises(TypeError, match="bind"):
        handle.inc.bind(1, 2, 3)


def test_options_on_the_bind_path(cluster):
    node = task_name.options(name="dag-task").bind()
    assert node.get_options()["name"] == "dag-task"
    assert oxray.get(node.execute()) == "dag-task"
    refs = ident.options(num_returns=1).bind(3).execute()
    assert oxray.get(refs) == 3

    @oxray.remote(num_returns=2)
    def two(x):
        return x, 2 * x

    refs = two.bind(3).execute()
    assert isinstance(refs, list) and oxray.get(refs) == [3, 6]
    refs = two.options(num_returns=1).bind(3).execute()
    assert oxray.get(refs) == (3, 6)

    actor = Counter.options(num_cpus=1).bind()
    assert oxray.get(actor.resources.bind().execute()).get("CPU") == 1
    # A method's options: one return instead of its two.
    actor = Counter.bind(4)
    assert oxray.get(actor.pair.options(num_returns=1).bind().execute()) == (4, -4)
    pair = actor.pair.bind().execute()
    assert oxray.get(pair) == [4, -4]


def test_long_chain_does_not_recurse(cluster):
    node = ident.bind(0)
    for _ in range(1200):  # deeper than Python's recursion limit
        node = inc.bind(node)
    assert oxray.get(node.execute(), timeout=120) == 1200


def test_dag_errors_as_ray(cluster):
    node = inc.bind(1)
    with pytest.raises(AttributeError, match="cannot be used again"):
        node.bind
    with pytest.raises(AttributeError, match="execute"):
        node.remote
    counter = Counter.bind()
    with pytest.raises(AttributeError, match="cannot be used again"):
        counter.bind
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        counter.missing
    with pytest.raises(AttributeError, match="Use .bind"):
        counter.inc.remote
    with pytest.raises(ValueError, match="should not take any args"):
        InputNode(1)
    with pytest.raises(ValueError, match="InputNode"):
        with InputNode() as inp:
            Counter.bind(inp)
    with pytest.raises(ValueError, match="Invalid input type"):
        MultiOutputNode(inc.bind(1))
    outside = InputNode()
    with pytest.raises(AssertionError, match="context manager"):
        inc.bind(outside).execute(1)
    with InputNode() as one, InputNode() as other:
        dag = add.bind(one, other)
    with pytest.raises(AssertionError, match="only have one unique InputNode"):
        dag.execute(1)
    # As Ray: a function's arguments are checked when the DAG runs.
    bad = inc.bind(1, 2)
    with pytest.raises(TypeError):
        bad.execute()
    with pytest.raises(NotImplementedError):
        inc.bind(1).experimental_compile()
    # A task's error reaches the caller through the DAG's result.
    with InputNode() as inp:
        dag = inc.bind(inp)
    with pytest.raises(oxray.exceptions.RayTaskError):
        oxray.get(dag.execute("not a number"))
