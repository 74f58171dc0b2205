"""Resources: CPU, GPU, memory, custom and fractional amounts; limits; GPU
isolation; unschedulable tasks."""

import os
import time

import pytest

import oxray
from barrier import arrive_and_wait
from conftest import run_driver


def _concurrency_probe(directory, hold):
    """Records how many probes run at once (including this one)."""
    os.makedirs(directory, exist_ok=True)
    me = os.path.join(directory, f"{os.getpid()}-{time.monotonic_ns()}")
    open(me, "w").close()
    try:
        count = len(os.listdir(directory))
        time.sleep(hold)
        count = max(count, len(os.listdir(directory)))
    finally:
        os.remove(me)
    return count


def test_cpu_limit_never_exceeded(cluster_4cpu, tmp_path):
    @oxray.remote(num_cpus=2)
    def two_cpus(d):
        return _concurrency_probe(d, 0.3)

    d = str(tmp_path / "running")
    counts = oxray.get([two_cpus.remote(d) for _ in range(6)])
    assert max(counts) <= 2  # 4 CPUs / 2 per task


def test_custom_resource_limits_concurrency(cluster_4cpu, tmp_path):
    @oxray.remote(resources={"Custom": 1})
    def custom(d):
        return _concurrency_probe(d, 0.3)

    d = str(tmp_path / "running")
    assert max(oxray.get([custom.remote(d) for _ in range(5)])) <= 2


def test_fractional_gpus_share_and_isolate(cluster_4cpu, tmp_path):
    @oxray.remote(num_gpus=0.5)
    def half(d, i):
        arrive_and_wait(d, 4, i)
        return tuple(oxray.get_gpu_ids()), os.environ.get("CUDA_VISIBLE_DEVICES")

    d = str(tmp_path / "barrier")
    out = oxray.get([half.remote(d, i) for i in range(4)], timeout=60)
    # Four halves on two GPUs, all at once: each GPU carries two.
    ids = sorted(o[0][0] for o in out)
    assert ids == [0, 0, 1, 1]
    for gpu_ids, visible in out:
        assert visible == ",".join(str(g) for g in gpu_ids)


def test_whole_gpus_are_exclusive(cluster_4cpu):
    @oxray.remote(num_gpus=2)
    def both():
        return oxray.get_gpu_ids(), os.environ["CUDA_VISIBLE_DEVICES"]

    ids, visible = oxray.get(both.remote())
    assert sorted(ids) == [0, 1] and visible in ("0,1", "1,0")

    @oxray.remote
    def none():
        return oxray.get_gpu_ids()

    assert oxray.get(none.remote()) == []
    assert oxray.get_gpu_ids() == []


def test_walkthrough_resource_examples(cluster_4cpu):
    @oxray.remote(num_cpus=4, num_gpus=2)
    def f():
        return 1

    @oxray.remote(num_gpus=0.5)
    def h():
        return 1

    @oxray.remote(resources={"Custom": 1})
    def g():
        return 1

    assert oxray.get([f.remote(), h.remote(), g.remote()]) == [1, 1, 1]


def test_available_resources_reflect_running_tasks(cluster_4cpu, tmp_path):
    @oxray.remote(num_cpus=3)
    def hold(path):
        open(path, "w").close()
        time.sleep(1.5)

    flag = str(tmp_path / "started")
    ref = hold.remote(flag)
    while not os.path.exists(flag):
        time.sleep(0.02)
    assert oxray.available_resources().get("CPU", 0) <= 1
    oxray.get(ref)
    deadline = time.monotonic() + 5
    while oxray.available_resources().get("CPU") != 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert oxray.available_resources()["CPU"] == 4


def test_memory_resource(cluster_4cpu):
    total = oxray.cluster_resources()["memory"]

    @oxray.remote(memory=100 << 20)
    def small():
        return "fits"

    assert oxray.get(small.remote()) == "fits"
    assert total > 100 << 20


def test_infeasible_task_warns_and_stays_pending():
    out = run_driver(
        "import oxray\n"
        "oxray.init(num_cpus=1)\n"
        "@oxray.remote(num_cpus=8)\n"
        "def too_big():\n"
        "    return 1\n"
        "ref = too_big.remote()\n"
        "ready, _ = oxray.wait([ref], timeout=1.5)\n"
        "print('ready:', len(ready))\n"
        "oxray.shutdown()\n"
    )
    assert out.returncode == 0, out.stderr
    assert "ready: 0" in out.stdout
    assert out.stderr.count("too_big") == 1, out.stderr
    assert "CPU: 8" in out.stderr


def test_unknown_custom_resource_warns():
    out = run_driver(
        "import oxray\n"
        "oxray.init(num_cpus=1)\n"
        "@oxray.remote(resources={'TPU': 1})\n"
        "def needs_tpu():\n"
        "    return 1\n"
        "ready, _ = oxray.wait([needs_tpu.remote()], timeout=1)\n"
        "print('ready:', len(ready))\n"
    )
    assert "ready: 0" in out.stdout
    assert "needs_tpu" in out.stderr and "TPU" in out.stderr


def test_invalid_amounts_rejected_at_decoration():
    with pytest.raises(ValueError):
        oxray.remote(num_gpus=-0.5)(lambda: 1)
    with pytest.raises(ValueError):
        oxray.remote(resources={"Custom": float("nan")})(lambda: 1)
    with pytest.raises(ValueError):
        oxray.remote(num_cpus="two")(lambda: 1)


def test_accelerator_types_are_named_as_ray_names_them():
    from oxray._private.node import accelerator_type_of

    assert accelerator_type_of("NVIDIA A100-SXM4-40GB") == "A100"
    assert accelerator_type_of("Tesla V100-SXM2-16GB") == "V100"
    assert accelerator_type_of("NVIDIA H100 80GB HBM3") == "H100"
    assert accelerator_type_of("") is None


def test_a_worker_that_held_gpus_runs_no_cpu_tasks_afterwards(cluster_4cpu, tmp_path):
    @oxray.remote(num_gpus=1)
    def on_gpu():
        return os.getpid()

    @oxray.remote
    def on_cpu(directory, i):
        # Four at once: every worker that may take CPU tasks is in use.
        arrive_and_wait(directory, 4, i)
        return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")

    gpu_pids = set(oxray.get([on_gpu.remote() for _ in range(4)]))
    results = oxray.get([on_cpu.remote(str(tmp_path), i) for i in range(4)])
    assert not gpu_pids & {pid for pid, _ in results}
    assert all(cuda is None for _, cuda in results)
    # GPU work still finds the workers that held GPUs.
    assert oxray.get(on_gpu.remote()) in gpu_pids
