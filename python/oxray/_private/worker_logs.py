"""Per-worker log files: what a worker prints, kept in its node's session
directory as Ray keeps it (`<session_dir>/logs/worker-<pid>.out` and
`worker-<pid>.err`), besides being relayed to the driver.

Each line is written once, without the `(f pid=...)` prefix the relayed copy
carries. Before the first line a task or actor prints, a marker line names
it, as Ray's worker logs do (`:task_name:f`, `:actor_name:Counter`), here
followed by its id, so that `oxray logs --task-id` / `--actor-id` can pick
out its lines:

    :actor_name:Counter 3f2a...   (once, before the actor's first line)
    :task_name:f 9c1e...          (before a task's first line)

Nothing is written for a task that prints nothing: the files are opened on
the first line a worker prints, so the task path costs nothing more.

Files grow to `OXRAY_LOG_ROTATE_BYTES` (or Ray's `RAY_ROTATION_MAX_BYTES`;
100 MiB by default) and are then rotated as Python's RotatingFileHandler
names them (`.1` is the newest backup), keeping
`OXRAY_LOG_ROTATE_BACKUP_COUNT` (or `RAY_ROTATION_BACKUP_COUNT`; 5) backups.
Logs are private: the `logs` directory is 0700 and every file 0600."""

import os

from oxray._private import worker as _worker

# Ray's magic tokens (ray_constants.LOG_PREFIX_TASK_NAME / _ACTOR_NAME).
TASK_NAME_PREFIX = ":task_name:"
ACTOR_NAME_PREFIX = ":actor_name:"
# The line a tqdm_ray bar prints for each update: relayed to the driver,
# which draws the bar, but kept out of the files (it is not the user's text).
TQDM_MAGIC = "__ray_tqdm_magic_token__"

DEFAULT_ROTATE_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUP_COUNT = 5


def _env_int(names, default):
    """The first of the environment variables `names` that holds an integer."""
    for name in names:
        value = os.environ.get(name)
        if value is None or not value.strip():
            continue
        try:
            return int(value)
        except ValueError:
            continue
    return default


def rotation_settings():
    """(max bytes per file, backups kept): oxray's variables first, then Ray's."""
    max_bytes = _env_int(("OXRAY_LOG_ROTATE_BYTES", "RAY_ROTATION_MAX_BYTES"), DEFAULT_ROTATE_BYTES)
    backups = _env_int(("OXRAY_LOG_ROTATE_BACKUP_COUNT", "RAY_ROTATION_BACKUP_COUNT"), DEFAULT_BACKUP_COUNT)
    return max_bytes, max(0, backups)


def logs_dir(session_dir):
    """`<session_dir>/logs`, created private (0700) when missing."""
    path = os.path.join(session_dir, "logs")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    return path


def worker_log_name(pid, suffix):
    """The file name of a worker's log: `worker-<pid>.out` or `.err`."""
    return f"worker-{pid}.{suffix}"


class WorkerLog:
    """One of a worker's two log files (stdout's or stderr's), written by its
    `PrefixedStream` under that stream's lock (so no lock of its own)."""

    def __init__(self, session_dir, pid, suffix, executor):
        self._session_dir = session_dir
        self._pid = pid
        self._suffix = suffix
        self._executor = executor
        self._fd = None
        self._size = 0
        self._path = None
        self._max_bytes, self._backups = rotation_settings()
        # What the last marker named: the task object (compared by identity:
        # cheaper than its id) and whether the actor's marker was written.
        self._last_task = None
        self._actor_marked = False
        # A failure to write the log (a full disk, a removed session) must
        # never break the task that prints: the log stops instead.
        self._broken = False

    @property
    def path(self):
        """The file's path (None until the first line)."""
        return self._path

    def _open(self):
        self._path = os.path.join(logs_dir(self._session_dir), worker_log_name(self._pid, self._suffix))
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)  # whatever the umask, or an older file's mode
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def _markers(self):
        """The marker lines due before the lines being written now."""
        out = ""
        executor = self._executor
        if executor is not None and executor.actor_id and not self._actor_marked:
            self._actor_marked = True
            out += f"{ACTOR_NAME_PREFIX}{executor.actor_name} {executor.actor_id.hex()}\n"
        task = _worker.RUNNING_TASK.get()
        if task is not None and task is not self._last_task:
            self._last_task = task
            name = task.function_name
            if executor is not None and executor.actor_name:
                # An actor's calls are named as Ray names them: Class.method.
                if task.actor_creation:
                    name = f"{executor.actor_name}.__init__"
                elif task.method_name and "." not in name:
                    name = f"{executor.actor_name}.{name}"
            out += f"{TASK_NAME_PREFIX}{name} {task.task_id}\n"
        return out

    def write_lines(self, lines):
        """Appends whole lines (without their newlines)."""
        if self._broken:
            return
        try:
            kept = [line for line in lines if TQDM_MAGIC not in line]
            if not kept:
                return
            if self._fd is None:
                self._open()
            body = "".join(f"{line}\n" for line in kept).encode("utf-8", "replace")
            if self._max_bytes > 0 and self._size > 0 and self._size + len(body) > self._max_bytes:
                self._rotate()
            # Markers after rotating: a new file says again whose lines follow.
            data = self._markers().encode("utf-8", "replace") + body
            os.write(self._fd, data)
            self._size += len(data)
        except OSError:
            self._broken = True

    def _rotate(self):
        """Moves the file to `.1` (and `.1` to `.2`, ...), as Python's
        RotatingFileHandler, and starts a new one. Without backups the file
        starts over empty (RotatingFileHandler would let it grow)."""
        os.close(self._fd)
        self._fd = None
        if self._backups > 0:
            for i in range(self._backups - 1, 0, -1):
                older = f"{self._path}.{i}"
                if os.path.exists(older):
                    os.replace(older, f"{self._path}.{i + 1}")
            os.replace(self._path, f"{self._path}.1")
        else:
            os.remove(self._path)
        self._open()
        # The new file continues the same task: say whose lines follow.
        self._last_task = None
        self._actor_marked = False


def attach(stdout, stderr, executor):
    """Gives a worker's two `PrefixedStream`s their log files (opened on
    their first line). Without a session directory (a worker started by
    hand) nothing is logged."""
    session_dir = os.environ.get("OXRAY_SESSION_DIR")
    if not session_dir:
        return
    pid = os.getpid()
    stdout.log = WorkerLog(session_dir, pid, "out", executor)
    stderr.log = WorkerLog(session_dir, pid, "err", executor)
