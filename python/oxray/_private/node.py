"""Starting the daemon of an embedded local cluster, and what this machine
has to offer it."""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def daemon_binary():
    """Path of the `oxray` daemon binary shipped with the package."""
    candidates = [
        os.environ.get("OXRAY_DAEMON_BIN"),
        os.path.join(_PACKAGE_DIR, "_bin", "oxray"),
    ]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise RuntimeError(
        "cannot find the oxray daemon binary (looked in "
        f"{os.path.join(_PACKAGE_DIR, '_bin')}); build it with scripts/setup.sh "
        "or point OXRAY_DAEMON_BIN at it"
    )


def detect_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def detect_gpus():
    """GPUs visible to this process: CUDA_VISIBLE_DEVICES when set, else what
    nvidia-smi lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [x for x in visible.split(",") if x.strip() and x.strip() != "-1"]
        return len(ids)
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        out = subprocess.run([smi, "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    if out.returncode != 0:
        return 0
    return len([line for line in out.stdout.splitlines() if line.strip()])


def total_memory_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_sessions(base):
    """Removes what a killed driver's cluster left behind: its session
    directory and its shared-memory file."""
    for directory, prefix in ((base, "s-"), ("/dev/shm", "oxray-s-")):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if not name.startswith(prefix):
                continue
            pid = name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                path = os.path.join(directory, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.remove(path)
                    except OSError:
                        pass


def new_session_dir(kind="s"):
    """A fresh session directory. `kind` is "s" for a driver's embedded
    cluster (removed once that driver is gone) or "h" for a standing head
    (removed by `oxray stop`)."""
    base = os.path.join(tempfile.gettempdir(), "oxray")
    os.makedirs(base, exist_ok=True)
    _remove_stale_sessions(base)
    path = os.path.join(base, f"{kind}-{os.getpid()}-{secrets.token_hex(3)}")
    os.makedirs(path)
    return path


HEAD_ADDRESS_FILE = os.path.join(tempfile.gettempdir(), "oxray", "head_address")


def resolve_address(address):
    """The daemon socket of an existing cluster: `auto` (the head started by
    `oxray start --head`), a session directory, or a socket path."""
    if address == "auto":
        try:
            with open(HEAD_ADDRESS_FILE) as f:
                address = f.read().strip()
        except OSError:
            raise ConnectionError(
                "Could not find any running oxray instance. Start one with `oxray start --head`, or "
                "call oxray.init() without an address to start a local cluster."
            ) from None
    path = os.path.join(address, "daemon.sock") if os.path.isdir(address) else address
    if not os.path.exists(path):
        raise ConnectionError(f"no oxray cluster at {address!r} (no daemon socket at {path})")
    return path


class LocalDaemon:
    """A daemon process started by this process: the embedded cluster of a
    driver (`owned`: it stops when the driver exits), or a head started by
    `oxray start --head`."""

    def __init__(self, session_dir, resources, prestart_workers, owned=True, spill_dir=None):
        self.session_dir = session_dir
        self.socket_path = os.path.join(session_dir, "daemon.sock")
        args = [daemon_binary(), "daemon", "--session-dir", session_dir,
                "--python", sys.executable,
                "--prestart-workers", str(prestart_workers),
                "--object-store-memory", str(int(resources.get("object_store_memory", 1 << 30)))]
        spill_dir = spill_dir or os.environ.get("OXRAY_SPILL_DIR")
        if spill_dir:
            args += ["--spill-dir", spill_dir]
        if owned:
            args += ["--owner-pid", str(os.getpid())]
        for name, amount in resources.items():
            args += ["--resource", f"{name}={amount!r}"]
        env = dict(os.environ)
        # Workers import what the driver can import (user modules included).
        paths = [p for p in sys.path if p]
        if _PACKAGE_DIR not in paths:
            paths.insert(0, os.path.dirname(_PACKAGE_DIR))
        env["PYTHONPATH"] = os.pathsep.join([os.getcwd()] + paths)
        self.log_path = os.path.join(session_dir, "daemon.err")
        self._err = open(self.log_path, "wb")
        # A head outlives this process: its output goes to a file.
        out = None if owned else open(os.path.join(session_dir, "daemon.out"), "wb")
        self.process = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=self._err, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while not os.path.exists(self.socket_path):
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"the oxray daemon exited with code {code} during start-up:\n{self._stderr()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the oxray daemon did not start within {timeout:.0f}s:\n{self._stderr()}")
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def _stderr(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=5.0):
        """Waits for the daemon to exit (it stops itself on shutdown), killing
        it if it does not."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._err.close()
        shutil.rmtree(self.session_dir, ignore_errors=True)
