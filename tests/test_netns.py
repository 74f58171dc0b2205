"""Two hosts, each a network namespace joined by a veth pair: a head started
with `oxray start --head` on host A, a node that joins it from host B with
the cluster token, a driver on host A that runs tasks on both hosts and
moves an array between them, a node refused for a wrong token, and `oxray
stop` on each host leaving nothing behind. Needs root and `ip netns`."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, live_processes, oxray_pids, process_gone, wait_for

PID = os.getpid()
X = 1 + PID % 250
NS_A, NS_B = f"oxr-a-{PID}", f"oxr-b-{PID}"
VETH_A, VETH_B = f"oxa{PID}"[:15], f"oxb{PID}"[:15]
IP_A, IP_B = f"10.213.{X}.1", f"10.213.{X}.2"
PORT = 6380
STARTED = []  # pids of the processes run in the namespaces
SHM_BEFORE = set()  # /dev/shm before the test (a reused pid is not ours)


def sh(*args, timeout=30, check=True):
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out


def netns_unavailable():
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if not shutil.which("ip"):
        return "the `ip` command (iproute2) is not installed"
    probe = f"oxr-probe-{PID}"
    try:
        out = sh("ip", "netns", "add", probe, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"`ip netns add` cannot run: {e}"
    if out.returncode != 0:
        return f"`ip netns add` failed: {out.stderr.strip()}"
    sh("ip", "netns", "delete", probe, check=False)
    return None


def ns_pids(ns):
    out = sh("ip", "netns", "pids", ns, check=False)
    return {int(p) for p in out.stdout.split()}


def in_ns(ns, tmpdir, args, env=None, timeout=60):
    """Runs `args` (after the venv's python) in namespace `ns`, as a process
    of that host: its own RAY_TMPDIR. Returns the finished process, with
    its pid."""
    full_env = dict(os.environ)
    full_env.pop("OXRAY_AUTH_TOKEN", None)
    full_env["RAY_TMPDIR"] = tmpdir
    full_env.update(env or {})
    with subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=full_env, cwd=REPO) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise
        finally:
            STARTED.append(p.pid)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err), p.pid


def cli(ns, tmpdir, *args, env=None, timeout=60):
    return in_ns(ns, tmpdir, ["-m", "oxray.scripts", *args], env=env, timeout=timeout)[0]


def store_files(pid):
    """The shared-memory stores of the nodes the process `pid` started
    (`ip netns exec` execs the command: same pid)."""
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(f"oxray-h-{pid}-") and n not in SHM_BEFORE)


def processes_mentioning(text):
    """Live processes whose command line contains `text`."""
    return [(pid, " ".join(args)) for pid, args in live_processes() if text in " ".join(args)]


def recorded_pids(tmpdir):
    """Pids of the nodes listed in a host's node index."""
    pids = []
    nodes = os.path.join(tmpdir, f"oxray-{os.getuid()}", "nodes")
    for name in os.listdir(nodes) if os.path.isdir(nodes) else []:
        with open(os.path.join(nodes, name)) as f:
            pids.append(int(json.load(f)["pid"]))
    return pids


class Hosts:
    """The two hosts: their private temp directories, the token, and the
    pids of the commands run on them."""

    def __init__(self, tmp_a, tmp_b):
        self.tmp_a, self.tmp_b = tmp_a, tmp_b
        self.token = None
        self.head_pid = self.joined_pid = None

    def start(self):
        """`oxray start --head` on A, then a node on B that joins it."""
        head, self.head_pid = in_ns(NS_A, self.tmp_a, ["-m", "oxray.scripts", "start", "--head",
                                                       "--node-ip-address", IP_A, "--port", str(PORT),
                                                       "--num-cpus", "1", "--resources", json.dumps({"host_a": 1})])
        assert head.returncode == 0, head.stdout + head.stderr
        assert f"Started an oxray head at {IP_A}:{PORT}." in head.stdout
        token_line = [line for line in head.stdout.splitlines() if "token is in" in line]
        assert token_line, head.stdout
        token_file = token_line[0].split("token is in", 1)[1].strip().split(" (")[0]
        with open(token_file) as f:
            self.token = f.read().strip()
        assert len(self.token) >= 16
        joined, self.joined_pid = in_ns(NS_B, self.tmp_b, ["-m", "oxray.scripts", "start", "--address",
                                                           f"{IP_A}:{PORT}", "--node-ip-address", IP_B,
                                                           "--num-cpus", "1", "--resources", json.dumps({"host_b": 1})],
                                        env={"OXRAY_AUTH_TOKEN": self.token})
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert f"joined to the head at {IP_A}:{PORT}" in joined.stdout

    def join_with_wrong_token(self):
        return in_ns(NS_B, self.tmp_b, ["-m", "oxray.scripts", "start", "--address", f"{IP_A}:{PORT}",
                                        "--node-ip-address", IP_B, "--num-cpus", "1"],
                     env={"OXRAY_AUTH_TOKEN": "not-the-token-0123456789"})


@pytest.fixture
def hosts(tmp_path):
    """Two namespaces joined by a veth pair, a head on A and a node on B.
    Teardown stops the nodes and deletes the namespaces, even when the
    test fails."""
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    SHM_BEFORE.update(os.listdir("/dev/shm"))
    tmp_a, tmp_b = str(tmp_path / "host_a"), str(tmp_path / "host_b")
    os.makedirs(tmp_a)
    os.makedirs(tmp_b)
    try:
        sh("ip", "netns", "add", NS_A)
        sh("ip", "netns", "add", NS_B)
        sh("ip", "link", "add", VETH_A, "type", "veth", "peer", "name", VETH_B)
        sh("ip", "link", "set", VETH_A, "netns", NS_A)
        sh("ip", "link", "set", VETH_B, "netns", NS_B)
        for ns, dev, ip in ((NS_A, VETH_A, IP_A), (NS_B, VETH_B, IP_B)):
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
        if shutil.which("ping"):
            ping = sh("ip", "netns", "exec", NS_A, "ping", "-c", "1", "-W", "5", IP_B, check=False)
            assert ping.returncode == 0, f"the namespaces cannot reach each other: {ping.stdout} {ping.stderr}"
        h = Hosts(tmp_a, tmp_b)
        h.start()
        yield h
    finally:
        # Stop whatever still runs (a failed test stops nothing itself),
        # then kill by pid what is left in the namespaces.
        for ns, tmp in ((NS_B, tmp_b), (NS_A, tmp_a)):
            try:
                cli(ns, tmp, "stop", timeout=30)
            except (OSError, subprocess.SubprocessError):
                pass
            for pid in ns_pids(ns):
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        for ns in (NS_A, NS_B):
            sh("ip", "netns", "delete", ns, check=False)
        for pid in STARTED:
            for name in store_files(pid):
                os.remove(os.path.join("/dev/shm", name))
        STARTED.clear()


DRIVER = f"""
import hashlib, json, oxray
import numpy as np

oxray.init(address="{IP_A}:{PORT}")

@oxray.remote(num_cpus=1)
def where():
    ctx = oxray.get_runtime_context()
    return ctx.get_node_id()

@oxray.remote(num_cpus=1)
def make_array():
    return np.arange(5 * (1 << 20) // 8, dtype=np.int64) * 7 - 3

@oxray.remote(num_cpus=1)
def digest(a):
    return hashlib.sha256(a.tobytes()).hexdigest(), oxray.get_runtime_context().get_node_id()

node_a = oxray.get(where.options(resources={{"host_a": 1}}).remote(), timeout=60)
node_b = oxray.get(where.options(resources={{"host_b": 1}}).remote(), timeout=60)
made = make_array.options(resources={{"host_b": 1}}).remote()
arr = oxray.get(made, timeout=60)
expected = np.arange(5 * (1 << 20) // 8, dtype=np.int64) * 7 - 3
# The array made on B, read by a task on A; and one put here, read on B.
on_a = oxray.get(digest.options(resources={{"host_a": 1}}).remote(made), timeout=60)
noise = np.random.default_rng(3).integers(0, 1 << 60, size=(5 << 20) // 8, dtype=np.int64)
on_b = oxray.get(digest.options(resources={{"host_b": 1}}).remote(oxray.put(noise)), timeout=60)
nodes = {{n["NodeID"]: n["NodeManagerAddress"] for n in oxray.nodes() if n["Alive"]}}
print(json.dumps({{
    "node_a": node_a, "node_b": node_b, "nodes": nodes,
    "array_ok": bool(arr.shape == expected.shape and np.array_equal(arr, expected)),
    "on_a": on_a, "expected_digest": hashlib.sha256(expected.tobytes()).hexdigest(),
    "on_b": on_b, "noise_digest": hashlib.sha256(noise.tobytes()).hexdigest(),
    "cpus": oxray.cluster_resources().get("CPU"),
}}))
oxray.shutdown()
"""


def test_tasks_and_objects_across_hosts(hosts):
    driver, _ = in_ns(NS_A, hosts.tmp_a, ["-c", DRIVER], timeout=120)
    assert driver.returncode == 0, driver.stdout + driver.stderr
    result = json.loads(driver.stdout.strip().splitlines()[-1])
    assert result["node_a"] != result["node_b"]
    assert result["nodes"] == {result["node_a"]: IP_A, result["node_b"]: IP_B}
    assert result["array_ok"]
    assert result["on_a"] == [result["expected_digest"], result["node_a"]]
    assert result["on_b"] == [result["noise_digest"], result["node_b"]]
    assert result["cpus"] == 2


LOGS_DRIVER = f"""
import json, time, oxray
from oxray.util.state import get_log, list_logs

oxray.init(address="{IP_A}:{PORT}")

@oxray.remote(num_cpus=1, resources={{"host_b": 1}})
class Speaker:
    def say(self, text):
        print(text)
        return oxray.get_runtime_context().get_node_id()

s = Speaker.remote()
node_b = oxray.get(s.say.remote("spoken-on-host-b"), timeout=60)
deadline = time.time() + 30
while True:  # the line reaches the worker's file a moment after the call returns
    try:
        text = "".join(get_log(actor_id=s._actor_id.hex(), node_id=node_b))
    except ValueError:
        text = ""
    if "spoken-on-host-b" in text or time.time() > deadline:
        break
    time.sleep(0.2)
print(json.dumps({{"node_b": node_b, "actor_id": s._actor_id.hex(), "text": text,
                  "files": list_logs(node_id=node_b)}}))
"""


def test_logs_of_a_node_on_another_host(hosts):
    """A driver on host A reads the output of an actor on host B through
    B's daemon, and so does `oxray logs --address` run on host A."""
    driver, _ = in_ns(NS_A, hosts.tmp_a, ["-c", LOGS_DRIVER], timeout=120)
    assert driver.returncode == 0, driver.stdout + driver.stderr
    result = json.loads(driver.stdout.strip().splitlines()[-1])
    assert result["text"] == "spoken-on-host-b\n"
    assert any(name.startswith("worker-") for name in result["files"]["worker_out"]), result["files"]
    assert "daemon.err" in result["files"]["daemon"]
    address = f"{IP_A}:{PORT}"
    by_actor = cli(NS_A, hosts.tmp_a, "logs", "--address", address, "--actor-id", result["actor_id"])
    assert by_actor.returncode == 0, by_actor.stdout + by_actor.stderr
    assert by_actor.stdout == "spoken-on-host-b\n"
    listing = cli(NS_A, hosts.tmp_a, "logs", "--address", address, "--node-id", result["node_b"][:12])
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert f"IP: {IP_B}" in listing.stdout and f"through the daemon at tcp:{IP_B}" in listing.stdout
    assert "worker_out:" in listing.stdout


def test_wrong_token_is_refused(hosts):
    wrong, pid = hosts.join_with_wrong_token()
    assert wrong.returncode != 0, wrong.stdout + wrong.stderr
    assert "wrong cluster token" in wrong.stdout + wrong.stderr
    # It left nothing running (its daemon ran with a session directory
    # named after the command's pid) and listed nothing; the cluster keeps
    # its two nodes, which still take work.
    assert len(recorded_pids(hosts.tmp_b)) == 1
    assert wait_for(lambda: not processes_mentioning(f"/h-{pid}-"), timeout=10), processes_mentioning(f"/h-{pid}-")
    check, _ = in_ns(NS_A, hosts.tmp_a, ["-c", (
        "import oxray\n"
        f"oxray.init(address='{IP_A}:{PORT}')\n"
        "@oxray.remote(num_cpus=1, resources={'host_b': 1})\n"
        "def f():\n"
        "    return oxray.get_runtime_context().get_node_id()\n"
        "alive = {n['NodeID']: n['NodeManagerAddress'] for n in oxray.nodes() if n['Alive']}\n"
        "print(len(alive), alive[oxray.get(f.remote(), timeout=60)])\n"
    )], timeout=90)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.split() == ["2", IP_B]


def test_stop_leaves_nothing(hosts):
    daemons = set(recorded_pids(hosts.tmp_a) + recorded_pids(hosts.tmp_b))
    assert len(daemons) == 2 and daemons <= set(oxray_pids())
    in_namespaces = ns_pids(NS_A) | ns_pids(NS_B)
    assert daemons <= in_namespaces
    for ns, tmp in ((NS_B, hosts.tmp_b), (NS_A, hosts.tmp_a)):
        stopped = cli(ns, tmp, "stop", timeout=30)
        assert stopped.returncode == 0, stopped.stderr
        assert "Stopped 1 oxray node(s)." in stopped.stdout
    assert wait_for(lambda: all(process_gone(p) for p in in_namespaces), timeout=15), \
        [p for p in in_namespaces if not process_gone(p)]
    assert not (set(oxray_pids()) & in_namespaces)
    assert not ns_pids(NS_A) and not ns_pids(NS_B)
    assert recorded_pids(hosts.tmp_a) == [] and recorded_pids(hosts.tmp_b) == []
    assert store_files(hosts.head_pid) == [] and store_files(hosts.joined_pid) == []


def test_refused_node_leaves_no_store_file(hosts):
    wrong, pid = hosts.join_with_wrong_token()
    assert wrong.returncode != 0
    assert store_files(pid) == []


@pytest.fixture
def fast_health_checks(monkeypatch):
    # The daemons started by `hosts` inherit these: a silent node is
    # declared dead after 4 x 250 ms.
    monkeypatch.setenv("OXRAY_HEALTH_CHECK_PERIOD_MS", "250")
    monkeypatch.setenv("OXRAY_HEALTH_CHECK_FAILURE_THRESHOLD", "4")


def test_partitioned_node_is_declared_dead_and_stops_when_the_link_returns(fast_health_checks, hosts):
    (node_b_daemon,) = recorded_pids(hosts.tmp_b)
    sh("ip", "netns", "exec", NS_B, "ip", "link", "set", VETH_B, "down")
    try:
        watch, _ = in_ns(NS_A, hosts.tmp_a, ["-c", (
            "import oxray, time\n"
            f"oxray.init(address='{IP_A}:{PORT}')\n"
            "t = time.monotonic()\n"
            f"while any(n['Alive'] and n['NodeManagerAddress'] == '{IP_B}' for n in oxray.nodes()):\n"
            "    assert time.monotonic() - t < 20, 'still alive after 20 s'\n"
            "    time.sleep(0.05)\n"
            "@oxray.remote(num_cpus=1, resources={'host_a': 1})\n"
            "def f():\n"
            "    return 'still working'\n"
            "print(round(time.monotonic() - t, 1), oxray.get(f.remote(), timeout=60))\n"
        )], timeout=90)
    finally:
        sh("ip", "netns", "exec", NS_B, "ip", "link", "set", VETH_B, "up")
    assert watch.returncode == 0, watch.stdout + watch.stderr
    seconds, _, rest = watch.stdout.strip().splitlines()[-1].partition(" ")
    assert float(seconds) < 20 and rest == "still working"
    # Back on the network, node B hears that it was declared dead and stops.
    assert wait_for(lambda: process_gone(node_b_daemon), timeout=60)
