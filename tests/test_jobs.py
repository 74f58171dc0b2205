"""Job submission (Ray's Jobs API): `oxray.job_submission.JobSubmissionClient`,
the dashboard's REST routes and `oxray job ...`, against a head started
with `oxray start --head` (and its dashboard) in a node index of its own."""

import asyncio
import glob
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO, wait_for

pytest.importorskip("aiohttp")

from oxray.job_submission import JobStatus, JobSubmissionClient  # noqa: E402

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class Head:
    """The head under test: its dashboard `url`, `token`, `session_dir`,
    the environment its CLI runs with, and the processes to stop."""

    def __init__(self, env):
        self.env = env
        self.dashboards = []
        self.url = self.token = self.session_dir = None

    def cli(self, *args, timeout=60):
        """Runs `oxray ARGS...` with this head's node index."""
        return subprocess.run([sys.executable, "-m", "oxray.scripts", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=REPO, env=self.env)

    def client(self):
        return JobSubmissionClient(self.url, headers={"Authorization": f"Bearer {self.token}"})

    def start_dashboard(self):
        """Starts `python -m oxray.dashboard` for the head (when `oxray
        start` did not, or to replace a killed one)."""
        ready = os.path.join(self.session_dir, "dashboard.json")
        try:
            os.remove(ready)
        except OSError:
            pass
        with open(os.path.join(self.session_dir, "node_address")) as f:
            address = next(p[4:] for p in f.read().strip().split("|") if p.startswith("tcp:"))
        log = os.path.join(self.env["RAY_TMPDIR"], f"test-dashboard-{len(self.dashboards)}.log")
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "oxray.dashboard", "--address", address, "--host", "127.0.0.1", "--port", "0",
                 "--session-dir", self.session_dir, "--token-file", os.path.join(self.session_dir, "token")],
                env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.dashboards.append(process)
        if not wait_for(lambda: _read_json(ready).get("pid") == process.pid, timeout=40):
            with open(log) as f:
                pytest.fail(f"the dashboard did not start (exit code {process.poll()}):\n{f.read()}")
        self.url = _read_json(ready)["url"]
        return process


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    import oxray

    oxray.shutdown()
    env = dict(os.environ, RAY_TMPDIR=str(tmp_path_factory.mktemp("jobs_index")))
    for var in ("OXRAY_AUTH_TOKEN", "RAY_ADDRESS", "OXRAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_JOB_HEADERS"):
        env.pop(var, None)
    h = Head(env)
    out = h.cli("start", "--head", "--port", "0", "--num-cpus", "2", "--dashboard-port", "0")
    assert out.returncode == 0, out.stderr
    try:
        [index] = glob.glob(os.path.join(env["RAY_TMPDIR"], "oxray-*", "nodes", "*.json"))
        h.session_dir = _read_json(index)["session_dir"]
        with open(os.path.join(h.session_dir, "token")) as f:
            h.token = f.read().strip()
        info = _read_json(os.path.join(h.session_dir, "dashboard.json"))
        if info.get("url"):
            h.url = info["url"]
        else:
            h.start_dashboard()
        yield h
    finally:
        stopped = h.cli("stop")
        for p in h.dashboards:
            if p.poll() is None:
                p.kill()
            p.wait()
        assert stopped.returncode == 0, stopped.stderr


def _wait_status(client, sid, wanted=TERMINAL, timeout=30):
    status = wait_for(lambda: (lambda s: s if s in wanted else None)(client.get_job_status(sid)), timeout=timeout,
                      interval=0.1)
    assert status, f"job {sid} is {client.get_job_status(sid)}, not in {wanted}:\n{client.get_job_logs(sid)}"
    return status


def _gone(pid):
    from conftest import process_gone

    return process_gone(int(pid))


PY = sys.executable


def test_submit_runs_tasks_in_the_jobs_runtime_env(head, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "jobhelper.py").write_text("def double(x):\n    return 2 * x\n")
    pkg = tmp_path / "jobpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 'from py_modules'\n")
    (wd / "main.py").write_text(
        "import os, oxray\n"
        "oxray.init()\n"
        "@oxray.remote\n"
        "def f(x):\n"
        "    import jobhelper\n"
        "    import jobpkg\n"
        "    return jobhelper.double(x), os.environ.get('JOBVAR'), jobpkg.VALUE\n"
        "import jobpkg\n"
        "print('results', oxray.get([f.remote(i) for i in range(3)]), jobpkg.VALUE)\n"
        "print('driver', os.environ.get('JOBVAR'), sorted(os.listdir('.')))\n"
        "print('job', oxray.get_runtime_context().get_job_id())\n")
    client = head.client()
    assert client.get_version() == "4"
    sid = client.submit_job(entrypoint=f"{PY} main.py", submission_id="job_tasks",
                            runtime_env={"working_dir": str(wd), "py_modules": [str(pkg)],
                                         "env_vars": {"JOBVAR": "on"}},
                            metadata={"owner": "tests"})
    assert sid == "job_tasks"
    assert _wait_status(client, sid) == JobStatus.SUCCEEDED
    info = client.get_job_info(sid)
    assert info.message == "Job finished successfully." and info.driver_exit_code == 0
    assert info.type == "SUBMISSION" and info.metadata == {"owner": "tests"}
    assert info.runtime_env["working_dir"].startswith("gcs://_ray_pkg_")
    assert info.start_time <= info.end_time
    logs = client.get_job_logs(sid)
    # Tasks ran in the job's working_dir copy, with its variables.
    [results] = [ln for ln in logs.splitlines() if ln.startswith("results")]
    assert results.count("'on', 'from py_modules')") == 3 and "(0, " in results and "(4, " in results, logs
    assert results.endswith("from py_modules"), logs
    assert "driver on ['jobhelper.py', 'main.py']" in logs
    # The driver's job id, as the driver saw it, names the job too.
    job_id = logs.split("job ")[-1].split()[0]
    assert info.job_id == job_id and info.driver_info.id == job_id
    assert client.get_job_info(job_id).submission_id == sid
    assert sid in [j.submission_id for j in client.list_jobs()]


def test_status_transitions_and_live_logs(head, tmp_path):
    gate = tmp_path / "gate"
    client = head.client()
    sid = client.submit_job(entrypoint=(
        f"{PY} -c \"import os, time; print('before', flush=True)\n"
        f"while not os.path.exists('{gate}'): time.sleep(0.05)\n"
        "print('after')\""))
    assert sid.startswith("raysubmit_")
    seen = []

    async def follow():
        async for text in client.tail_job_logs(sid):
            seen.append(text)
            if "before" in "".join(seen) and not gate.exists():
                # Followed live: the job is still running, held by the gate.
                assert client.get_job_status(sid) == JobStatus.RUNNING
                assert client.get_job_info(sid).message == "Job is currently running."
                gate.write_text("go")

    asyncio.run(asyncio.wait_for(follow(), 30))
    assert "".join(seen) == "before\nafter\n"
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED

    # PENDING while its entrypoint's resources are not there (2 CPUs here), then stopped.
    pending = client.submit_job(entrypoint="echo never", entrypoint_num_cpus=3)
    info = client.get_job_info(pending)
    assert info.status == JobStatus.PENDING and info.entrypoint_num_cpus == 3
    assert info.message == ("Job has not started yet. It may be waiting for resources (CPUs, GPUs, memory, custom "
                            "resources) to become available.")
    assert client.stop_job(pending) is True
    assert _wait_status(client, pending) == JobStatus.STOPPED
    assert client.get_job_logs(pending) == ""


def test_stop_ends_the_driver_its_actor_and_its_tasks(head, tmp_path):
    client = head.client()
    sid = client.submit_job(entrypoint=(
        f"{PY} -c \"import os, time, oxray\n"
        "oxray.init()\n"
        "@oxray.remote\n"
        "class Keeper:\n"
        "    def pid(self): return os.getpid()\n"
        "@oxray.remote\n"
        "def forever():\n"
        "    print('task pid', os.getpid(), flush=True)\n"
        "    time.sleep(1000)\n"
        "k = Keeper.options(name='keeper', namespace='jobs').remote()\n"
        "print('actor pid', oxray.get(k.pid.remote()), flush=True)\n"
        "ref = forever.remote()\n"
        "oxray.get(ref)\""))
    assert wait_for(lambda: "task pid" in client.get_job_logs(sid), timeout=30), client.get_job_logs(sid)
    logs = client.get_job_logs(sid)
    actor_pid = logs.split("actor pid ")[1].split()[0]
    task_pid = logs.split("task pid ")[1].split()[0]
    driver_pid = client.get_job_info(sid).driver_info.pid
    assert client.stop_job(sid) is True
    assert _wait_status(client, sid) == JobStatus.STOPPED
    info = client.get_job_info(sid)
    assert info.message == "Job was intentionally stopped." and info.end_time is not None
    assert client.stop_job(sid) is False  # already stopped
    # The driver, its actor's worker and the worker running its task are gone.
    for pid in (driver_pid, actor_pid, task_pid):
        assert wait_for(lambda: _gone(pid), timeout=10), f"process {pid} still runs"
    out = head.cli("list", "actors", "--format", "json", "--filter", "name=keeper")
    assert out.returncode == 0, out.stderr
    assert [a["state"] for a in json.loads(out.stdout)] == ["DEAD"]


def test_failing_job_reports_exit_code_and_log_tail(head):
    client = head.client()
    sid = client.submit_job(entrypoint=f"{PY} -c \"import sys; print('some output'); sys.exit('it broke')\"")
    assert _wait_status(client, sid) == JobStatus.FAILED
    info = client.get_job_info(sid)
    assert info.driver_exit_code == 1 and info.error_type == "JOB_ENTRYPOINT_COMMAND_ERROR"
    assert info.message == ("Job entrypoint command failed with exit code 1, last available logs (truncated to "
                            "20,000 chars):\nsome output\nit broke\n")
    # A runtime_env field oxray does not support is refused at submission.
    with pytest.raises(ValueError, match="pip"):
        client.submit_job(entrypoint="true", runtime_env={"pip": ["requests"]})


def test_list_delete_and_unknown_jobs(head):
    client = head.client()
    sid = client.submit_job(entrypoint="sleep 30", submission_id="job_del")
    with pytest.raises(RuntimeError, match="already exists"):
        client.submit_job(entrypoint="true", submission_id="job_del")
    with pytest.raises(RuntimeError, match="non-terminal state"):
        client.delete_job(sid)
    assert client.stop_job(sid) is True
    _wait_status(client, sid)
    assert client.delete_job(sid) is True
    assert "job_del" not in [j.submission_id for j in client.list_jobs()]
    for call in (client.get_job_info, client.get_job_logs, client.stop_job, client.delete_job):
        with pytest.raises(RuntimeError, match="status code 404"):
            call("job_del")


def test_the_token_is_required(head):
    for path in ("/api/jobs/", "/api/version"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(head.url + path, timeout=10)
        assert e.value.code == 401
    request = urllib.request.Request(head.url + "/api/jobs/", headers={"Authorization": f"Bearer {head.token}"})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert isinstance(json.loads(r.read()), list)
    with pytest.raises(RuntimeError, match="Authentication required"):
        JobSubmissionClient(head.url, headers={"Authorization": "Bearer wrong"})
    # A web page of another site cannot submit jobs (nor read their logs).
    forged = urllib.request.Request(head.url + "/api/jobs/", method="POST", data=b'{"entrypoint": "true"}',
                                    headers={"Authorization": f"Bearer {head.token}", "Origin": "http://evil.test",
                                             "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(forged, timeout=10)
    assert e.value.code == 403


def test_cli_submit_status_logs_list_stop_delete(head, tmp_path):
    wd = tmp_path / "clijob"
    wd.mkdir()
    (wd / "hello.py").write_text("import oxray\noxray.init()\nprint('hello from', oxray.get(oxray.put('the job')))\n")
    # No --headers: the CLI reads the local head's token file.
    out = head.cli("job", "submit", "--address", head.url, "--submission-id", "cli_ok", "--working-dir", str(wd),
                   "--", PY, "hello.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Job 'cli_ok' submitted successfully" in out.stdout
    assert "hello from the job" in out.stdout and "Job 'cli_ok' succeeded" in out.stdout
    failed = head.cli("job", "submit", "--address", head.url, "--", "sh", "-c", "echo doomed; exit 4")
    assert failed.returncode == 1 and "doomed" in failed.stdout
    assert "failed with exit code 4" in failed.stdout
    status = head.cli("job", "status", "--address", head.url, "cli_ok")
    assert status.returncode == 0 and "Job 'cli_ok' succeeded" in status.stdout
    logs = head.cli("job", "logs", "--address", head.url, "cli_ok")
    assert logs.returncode == 0 and "hello from the job\n" in logs.stdout
    bg = head.cli("job", "submit", "--address", head.url, "--submission-id", "cli_bg", "--no-wait", "--",
                  "sh", "-c", "echo first; sleep 30")
    assert bg.returncode == 0 and "first" not in bg.stdout
    follow = subprocess.Popen([sys.executable, "-m", "oxray.scripts", "job", "logs", "--address", head.url,
                               "--follow", "cli_bg"], stdout=subprocess.PIPE, text=True, env=head.env, cwd=REPO)
    try:
        stop = head.cli("job", "stop", "--address", head.url, "cli_bg")
        assert stop.returncode == 0 and "Job 'cli_bg' was stopped" in stop.stdout, stop.stdout + stop.stderr
        followed, _ = follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0 and "first\n" in followed and "Job 'cli_bg' was stopped" in followed
    listed = head.cli("job", "list")  # no address: the local head's dashboard
    assert listed.returncode == 0 and "submission_id='cli_ok'" in listed.stdout
    assert f"Job submission server address: {head.url}" in listed.stdout
    deleted = head.cli("job", "delete", "--address", head.url, "cli_ok")
    assert deleted.returncode == 0 and "Job 'cli_ok' deleted successfully" in deleted.stdout
    missing = head.cli("job", "status", "--address", head.url, "cli_ok")
    assert missing.returncode == 1 and "404" in missing.stderr


def test_jobs_survive_a_dashboard_restart(head):
    client = head.client()
    done = client.submit_job(entrypoint="echo early", submission_id="before_restart")
    _wait_status(client, done)
    running = client.submit_job(entrypoint="sh -c 'sleep 1.5; echo late; exit 3'", submission_id="across_restart")
    _wait_status(client, running, wanted=("RUNNING",))
    old = _read_json(os.path.join(head.session_dir, "dashboard.json"))["pid"]
    os.kill(old, 9)
    assert wait_for(lambda: _gone(old), timeout=10)
    head.start_dashboard()
    client = head.client()
    assert client.get_job_status(done) == JobStatus.SUCCEEDED
    # The new dashboard adopted the running driver and saw how it ended.
    assert _wait_status(client, running) == JobStatus.FAILED
    info = client.get_job_info(running)
    assert info.driver_exit_code == 3 and "late" in info.message


class _RecordingServer:
    """A tiny HTTP server on 127.0.0.1 answering the Jobs API's version and
    list routes, recording the Authorization header of each request."""

    def __init__(self):
        import http.server
        import threading

        seen = self.authorizations = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.headers.get("Authorization"))
                body = json.dumps({"version": "4"} if self.path.startswith("/api/version") else []).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_token_goes_to_its_own_dashboard_only(head, monkeypatch):
    from urllib.parse import urlsplit

    from oxray.job_submission.sdk import local_token

    # This process sees the head's node index: the head is the only one on this machine.
    monkeypatch.setenv("RAY_TMPDIR", head.env["RAY_TMPDIR"])
    for var in ("OXRAY_AUTH_TOKEN", "RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_JOB_HEADERS"):
        monkeypatch.delenv(var, raising=False)
    port = urlsplit(head.url).port
    assert local_token(head.url) == head.token
    assert local_token(f"http://localhost:{port}") == head.token
    JobSubmissionClient(head.url).list_jobs()  # no headers: the head's own token file
    for other in (f"http://evil.test:{port}", f"http://127.0.0.1:{port + 1}", "http://10.0.0.1:8265",
                  f"https://evil.test:{port}/", "http://evil.test"):
        assert local_token(other) is None, other
    server = _RecordingServer()
    try:
        client = JobSubmissionClient(server.url)
        assert client.list_jobs() == []
        assert server.authorizations == [None, None]
        out = subprocess.run([sys.executable, "-m", "oxray.scripts", "job", "list", "--address", server.url],
                             capture_output=True, text=True, timeout=60, cwd=REPO, env=head.env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert len(server.authorizations) >= 4 and set(server.authorizations) == {None}
        # A token given explicitly still goes where it is told.
        monkeypatch.setenv("OXRAY_AUTH_TOKEN", "given")
        JobSubmissionClient(server.url)
        assert server.authorizations[-1] == "Bearer given"
    finally:
        server.close()


def test_invalid_submission_ids_are_refused(head):
    from oxray.dashboard.job_manager import validate_submission_id

    for good in ("raysubmit_abc", "job-1.2_x", "a" * 128, "v1.0"):
        validate_submission_id(good)
    client = head.client()
    for bad in ("../evil", "a/b", "..", ".", "a..b", "a" * 129, "has space", "x;rm", "caf\u00e9", "abc\n", ""):
        if not bad:
            continue  # (an empty id means: generate one)
        with pytest.raises(RuntimeError, match="status code 400") as e:
            client.submit_job(entrypoint="true", submission_id=bad)
        assert "Invalid submission_id" in str(e.value), bad
        with pytest.raises(ValueError):
            validate_submission_id(bad)
    assert not glob.glob(os.path.join(head.session_dir, "*evil*"))
    assert "../evil" not in [j.submission_id for j in client.list_jobs()]


def _watch(pgid, socket_path, kills):
    """The job manager's watcher of process group `pgid`, noting the
    signals it sends (`kill` with a signal) in the file `kills`."""
    from oxray.dashboard.job_manager import _WATCHER

    spy = f'kill() {{ case "$1" in -0) ;; *) echo "$*" >> "{kills}";; esac; command kill "$@"; }}; '
    return subprocess.Popen(["/bin/sh", "-c", spy + _WATCHER, "oxray-job-watch", str(pgid), "0", socket_path])


def test_the_watcher_kills_a_driver_only_when_the_cluster_is_gone(tmp_path):
    import socket

    sock_path = str(tmp_path / "daemon.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(sock_path)
    try:
        # A driver that ends by itself: the watcher ends too, killing nothing later.
        kills = tmp_path / "kills"
        short = subprocess.Popen(["sleep", "0.3"], start_new_session=True)
        watcher = _watch(short.pid, sock_path, kills)
        short.wait()
        assert watcher.wait(timeout=10) == 0
        assert not kills.exists(), kills.read_text()  # (its pgid may be another group's by now)
        # A driver still running when the daemon's socket goes: killed.
        long = subprocess.Popen(["sleep", "60"], start_new_session=True)
        watcher = _watch(long.pid, sock_path, kills)
        time.sleep(1.2)
        assert long.poll() is None and watcher.poll() is None
        os.remove(sock_path)
        assert watcher.wait(timeout=10) == 0
        assert long.wait(timeout=10) == -9
        assert kills.read_text() == f"-9 -{long.pid}\n"
    finally:
        sock.close()
