"""Starting the daemon of an embedded local cluster, and what this machine
has to offer it."""

import glob
import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Runs the daemon built into the extension module, loaded by path so that
# the daemon's process does not import the whole package.
_RUN_FROM_MODULE = (
    "import sys, importlib.machinery as m, importlib.util as u; "
    "s = u.spec_from_file_location('oxray._native', sys.argv[1], "
    "loader=m.ExtensionFileLoader('oxray._native', sys.argv[1])); "
    "n = u.module_from_spec(s); s.loader.exec_module(n); n.run_command(sys.argv[2:])"
)


def daemon_command():
    """The command that runs `oxray ...`: `OXRAY_DAEMON_BIN`, or the binary
    scripts/setup.sh builds beside the package, or else (an installed wheel)
    the daemon built into the extension module, run by this interpreter."""
    for candidate in (os.environ.get("OXRAY_DAEMON_BIN"), os.path.join(_PACKAGE_DIR, "_bin", "oxray")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return [candidate]
    from oxray import _native

    return [sys.executable, "-S", "-c", _RUN_FROM_MODULE, _native.__file__]


def detect_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _nvidia_smi(query):
    """One line per GPU of `nvidia-smi --query-gpu=<query>`; empty without
    nvidia-smi or when it fails."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, f"--query-gpu={query}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def detect_gpus():
    """GPUs visible to this process: CUDA_VISIBLE_DEVICES when set, else what
    nvidia-smi lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [x for x in visible.split(",") if x.strip() and x.strip() != "-1"]
        return len(ids)
    return len(_nvidia_smi("index"))


# How Ray names an NVIDIA GPU's accelerator type: the first upper-case
# word after the vendor ("NVIDIA A100-SXM4-40GB" is A100, "Tesla
# V100-SXM2-16GB" is V100).
_NVIDIA_GPU_NAME = re.compile(r"\w+\s+([A-Z0-9]+)")


def accelerator_type_of(gpu_name):
    """Ray's accelerator type for a GPU model name (None when it has none)."""
    match = _NVIDIA_GPU_NAME.match(gpu_name or "")
    return match.group(1) if match else None


def detect_accelerator_type():
    """The accelerator type of this host's first GPU, as nvidia-smi names
    it (None without one)."""
    names = _nvidia_smi("name")
    return accelerator_type_of(names[0]) if names else None


def meminfo():
    """The fields of /proc/meminfo in bytes ({} where it cannot be read)."""
    fields = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    fields[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        pass
    return fields


def total_memory_bytes():
    """This host's memory (8 GiB when /proc/meminfo cannot be read)."""
    return meminfo().get("MemTotal") or 8 << 30


def _pid_alive(pid):
    """Whether `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
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


def new_session_dir(kind="s", base=None):
    """A fresh session directory under `base` (`init`'s `_temp_dir`, by
    default the temp directory). `kind` is "s" for a driver's embedded
    cluster (removed once that driver is gone) or "h" for a standing head
    (removed by `oxray stop`)."""
    base = os.path.join(base or tempfile.gettempdir(), "oxray")
    os.makedirs(base, exist_ok=True)
    _remove_stale_sessions(base)
    path = os.path.join(base, f"{kind}-{os.getpid()}-{secrets.token_hex(3)}")
    os.makedirs(path, mode=0o700)
    return path


def user_dir():
    """This user's private directory for what processes of the machine
    must find: the standing head's address and the nodes started here
    (`$RAY_TMPDIR` or the temp directory, then `oxray-<uid>`). Created
    0700; refused when another user owns it or others may write it."""
    base = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    path = os.path.join(base, f"oxray-{os.getuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(
            f"{path} is not a private directory of this user (owner uid {st.st_uid}, mode "
            f"{oct(st.st_mode & 0o777)}); remove it, or set RAY_TMPDIR elsewhere"
        )
    return path


def _head_address_file():
    return os.path.join(user_dir(), "head_address")


def write_private(path, text):
    """Writes a file readable by this user only."""
    with open_private(path, "w") as f:
        f.write(text)


def open_private(path, mode="wb"):
    """Opens a new file (truncating an old one) that only this user may
    read: logs and tokens are 0600 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
    return os.fdopen(fd, mode)


def new_token():
    """A fresh cluster token."""
    return secrets.token_urlsafe(32)


def _nodes_dir():
    path = os.path.join(user_dir(), "nodes")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def record_node(daemon, head_address, is_head):
    """Lists a standing node in this user's node index, so that drivers and
    `oxray stop` on this machine find it."""
    entry = {"pid": daemon.process.pid, "session_dir": daemon.session_dir, "socket": daemon.socket_path,
             "node_ip": daemon.node_ip, "head_address": head_address, "is_head": is_head,
             "address": daemon.address}
    path = os.path.join(_nodes_dir(), f"{daemon.process.pid}.json")
    write_private(path, json.dumps(entry))
    return path


def remove_node_files(session_dir):
    """Removes a stopped node's session directory and shared-memory file
    (a daemon that was killed could not remove them itself)."""
    if not session_dir:
        return
    shutil.rmtree(session_dir, ignore_errors=True)
    try:
        os.remove(os.path.join("/dev/shm", "oxray-" + os.path.basename(session_dir)))
    except OSError:
        pass


def local_nodes():
    """The standing nodes started on this machine by this user (stale
    entries of dead daemons are removed)."""
    out = []
    for path in sorted(glob.glob(os.path.join(_nodes_dir(), "*.json"))):
        try:
            with open(path) as f:
                entry = json.load(f)
        except (OSError, ValueError):
            continue
        if not _pid_alive(int(entry.get("pid", 0))) or not os.path.exists(entry.get("socket", "")):
            # A node that died without stopping: what it left goes too.
            remove_node_files(entry.get("session_dir", ""))
            try:
                os.remove(path)
            except OSError:
                pass
            continue
        entry["index_file"] = path
        out.append(entry)
    return out


def _local_ip_towards(host, port):
    """The IP this machine uses to reach host:port (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, int(port)))
            return s.getsockname()[0]
    except OSError:
        return None


def address_part(address, scheme):
    """The `scheme` part ("tcp" or "unix") of a process's address as the
    runtime writes it (`tcp:IP:PORT|unix:PATH`), without its prefix; None
    when it has none."""
    prefix = scheme + ":"
    for part in (address or "").split("|"):
        if part.startswith(prefix):
            return part[len(prefix):]
    return None


def split_host_port(address):
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"invalid cluster address {address!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def find_local_node(head_address):
    """The node on this machine that belongs to the cluster whose head is
    at `head_address` (HOST:PORT): the node whose IP this machine uses to
    reach the head, the head itself first."""
    host, port = split_host_port(head_address)
    try:
        host_ip = socket.gethostbyname(host)
    except OSError:
        host_ip = host
    wanted = f"{host_ip}:{port}"
    members = [n for n in local_nodes() if n.get("head_address") in (wanted, head_address)]
    if not members:
        raise ConnectionError(
            f"no oxray node on this machine belongs to the cluster at {head_address}. Start one with "
            f"`oxray start --address {head_address}` (or `oxray start --head` for a new cluster), then connect."
        )
    mine = _local_ip_towards(host_ip, port)
    members.sort(key=lambda n: (n.get("node_ip") != mine, not n.get("is_head")))
    return members[0]


def resolve_address(address):
    """(daemon socket, node IP) of the cluster at `address`: `auto` (the
    head started by `oxray start --head`), HOST:PORT of a cluster's head, a
    session directory, or a socket path."""
    if address == "auto":
        try:
            with open(_head_address_file()) as f:
                address = f.read().strip()
        except OSError:
            raise ConnectionError(
                "Could not find any running oxray instance. Start one with `oxray start --head`, or "
                "call oxray.init() without an address to start a local cluster."
            ) from None
    if address.startswith("ray://"):
        raise ValueError("Ray Client addresses (ray://) are not supported by oxray; connect to HOST:PORT instead")
    if not address.startswith("/") and ":" in address:
        node = find_local_node(address)
        return node["socket"], node.get("node_ip")
    path = os.path.join(address, "daemon.sock") if os.path.isdir(address) else address
    if not os.path.exists(path):
        raise ConnectionError(f"no oxray cluster at {address!r} (no daemon socket at {path})")
    node_ip = None
    for n in local_nodes():
        if n.get("socket") == path:
            node_ip = n.get("node_ip")
    return path, node_ip


class LocalDaemon:
    """A daemon process started by this process: the embedded cluster of a
    driver (`owned`: it stops when the driver exits), or a standing node
    started by `oxray start` or `cluster_utils.Cluster`.

    A node of a multi-node cluster gets `node_ip` (it listens there on
    TCP, on `port`, 0 for any) and the cluster `token`; `head_address`
    makes it join that head instead of being one. `env_vars` are set for
    the daemon and so for every worker of the node."""

    def __init__(self, session_dir, resources, prestart_workers, owned=True, spill_dir=None,
                 node_ip=None, port=0, head_address=None, token=None, health_port=None, journal=None,
                 env_vars=None, metrics_port=None):
        self.session_dir = session_dir
        self.socket_path = os.path.join(session_dir, "daemon.sock")
        self.node_ip = node_ip
        self.address = None
        args = [*daemon_command(), "daemon", "--session-dir", session_dir,
                "--python", sys.executable,
                "--prestart-workers", str(prestart_workers),
                "--object-store-memory", str(int(resources.get("object_store_memory", 1 << 30)))]
        spill_dir = spill_dir or os.environ.get("OXRAY_SPILL_DIR")
        if spill_dir:
            args += ["--spill-dir", spill_dir]
        if owned:
            args += ["--owner-pid", str(os.getpid())]
        if node_ip:
            args += ["--node-ip", node_ip, "--port", str(int(port or 0))]
            if head_address:
                args += ["--head-address", head_address]
            elif journal:
                args += ["--journal", journal]
        if health_port is not None:
            args += ["--health-port", str(int(health_port))]
        if metrics_port is not None:
            args += ["--metrics-port", str(int(metrics_port))]
        for name, amount in resources.items():
            args += ["--resource", f"{name}={amount!r}"]
        env = {**os.environ, **(env_vars or {})}
        if node_ip:
            env["OXRAY_AUTH_TOKEN"] = token or ""
        # Workers import what the driver can import (user modules included).
        paths = [p for p in sys.path if p]
        if _PACKAGE_DIR not in paths:
            paths.insert(0, os.path.dirname(_PACKAGE_DIR))
        env["PYTHONPATH"] = os.pathsep.join([os.getcwd()] + paths)
        self.log_path = os.path.join(session_dir, "daemon.err")
        self._err = open_private(self.log_path)
        # A standing node outlives this process: its output goes to a file.
        out = None if owned else open_private(os.path.join(session_dir, "daemon.out"))
        self.process = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=self._err, start_new_session=True)
        self._wait_ready()
        if node_ip:
            with open(os.path.join(session_dir, "node_address")) as f:
                self.address = f.read().strip()

    @property
    def tcp_address(self):
        """HOST:PORT where other nodes reach this daemon (multi-node only)."""
        return address_part(self.address, "tcp")

    def _wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while not os.path.exists(self.socket_path):
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"the oxray daemon exited with code {code} during start-up:\n{self._stderr()}")
            if time.monotonic() > deadline:
                self.process.kill()
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
        remove_node_files(self.session_dir)
