"""The log files of the cluster's nodes, as `oxray logs` and
`oxray.util.state.list_logs` see them (this module only adapts
`oxray.util.state.logs` to the dashboard's routes): the workers'
`logs/worker-<pid>.out` / `.err` (rotated as `.1`, `.2`, ...), submitted
jobs' `logs/job-driver-<id>.log`, the daemon's `daemon.out` / `.err` in
the session directory, and the other files under `logs/`.

The dashboard is connected to its cluster, so it reads any node's files
through that node's daemon, which serves plain names only (not hidden, no
symbolic links) and at most 4 MiB a read."""

from oxray.util.state import logs as _state_logs

#: Lines a tail returns unless told (Ray's DEFAULT_LOG_LIMIT).
DEFAULT_LINES = 1000
#: The most bytes one tail reads from the end of a file.
MAX_TAIL_BYTES = 4 << 20


def node(node_id=None):
    """The LogNode of the node `node_id` (a prefix will do), or of the
    dashboard's own node; ValueError for a node the cluster does not have
    or whose logs cannot be read (a dead node's)."""
    nodes = _state_logs._select_nodes(_state_logs.log_nodes(), node_id or None)
    if not nodes:
        raise ValueError("the cluster has no node")
    if not nodes[0].readable:
        raise ValueError(f"the logs of node {nodes[0]['node_id']} ({nodes[0]['node_ip']}) cannot be read: "
                         "the node is dead")
    return nodes[0]


def categorized(log_node):
    """The node's log file names by category (`worker_out`, `worker_err`,
    `driver`, `daemon`, `internal`), as Ray's `/api/v0/logs` answers."""
    return _state_logs.node_log_files(log_node)


def list_files(log_node):
    """Every log file of the node: name, category, size, modification time,
    and for a worker's, its pid, stream ("out"/"err") and rotation (0 for
    the live file); newest first."""
    out = []
    for name, size, mtime in log_node.files.list():
        pid, stream, rotation = _state_logs.describe(name)
        out.append({"filename": name, "category": _state_logs.category(name), "size": size, "mtime": mtime,
                    "pid": pid, "stream": stream, "rotation": rotation})
    out.sort(key=lambda f: (-f["mtime"], f["filename"]))
    return out


def tail(log_node, filename, lines=DEFAULT_LINES):
    """The last `lines` lines of a log file (all of it with lines < 0), as
    text; reads at most MAX_TAIL_BYTES from the end. ValueError for a name
    that is not a log file's, FileNotFoundError when it is missing."""
    text, _ = _state_logs.tail_lines(log_node.files, filename, -1 if lines is None else lines, "utf-8", "replace",
                                     MAX_TAIL_BYTES)
    return "".join(text)
