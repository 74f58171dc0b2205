"""Starting and stopping the dashboard process (what `oxray start --head`
and `oxray.init(include_dashboard=True)` call)."""

import importlib.util
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time

from oxray.dashboard import DEFAULT_HOST, DEFAULT_PORT, READY_FILE

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def is_loopback_host(host, resolve=True):
    """Whether `host` is this machine's loopback: "localhost", a loopback
    IP, or (with `resolve`) a name whose every address is one. ("0.0.0.0",
    "::" and "" are every interface, not loopback.)"""
    host = (host or "").strip().strip("[]")
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        pass
    if not resolve:
        return False
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0].split("%", 1)[0] for info in infos}
    try:
        return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)
    except ValueError:
        return False


def check_exposure(host, has_token):
    """Raises ValueError when a dashboard without a cluster token would
    listen beyond loopback: its Jobs API runs shell commands, so anyone who
    could reach it could run anything on this machine."""
    if has_token or is_loopback_host(host):
        return
    raise ValueError(
        f"refusing to start a dashboard on {host or '0.0.0.0'!r} without a cluster token: the cluster has no "
        "token (a cluster started by oxray.init() has none), so anyone who can reach that address could submit "
        "jobs, i.e. run shell commands on this machine. Keep the dashboard on 127.0.0.1 (the default; reach it "
        "from elsewhere through an SSH tunnel), or start a cluster that has a token with "
        f"`oxray start --head --dashboard-host {host or '0.0.0.0'}` (its dashboard asks for the token) and "
        "connect to it with oxray.init(address='auto')."
    )


class DashboardProcess:
    """A running dashboard process: its `pid`, `url`, `host`, `port` and
    `log_path`; `stop()` ends it."""

    def __init__(self, process, info, log_path):
        self.process = process
        self.pid = process.pid
        self.url = info["url"]
        self.host = info["host"]
        self.port = info["port"]
        self.log_path = log_path

    def stop(self, timeout=5.0):
        """Terminates the dashboard and waits for it (killing it after
        `timeout` seconds)."""
        stop_pid(self.process, timeout)


def stop_pid(process, timeout=5.0):
    """SIGTERM, wait, then SIGKILL a Popen."""
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
        except OSError:
            pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def is_dashboard_pid(pid):
    """Whether `pid` runs `python -m oxray.dashboard` (guards against a
    recycled pid before signalling it)."""
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except (OSError, ValueError):
        return False
    return b"oxray.dashboard" in args


def read_ready_file(session_dir):
    """Where the dashboard of `session_dir` listens (pid, host, port, url),
    or None when none runs there."""
    try:
        with open(os.path.join(session_dir, READY_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def start_dashboard(address, session_dir, host=None, port=None, token_file=None, watch_pid=None,
                    timeout=20.0):
    """Starts `python -m oxray.dashboard` for the cluster at `address` and
    waits until it listens. Its output goes to
    `<session_dir>/logs/dashboard.log`. Raises RuntimeError (with the
    log's end) when it cannot start, e.g. when its port is taken or aiohttp
    is missing; ValueError for a host beyond loopback without `token_file`
    (see `check_exposure`)."""
    host = DEFAULT_HOST if host is None else host
    port = DEFAULT_PORT if port is None else int(port)
    check_exposure(host, bool(token_file))
    if importlib.util.find_spec("aiohttp") is None:
        raise RuntimeError("the dashboard needs aiohttp: pip install 'oxray[default]'")
    from oxray._private.node import open_private

    logs = os.path.join(session_dir, "logs")
    os.makedirs(logs, mode=0o700, exist_ok=True)
    log_path = os.path.join(logs, "dashboard.log")
    try:
        os.remove(os.path.join(session_dir, READY_FILE))
    except OSError:
        pass
    args = [sys.executable, "-m", "oxray.dashboard", "--address", address, "--host", host, "--port", str(port),
            "--session-dir", session_dir]
    if token_file:
        args += ["--token-file", token_file]
    if watch_pid:
        args += ["--watch-pid", str(int(watch_pid))]
    env = dict(os.environ)
    # It imports the oxray this process runs, wherever that comes from.
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p] + [_PACKAGE_PARENT]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    for var in ("RAY_ADDRESS", "OXRAY_ADDRESS"):
        env.pop(var, None)
    with open_private(log_path, "ab") as log:
        process = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        info = read_ready_file(session_dir)
        if info and info.get("pid") == process.pid:
            return DashboardProcess(process, info, log_path)
        if process.poll() is not None or time.monotonic() > deadline:
            stop_pid(process, 1.0)
            raise RuntimeError(f"the dashboard did not start on {host}:{port}:\n{_tail(log_path)}")
        time.sleep(0.02)


def start_head_dashboard(address, session_dir, host, port, daemon_pid, index_file):
    """Starts the dashboard of a head started by `oxray start --head`
    (behind the cluster token in `session_dir/token`; it exits when the
    daemon `daemon_pid` does) and notes its pid in the node's index entry
    `index_file`, so that `oxray stop` stops it."""
    from oxray._private.node import write_private

    dashboard = start_dashboard(address, session_dir, host, port, token_file=os.path.join(session_dir, "token"),
                                watch_pid=daemon_pid)
    with open(index_file) as f:
        entry = json.load(f)
    entry["dashboard_pid"] = dashboard.pid
    write_private(index_file, json.dumps(entry))
    return dashboard


def signal_dashboards(nodes, sig=signal.SIGTERM):
    """Sends `sig` to the dashboard of each node index entry in `nodes`
    (when that pid still runs a dashboard); returns the pids signalled."""
    pids = []
    for n in nodes:
        pid = n.get("dashboard_pid")
        if pid and is_dashboard_pid(pid):
            try:
                os.kill(int(pid), sig)
                pids.append(int(pid))
            except OSError:
                pass
    return pids


def _tail(path, size=3000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
