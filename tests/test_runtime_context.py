"""get_runtime_context: job, task, node and worker ids."""

import oxray


def test_context_in_driver_and_task(cluster):
    ctx = oxray.get_runtime_context()
    assert ctx.get_task_id() is None
    assert ctx.get_job_id() and ctx.get_node_id() and ctx.get_worker_id()

    @oxray.remote
    def inside():
        c = oxray.get_runtime_context()
        return c.get_job_id(), c.get_node_id(), c.get_worker_id(), c.get_task_id()

    job, node, worker, task = oxray.get(inside.remote())
    assert node == ctx.get_node_id()
    assert worker != ctx.get_worker_id()
    assert task and len(task) == 32
    assert job  # workers serve every job of the cluster


def test_a_task_sees_its_drivers_job_name_and_resources(cluster_4cpu):
    driver_job = oxray.get_runtime_context().get_job_id()

    @oxray.remote(num_cpus=1, resources={"Custom": 0.5})
    def inside():
        c = oxray.get_runtime_context()
        return (c.get_job_id(), c.get_task_name(), c.get_task_function_name(), c.get_assigned_resources(),
                c.get_actor_id(), c.get_placement_group_id())

    job, name, function, resources, actor, group = oxray.get(inside.remote())
    assert job == driver_job and len(job) == 8
    assert name == "inside"
    assert function == f"{__name__}.test_a_task_sees_its_drivers_job_name_and_resources.<locals>.inside"
    assert resources == {"CPU": 1.0, "Custom": 0.5}
    assert actor is None and group is None
    assert oxray.get(inside.options(name="renamed").remote())[1] == "renamed"


def test_the_driver_has_no_task_or_actor(cluster):
    c = oxray.get_runtime_context()
    assert c.get_task_name() is None and c.get_actor_id() is None and c.get_assigned_resources() == {}


def test_an_actor_knows_itself(cluster):
    @oxray.remote(num_cpus=1)
    class Self:
        def who(self):
            c = oxray.get_runtime_context()
            return (c.get_actor_id(), c.get_actor_name(), c.get_task_name(), c.get_task_function_name(),
                    c.get_assigned_resources(), c.get_job_id(), c.current_actor)

        def task_ids(self):
            return oxray.get_runtime_context().get_task_id()

    named = Self.options(name="me-myself").remote()
    actor_id, name, task_name, function, resources, job, handle = oxray.get(named.who.remote())
    assert actor_id == named._actor_id.hex()
    assert name == "me-myself"
    assert task_name == "Self.who" and function.endswith("Self.who")
    assert resources == {"CPU": 1.0}
    assert job == oxray.get_runtime_context().get_job_id()
    assert handle == named
    assert oxray.get(Self.remote().who.remote())[1] == ""
    # Each call is a task of its own.
    first, second = oxray.get([named.task_ids.remote(), named.task_ids.remote()])
    assert first and second and first != second


def test_concurrent_calls_each_see_their_own_task(cluster):
    @oxray.remote(max_concurrency=2)
    class Threaded:
        def __init__(self):
            import threading
            self.barrier = threading.Barrier(2, timeout=30)

        def mine(self):
            before = oxray.get_runtime_context().get_task_id()
            self.barrier.wait()  # both calls run at once
            return before, oxray.get_runtime_context().get_task_id()

    t = Threaded.remote()
    (a1, a2), (b1, b2) = oxray.get([t.mine.remote(), t.mine.remote()], timeout=60)
    assert a1 == a2 and b1 == b2 and a1 != b1


def test_gcs_address_is_where_another_driver_connects(cluster):
    from conftest import run_driver

    gcs = oxray.get_runtime_context().gcs_address
    out = run_driver(f"import oxray\noxray.init(address={gcs!r})\nprint(oxray.cluster_resources()['CPU'])\n")
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) == 2.0
