"""The workers' log files under `<session_dir>/logs/`: `worker-<pid>.out`
and `worker-<pid>.err`, rotated as `.1`, `.2`, ... Only files named
`worker-*` directly in that directory are ever listed or read."""

import os
import re

#: What a worker log's name looks like (no path separators, nothing hidden).
LOG_NAME = re.compile(r"^worker-[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_PID_STREAM = re.compile(r"^worker-(\d+)\.(out|err)(?:\.(\d+))?$")
#: Lines a tail returns unless told (Ray's DEFAULT_LOG_LIMIT).
DEFAULT_LINES = 1000
#: The most bytes one tail reads from the end of a file.
MAX_TAIL_BYTES = 4 << 20


def describe(filename):
    """(pid, stream, rotation) of a worker log's name; Nones when the name
    does not say."""
    m = _PID_STREAM.match(filename)
    if not m:
        return None, None, None
    return int(m.group(1)), m.group(2), int(m.group(3)) if m.group(3) else 0


def list_files(logs_dir):
    """Every worker log file: name, size, modification time, pid, stream
    ("out"/"err") and rotation (0 for the live file), newest first."""
    try:
        names = os.listdir(logs_dir)
    except OSError:
        return []
    out = []
    for name in names:
        if not LOG_NAME.match(name):
            continue
        try:
            st = os.stat(os.path.join(logs_dir, name))
        except OSError:
            continue
        if not os.path.isfile(os.path.join(logs_dir, name)):
            continue
        pid, stream, rotation = describe(name)
        out.append({"filename": name, "size": st.st_size, "mtime": st.st_mtime, "pid": pid, "stream": stream,
                    "rotation": rotation})
    out.sort(key=lambda f: (-f["mtime"], f["filename"]))
    return out


def categorized(logs_dir):
    """The files by Ray's log categories (`worker_out`, `worker_err`, and
    `worker` for others), as Ray's `/api/v0/logs` answers."""
    out = {}
    for f in sorted(list_files(logs_dir), key=lambda f: f["filename"]):
        key = f"worker_{f['stream']}" if f["stream"] else "worker"
        out.setdefault(key, []).append(f["filename"])
    return out


def resolve(logs_dir, filename):
    """The path of worker log `filename` in `logs_dir`; ValueError for a
    name that is not a worker log, FileNotFoundError when it is missing."""
    if not filename or not LOG_NAME.match(filename):
        raise ValueError(f"not a worker log file name: {filename!r}")
    path = os.path.join(logs_dir, filename)
    real_dir = os.path.realpath(logs_dir)
    if os.path.dirname(os.path.realpath(path)) != real_dir or not os.path.isfile(path):
        raise FileNotFoundError(f"no log file {filename!r}")
    return path


def tail(logs_dir, filename, lines=DEFAULT_LINES):
    """The last `lines` lines of a worker log (all of it with lines < 0),
    as text; reads at most MAX_TAIL_BYTES from the end."""
    path = resolve(logs_dir, filename)
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        start = max(0, size - MAX_TAIL_BYTES)
        f.seek(start)
        data = f.read()
    if start:
        data = data[data.find(b"\n") + 1:]  # drop the cut first line
    text = data.decode("utf-8", "replace")
    if lines is not None and lines >= 0:
        parts = text.splitlines(keepends=True)
        text = "".join(parts[-lines:]) if lines else ""
    return text
