"""Shared fixtures. Every cluster a test starts is shut down, even when the
test fails, and the session ends by checking that no oxray process is left."""

import os
import subprocess
import sys
import time

import pytest

import oxray
from oxray._private.procs import descendants  # noqa: F401 (tests import it from here)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_current = {"config": None}


def _ensure_cluster(config):
    """Starts a cluster with `config` unless the running one has it."""
    if oxray.is_initialized() and _current["config"] == config:
        return
    oxray.shutdown()
    oxray.init(**config)
    _current["config"] = config


def _stop_cluster():
    oxray.shutdown()
    _current["config"] = None


@pytest.fixture(autouse=True, scope="module")
def _stop_cluster_after_module():
    yield
    _stop_cluster()


@pytest.fixture
def shutdown_only():
    """For tests that call init themselves."""
    _stop_cluster()
    yield
    _stop_cluster()


@pytest.fixture
def cluster():
    """A 2-CPU cluster, shared by consecutive tests that ask for it."""
    _ensure_cluster({"num_cpus": 2})
    yield


@pytest.fixture
def cluster_4cpu():
    """4 CPUs, 2 (declared) GPUs and 2 of resource 'Custom'."""
    _ensure_cluster({"num_cpus": 4, "num_gpus": 2, "resources": {"Custom": 2}})
    yield


@pytest.fixture(scope="module")
def private_node_index(tmp_path_factory):
    """Clusters record their nodes in this user's node index (what `oxray
    stop` stops): a private one keeps other test runs' `stop` off them."""
    old = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = str(tmp_path_factory.mktemp("raytmp"))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = old


@pytest.fixture
def make_cluster(shutdown_only, private_node_index):
    """Starts clusters (head first, then worker nodes) and stops them all,
    with the driver disconnected first, even when the test fails."""
    clusters = []

    def make(head, *workers, connect=True):
        from oxray.cluster_utils import Cluster

        c = Cluster()
        clusters.append(c)
        nodes = [c.add_node(**head)] + [c.add_node(**w) for w in workers]
        if connect:
            oxray.init(address=c.address)
            c.wait_for_nodes()
        return c, nodes

    try:
        yield make
    finally:
        errors = []
        try:
            oxray.shutdown()
        except Exception as e:
            errors.append(e)
        for c in clusters:
            try:
                c.shutdown()
            except Exception as e:  # stop the others all the same, then fail
                errors.append(e)
                for n in c.list_all_nodes():
                    n.kill_raylet()
        if errors:
            raise errors[0]


def run_driver(code, timeout=60, env=None):
    """Runs `code` as a separate driver program; returns the finished process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=REPO)


def run_on_terminal(args, **popen_kwargs):
    """Runs `args` with its stdout on a pseudo-terminal; returns (exit
    status, what it showed there, its stderr)."""
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(args, stdout=follower, stderr=subprocess.PIPE, text=True, **popen_kwargs)
        os.close(follower)
        follower = None
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not data:
                break
            chunks.append(data)
        _, err = proc.communicate(timeout=60)
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    return proc.returncode, b"".join(chunks).decode(), err


# Sessions (and so processes) created from here on are this test run's.
_RUN_STARTED = time.time()


def _session_of(pid, args):
    """The session directory an oxray process belongs to: its daemon's
    `--session-dir`, or the OXRAY_SESSION_DIR a worker inherits."""
    if "--session-dir" in args:
        return args[args.index("--session-dir") + 1] if args.index("--session-dir") + 1 < len(args) else None
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(b"OXRAY_SESSION_DIR="):
                    return item.split(b"=", 1)[1].decode()
    except OSError:
        pass
    return None


def live_processes():
    """(pid, command-line arguments) of every running process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if not process_gone(int(entry)):
            yield int(entry), args


def oxray_pids():
    """Pids of live oxray daemons, workers and dashboards that this test run started:
    those of sessions created since it began (or whose session directory
    is gone). A cluster of the user's own on this machine is never listed."""
    pids = []
    for pid, args in live_processes():
        entry = str(pid)
        joined = " ".join(args)
        is_daemon = (any(a.endswith("/oxray") or a == "oxray" for a in args[:1]) and "daemon" in args[1:2]) or (
            "run_command" in joined and "daemon" in args  # a wheel's daemon, run from the extension module
        )
        is_worker = "oxray._private.worker_main" in joined or "oxray._private.zygote" in joined
        is_dashboard = "oxray.dashboard" in joined
        if not (is_daemon or is_worker or is_dashboard):
            continue
        session = _session_of(entry, args)
        try:
            ours = session is None or os.stat(session).st_ctime >= _RUN_STARTED - 1
        except OSError:
            ours = True  # its session is gone: a leftover
        if ours:
            pids.append(int(entry))
    return pids


def process_gone(pid):
    """Whether `pid` has exited (a zombie counts: it runs no more)."""
    from oxray._private.node import _pid_alive

    return not _pid_alive(pid)


def wait_for(predicate, timeout=10.0, interval=0.05):
    """Polls `predicate` until true or `timeout`; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def pytest_sessionfinish(session, exitstatus):
    oxray.shutdown()
    left = wait_for(lambda: not oxray_pids(), timeout=10)
    if not left:
        pids = oxray_pids()
        for pid in pids:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        print(f"\nERROR: oxray processes left running after the tests: {pids}", file=sys.stderr)
        session.exitstatus = 1
