"""The `oxray` command: a standing head, drivers that connect to it, and
detached actors that outlive their driver."""

import json
import os
import subprocess
import sys

import pytest

import oxray
from conftest import REPO, run_driver, wait_for


def oxray_cli(*args, timeout=60, env=None):
    return subprocess.run([sys.executable, "-m", "oxray.scripts", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def cli_with_own_index(tmp_path):
    """`oxray_cli` with a node index of its own (in `tmp_path`), and its
    environment."""
    env = dict(os.environ, RAY_TMPDIR=str(tmp_path))
    env.pop("OXRAY_AUTH_TOKEN", None)
    return (lambda *a: oxray_cli(*a, env=env)), env


@pytest.fixture
def head():
    oxray.shutdown()
    oxray_cli("stop")
    out = oxray_cli("start", "--head", "--port", "0", "--num-cpus", "2")
    assert out.returncode == 0, out.stderr
    try:
        yield out.stdout
    finally:
        oxray.shutdown()
        stopped = oxray_cli("stop")
        assert stopped.returncode == 0, stopped.stderr


def test_start_status_stop(head):
    assert "oxray.init(address='auto')" in head
    status = oxray_cli("status")
    assert status.returncode == 0, status.stderr
    assert "CPU: 0 / 2" in status.stdout


def test_memory_command(head):
    out = oxray_cli("memory")
    assert out.returncode == 0, out.stderr
    assert "object store:" in out.stdout


def test_driver_connects_to_head(head):
    oxray.init(address="auto")

    @oxray.remote
    def f(x):
        return x * 2

    assert oxray.get(f.remote(21)) == 42
    assert oxray.cluster_resources()["CPU"] == 2
    oxray.shutdown()
    with pytest.raises(ValueError, match="must not be provided"):
        oxray.init(address="auto", num_cpus=3)


def test_detached_actor_outlives_its_driver(head):
    first = run_driver(
        "import oxray\n"
        "oxray.init(address='auto', namespace='cli-test')\n"
        "@oxray.remote\n"
        "class Counter:\n"
        "    def __init__(self):\n"
        "        self.n = 0\n"
        "    def inc(self):\n"
        "        self.n += 1\n"
        "        return self.n\n"
        "d = Counter.options(name='keeper', lifetime='detached').remote()\n"
        "t = Counter.options(name='temporary').remote()\n"
        "print(oxray.get(d.inc.remote()), oxray.get(t.inc.remote()))\n"
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["1", "1"]
    second = run_driver(
        "import oxray\n"
        "oxray.init(address='auto', namespace='cli-test')\n"
        "d = oxray.get_actor('keeper')\n"
        "print(oxray.get(d.inc.remote()))\n"
        "try:\n"
        "    oxray.get_actor('temporary')\n"
        "    print('temporary alive')\n"
        "except ValueError:\n"
        "    print('temporary gone')\n"
        "oxray.kill(d)\n"
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.split("\n")[:2] == ["2", "temporary gone"]
    listed = oxray_cli("list", "actors")
    assert '"keeper"' in listed.stdout and '"DEAD"' in listed.stdout


def test_auto_without_head_is_a_clear_error():
    oxray.shutdown()
    oxray_cli("stop")
    with pytest.raises(ConnectionError, match="oxray start --head"):
        oxray.init(address="auto")


def test_list_tasks_shows_another_drivers_running_task(head, tmp_path):
    flag = tmp_path / "go"
    code = (
        "import os, time, oxray\n"
        "oxray.init(address='auto')\n"
        "@oxray.remote\n"
        "def blocked_on_flag(path):\n"
        "    while not os.path.exists(path):\n"
        "        time.sleep(0.01)\n"
        "    return 1\n"
        f"print(oxray.get(blocked_on_flag.remote({str(flag)!r})), flush=True)\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        def running():
            out = oxray_cli("list", "tasks").stdout
            return [json.loads(line) for line in out.splitlines()
                    if "blocked_on_flag" in line and '"RUNNING"' in line]

        rows = wait_for(running, timeout=30)
        assert rows and rows[0]["type"] == "NORMAL_TASK" and rows[0]["worker_id"]
        flag.touch()
        assert driver.communicate(timeout=30)[0].strip() == "1"
    finally:
        driver.kill()
        driver.wait()


def test_health_endpoint_answers_while_the_head_runs(tmp_path):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run, _ = cli_with_own_index(tmp_path)
    out = run("start", "--head", "--port", "0", "--num-cpus", "1", "--health-port", str(port))
    assert out.returncode == 0, out.stderr
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            assert r.status == 200
            body = json.loads(r.read())
        assert body["status"] == "ok" and body["is_head"] is True and len(body["node_id"]) == 32
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=10)
        assert e.value.code == 404
    finally:
        stopped = run("stop")
        assert stopped.returncode == 0, stopped.stderr


def test_a_driver_cannot_shut_down_a_standing_cluster(head):
    out = run_driver(
        "import oxray\n"
        "oxray.init(address='auto')\n"
        "oxray._native.shutdown(stop_cluster=True)\n"
    )
    assert out.returncode == 0, out.stderr
    status = oxray_cli("status")
    assert status.returncode == 0 and "ALIVE" in status.stdout, status.stdout + status.stderr


def test_a_head_started_again_on_its_port_takes_its_cluster_back(tmp_path):
    import socket
    import signal

    from conftest import process_gone

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run, env = cli_with_own_index(tmp_path)
    assert run("start", "--head", "--port", str(port), "--num-cpus", "0").returncode == 0
    try:
        joined = run("start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1", "--resources", '{"w": 1}')
        assert joined.returncode == 0, joined.stderr
        made = run_driver(
            "import oxray\n"
            "oxray.init(address='auto', namespace='cli')\n"
            "@oxray.remote(num_cpus=0)\n"
            "class Box:\n"
            "    def __init__(self): self.v = 'kept'\n"
            "    def get(self): return self.v\n"
            "b = Box.options(name='box', lifetime='detached', resources={'w': 0.5}).remote()\n"
            "print(oxray.get(b.get.remote()))\n", env=env)
        assert made.stdout.strip() == "kept", made.stderr
        index = tmp_path / f"oxray-{os.getuid()}" / "nodes"
        heads = [json.loads(p.read_text()) for p in index.glob("*.json")]
        head_pid = next(int(n["pid"]) for n in heads if n.get("is_head"))
        os.kill(head_pid, signal.SIGKILL)
        assert wait_for(lambda: process_gone(head_pid), timeout=10)

        again = run("start", "--head", "--port", str(port), "--num-cpus", "0")
        assert again.returncode == 0, again.stderr
        found = run_driver(
            "import oxray, time\n"
            "oxray.init(address='auto', namespace='cli')\n"
            "deadline = time.time() + 30\n"
            "while sum(n['Alive'] for n in oxray.nodes()) < 2 and time.time() < deadline:\n"
            "    time.sleep(0.1)\n"
            "print(oxray.get(oxray.get_actor('box').get.remote(), timeout=30))\n", env=env)
        assert found.stdout.strip() == "kept", found.stderr
    finally:
        stopped = run("stop")
        assert stopped.returncode == 0, stopped.stderr
    assert not list((tmp_path / f"oxray-{os.getuid()}").glob("head-*.redb*")), "stop forgets the journal"
