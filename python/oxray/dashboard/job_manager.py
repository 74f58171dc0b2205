"""The job manager of the dashboard process: runs each submitted job's
driver on the head as a child process, tracks its status and keeps the
records in the cluster's KV store (Ray's `JobManager` and
`JobSupervisor` in one, without a supervisor actor).

A job's driver is `/bin/sh -c <entrypoint>` in a process group of its
own, with the cluster address in `RAY_ADDRESS`/`OXRAY_ADDRESS` and the
job's config (runtime_env, metadata) in `RAY_JOB_CONFIG_JSON_ENV_VAR`, so
that `oxray.init()` in the entrypoint joins the cluster in the job's
runtime_env (see oxray._private.job_env); its working_dir copy is its cwd,
and its output (stdout and stderr) goes to
`<logs_dir>/job-driver-<submission_id>.log`.

Records live in the KV namespace "jobs" (`job_info_<submission_id>`, with
the list of ids under `job_ids`), so that a restarted dashboard lists the
same jobs and adopts the drivers that still run: a small shell around the
entrypoint writes its exit code to `<session_dir>/jobs/<id>.exit` for a
dashboard that is not its parent. A driver never outlives its cluster: a
watcher kills its process group once the head daemon is gone.
"""

import asyncio
import codecs
import concurrent.futures
import json
import os
import random
import re
import signal
import string
import subprocess
import sys
import time
import traceback
from collections import deque

from oxray._private import job_env
from oxray.job_submission.models import (
    JOB_ID_METADATA_KEY,
    JOB_LOGS_PATH_TEMPLATE,
    JOB_NAME_METADATA_KEY,
    DriverInfo,
    JobDetails,
    JobErrorType,
    JobInfo,
    JobStatus,
    JobType,
)

KV_NAMESPACE = job_env.KV_NAMESPACE
_INFO_KEY = "job_info_{}"
#: How long a stopped driver gets between the stop signal and SIGKILL (Ray's variable and default).
STOP_WAIT_ENV_VAR = "RAY_JOB_STOP_WAIT_TIME_S"
DEFAULT_STOP_WAIT_S = 3
#: How long a job may wait for its entrypoint resources (Ray's variable and default).
START_TIMEOUT_ENV_VAR = "RAY_JOB_START_TIMEOUT_SECONDS"
DEFAULT_START_TIMEOUT_S = 15 * 60
#: Ray's limits on the log tail put in a failed job's message.
NUM_LOG_LINES_ON_ERROR = 10
MAX_LOG_SIZE = 20000
#: How often the manager looks at a running driver and tails grow (seconds).
POLL_S = 0.1
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Runs the entrypoint and leaves its exit code for a dashboard that is not
# the driver's parent: $1 the entrypoint, $2 the exit-code file. An
# entrypoint killed by signal N ends this shell by the same signal (its
# code is -N, as Ray reports it), so that nothing tells the wrapper apart.
_WRAPPER = ('/bin/sh -c "$1"; rc=$?; '
            'if [ "$rc" -gt 128 ] && [ "$rc" -lt 160 ]; then '
            'echo "-$((rc - 128))" > "$2"; kill -"$((rc - 128))" $$; fi; '
            'echo "$rc" > "$2"; exit "$rc"')
# Kills the job's process group ($1) once the head daemon ($2, a pid, 0 for
# unknown) or its socket ($3) is gone. It ends, killing nothing, as soon as
# the group has ended by itself: its pgid may then name an unrelated group.
_WATCHER = ('while [ -S "$3" ] && { [ "$2" = 0 ] || kill -0 "$2" 2>/dev/null; }; do '
            'kill -0 -"$1" 2>/dev/null || exit 0; sleep 1; done; '
            'kill -0 -"$1" 2>/dev/null && kill -9 -"$1" 2>/dev/null; exit 0')
#: What a submission id may be: it names the job's files (`<id>.exit`, its log).
SUBMISSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_SUBMISSION_ID_LENGTH = 128


def validate_submission_id(submission_id):
    """Raises ValueError (a 400 answer) for a submission id that is not a
    safe file name part: letters, digits, "_", "-" and ".", no "..", at
    most MAX_SUBMISSION_ID_LENGTH characters."""
    if not isinstance(submission_id, str):
        raise ValueError(f"submission_id must be a string if provided, got {type(submission_id)}")
    if (not SUBMISSION_ID_PATTERN.fullmatch(submission_id) or ".." in submission_id or submission_id == "."
            or len(submission_id) > MAX_SUBMISSION_ID_LENGTH):
        raise ValueError(
            f"Invalid submission_id {submission_id[:200]!r}: it must be 1 to {MAX_SUBMISSION_ID_LENGTH} "
            "characters among letters, digits, '_', '-' and '.', and must not contain '..'."
        )


def generate_submission_id():
    """A new submission id, `raysubmit_` and 16 unambiguous characters
    (Ray's form)."""
    chars = sorted(set(string.ascii_letters + string.digits) - {"I", "l", "o", "O", "0"})
    return "raysubmit_" + "".join(random.SystemRandom().choices(chars, k=16))


def log_path(logs_dir, submission_id):
    """Where a job's driver output goes."""
    return os.path.join(logs_dir, JOB_LOGS_PATH_TEMPLATE.format(submission_id=submission_id))


def _now_ms():
    return int(time.time() * 1000)


def _proc_start(pid):
    """The start time (clock ticks since boot) of `pid`, None when gone:
    with the pid, it names a process for good (pids are reused)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the records ----------------------------------------------------------------------


class JobStore:
    """The job records in the cluster's KV store (blocking calls: the
    manager makes them on a thread of its own). A record is a JobInfo's
    JSON form plus `_oxray`, what the manager needs to find the driver
    again (its pid and start time)."""

    def __init__(self):
        from oxray import _native

        self._native = _native

    def ids(self):
        """The submission ids of the recorded jobs, oldest first."""
        prefix = _INFO_KEY.format("").encode()
        records = []
        for key in self._native.kv_keys(KV_NAMESPACE, prefix):
            submission_id = key[len(prefix):].decode()
            record = self.get(submission_id)
            if record:
                records.append((record.get("start_time") or 0, submission_id))
        return [submission_id for _, submission_id in sorted(records)]

    def get(self, submission_id):
        """The record of a job (a dict), or None."""
        raw = self._native.kv_get(KV_NAMESPACE, _INFO_KEY.format(submission_id).encode())
        return json.loads(raw) if raw else None

    def put(self, submission_id, record, overwrite=True):
        """Writes a job's record; False (writing nothing) when it exists
        and `overwrite` is false."""
        key = _INFO_KEY.format(submission_id).encode()
        if not overwrite and self._native.kv_get(KV_NAMESPACE, key):
            return False
        self._native.kv_put(KV_NAMESPACE, key, json.dumps(record).encode())
        return True

    def delete(self, submission_id):
        """Forgets a job: its record and what its driver recorded."""
        self._native.kv_del(KV_NAMESPACE, _INFO_KEY.format(submission_id).encode())
        self._native.kv_del(KV_NAMESPACE, job_env.DRIVER_KEY.format(submission_id=submission_id).encode())

    def driver(self, submission_id):
        """What the job's driver recorded once connected (`id`: its job id,
        `pid`), or None."""
        raw = self._native.kv_get(KV_NAMESPACE, job_env.DRIVER_KEY.format(submission_id=submission_id).encode())
        return json.loads(raw) if raw else None

    def details(self, submission_id, record, node_ip=None):
        """A record as Ray's JobDetails."""
        info = JobInfo.from_json(record)
        driver = self.driver(submission_id)
        fields = {k: v for k, v in vars(info).items()}
        return JobDetails(
            type=JobType.SUBMISSION,
            submission_id=submission_id,
            job_id=driver["id"] if driver else None,
            driver_info=DriverInfo(driver["id"], node_ip or "127.0.0.1", driver["pid"]) if driver else None,
            **fields,
        )

    def all_details(self, node_ip=None):
        """Every recorded job as JobDetails, oldest first."""
        out = []
        for submission_id in self.ids():
            record = self.get(submission_id)
            if record:
                out.append(self.details(submission_id, record, node_ip))
        return out


def list_jobs(ctx):
    """The submitted jobs of the dashboard's cluster, as dicts shaped like
    Ray's JobDetails (for the dashboard's jobs page). Blocking: it reads
    the cluster's KV store."""
    return [d.dict() for d in JobStore().all_details(_node_ip_of(ctx))]


def _node_ip_of(ctx):
    host = (ctx.address or "").rpartition(":")[0].strip("[]")
    return host if host and not ctx.address.startswith("/") else "127.0.0.1"


# --- the manager ----------------------------------------------------------------------


class _Run:
    """A driver the manager watches: its child process (or, adopted after
    a restart, its pid), and the stop request."""

    def __init__(self):
        self.stop = asyncio.Event()
        self.process = None
        self.pid = None
        self.task = None


class JobManager:
    """Submits, watches, stops and forgets the jobs of one cluster, in the
    dashboard's event loop (KV calls go to one thread of their own, in
    order)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.logs_dir = ctx.logs_dir
        self.jobs_dir = os.path.join(ctx.session_dir, "jobs")
        self._kv = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="oxray-jobs-kv")
        self._store = None
        self._runs = {}
        self._status = {}
        self._node = None
        self._watchers = []

    # -- plumbing

    async def _call(self, fn, *args):
        """Runs a blocking KV call on the manager's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._kv, fn, *args)

    def _store_(self):
        if self._store is None:
            self._store = JobStore()
        return self._store

    async def _get(self, submission_id):
        return await self._call(lambda: self._store_().get(submission_id))

    async def _put(self, submission_id, record, overwrite=True):
        done = await self._call(lambda: self._store_().put(submission_id, record, overwrite))
        if done:
            self._status[submission_id] = JobStatus(record["status"])
        return done

    def _head_node(self):
        """(node id, IP) of the node this dashboard runs on."""
        if self._node is None:
            from oxray import _native

            me = _native.context()["node_id"]
            ip = next((n["ip"] for n in _native.cluster_info() if n["node_id"] == me), None)
            self._node = (me, ip or _node_ip_of(self.ctx))
        return self._node

    async def put_status(self, submission_id, status, message=None, **fields):
        """Moves a job to `status` (Ray's `put_status`): the message is
        Ray's for the status unless given; a terminal status gets its
        end_time and never changes again (False is returned then)."""
        record = await self._get(submission_id)
        if record is None:
            return False
        old = JobStatus(record["status"])
        if old.is_terminal():
            return False
        record.update(fields)
        record["status"] = str(status)
        record["message"] = message
        info = JobInfo.from_json({k: v for k, v in record.items() if k != "_oxray"})
        record["message"] = info.message
        if status.is_terminal():
            record["end_time"] = _now_ms()
        await self._put(submission_id, record)
        return True

    # -- life cycle

    async def start(self):
        """Adopts the jobs a previous dashboard left running (called once
        the app starts)."""
        store_ids = await self._call(lambda: self._store_().ids())
        for submission_id in store_ids:
            record = await self._get(submission_id)
            if not record or JobStatus(record["status"]).is_terminal():
                continue
            self._status[submission_id] = JobStatus(record["status"])
            extra = record.get("_oxray") or {}
            pid = extra.get("pid")
            if record["status"] == "PENDING" or not pid:
                await self.put_status(submission_id, JobStatus.FAILED,
                                      "The dashboard restarted before the job's driver started.",
                                      error_type=str(JobErrorType.JOB_SUPERVISOR_ACTOR_DIED))
                continue
            run = _Run()
            run.pid = pid
            self._runs[submission_id] = run
            if _proc_start(pid) != extra.get("pid_start"):
                run.pid = None  # gone while no dashboard watched it
            run.task = asyncio.ensure_future(self._watch_adopted(submission_id, run))

    async def close(self):
        """Stops watching (the drivers go on running; a new dashboard
        adopts them)."""
        for run in list(self._runs.values()):
            if run.task is not None:
                run.task.cancel()
        for run in list(self._runs.values()):
            if run.task is not None:
                try:
                    await run.task
                except BaseException:
                    pass
        self._kv.shutdown(wait=False)

    # -- the API

    async def submit(self, request):
        """Records a JobSubmitRequest as PENDING and starts its driver in
        the background; returns the submission id. Raises ValueError when
        that id is taken or invalid, or the runtime_env cannot be used."""
        submission_id = request.submission_id or request.job_id or generate_submission_id()
        validate_submission_id(submission_id)
        runtime_env = request.runtime_env or {}
        if runtime_env:
            from oxray._private import options, runtime_env_packages

            options.check_runtime_env(runtime_env)
            for field in ("working_dir",):
                value = runtime_env.get(field)
                if value is not None and not runtime_env_packages.is_package_uri(value):
                    raise ValueError(
                        f"runtime_env['{field}'] must be a package uploaded through the package API "
                        f"(gcs://_ray_pkg_<hash>.zip), got {value!r}: JobSubmissionClient uploads local "
                        "directories itself."
                    )
            for value in runtime_env.get("py_modules") or ():
                if not runtime_env_packages.is_package_uri(value):
                    raise ValueError(
                        f"runtime_env['py_modules'] entries must be packages uploaded through the package API, "
                        f"got {value!r}: JobSubmissionClient uploads local directories itself."
                    )
        info = JobInfo(
            status=JobStatus.PENDING,
            entrypoint=request.entrypoint,
            start_time=_now_ms(),
            metadata=request.metadata,
            runtime_env=runtime_env,
            entrypoint_num_cpus=request.entrypoint_num_cpus or 0,
            entrypoint_num_gpus=request.entrypoint_num_gpus or 0,
            entrypoint_memory=request.entrypoint_memory or 0,
            entrypoint_resources=request.entrypoint_resources,
        )
        record = info.to_json()
        if not await self._put(submission_id, record, overwrite=False):
            raise ValueError(
                f"Job with submission_id {submission_id} already exists. Please use a different submission_id."
            )
        run = _Run()
        self._runs[submission_id] = run
        run.task = asyncio.ensure_future(self._run(submission_id, info, run))
        return submission_id

    async def find(self, job_or_submission_id):
        """(submission id, record) of a job named by its submission id or
        its driver's job id; None when there is none."""
        record = await self._get(job_or_submission_id)
        if record:
            return job_or_submission_id, record

        def by_job_id():
            store = self._store_()
            for submission_id in store.ids():
                driver = store.driver(submission_id)
                if driver and driver.get("id") == job_or_submission_id:
                    return submission_id, store.get(submission_id)
            return None

        found = await self._call(by_job_id)
        return found if found and found[1] else None

    async def details(self, submission_id, record):
        """A record as JobDetails."""
        node_ip = self._head_node_ip()
        return await self._call(lambda: self._store_().details(submission_id, record, node_ip))

    def _head_node_ip(self):
        try:
            return self._head_node()[1]
        except Exception:
            return _node_ip_of(self.ctx)

    async def list(self):
        """Every submitted job, as JobDetails, oldest first."""
        node_ip = self._head_node_ip()
        return await self._call(lambda: self._store_().all_details(node_ip))

    async def stop(self, submission_id):
        """Asks a job's driver to stop (SIGTERM to its process group, then
        SIGKILL after `RAY_JOB_STOP_WAIT_TIME_S`); True when the job was
        not finished yet."""
        run = self._runs.get(submission_id)
        status = self._status.get(submission_id)
        if run is None or (status is not None and status.is_terminal()):
            return False
        run.stop.set()
        return True

    async def delete(self, submission_id):
        """Forgets a finished job (its log file stays); raises RuntimeError
        for a job that is not finished."""
        record = await self._get(submission_id)
        status = JobStatus(record["status"]) if record else None
        if status is None or not status.is_terminal():
            raise RuntimeError(
                f"Attempted to delete job '{submission_id}', but it is in a non-terminal state {status}."
            )
        await self._call(lambda: self._store_().delete(submission_id))
        self._status.pop(submission_id, None)
        return True

    def log_path(self, submission_id):
        """The driver log file of a job."""
        return log_path(self.logs_dir, submission_id)

    def read_logs(self, submission_id):
        """Everything the job's driver wrote so far ("" before it starts)."""
        try:
            with open(self.log_path(submission_id), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    async def status(self, submission_id):
        """A job's status (from memory when this manager wrote it last)."""
        status = self._status.get(submission_id)
        if status is not None and (status.is_terminal() or submission_id in self._runs):
            return status
        record = await self._get(submission_id)
        return JobStatus(record["status"]) if record else None

    async def tail(self, submission_id, gone=None):
        """Yields the job's output as its driver writes it, until the job
        has finished and everything it wrote was yielded (or `gone()`, the
        reader having left, is true)."""
        path = self.log_path(submission_id)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        position = 0
        finished = False
        while True:
            try:
                with open(path, "rb") as f:
                    f.seek(position)
                    data = f.read(1 << 20)
            except OSError:
                data = b""
            if data:
                position += len(data)
                text = decoder.decode(data)
                if text:
                    yield text
                continue
            if finished:
                rest = decoder.decode(b"", final=True)
                if rest:
                    yield rest
                return
            status = await self.status(submission_id)
            if status is None or status.is_terminal():
                finished = True  # read once more: what was written before the end
                continue
            if gone is not None and gone():
                return
            await asyncio.sleep(POLL_S)

    # -- running a driver

    async def _run(self, submission_id, info, run):
        holder = None
        try:
            holder, gpu_ids = await self._hold_resources(submission_id, info, run)
            if holder is False:
                return
            if run.stop.is_set():
                await self.put_status(submission_id, JobStatus.STOPPED)
                return
            try:
                env, cwd = await self._driver_env(submission_id, info, gpu_ids)
            except Exception as e:
                message = f"runtime_env setup failed: {e}"
                self._append_log(submission_id, message + "\n")
                await self.put_status(submission_id, JobStatus.FAILED, message,
                                      error_type=str(JobErrorType.RUNTIME_ENV_SETUP_FAILURE))
                return
            if run.stop.is_set():
                await self.put_status(submission_id, JobStatus.STOPPED)
                return
            try:
                process = self._spawn(submission_id, info.entrypoint, env, cwd)
            except Exception:
                await self.put_status(submission_id, JobStatus.FAILED, traceback.format_exc(),
                                      error_type=str(JobErrorType.JOB_ENTRYPOINT_COMMAND_START_ERROR))
                return
            run.process = process
            run.pid = process.pid
            node_id, _ = await self._call(self._head_node)
            await self.put_status(submission_id, JobStatus.RUNNING, driver_node_id=node_id,
                                  _oxray={"pid": process.pid, "pid_start": _proc_start(process.pid)})
            await self._follow(submission_id, run, lambda: process.poll())
        except asyncio.CancelledError:
            # The dashboard stops: the driver (and the actor holding its
            # resources) go on, for the next dashboard to adopt.
            holder = None
            raise
        except Exception:
            await self.put_status(submission_id, JobStatus.FAILED, traceback.format_exc(),
                                  error_type=str(JobErrorType.JOB_ENTRYPOINT_COMMAND_START_ERROR))
        finally:
            self._runs.pop(submission_id, None)
            if holder:
                await self._call(self._release, holder)

    async def _follow(self, submission_id, run, poll):
        """Waits for the driver to exit or a stop request, and records the
        outcome. `poll()` is the exit code, or None while it runs."""
        pid = run.pid
        while True:
            code = poll()
            if code is not None:
                break
            try:
                await asyncio.wait_for(run.stop.wait(), POLL_S)
            except asyncio.TimeoutError:
                continue
            await self._terminate(pid, poll)
            await self.put_status(submission_id, JobStatus.STOPPED)
            return
        if code == 0:
            await self.put_status(submission_id, JobStatus.SUCCEEDED, driver_exit_code=0)
            return
        tail = self._last_lines(submission_id)
        if tail:
            message = (f"Job entrypoint command failed with exit code {code}, last available logs "
                       f"(truncated to 20,000 chars):\n{tail}")
        else:
            message = f"Job entrypoint command failed with exit code {code}. No logs available."
        await self.put_status(submission_id, JobStatus.FAILED, message, driver_exit_code=code,
                              error_type=str(JobErrorType.JOB_ENTRYPOINT_COMMAND_ERROR))

    async def _terminate(self, pgid, poll):
        """The stop signal (RAY_JOB_STOP_SIGNAL: SIGTERM, or SIGINT) to the
        driver's process group; SIGKILL for what is left after the grace
        period."""
        name = os.environ.get("RAY_JOB_STOP_SIGNAL", "SIGTERM")
        sig = getattr(signal, name) if name in ("SIGTERM", "SIGINT") else signal.SIGTERM
        try:
            os.killpg(pgid, sig)
        except OSError:
            pass
        try:
            wait_s = float(os.environ.get(STOP_WAIT_ENV_VAR, DEFAULT_STOP_WAIT_S))
        except ValueError:
            wait_s = DEFAULT_STOP_WAIT_S
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            poll()  # reaps the driver's shell, so that the group can empty
            if not _group_alive(pgid):
                return
            await asyncio.sleep(POLL_S)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
        for _ in range(50):
            poll()
            if not _group_alive(pgid):
                return
            await asyncio.sleep(POLL_S)

    async def _watch_adopted(self, submission_id, run):
        """Watches a driver started by an earlier dashboard (not a child of
        this process: its exit code comes from the file its shell writes)."""
        pid = run.pid
        exit_file = os.path.join(self.jobs_dir, f"{submission_id}.exit")
        start = _proc_start(pid) if pid else None

        def poll():
            if pid and start is not None and _proc_start(pid) == start:
                return None
            try:
                with open(exit_file) as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                return -1

        try:
            if pid is None and not os.path.exists(exit_file):
                await self.put_status(submission_id, JobStatus.FAILED,
                                      "The job's driver exited while no dashboard watched it; its exit code is "
                                      "unknown.", error_type=str(JobErrorType.JOB_SUPERVISOR_ACTOR_DIED))
                self._runs.pop(submission_id, None)
                return
            run.pid = pid
            await self._follow(submission_id, run, poll)
        except asyncio.CancelledError:
            self._runs.pop(submission_id, None)
            raise
        self._runs.pop(submission_id, None)
        await self._call(self._release_named, submission_id)

    def _last_lines(self, submission_id):
        lines = deque(maxlen=NUM_LOG_LINES_ON_ERROR)
        try:
            with open(self.log_path(submission_id), "rb") as f:
                for line in f:
                    lines.append(line)
        except OSError:
            return ""
        return b"".join(lines).decode("utf-8", "replace")[-MAX_LOG_SIZE:]

    def _append_log(self, submission_id, text):
        from oxray._private.node import open_private

        os.makedirs(self.logs_dir, exist_ok=True)
        path = self.log_path(submission_id)
        if not os.path.exists(path):
            open_private(path).close()
        with open(path, "a") as f:
            f.write(text)

    # -- entrypoint resources

    async def _hold_resources(self, submission_id, info, run):
        """Reserves the entrypoint's resources for the job with an actor
        that holds them (Ray's supervisor actor), waiting for them while the
        job is PENDING. Returns (holder or None, the GPU ids the driver may
        use or None); (False, None) when the job ended meanwhile."""
        resources = {k: v for k, v in (info.entrypoint_resources or {}).items() if v}
        wanted = (info.entrypoint_num_cpus or 0) > 0 or (info.entrypoint_num_gpus or 0) > 0 or \
            (info.entrypoint_memory or 0) > 0 or bool(resources)
        if not wanted:
            return None, None
        options = {"num_cpus": info.entrypoint_num_cpus or 0, "num_gpus": info.entrypoint_num_gpus or 0,
                   "resources": resources, "name": _holder_name(submission_id), "namespace": _HOLDER_NAMESPACE,
                   "lifetime": "detached"}
        if info.entrypoint_memory:
            options["memory"] = info.entrypoint_memory

        def create():
            import oxray

            holder = oxray.remote(job_env.EntrypointHolder).options(**options).remote()
            return holder, holder.gpu_ids.remote()

        holder, ref = await self._call(create)
        timeout = float(os.environ.get(START_TIMEOUT_ENV_VAR, DEFAULT_START_TIMEOUT_S))
        deadline = time.monotonic() + timeout

        def ready():
            import oxray

            done, _ = oxray.wait([ref], timeout=0)
            return oxray.get(ref) if done else None

        while True:
            gpu_ids = await self._call(ready)
            if gpu_ids is not None:
                return holder, gpu_ids
            if run.stop.is_set():
                await self._call(self._release, holder)
                await self.put_status(submission_id, JobStatus.STOPPED)
                return False, None
            if time.monotonic() > deadline:
                await self._call(self._release, holder)
                message = (f"Job supervisor actor failed to start within {timeout} seconds. This timeout can be "
                           f"configured by setting the environment variable {START_TIMEOUT_ENV_VAR}. This may be "
                           "because the job entrypoint's specified resources (entrypoint_num_cpus, "
                           "entrypoint_num_gpus, entrypoint_resources, entrypoint_memory)aren't available on the "
                           "cluster. Try checking the cluster's available resources with `ray status` and "
                           "specifying fewer resources for the job entrypoint.")
                await self.put_status(submission_id, JobStatus.FAILED, message,
                                      error_type=str(JobErrorType.JOB_SUPERVISOR_ACTOR_START_TIMEOUT))
                return False, None
            await asyncio.sleep(POLL_S)

    @staticmethod
    def _release(holder):
        import oxray

        try:
            oxray.kill(holder)
        except Exception:
            pass

    @staticmethod
    def _release_named(submission_id):
        import oxray

        try:
            oxray.kill(oxray.get_actor(_holder_name(submission_id), namespace=_HOLDER_NAMESPACE))
        except Exception:
            pass

    # -- the driver's process

    async def _driver_env(self, submission_id, info, gpu_ids):
        """(environment, cwd) of the driver: the cluster's address, the
        job's config for `init`, the runtime_env's variables, and its
        working_dir (the cwd) and py_modules first on PYTHONPATH."""
        from oxray._private import runtime_env_packages

        runtime_env = dict(info.runtime_env or {})
        working_dir = runtime_env.get("working_dir")
        modules = list(runtime_env.get("py_modules") or ())

        def unpack():
            return ((runtime_env_packages.local_dir(working_dir) if working_dir else None),
                    [runtime_env_packages.local_dir(uri) for uri in modules])

        cwd, module_dirs = await self._call(unpack)
        env = dict(os.environ)
        for name in ("OXRAY_AUTH_TOKEN", "RAY_API_SERVER_ADDRESS", "OXRAY_SESSION_DIR"):
            env.pop(name, None)
        env.update({str(k): str(v) for k, v in (runtime_env.get("env_vars") or {}).items()})
        metadata = {JOB_ID_METADATA_KEY: submission_id, JOB_NAME_METADATA_KEY: submission_id}
        metadata.update(info.metadata or {})
        env[job_env.JOB_CONFIG_ENV_VAR] = json.dumps({"runtime_env": runtime_env, "metadata": metadata})
        env["RAY_ADDRESS"] = env["OXRAY_ADDRESS"] = self.ctx.address
        env["PYTHONUNBUFFERED"] = "1"
        # `python` is the dashboard's interpreter, which imports oxray.
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", os.defpath)])
        paths = ([cwd] if cwd else []) + module_dirs + \
            [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p] + [_PACKAGE_PARENT]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        if gpu_ids is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
        return env, cwd

    def _spawn(self, submission_id, entrypoint, env, cwd):
        """Starts the driver in a process group of its own, output to its
        log file, and the watcher that ends it with the cluster."""
        from oxray._private import node as _node

        os.makedirs(self.logs_dir, exist_ok=True)
        os.makedirs(self.jobs_dir, mode=0o700, exist_ok=True)
        exit_file = os.path.join(self.jobs_dir, f"{submission_id}.exit")
        try:
            os.remove(exit_file)
        except OSError:
            pass
        path = self.log_path(submission_id)
        if not os.path.exists(path):
            _node.open_private(path).close()
        with open(path, "ab") as log:
            process = subprocess.Popen(["/bin/sh", "-c", _WRAPPER, "oxray-job", entrypoint, exit_file],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                       cwd=cwd or None, start_new_session=True)
        socket_path = os.path.join(self.ctx.session_dir, "daemon.sock")
        daemon_pid = next((n["pid"] for n in _node.local_nodes() if n.get("session_dir") == self.ctx.session_dir),
                          0)
        watcher = subprocess.Popen(["/bin/sh", "-c", _WATCHER, "oxray-job-watch", str(process.pid),
                                    str(int(daemon_pid)), socket_path],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._watchers = [w for w in self._watchers if w.poll() is None] + [watcher]
        return process


_HOLDER_NAMESPACE = "_oxray_jobs"


def _holder_name(submission_id):
    return f"_oxray_job_entrypoint_{submission_id}"
