"""init, shutdown, is_initialized, and the life cycle of the cluster's
processes."""

import os
import signal
import subprocess
import sys
import time

import pytest

import oxray
from conftest import REPO, oxray_pids, process_gone, run_driver, wait_for


def test_init_shutdown_is_initialized(shutdown_only):
    assert not oxray.is_initialized()
    ctx = oxray.init(num_cpus=1)
    assert oxray.is_initialized()
    assert ctx["node_id"]
    oxray.shutdown()
    assert not oxray.is_initialized()
    oxray.shutdown()  # a second shutdown is harmless


def test_second_init_raises_unless_ignored(shutdown_only):
    oxray.init(num_cpus=1)
    with pytest.raises(RuntimeError, match="ignore_reinit_error"):
        oxray.init(num_cpus=1)
    oxray.init(num_cpus=1, ignore_reinit_error=True)
    assert oxray.is_initialized()


def test_init_rejects_unknown_keyword_and_bad_values(shutdown_only):
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_cpu'"):
        oxray.init(num_cpu=1)
    with pytest.raises(ValueError, match="num_cpus"):
        oxray.init(num_cpus=-1)
    with pytest.raises(ValueError, match="num_cpus' and 'num_gpus"):
        oxray.init(resources={"CPU": 2})
    assert not oxray.is_initialized()


def test_init_declares_resources(shutdown_only):
    oxray.init(num_cpus=3, num_gpus=2, resources={"Custom": 2.5}, object_store_memory=100 << 20)
    res = oxray.cluster_resources()
    assert res["CPU"] == 3
    assert res["GPU"] == 2
    assert res["Custom"] == 2.5
    assert res["object_store_memory"] == 100 << 20
    assert oxray.available_resources()["CPU"] == 3
    nodes = oxray.nodes()
    assert len(nodes) == 1 and nodes[0]["Alive"]
    assert nodes[0]["Resources"]["CPU"] == 3


def test_calls_after_shutdown_raise_clear_error(shutdown_only, monkeypatch):
    monkeypatch.setenv("RAY_ENABLE_AUTO_CONNECT", "0")
    oxray.init(num_cpus=1)

    @oxray.remote
    def f():
        return 1

    ref = f.remote()
    oxray.shutdown()
    with pytest.raises(oxray.exceptions.RaySystemError, match="not initialized"):
        f.remote()
    with pytest.raises(oxray.exceptions.RaySystemError, match="not initialized"):
        oxray.get(ref)
    with pytest.raises(oxray.exceptions.RaySystemError, match="not initialized"):
        oxray.put(1)


def test_first_remote_put_or_get_starts_a_local_cluster(shutdown_only):
    @oxray.remote
    def f():
        return 1

    assert not oxray.is_initialized()
    assert oxray.get(f.remote()) == 1
    assert oxray.is_initialized()
    stale = f.remote()
    oxray.shutdown()
    assert oxray.get(oxray.put("again")) == "again"  # a new cluster
    # A ref of the cluster that is gone fails at once rather than hang.
    with pytest.raises(oxray.exceptions.RayError):
        oxray.get(stale, timeout=30)


def test_shutdown_stops_every_process(shutdown_only):
    before = set(oxray_pids())
    oxray.init(num_cpus=2)

    @oxray.remote
    def pid():
        return os.getpid()

    worker_pids = set(oxray.get([pid.remote() for _ in range(4)]))
    assert wait_for(lambda: set(oxray_pids()) - before)
    oxray.shutdown()
    assert wait_for(lambda: not (set(oxray_pids()) - before), timeout=10)
    for p in worker_pids:
        assert process_gone(p)


def test_killed_driver_leaves_no_process():
    code = (
        "import os, sys, time, oxray\n"
        "oxray.init(num_cpus=2)\n"
        "@oxray.remote\n"
        "def pid():\n"
        "    return os.getpid()\n"
        "print(*oxray.get([pid.remote() for _ in range(3)]), flush=True)\n"
        "time.sleep(120)\n"
    )
    before = set(oxray_pids())
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = proc.stdout.readline()
        worker_pids = [int(x) for x in line.split()]
        assert worker_pids, "the driver printed no worker pids"
        started = set(oxray_pids()) - before
        assert started
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert wait_for(lambda: not (set(oxray_pids()) & started), timeout=10), "daemon or workers outlived the driver"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


def test_interpreter_exit_stops_cluster():
    before = set(oxray_pids())
    out = run_driver(
        "import oxray\n"
        "oxray.init(num_cpus=1)\n"
        "@oxray.remote\n"
        "def f():\n"
        "    return 'done'\n"
        "print(oxray.get(f.remote()))\n"
    )
    assert out.returncode == 0, out.stderr
    assert "done" in out.stdout
    assert wait_for(lambda: not (set(oxray_pids()) - before), timeout=10)


def test_startup_is_fast(shutdown_only):
    # Generous bound: a smoke check that nothing is spawned per task or
    # waits on a timer, not a benchmark.
    t = time.monotonic()
    oxray.init(num_cpus=1)

    @oxray.remote
    def f():
        return 1

    assert oxray.get(f.remote()) == 1
    assert time.monotonic() - t < 10


def test_daemon_death_fails_pending_gets(shutdown_only):
    ctx = oxray.init(num_cpus=1)

    @oxray.remote
    def slow():
        time.sleep(60)

    ref = slow.remote()
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    daemon = [int(line.split()[0]) for line in out.splitlines()
              if "oxray daemon" in line and ctx["session_dir"] in line]
    assert len(daemon) == 1
    os.kill(daemon[0], signal.SIGKILL)
    with pytest.raises(oxray.exceptions.RaySystemError, match="daemon died"):
        oxray.get(ref, timeout=30)
    with pytest.raises(oxray.exceptions.RaySystemError, match="daemon"):
        slow.remote()


def test_leftovers_of_a_killed_cluster_are_removed(shutdown_only, tmp_path):
    import tempfile

    base = os.path.join(tempfile.gettempdir(), "oxray")
    os.makedirs(base, exist_ok=True)
    # A pid that cannot be alive (beyond pid_max).
    stale_dir = os.path.join(base, "s-999999999-abcdef")
    stale_shm = "/dev/shm/oxray-s-999999999-abcdef"
    os.makedirs(stale_dir, exist_ok=True)
    open(stale_shm, "w").close()
    oxray.init(num_cpus=1)
    assert not os.path.exists(stale_dir)
    assert not os.path.exists(stale_shm)


def test_node_resources_named_as_in_ray(shutdown_only):
    oxray.init(num_cpus=1)
    res = oxray.cluster_resources()
    assert res["node:127.0.0.1"] == 1.0
    assert res["node:__internal_head__"] == 1.0


def test_files_are_for_their_user_only(shutdown_only, tmp_path):
    import numpy as np
    import stat

    spill = tmp_path / "spill"
    context = oxray.init(num_cpus=1, object_store_memory=50 << 20, object_spilling_directory=str(spill))
    session = context["session_dir"]
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(session) == 0o700
    assert mode(os.path.join("/dev/shm", "oxray-" + os.path.basename(session))) == 0o600
    assert mode(os.path.join(session, "daemon.err")) == 0o600
    big = oxray.put(np.ones(100 << 17))  # 100 MiB: larger than the store, so on disk
    assert mode(spill) == 0o700
    assert [mode(p) for p in spill.iterdir()] == [0o600]
    del big
