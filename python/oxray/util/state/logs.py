"""Worker log files, as Ray's `ray.util.state.list_logs` / `get_log`.

Each node keeps its workers' output in its session directory
(`<session_dir>/logs/worker-<pid>.out` / `.err`, see
`oxray._private.worker_logs`), and its daemon's in `daemon.out` /
`daemon.err`; submitted jobs' drivers write `logs/job-driver-<id>.log`. oxray reads these files directly: the logs of the nodes whose
session directory this process can read (every node of a cluster on this
machine). Logs of nodes on other hosts are not fetched yet: those nodes are
listed as unreadable.

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
from oxray._private.worker_logs import ACTOR_NAME_PREFIX, TASK_NAME_PREFIX

# The daemon's own output, kept in the session directory itself.
_DAEMON_FILES = ("daemon.out", "daemon.err")
_WORKER_FILE = re.compile(r"^worker-(\d+)\.(out|err)(?:\.(\d+))?$")
# How often `follow` looks for new lines (Ray's `_interval`).
DEFAULT_FOLLOW_INTERVAL_S = 0.5


class LogNode(dict):
    """A node whose logs this process may read: `node_id`, `node_ip`,
    `is_head`, `session_dir` (None for a node on another host, whose logs
    are not fetched yet)."""

    @property
    def readable(self):
        """Whether this process can read the node's logs."""
        d = self.get("session_dir")
        return bool(d) and os.path.isdir(d) and os.access(d, os.R_OK | os.X_OK)

    @property
    def logs_dir(self):
        """`<session_dir>/logs` (it exists once a worker printed)."""
        return os.path.join(self["session_dir"], "logs")


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
    """The nodes of the cluster this process is connected to; a node's
    session directory is known when its daemon has a Unix socket here."""
    from oxray import _native
    from oxray._private import worker as _worker

    s = _worker.session()
    mine = s.context.get("session_dir")
    out = []
    for info in _native.cluster_info():
        session_dir = None
        for part in str(info.get("address") or "").split("|"):
            if part.startswith("unix:"):
                candidate = os.path.dirname(part[len("unix:"):])
                if os.path.isdir(candidate):
                    session_dir = candidate
        out.append(LogNode(node_id=info.get("node_id"), node_ip=info.get("ip") or "127.0.0.1",
                           is_head=bool(info.get("is_head")), session_dir=session_dir))
    if mine and not any(n["session_dir"] == mine for n in out):
        out.insert(0, session_node(mine))
    out.sort(key=lambda n: (n["session_dir"] != mine, not n["is_head"]))
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
            raise ValueError(f"no node with id {node_id!r} among this machine's oxray nodes")
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


def _category(name):
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
    names = []
    try:
        names += [n for n in os.listdir(node.logs_dir) if os.path.isfile(os.path.join(node.logs_dir, n))]
    except OSError:
        pass
    names += [n for n in _DAEMON_FILES if os.path.isfile(os.path.join(node["session_dir"], n))]
    if glob_filter:
        names = [n for n in names if fnmatch.fnmatchcase(n, glob_filter)]
    out = {}
    for name in sorted(names, key=_file_order):
        out.setdefault(_category(name), []).append(name)
    return out


def list_logs(address=None, node_id=None, node_ip=None, glob_filter=None, timeout=30):
    """The log files of one node, by category (`worker_out`, `worker_err`,
    `daemon`, `driver` for submitted jobs), as Ray's `list_logs`. Without `node_id`/`node_ip`: the node
    this process is connected to, else the head of the local cluster.
    `glob_filter` keeps the names that match it (e.g. `"*worker*"`).
    `timeout` is accepted for compatibility (nothing is fetched remotely)."""
    nodes = _select_nodes(log_nodes(address), node_id, node_ip)
    if not nodes:
        return {}
    node = nodes[0]
    if not node.readable:
        raise ValueError(f"the logs of node {node['node_id']} ({node['node_ip']}) are on another host: "
                         "oxray does not fetch remote nodes' logs yet")
    return node_log_files(node, glob_filter)


# --- reading ---------------------------------------------------------------

def path_of(node, filename):
    """Where the log file `filename` (a name as `node_log_files` lists it)
    of `node` is; ValueError for what is not a plain file name."""
    if not isinstance(filename, str) or os.path.basename(filename) != filename or filename in ("", ".", "..") \
            or "\0" in filename:
        raise ValueError(f"{filename!r} is not a log file name (names only, as `oxray logs` lists them)")
    if filename in _DAEMON_FILES:
        return os.path.join(node["session_dir"], filename)
    return os.path.join(node.logs_dir, filename)


def _backups(path):
    """`path`'s rotated backups, oldest first, then `path` itself."""
    found = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        found.append(f"{path}.{i}")
        i += 1
    return list(reversed(found)) + [path]


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


def _file_contains(path, needle):
    """Whether `needle` (bytes) occurs in the file, read in blocks."""
    try:
        with open(path, "rb") as f:
            tail = b""
            while True:
                block = f.read(1 << 20)
                if not block:
                    return False
                if needle in tail + block:
                    return True
                tail = block[-len(needle):]
    except OSError:
        return False


def _find_worker_file(nodes, suffix, marker):
    """(node, path) of the worker log (current file) whose markers name the
    id `marker` (bytes: ":actor_name:... <id>" or ":task_name:... <id>")."""
    for node in nodes:
        if not node.readable:
            continue
        try:
            names = os.listdir(node.logs_dir)
        except OSError:
            continue
        # The newest files first: a task or actor seen lately.
        names.sort(key=lambda n: -_mtime(os.path.join(node.logs_dir, n)))
        for name in names:
            m = _WORKER_FILE.match(name)
            if not m or m.group(2) != suffix:
                continue
            path = os.path.join(node.logs_dir, name)
            if _file_contains(path, marker):
                current = os.path.join(node.logs_dir, f"worker-{m.group(1)}.{suffix}")
                return node, current
    return None, None


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _resolve(nodes, filename, pid, actor_id, task_id, suffix):
    """(path, selector, whether to read the backups too) of what to show."""
    readable = [n for n in nodes if n.readable]
    if not readable:
        where = ", ".join(f"{n['node_id']} ({n['node_ip']})" for n in nodes) or "none found"
        raise ValueError(f"no readable oxray node logs here (nodes: {where}); logs of nodes on other hosts "
                         "are not fetched yet")
    if filename is not None:
        for node in readable:
            path = path_of(node, filename)
            if os.path.isfile(path):
                return path, _Selector(), False
        raise ValueError(f"no log file {filename!r} on {_nodes_text(readable)}")
    if pid is not None:
        name = f"worker-{int(pid)}.{suffix}"
        for node in readable:
            path = os.path.join(node.logs_dir, name)
            if os.path.isfile(path):
                return path, _Selector(), False
        raise ValueError(f"no log file {name} on {_nodes_text(readable)} (a worker's files appear with the "
                         "first line it prints)")
    if actor_id is not None:
        _, path = _find_worker_file(readable, suffix, f" {actor_id}\n".encode())
        if path is None:
            raise ValueError(f"no {suffix} output of actor {actor_id} on {_nodes_text(readable)} (its worker's "
                             "file appears with the first line it prints)")
        return path, _Selector(actor_id=actor_id), True
    if task_id is not None:
        _, path = _find_worker_file(readable, suffix, f" {task_id}\n".encode())
        if path is None:
            raise ValueError(f"no {suffix} output of task {task_id} on {_nodes_text(readable)} (a task's lines "
                             "are logged only when it prints)")
        return path, _Selector(task_id=task_id), True
    raise ValueError("give a filename, pid, actor_id or task_id")


def _nodes_text(nodes):
    if len(nodes) == 1:
        return f"node {nodes[0]['node_id']}"
    if len(nodes) > 3:
        return f"{len(nodes)} nodes"
    return f"nodes {', '.join(str(n['node_id']) for n in nodes)}"


def tail_lines(path, tail, encoding="utf-8", errors="replace", max_bytes=None):
    """The last `tail` lines of a file (every line with `tail` < 0), read
    from its end, and the file's size. With `max_bytes`, at most that many
    bytes from the end are read (a line cut there is dropped)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        if tail == 0:
            return [], end
        floor = 0 if max_bytes is None else max(0, end - max_bytes)
        pos, blocks, newlines = end, [], 0
        while pos > floor and (tail < 0 or newlines <= tail):
            step = min(1 << 16, pos - floor)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            blocks.append(block)
            newlines += block.count(b"\n")
    data = b"".join(reversed(blocks))
    if pos > 0 and (tail < 0 or newlines <= tail):
        data = data[data.find(b"\n") + 1:]  # the first line, cut by max_bytes
    lines = data.splitlines(keepends=True)
    if tail > 0:
        lines = lines[-tail:]
    return [line.decode(encoding, errors) for line in lines], end


def _read_lines(paths, select, encoding, errors):
    """The selected lines of `paths` in order, and the size of the last."""
    out, size = [], 0
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
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
    path, select, with_backups = _resolve(nodes, filename, pid, actor_id, task_id, suffix)
    return _generate(path, select, with_backups, follow, tail, encoding, errors, filter_ansi_code,
                     DEFAULT_FOLLOW_INTERVAL_S if _interval is None else _interval)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _generate(path, select, with_backups, follow, tail, encoding, errors, filter_ansi, interval):
    plain = select.active and select.actor_id is None and select.task_id is None
    if plain and tail is not None and tail >= 0:
        lines, offset = tail_lines(path, tail, encoding, errors)
    else:
        lines, offset = _read_lines(_backups(path) if with_backups else [path], select, encoding, errors)
        if tail is not None and tail >= 0:
            lines = lines[-tail:] if tail else []
    if lines:
        text = "".join(lines)
        yield _ANSI.sub("", text) if filter_ansi else text
    if not follow:
        return
    inode = _inode(path)
    partial = b""
    while os.path.isdir(os.path.dirname(path)):
        time.sleep(interval)
        current = _inode(path)
        if current is None:
            continue
        if current != inode or os.path.getsize(path) < offset:
            inode, offset = current, 0  # rotated: the new file from its start
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            continue
        if not data:
            continue
        offset += len(data)
        data = partial + data
        cut = data.rfind(b"\n") + 1
        data, partial = data[:cut], data[cut:]
        picked = [line for line in (raw.decode(encoding, errors) for raw in data.splitlines(keepends=True))
                  if select(line)]
        if picked:
            text = "".join(picked)
            yield _ANSI.sub("", text) if filter_ansi else text


def _inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
