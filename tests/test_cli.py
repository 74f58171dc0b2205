"""The `oxray` command: a standing head, drivers that connect to it, and
detached actors that outlive their driver."""

import json
import os
import re
import subprocess
import sys

import pytest

import oxray
from conftest import REPO, run_driver, run_on_terminal, wait_for


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
    assert "\n 0.0/2.0 CPU\n" in status.stdout


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
    listed = json.loads(oxray_cli("list", "actors", "--format", "json").stdout)
    assert [a["state"] for a in listed if a["name"] == "keeper"] == ["DEAD"]


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
            out = oxray_cli("list", "tasks", "--format", "json").stdout
            return [t for t in json.loads(out) if t["name"] == "blocked_on_flag" and t["state"] == "RUNNING"]

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
    assert status.returncode == 0 and "Active:\n 1 node_" in status.stdout, status.stdout + status.stderr


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


# ----- readable output: status, list, get, summary -------------------------

@pytest.fixture
def own_head(tmp_path):
    """A 2-CPU head recorded in a node index of its own (so that its `stop`
    touches no other cluster); yields (run the CLI, its environment)."""
    oxray.shutdown()
    run, env = cli_with_own_index(tmp_path)
    out = run("start", "--head", "--port", "0", "--num-cpus", "2")
    assert out.returncode == 0, out.stderr
    try:
        yield run, env
    finally:
        stopped = run("stop")
        assert stopped.returncode == 0, stopped.stderr


def _table(stdout):
    """The header and rows of a `list` table: lines after the "Table:" rule."""
    lines = stdout.splitlines()
    start = lines.index("Table:") + 2
    return [ln for ln in lines[start:] if ln.strip()]


def test_status_writes_units_and_sections_as_ray(own_head):
    run, _ = own_head
    out = run("status")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for section in ("Node status", "Active:", "Recent failures:", "Resources", "Total Usage:", "Pending Demands:"):
        assert f"\n{section}\n" in text, text
    assert "\n 0.0/2.0 CPU\n" in text and "(no resource demands)" in text and "(no failures)" in text
    import re
    assert re.search(r"\n 0B/\d+\.\d\d[KMGT]iB memory\n", text), text
    assert re.search(r"\n 0B/\d+\.\d\d[KMGT]iB object_store_memory\n", text), text
    assert "e+" not in text and "\x1b[" not in text  # no raw floats, no colour into a pipe
    verbose = run("status", "-v").stdout
    assert "\nNode: " in verbose and "(head)" in verbose and "\n  0.0/2.0 CPU\n" in verbose


def test_status_counts_placement_group_reservations(own_head):
    run, env = own_head
    code = (
        "import sys, oxray\n"
        "from oxray.util import placement_group\n"
        "oxray.init(address='auto')\n"
        "pg = placement_group([{'CPU': 1}], lifetime='detached')\n"
        "oxray.get(pg.ready())\n"
        "@oxray.remote(num_gpus=1)\n"
        "def wants_a_gpu():\n"
        "    pass\n"
        "wants_a_gpu.remote()\n"
        "sys.stdout.write(__import__('subprocess').run([sys.executable, '-m', 'oxray.scripts', 'status'],\n"
        "    capture_output=True, text=True).stdout)\n"
    )
    out = run_driver(code, env=env)
    assert out.returncode == 0, out.stderr
    assert "\n 0.0/2.0 CPU (0.0 used of 1.0 reserved in placement groups)\n" in out.stdout, out.stdout
    assert "{'CPU': 1.0, 'GPU': 1.0}: 1+ pending tasks/actors" in out.stdout, out.stdout


def test_list_actors_as_table_json_and_yaml(own_head):
    run, env = own_head
    made = run_driver(
        "import oxray\n"
        "oxray.init(address='auto', namespace='lst')\n"
        "@oxray.remote\n"
        "class Box:\n"
        "    def ping(self): return 1\n"
        "keep = Box.options(name='keep', lifetime='detached').remote()\n"
        "gone = Box.options(name='gone', lifetime='detached').remote()\n"
        "oxray.get([keep.ping.remote(), gone.ping.remote()])\n"
        "oxray.kill(gone)\n", env=env)
    assert made.returncode == 0, made.stderr

    out = run("list", "actors")
    assert out.returncode == 0, out.stderr
    assert "\nTotal: 2\n" in out.stdout
    header, *rows = _table(out.stdout)
    assert header.split() == ["ACTOR_ID", "CLASS_NAME", "STATE", "JOB_ID", "NAME", "NODE_ID", "PID",
                              "RAY_NAMESPACE"]
    assert len(rows) == 2 and rows[0].startswith("0  ") and rows[1].startswith("1  ")
    # Aligned: each row's state sits under the STATE header.
    col = header.index("STATE")
    assert sorted(r[col:col + 5] for r in rows) == ["ALIVE", "DEAD "]

    as_json = json.loads(run("list", "actors", "--format", "json").stdout)
    assert {a["name"]: a["state"] for a in as_json} == {"keep": "ALIVE", "gone": "DEAD"}
    assert as_json[0]["ray_namespace"] == "lst" and as_json[0]["num_restarts"] is None
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(run("list", "actors", "--format", "yaml").stdout) == as_json
    detail = yaml.safe_load(run("list", "actors", "--detail").stdout)  # --detail defaults to YAML
    assert [a["num_restarts"] for a in detail] == [0, 0]
    [dead] = [a for a in detail if a["name"] == "gone"]
    assert "kill" in dead["death_cause"]["actor_died_error_context"]["error_message"]
    keep_id = next(a["actor_id"] for a in as_json if a["name"] == "keep")
    got = run("get", "actors", keep_id)
    assert got.returncode == 0 and yaml.safe_load(got.stdout)[0]["name"] == "keep"
    missing = run("get", "actors", "00" * 16)
    assert missing.returncode == 1 and "not found" in missing.stdout


def test_list_filters_and_limit(own_head):
    run, env = own_head
    made = run_driver(
        "import oxray\n"
        "oxray.init(address='auto')\n"
        "@oxray.remote\n"
        "class Box:\n"
        "    def ping(self): return 1\n"
        "boxes = [Box.options(name=f'b{i}', lifetime='detached').remote() for i in range(3)]\n"
        "oxray.get([b.ping.remote() for b in boxes])\n"
        "oxray.kill(boxes[0])\n", env=env)
    assert made.returncode == 0, made.stderr

    def names(*args):
        out = run("list", "actors", "--format", "json", *args)
        assert out.returncode == 0, out.stderr
        return sorted(a["name"] for a in json.loads(out.stdout))

    assert names("--filter", "state=DEAD") == ["b0"]
    assert names("--filter", "state!=dead") == ["b1", "b2"]  # values compare case-insensitively
    assert names("-f", "state=ALIVE", "-f", "name=b2") == ["b2"]
    assert len(names("--limit", "1")) == 1
    limited = run("list", "actors", "--limit", "2")
    assert "\nTotal: 2\n" in limited.stdout and "Limit last 2 entries (Total 3)" in limited.stderr
    bad = run("list", "actors", "--filter", "colour=red")
    assert bad.returncode == 2 and "cannot filter actors on 'colour'" in bad.stderr
    bad = run("list", "actors", "--filter", "state")
    assert bad.returncode == 2 and "key=val" in bad.stderr


def test_list_every_resource(own_head):
    run, env = own_head
    made = run_driver(
        "import oxray\n"
        "from oxray.util import placement_group\n"
        "oxray.init(address='auto')\n"
        "pg = placement_group([{'CPU': 0.5}], name='listed-pg', lifetime='detached')\n"
        "oxray.get(pg.ready())\n"
        "@oxray.remote(num_cpus=0)\n"
        "class Box:\n"
        "    def ping(self): return 1\n"
        "b = Box.options(name='w', lifetime='detached').remote()\n"
        "oxray.get(b.ping.remote())\n", env=env)
    assert made.returncode == 0, made.stderr
    for resource in ("actors", "tasks", "nodes", "objects", "workers", "jobs", "placement-groups"):
        out = run("list", resource)
        assert out.returncode == 0, (resource, out.stderr)
        assert out.stdout.strip() == "No resource in the cluster" or "\nTable:\n" in out.stdout, resource
    nodes = run("list", "nodes").stdout
    header = _table(nodes)[0].split()
    assert header[:4] == ["NODE_ID", "NODE_IP", "IS_HEAD_NODE", "STATE"] and "RESOURCES_TOTAL" in header
    assert " GiB" in nodes and "CPU: 2.0" in nodes  # readable memory in the resources cell
    pgs = json.loads(run("list", "placement-groups", "--format", "json").stdout)
    assert [(g["name"], g["state"]) for g in pgs] == [("listed-pg", "CREATED")]
    workers = json.loads(run("list", "workers", "--format", "json").stdout)
    assert [w["worker_type"] for w in workers] == ["WORKER"]  # the actor's; not the CLI itself
    assert run("list", "jobs").stdout.strip() == "No resource in the cluster"


def test_summaries_and_tasks_of_a_running_driver(own_head, tmp_path):
    run, env = own_head
    flag = tmp_path / "go"
    code = (
        "import os, time, oxray\n"
        "oxray.init(address='auto')\n"
        "@oxray.remote\n"
        "def quick(i):\n"
        "    return i\n"
        "@oxray.remote\n"
        "def held(path):\n"
        "    while not os.path.exists(path):\n"
        "        time.sleep(0.01)\n"
        "    return 1\n"
        "oxray.get([quick.remote(i) for i in range(3)])\n"
        f"print(oxray.get(held.remote({str(flag)!r})), flush=True)\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
    try:
        def summary():
            out = run("summary", "tasks", "--format", "json")
            assert out.returncode == 0, out.stderr
            tasks = json.loads(out.stdout)["cluster"]["summary"]
            return tasks if tasks.get("held", {}).get("state_counts") == {"RUNNING": 1} else None

        tasks = wait_for(summary, timeout=30)
        assert tasks and tasks["quick"] == {"func_or_class_name": "quick", "type": "NORMAL_TASK",
                                            "state_counts": {"FINISHED": 3}}
        table = run("summary", "tasks").stdout
        assert "Table (group by func_name):" in table and "total_tasks: 4" in table
        header = next(ln for ln in table.splitlines() if "FUNC_OR_CLASS_NAME" in ln)
        assert header.split() == ["FUNC_OR_CLASS_NAME", "STATE_COUNTS", "TYPE"]
        assert any(ln.split()[1:] == ["quick", "FINISHED:", "3", "NORMAL_TASK"] for ln in table.splitlines())
        running = json.loads(run("list", "tasks", "--format", "json", "--filter", "state=RUNNING").stdout)
        assert [t["name"] for t in running] == ["held"] and running[0]["worker_id"]
        assert "held" in run("list", "tasks", "--filter", "name=held").stdout
        failed = json.loads(run("summary", "tasks", "--format", "json", "-f", "state=FAILED").stdout)
        assert failed["cluster"]["summary"] == {}
        jobs = json.loads(run("list", "jobs", "--format", "json").stdout)
        assert len(jobs) == 1 and jobs[0]["type"] == "DRIVER"
        actors = run("summary", "actors")
        assert actors.returncode == 0 and "total_actors: 0" in actors.stdout
        objects = run("summary", "objects", "--format", "yaml")
        assert objects.returncode == 0 and "summary_by: callsite" in objects.stdout
        flag.touch()
        assert driver.communicate(timeout=30)[0].strip() == "1"
    finally:
        driver.kill()
        driver.wait()


def test_colour_only_on_a_terminal(own_head):
    run, env = own_head
    made = run_driver(
        "import oxray\n"
        "oxray.init(address='auto')\n"
        "@oxray.remote(num_cpus=0)\n"
        "class Box:\n"
        "    def ping(self): return 1\n"
        "b = Box.options(name='tty', lifetime='detached').remote()\n"
        "oxray.get(b.ping.remote())\n", env=env)
    assert made.returncode == 0, made.stderr
    assert "\x1b[" not in run("list", "actors").stdout
    code, shown, err = run_on_terminal([sys.executable, "-m", "oxray.scripts", "list", "actors"], cwd=REPO,
                                       env=env)
    assert code == 0, err
    assert "\x1b[32mALIVE" in shown and "\x1b[1m" in shown


# ----- oxray logs ----------------------------------------------------------

def test_logs_lists_and_prints_worker_logs(own_head):
    run, env = own_head
    made = run_driver(
        "import json, os, sys, time, oxray\n"
        "oxray.init(address='auto')\n"
        "@oxray.remote\n"
        "def shout():\n"
        "    print('task says hi')\n"
        "    print('task complains', file=sys.stderr)\n"
        "    return os.getpid()\n"
        "@oxray.remote(num_cpus=0)\n"
        "class Logger:\n"
        "    def __init__(self): print('logger up')\n"
        "    def log(self, i): print(f'entry {i}'); return os.getpid()\n"
        "ref = shout.remote()\n"
        "pid = oxray.get(ref)\n"
        "a = Logger.options(name='logger', lifetime='detached').remote()\n"
        "apid = [oxray.get(a.log.remote(i)) for i in range(3)][-1]\n"
        "time.sleep(0.3)\n"
        "sys.stderr.write(json.dumps({'pid': pid, 'apid': apid, 'task': ref.task_id(), 'actor': a._actor_id.hex(),\n"
        "                 'node': oxray.get_runtime_context().get_node_id()}) + '\\n')\n", env=env)
    assert made.returncode == 0, made.stderr
    # On stderr, in one write: relayed worker lines cannot split it.
    ids = json.loads(next(line for line in made.stderr.splitlines() if line.startswith("{")))

    listed = run("logs")
    assert listed.returncode == 0, listed.stderr
    assert f"Node ID: {ids['node']}" in listed.stdout
    assert "worker_out:" in listed.stdout and f"worker-{ids['apid']}.out" in listed.stdout
    assert f"worker-{ids['pid']}.err" in listed.stdout
    assert f"worker-{ids['apid']}.out" in run("logs", "--address", "auto").stdout

    by_name = run("logs", f"worker-{ids['apid']}.out")
    assert by_name.returncode == 0, by_name.stderr
    assert "logger up\n" in by_name.stdout and "entry 2\n" in by_name.stdout
    # A glob that matches one file prints it, as `ray logs` does.
    assert "task complains" in run("logs", f"worker-{ids['pid']}.e*").stdout

    tailed = run("logs", "--pid", str(ids["apid"]), "--tail", "1", "--node-id", ids["node"][:8])
    assert tailed.stdout == "entry 2\n", tailed.stdout
    actor = run("logs", "--actor-id", ids["actor"])
    assert actor.stdout == "logger up\nentry 0\nentry 1\nentry 2\n", actor.stdout
    assert run("logs", "actor", "--id", ids["actor"], "--tail", "2").stdout == "entry 1\nentry 2\n"
    assert run("logs", "--task-id", ids["task"]).stdout == "task says hi\n"
    assert run("logs", "task", "--id", ids["task"], "--err").stdout == "task complains\n"

    missing = run("logs", "worker-1.out")
    assert missing.returncode == 1 and "no log file" in missing.stderr
    wrong_node = run("logs", "--pid", str(ids["apid"]), "--node-id", "ffffffff")
    assert wrong_node.returncode == 1 and "no node" in wrong_node.stderr


def test_logs_follow_prints_new_lines(own_head):
    run, env = own_head
    made = run_driver(
        "import os, time, oxray\n"
        "oxray.init(address='auto', namespace='logs')\n"
        "@oxray.remote(num_cpus=0)\n"
        "class Ticker:\n"
        "    def tick(self, i): print(f'tick {i}'); return os.getpid()\n"
        "t = Ticker.options(name='ticker', lifetime='detached').remote()\n"
        "import sys; sys.stderr.write(f'PID={oxray.get(t.tick.remote(0))}\\n')\n"
        "time.sleep(0.3)\n", env=env)
    assert made.returncode == 0, made.stderr
    # On stderr, in one write: the actor's relayed stdout lines cannot split it.
    pid = re.search(r"PID=(\d+)", made.stderr).group(1)
    follower = subprocess.Popen([sys.executable, "-m", "oxray.scripts", "logs", "--pid", pid, "--follow",
                                 "--tail", "1", "--interval", "0.05"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=REPO, env=env)
    try:
        first = follower.stdout.readline()
        if not first:
            follower.wait(timeout=10)
            raise AssertionError(f"logs --follow ended ({follower.returncode}): {follower.stderr.read()}")
        assert first == "tick 0\n"
        more = run_driver(
            "import oxray\n"
            "oxray.init(address='auto', namespace='logs')\n"
            "oxray.get(oxray.get_actor('ticker').tick.remote(1))\n", env=env)
        assert more.returncode == 0, more.stderr
        # The raw file: the call's marker line, then its output.
        assert follower.stdout.readline().startswith(":task_name:Ticker.tick ")
        assert follower.stdout.readline() == "tick 1\n"
    finally:
        follower.kill()
        follower.wait()
