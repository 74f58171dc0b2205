"""The log files of the dashboard's node, as `oxray logs` and
`oxray.util.state.list_logs` see them (this module only adapts
`oxray.util.state.logs` to the dashboard's routes): the workers'
`logs/worker-<pid>.out` / `.err` (rotated as `.1`, `.2`, ...), submitted
jobs' `logs/job-driver-<id>.log`, the daemon's `daemon.out` / `.err` in
the session directory, and the other files under `logs/`.

A file is read only when its name is one `list_files` could list (a plain
name, not hidden) and its real path lies in its directory (no symbolic
link leads out of it)."""

import os

from oxray.util.state import logs as _state_logs

#: Lines a tail returns unless told (Ray's DEFAULT_LOG_LIMIT).
DEFAULT_LINES = 1000
#: The most bytes one tail reads from the end of a file.
MAX_TAIL_BYTES = 4 << 20


def _node(session_dir):
    return _state_logs.session_node(session_dir)


def _checked_path(node, filename):
    """The path of `filename` on `node`, or ValueError / FileNotFoundError."""
    if not filename or filename.startswith("."):
        raise ValueError(f"not a log file name: {filename!r}")
    path = _state_logs.path_of(node, filename)
    real_dir = os.path.realpath(os.path.dirname(path))
    if os.path.dirname(os.path.realpath(path)) != real_dir or not os.path.isfile(path):
        raise FileNotFoundError(f"no log file {filename!r}")
    return path


def categorized(session_dir):
    """The node's log file names by category (`worker_out`, `worker_err`,
    `driver`, `daemon`, `internal`), as Ray's `/api/v0/logs` answers."""
    node = _node(session_dir)
    out = {}
    for category, names in _state_logs.node_log_files(node).items():
        kept = [n for n in names if _readable(node, n)]
        if kept:
            out[category] = kept
    return out


def _readable(node, filename):
    try:
        _checked_path(node, filename)
    except (ValueError, OSError):
        return False
    return True


def list_files(session_dir):
    """Every log file of the node: name, category, size, modification time,
    and for a worker's, its pid, stream ("out"/"err") and rotation (0 for
    the live file); newest first."""
    node = _node(session_dir)
    out = []
    for category, names in _state_logs.node_log_files(node).items():
        for name in names:
            try:
                st = os.stat(_checked_path(node, name))
            except (ValueError, OSError):
                continue
            pid, stream, rotation = _state_logs.describe(name)
            out.append({"filename": name, "category": category, "size": st.st_size, "mtime": st.st_mtime,
                        "pid": pid, "stream": stream, "rotation": rotation})
    out.sort(key=lambda f: (-f["mtime"], f["filename"]))
    return out


def resolve(session_dir, filename):
    """The path of the node's log file `filename`; ValueError for a name
    that is not a log file's, FileNotFoundError when it is missing."""
    return _checked_path(_node(session_dir), filename)


def tail(session_dir, filename, lines=DEFAULT_LINES):
    """The last `lines` lines of a log file (all of it with lines < 0), as
    text; reads at most MAX_TAIL_BYTES from the end."""
    path = resolve(session_dir, filename)
    text, _ = _state_logs.tail_lines(path, -1 if lines is None else lines, "utf-8", "replace", MAX_TAIL_BYTES)
    return "".join(text)
