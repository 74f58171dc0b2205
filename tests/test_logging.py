"""Worker output reaches the driver prefixed with its origin, and is kept in
per-worker log files in the session directory (rotated, private), which
`oxray.util.state.list_logs` / `get_log` read."""

import os
import re
import stat
import sys
import threading

import pytest

import oxray
from conftest import run_driver, wait_for


def test_worker_print_is_prefixed():
    out = run_driver(
        "import sys, oxray\n"
        "oxray.init(num_cpus=1)\n"
        "@oxray.remote\n"
        "def f():\n"
        "    print('hello from f')\n"
        "    print('to stderr', file=sys.stderr)\n"
        "    return 1\n"
        "oxray.get(f.remote())\n"
        "import time; time.sleep(0.5)\n"
        "oxray.shutdown()\n"
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"^\(f pid=\d+\) hello from f$", out.stdout, re.M), out.stdout
    assert re.search(r"^\(f pid=\d+\) to stderr$", out.stderr, re.M), out.stderr


# ----- per-worker log files ------------------------------------------------

def _logs_dir():
    from oxray._private import worker as _worker
    return os.path.join(_worker.session().context["session_dir"], "logs")


def _read(path):
    with open(path) as f:
        return f.read()


@oxray.remote
def _chatty(i):
    print(f"out line {i}")
    print(f"err line {i}", file=sys.stderr)
    return os.getpid()


@oxray.remote
def _silent():
    return os.getpid()


@oxray.remote(num_cpus=0)
class _Talker:
    def __init__(self):
        print("talker born")

    def say(self, text):
        print(text)
        return os.getpid()


def test_worker_output_is_kept_in_private_per_worker_files(cluster):
    ref = _chatty.remote(1)
    pid = oxray.get(ref)
    out_path = os.path.join(_logs_dir(), f"worker-{pid}.out")
    err_path = os.path.join(_logs_dir(), f"worker-{pid}.err")
    assert wait_for(lambda: os.path.exists(err_path) and "err line 1" in _read(err_path))
    out = _read(out_path)
    # Each line once, without the prefix, after a marker naming the task.
    assert f":task_name:_chatty {ref.task_id()}\nout line 1\n" in out, out
    assert "pid=" not in out and out.count("out line 1") == 1
    assert f":task_name:_chatty {ref.task_id()}\nerr line 1\n" in _read(err_path)
    assert stat.S_IMODE(os.stat(_logs_dir()).st_mode) == 0o700
    for path in (out_path, err_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    talker = _Talker.remote()
    apid = oxray.get(talker.say.remote("hello from the actor"))
    actor_out = os.path.join(_logs_dir(), f"worker-{apid}.out")
    assert wait_for(lambda: os.path.exists(actor_out) and "hello from the actor" in _read(actor_out))
    text = _read(actor_out)
    assert text.startswith(f":actor_name:_Talker {talker._actor_id.hex()}\n"), text
    assert ":task_name:_Talker.__init__ " in text and "talker born\n" in text
    assert ":task_name:_Talker.say " in text
    oxray.kill(talker)


def test_tasks_that_print_nothing_write_nothing(cluster):
    pid = oxray.get(_chatty.remote(2))
    path = os.path.join(_logs_dir(), f"worker-{pid}.out")
    assert wait_for(lambda: "out line 2" in _read(path))
    before = {name: os.path.getsize(os.path.join(_logs_dir(), name)) for name in os.listdir(_logs_dir())}
    pids = set(oxray.get([_silent.remote() for _ in range(50)]))
    after = {name: os.path.getsize(os.path.join(_logs_dir(), name)) for name in os.listdir(_logs_dir())}
    assert after == before
    # A worker that never printed has no file at all.
    for silent_pid in pids - {pid}:
        if not any(f"worker-{silent_pid}." in name for name in before):
            assert not os.path.exists(os.path.join(_logs_dir(), f"worker-{silent_pid}.out"))


@pytest.mark.parametrize("names", [("OXRAY_LOG_ROTATE_BYTES", "OXRAY_LOG_ROTATE_BACKUP_COUNT"),
                                   ("RAY_ROTATION_MAX_BYTES", "RAY_ROTATION_BACKUP_COUNT")])
def test_log_files_rotate_by_size(shutdown_only, monkeypatch, names):
    # The daemon passes the driver's environment to the workers.
    monkeypatch.setenv(names[0], "300")
    monkeypatch.setenv(names[1], "2")

    @oxray.remote
    def spam():
        for i in range(60):
            print(f"line {i:03d} " + "x" * 20)
        return os.getpid()

    oxray.init(num_cpus=1)
    pid = oxray.get(spam.remote())
    base = os.path.join(_logs_dir(), f"worker-{pid}.out")
    assert wait_for(lambda: os.path.exists(base) and "line 059" in _read(base))
    names_now = sorted(n for n in os.listdir(_logs_dir()) if n.startswith(f"worker-{pid}.out"))
    assert names_now == [f"worker-{pid}.out", f"worker-{pid}.out.1", f"worker-{pid}.out.2"], names_now
    for name in names_now:
        path = os.path.join(_logs_dir(), name)
        assert os.path.getsize(path) <= 300 + 100, (name, os.path.getsize(path))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        # Every file says whose lines it holds.
        assert _read(path).startswith(":task_name:spam "), name
    # `.1` is the newest backup, as RotatingFileHandler names them.
    newest, older = _read(base + ".1"), _read(base + ".2")
    assert max(int(line.split()[1]) for line in older.splitlines()[1:]) < \
        min(int(line.split()[1]) for line in newest.splitlines()[1:])


def test_files_are_written_with_log_to_driver_off(shutdown_only):
    oxray.init(num_cpus=1, log_to_driver=False)
    ref = _chatty.remote(3)
    pid = oxray.get(ref)
    path = os.path.join(_logs_dir(), f"worker-{pid}.out")
    assert wait_for(lambda: os.path.exists(path) and "out line 3" in _read(path))


def test_list_logs_and_get_log(cluster):
    from oxray.util.state import get_log, list_logs

    ref = _chatty.remote(4)
    pid = oxray.get(ref)
    talker = _Talker.remote()
    apid = oxray.get(talker.say.remote("first"))
    actor_out = os.path.join(_logs_dir(), f"worker-{apid}.out")
    assert wait_for(lambda: os.path.exists(actor_out) and "first" in _read(actor_out))

    files = list_logs()
    assert f"worker-{pid}.out" in files["worker_out"] and f"worker-{pid}.err" in files["worker_err"]
    assert "daemon.err" in files["daemon"]
    assert list_logs(glob_filter="*.err")["worker_err"] and "worker_out" not in list_logs(glob_filter="*.err")
    node_id = oxray.get_runtime_context().get_node_id()
    assert f"worker-{apid}.out" in list_logs(node_id=node_id)["worker_out"]

    whole = "".join(get_log(pid=pid))
    assert "out line 4\n" in whole and ":task_name:_chatty" in whole
    assert "".join(get_log(filename=f"worker-{pid}.err", tail=1)).endswith("\n")
    # A task's own lines, picked out by its marker; an actor's, without markers.
    assert "".join(get_log(task_id=ref.task_id())) == "out line 4\n"
    assert "".join(get_log(task_id=ref.task_id(), suffix="err")) == "err line 4\n"
    assert "".join(get_log(actor_id=talker._actor_id.hex())) == "talker born\nfirst\n"
    with pytest.raises(ValueError, match="no log file"):
        get_log(filename="worker-1.out")
    # A submitted job's driver log (the job manager writes it there).
    with open(os.path.join(_logs_dir(), "job-driver-raysubmit_1.log"), "w") as f:
        f.write("job line\n")
    assert list_logs()["driver"] == ["job-driver-raysubmit_1.log"]
    assert "".join(get_log(submission_id="raysubmit_1")) == "job line\n"
    with pytest.raises(ValueError, match="not a log file name"):
        get_log(filename="../token")

    # follow: the lines written later come too.
    chunks = get_log(actor_id=talker._actor_id.hex(), follow=True, tail=1, _interval=0.05)
    assert next(chunks) == "first\n"
    got = []
    reader = threading.Thread(target=lambda: got.append(next(chunks)), daemon=True)
    reader.start()
    oxray.get(talker.say.remote("second"))
    reader.join(timeout=10)
    assert got == ["second\n"]
    oxray.kill(talker)


def test_follow_reads_across_a_rotation(shutdown_only):
    """`get_log(follow=True)` yields new lines as they come, and across a
    rotation yields the rest of the old file (now `.1`) before the new one,
    with a line that was cut at the poll put back together."""
    from oxray.util.state import get_log

    oxray.init(num_cpus=1)
    logs = _logs_dir()
    os.makedirs(logs, exist_ok=True)
    path = os.path.join(logs, "worker-999999.out")
    with open(path, "w") as f:
        f.write("before\n")
    chunks = []
    gen = get_log(filename="worker-999999.out", follow=True, tail=1, _interval=0.05)
    reader = threading.Thread(target=lambda: chunks.extend(gen), daemon=True)
    reader.start()

    def append(text, to=path):
        with open(to, "a") as f:
            f.write(text)

    seen = lambda: "".join(chunks)  # noqa: E731
    assert wait_for(lambda: seen() == "before\n", timeout=20), seen()  # following from here
    append("one\n")
    assert wait_for(lambda: seen() == "before\none\n", timeout=20), seen()
    append("half a ")
    import time

    time.sleep(0.3)  # read as a partial line
    append("line\nlast of the old file\n")
    os.rename(path, path + ".1")
    append("first of the new file\n")
    assert wait_for(lambda: seen().endswith("first of the new file\n"), timeout=20), seen()
    assert seen() == "before\none\nhalf a line\nlast of the old file\nfirst of the new file\n"
    oxray.shutdown()  # the session ends: so does the follow
    reader.join(timeout=20)
    assert not reader.is_alive()
