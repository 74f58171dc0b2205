"""Worker log files, as Ray's `ray.util.state.list_logs` / `get_log`.

Each node keeps its workers' output in its session directory
(`<session_dir>/logs/worker-<pid>.out` / `.err`, see
`oxray._private.worker_logs`), and its daemon's in `daemon.out` /
`daemon.err`; submitted jobs' drivers write `logs/job-driver-<id>.log`.

A process connected by `oxray.init()` reads every node's logs through that
node's daemon, so the nodes of other hosts are covered too (the daemon
serves file names only, never paths, at most 4 MiB a read). A process that
is not connected (`oxray logs` on its own) reads the session directories of
this machine's nodes directly.

    from oxray.util.state import list_logs, get_log
    list_logs()                       # {"worker_out": [...], "worker_err": [...], "daemon": [...]}
    for chunk in get_log(actor_id=a._actor_id.hex(), tail=100):
        print(chunk, end="")

Which nodes: with `address` (`"auto"`, a head's HOST:PORT, or a session
directory), that cluster's nodes on this machine; else, in a process
connected by `oxray.init()`, the nodes of its cluster; else every oxray
node of this user on this machine (standing nodes, and the embedded
clusters of running drivers under the temp directory).
"""

import fnmatch
import os
import re
import tempfile
import time

from oxray._private import node as _node
from oxray.exceptions import RayError
from oxray._private.worker_logs import ACTOR_NAME_PREFIX, TASK_NAME_PREFIX

# The daemon's own output, kept in the session directory itself.
_DAEMON_FILES = ("daemon.out", "daemon.err")
_WORKER_FILE = re.compile(r"^worker-(\d+)\.(out|err)(?:\.(\d+))?$")
# How often `follow` looks for new lines (Ray's `_interval`).
DEFAULT_FOLLOW_INTERVAL_S = 0.5
# The most bytes one read asks for (what a node daemon serves at most).
_READ_BYTES = 4 << 20


class LocalFiles:
    """The log files of a node on this machine, read from its session
    directory with the rules its daemon serves them by (names only; plain
    files only: no link, FIFO or device)."""

    def __init__(self, session_dir):
        self.session_dir = session_dir

    def list(self):
        """[(name, size, modified time)] of every log file."""
        from oxray import _native

        return _native.session_log_files(self.session_dir)

    def read(self, name, offset, length):
        """(bytes from `offset`, at most `length`; the file's size; its
        inode). FileNotFoundError when there is no such file, ValueError
        for a name that is not a log file's, ConnectionError once the
        node's session has ended."""
        from oxray import _native

        try:
            return _native.read_session_log(self.session_dir, name, offset, length)
        except FileNotFoundError:
            if not os.path.isdir(self.session_dir):
                raise ConnectionError(f"the node's session ({self.session_dir}) has ended") from None
            raise

    def __repr__(self):
        return self.session_dir


class DaemonFiles:
    """The log files of any node of the cluster this process is connected
    to, read through the node's daemon (`address`, as the node table has
    it). FileNotFoundError for a file the node does not have; an unreachable
    node raises RaySystemError (the read waits 10 s at most)."""

    def __init__(self, address):
        self.address = address

    def list(self):
        from oxray import _native

        return _native.node_log_files(self.address)

    def read(self, name, offset, length):
        from oxray import _native

        return _native.read_node_log(self.address, name, offset, length)

    def __repr__(self):
        return f"through the daemon at {self.address}"


class LogNode(dict):
    """A node whose logs to look at: `node_id`, `node_ip`, `is_head`,
    `session_dir` (None for a node on another host) and `address` (its
    daemon's, when this process is connected to its cluster)."""

    @property
    def files(self):
        """How this process reads the node's logs (`LocalFiles` or
        `DaemonFiles`); None when it cannot."""
        if self.get("address") and self.get("alive", True):
            return DaemonFiles(self["address"])
        d = self.get("session_dir")
        if d and os.path.isdir(d) and os.access(d, os.R_OK | os.X_OK):
            return LocalFiles(d)
        return None

    @property
    def readable(self):
        """Whether this process can read the node's logs."""
        return self.files is not None

    @property
    def where(self):
        """Where its logs are read from, in words."""
        return repr(self.files) if self.files is not None else "unreadable from here"


def _read_text(path):
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def session_node(session_dir, node_ip=None, is_head=None):
    """The LogNode of the node whose session directory is `session_dir`."""
    return LogNode(node_id=_read_text(os.path.join(session_dir, "node_id")), node_ip=node_ip or "127.0.0.1",
                   is_head=is_head, session_dir=session_dir)


def _embedded_sessions():
    """Session directories of running embedded clusters (a driver's
    `oxray.init()`) in the default temp directory."""
    base = os.path.join(tempfile.gettempdir(), "oxray")
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    out = []
    for name in names:
        path = os.path.join(base, name)
        # `s-<driver pid>-...`: a running driver's cluster. (A standing
        # node's `h-` directory is found through the node index instead.)
        pid = name[2:].split("-", 1)[0]
        if not name.startswith("s-") or not pid.isdigit() or not _node._pid_alive(int(pid)):
            continue
        try:
            if os.stat(path).st_uid != os.getuid():
                continue
        except OSError:
            continue
        if os.path.exists(os.path.join(path, "daemon.sock")):
            out.append(path)
    return out


def _standing_nodes(head_address=None):
    """This user's standing nodes on this machine, those of the cluster
    whose head is `head_address` when given (head first)."""
    nodes = _node.local_nodes()
    if head_address is not None:
        wanted = {head_address}
        try:
            host, port = _node.split_host_port(head_address)
            import socket
            wanted.add(f"{socket.gethostbyname(host)}:{port}")
        except (ValueError, OSError):
            pass
        nodes = [n for n in nodes if n.get("head_address") in wanted]
    nodes.sort(key=lambda n: not n.get("is_head"))
    return [session_node(n["session_dir"], n.get("node_ip"), bool(n.get("is_head"))) for n in nodes]


def _connected_nodes():
    """The nodes of the cluster this process is connected to (this
    process's node first, then the head), each read through its daemon."""
    from oxray import _native
    from oxray._private import worker as _worker

    mine = _worker.session().context.get("node_id")
    out = []
    for info in _native.cluster_info():
        socket_path = _node.address_part(info.get("address"), "unix")
        session_dir = os.path.dirname(socket_path) if socket_path else None
        out.append(LogNode(node_id=info.get("node_id"), node_ip=info.get("ip") or "127.0.0.1",
                           is_head=bool(info.get("is_head")), session_dir=session_dir,
                           address=info.get("address"), alive=bool(info.get("alive", True))))
    out.sort(key=lambda n: (n["node_id"] != mine, not n["is_head"], not n["alive"]))
    return out


def log_nodes(address=None):
    """The nodes whose logs to look at (see the module's docstring); the
    first is the default node (the head, or the one this process uses)."""
    from oxray._private import worker as _worker

    if address is None and _worker.is_initialized():
        return _connected_nodes()
    if address is None:
        address = os.environ.get("OXRAY_ADDRESS") or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        standing = _standing_nodes()
        known = {n["session_dir"] for n in standing}
        return standing + [session_node(d, is_head=True) for d in _embedded_sessions() if d not in known]
    if address == "auto":
        try:
            with open(_node._head_address_file()) as f:
                address = f.read().strip()
        except OSError:
            raise ConnectionError("Could not find any running oxray instance (no `oxray start --head` "
                                  "on this machine)") from None
    if not address.startswith("/") and ":" in address:
        nodes = _standing_nodes(address)
        if not nodes:
            raise ConnectionError(f"no oxray node on this machine belongs to the cluster at {address}")
        return nodes
    session_dir = address if os.path.isdir(address) else os.path.dirname(address)
    if not os.path.exists(os.path.join(session_dir, "daemon.sock")):
        raise ConnectionError(f"no oxray cluster at {address!r}")
    for n in _node.local_nodes():
        if n.get("session_dir") == session_dir and n.get("head_address"):
            return _standing_nodes(n["head_address"])
    return [session_node(session_dir, is_head=True)]


def _select_nodes(nodes, node_id=None, node_ip=None):
    if node_id is not None:
        nodes = [n for n in nodes if n["node_id"] and n["node_id"].startswith(node_id)]
        if not nodes:
            raise ValueError(f"no node with id {node_id!r} among the oxray nodes in view")
    if node_ip is not None:
        nodes = [n for n in nodes if n["node_ip"] == node_ip]
        if not nodes:
            raise ValueError(f"no node with IP {node_ip!r} among this machine's oxray nodes")
    return nodes


def describe(name):
    """(pid, stream "out"/"err", rotation: 0 for the live file) of a worker
    log's name; Nones for another file."""
    m = _WORKER_FILE.match(name)
    if not m:
        return None, None, None
    return int(m.group(1)), m.group(2), int(m.group(3) or 0)


def category(name):
    """The category a log file's name puts it in: `worker_out`,
    `worker_err`, `daemon`, `driver` (a submitted job's) or `internal`."""
    m = _WORKER_FILE.match(name)
    if m:
        return f"worker_{m.group(2)}"
    if name in _DAEMON_FILES:
        return "daemon"
    if name.startswith("job-driver-"):
        return "driver"  # a submitted job's driver output, as Ray names it
    return "internal"


def _file_order(name):
    """Worker files by pid, then current file before its backups."""
    m = _WORKER_FILE.match(name)
    if m:
        return (0, int(m.group(1)), m.group(2), int(m.group(3) or 0))
    return (1, 0, name, 0)


def node_log_files(node, glob_filter=None):
    """{category: [file name]} of one readable node."""
    return categorize([name for name, _, _ in node.files.list()], glob_filter)


def categorize(names, glob_filter=None):
    """{category: [file name]} of the log file `names`, in `oxray logs`'
    order, those matching `glob_filter` when given."""
    if glob_filter:
        names = [n for n in names if fnmatch.fnmatchcase(n, glob_filter)]
    out = {}
    for name in sorted(names, key=_file_order):
        out.setdefault(category(name), []).append(name)
    return out


def list_logs(address=None, node_id=None, node_ip=None, glob_filter=None, timeout=30):
    """The log files of one node, by category (`worker_out`, `worker_err`,
    `daemon`, `driver` for submitted jobs), as Ray's `list_logs`. Without
    `node_id`/`node_ip`: the node this process is connected to, else the
    head of the local cluster. `glob_filter` keeps the names that match it
    (e.g. `"*worker*"`). `timeout` is accepted for compatibility."""
    nodes = _select_nodes(log_nodes(address), node_id, node_ip)
    if not nodes:
        return {}
    node = nodes[0]
    if not node.readable:
        raise ValueError(f"the logs of node {node['node_id']} ({node['node_ip']}) are on another host: connect to "
                         "its cluster (oxray.init(address=...)) to read them")
    return node_log_files(node, glob_filter)


# --- reading ---------------------------------------------------------------

def read_whole(files, name):
    """Every byte of the log file `name`, read in bounded pieces."""
    data, size, _ = files.read(name, 0, _READ_BYTES)
    parts = [data]
    offset = len(data)
    while data and offset < size:
        data, size, _ = files.read(name, offset, _READ_BYTES)
        parts.append(data)
        offset += len(data)
    return b"".join(parts)


def _backups(listed, name):
    """`name`'s rotated backups among the `listed` names, oldest first,
    then `name` itself."""
    found = []
    i = 1
    while f"{name}.{i}" in listed:
        found.append(f"{name}.{i}")
        i += 1
    return list(reversed(found)) + [name]


def _marker_id(line):
    return line.rstrip("\n").rsplit(" ", 1)[-1]


class _Selector:
    """Picks the lines of one actor or task out of a worker's log, by the
    marker lines the worker writes before them (see worker_logs). Without
    a target it passes every line."""

    def __init__(self, actor_id=None, task_id=None):
        self.actor_id = actor_id
        self.task_id = task_id
        self.active = actor_id is None and task_id is None

    def __call__(self, line):
        if line.startswith(ACTOR_NAME_PREFIX):
            if self.actor_id is not None:
                self.active = _marker_id(line) == self.actor_id
                return False
            if self.task_id is not None:
                self.active = False
                return False
            return True
        if line.startswith(TASK_NAME_PREFIX):
            if self.task_id is not None:
                self.active = _marker_id(line) == self.task_id
                return False
            return self.actor_id is None  # an actor's output, without its calls' markers
        return self.active


def _file_contains(files, name, needle):
    """Whether `needle` (bytes) occurs in the log file, read in blocks."""
    offset, tail = 0, b""
    while True:
        try:
            block, size, _ = files.read(name, offset, _READ_BYTES)
        except FileNotFoundError:
            return False
        if not block:
            return False
        if needle in tail + block:
            return True
        tail = block[-len(needle):]
        offset += len(block)
        if offset >= size:
            return False


def _find_worker_file(nodes, suffix, marker):
    """(node, name) of the worker log (current file) whose markers name the
    id `marker` (bytes: ":actor_name:... <id>" or ":task_name:... <id>")."""
    for node in nodes:
        files = node.files
        try:
            listed = files.list()
        except (OSError, RayError):  # a node that went away meanwhile has nothing to show
            continue
        # The newest files first: a task or actor seen lately.
        listed.sort(key=lambda f: -f[2])
        for name, _, _ in listed:
            m = _WORKER_FILE.match(name)
            if m and m.group(2) == suffix and _file_contains(files, name, marker):
                return node, f"worker-{m.group(1)}.{suffix}"
    return None, None


def _has_file(node, name, unreachable):
    """Whether `node` has the log file `name`; a node that does not answer
    has not, and is added to `unreachable`."""
    try:
        node.files.read(name, 0, 0)
        return True
    except FileNotFoundError:
        return False
    except (OSError, RayError):
        unreachable.append(node)
        return False


def _not_found(what, nodes, unreachable, hint=""):
    text = f"no {what} on {_nodes_text(nodes)}{hint}"
    if unreachable:
        text += f"; {_nodes_text(unreachable)} did not answer (is its daemon running?)"
    return ValueError(text)


def _resolve(nodes, filename, pid, actor_id, task_id, suffix):
    """(node, file name, selector, whether to read the backups too) of
    what to show."""
    readable = [n for n in nodes if n.readable]
    if not readable:
        where = ", ".join(f"{n['node_id']} ({n['node_ip']})" for n in nodes) or "none found"
        raise ValueError(f"no readable oxray node logs here (nodes: {where}); to read the logs of nodes on other "
                         "hosts, connect to their cluster (oxray.init(address=...))")
    unreachable = []
    if filename is not None:
        for node in readable:
            if _has_file(node, filename, unreachable):
                return node, filename, _Selector(), False
        raise _not_found(f"log file {filename!r}", readable, unreachable)
    if pid is not None:
        name = f"worker-{int(pid)}.{suffix}"
        for node in readable:
            if _has_file(node, name, unreachable):
                return node, name, _Selector(), False
        raise _not_found(f"log file {name}", readable, unreachable,
                         " (a worker's files appear with the first line it prints)")
    if actor_id is not None:
        kind, entity, hint = "actor", actor_id, "its worker's file appears with the first line it prints"
    elif task_id is not None:
        kind, entity, hint = "task", task_id, "a task's lines are logged only when it prints"
    else:
        raise ValueError("give a filename, pid, actor_id or task_id")
    node, name = _find_worker_file(readable, suffix, f" {entity}\n".encode())
    if name is None:
        raise ValueError(f"no {suffix} output of {kind} {entity} on {_nodes_text(readable)} ({hint})")
    return node, name, _Selector(**{f"{kind}_id": entity}), True


def _nodes_text(nodes):
    if len(nodes) == 1:
        return f"node {nodes[0]['node_id']}"
    if len(nodes) > 3:
        return f"{len(nodes)} nodes"
    return f"nodes {', '.join(str(n['node_id']) for n in nodes)}"


def tail_lines(files, name, tail, encoding="utf-8", errors="replace", max_bytes=None):
    """The last `tail` lines of a log file (every line with `tail` < 0), read
    from its end, and the file's size. With `max_bytes`, at most that many
    bytes from the end are read (a line cut there is dropped)."""
    _, end, _ = files.read(name, 0, 0)
    if tail == 0:
        return [], end
    floor = 0 if max_bytes is None else max(0, end - max_bytes)
    pos, blocks, newlines = end, [], 0
    while pos > floor and (tail < 0 or newlines <= tail):
        step = min(1 << 16, pos - floor)
        pos -= step
        block, _, _ = files.read(name, pos, step)
        blocks.append(block)
        newlines += block.count(b"\n")
    data = b"".join(reversed(blocks))
    if pos > 0 and (tail < 0 or newlines <= tail):
        data = data[data.find(b"\n") + 1:]  # the first line, cut by max_bytes
    lines = data.splitlines(keepends=True)
    if tail > 0:
        lines = lines[-tail:]
    return [line.decode(encoding, errors) for line in lines], end


def _read_lines(files, names, select, encoding, errors):
    """The selected lines of the log files `names` in order, and the size of
    the last."""
    out, size = [], 0
    for name in names:
        try:
            data = read_whole(files, name)
        except FileNotFoundError:
            continue
        size = len(data)
        for raw in data.splitlines(keepends=True):
            line = raw.decode(encoding, errors)
            if select(line):
                out.append(line)
    return out, size


def get_log(address=None, node_id=None, node_ip=None, filename=None, actor_id=None, task_id=None, pid=None,
            follow=False, tail=-1, timeout=30, suffix="out", encoding="utf-8", errors="strict",
            submission_id=None, attempt_number=0, _interval=None, filter_ansi_code=False):
    """Yields the text of a log (chunks of whole lines), as Ray's `get_log`:
    a file by `filename` (as `list_logs` names it), a worker's by `pid`, an
    actor's output by `actor_id` (hex), or one task's lines by `task_id`
    (hex; lines are attributed by the marker a worker writes before a task's
    first line). `suffix` picks stdout ("out") or stderr ("err"); `tail`
    keeps the last N lines (-1: all); `follow` keeps yielding new lines as
    they are written (until the node's session ends). `timeout`,
    `attempt_number` and `encoding` are Ray's; `submission_id` picks a
    submitted job's driver log (`job-driver-<id>.log`)."""
    if submission_id is not None and filename is None:
        filename = f"job-driver-{submission_id}.log"
    if suffix not in ("out", "err"):
        raise ValueError(f"suffix must be 'out' or 'err', got {suffix!r}")
    if actor_id is not None and not isinstance(actor_id, str):
        actor_id = actor_id.hex()
    if task_id is not None and not isinstance(task_id, str):
        task_id = task_id.hex()
    nodes = _select_nodes(log_nodes(address), node_id, node_ip)
    node, name, select, with_backups = _resolve(nodes, filename, pid, actor_id, task_id, suffix)
    return _generate(node.files, name, select, with_backups, follow, tail, encoding, errors, filter_ansi_code,
                     DEFAULT_FOLLOW_INTERVAL_S if _interval is None else _interval)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _generate(files, name, select, with_backups, follow, tail, encoding, errors, filter_ansi, interval):
    def emit(lines):
        text = "".join(lines)
        return _ANSI.sub("", text) if filter_ansi else text

    def picked(data):
        return [line for line in (raw.decode(encoding, errors) for raw in data.splitlines(keepends=True))
                if select(line)]

    # The file's identity before reading: a rotation from here on is seen.
    inode = files.read(name, 0, 0)[2] if follow else None
    plain = select.active and select.actor_id is None and select.task_id is None
    if plain and tail is not None and tail >= 0:
        lines, offset = tail_lines(files, name, tail, encoding, errors)
    else:
        names = _backups({n for n, _, _ in files.list()}, name) if with_backups else [name]
        lines, offset = _read_lines(files, names, select, encoding, errors)
        if tail is not None and tail >= 0:
            lines = lines[-tail:] if tail else []
    if lines:
        yield emit(lines)
    if not follow:
        return
    partial = b""
    while True:
        time.sleep(interval)
        try:
            data, size, current = files.read(name, offset, _READ_BYTES)
            if current != inode or size < offset:
                # Rotated: the rest of the old file (now `name.1`), then the
                # new one from its start.
                rest = b""
                try:
                    old, _, old_inode = files.read(f"{name}.1", offset, _READ_BYTES)
                    if old_inode == inode:
                        rest = old
                except FileNotFoundError:
                    pass
                rest = partial + rest
                partial = b""
                lines = picked(rest if rest.endswith(b"\n") or not rest else rest + b"\n")
                if lines:
                    yield emit(lines)
                inode, offset = current, 0
                data, size, _ = files.read(name, 0, _READ_BYTES)
        except FileNotFoundError:
            continue  # being rotated
        except (OSError, RayError):
            return  # the node's session ended (its daemon is gone)
        if not data:
            continue
        offset += len(data)
        data = partial + data
        cut = data.rfind(b"\n") + 1
        data, partial = data[:cut], data[cut:]
        lines = picked(data)
        if lines:
            yield emit(lines)
