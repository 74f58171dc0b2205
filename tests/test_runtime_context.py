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
