"""Who drives each process's event loop: a thread blocked in get/wait, or the
background thread while user code runs. These tests make the background
thread lazy first (a streak of quick round trips), then need progress while
no thread of the process waits in oxray."""

import os
import tempfile
import time

import oxray


def _wait_for_files(directory, count, timeout=30):
    deadline = time.monotonic() + timeout
    while len(os.listdir(directory)) < count:
        assert time.monotonic() < deadline, f"only {len(os.listdir(directory))} of {count} tasks ran"
        time.sleep(0.01)  # user code: no oxray call drives the loop here


@oxray.remote
def quick():
    return 1


@oxray.remote
def touch(directory, name):
    open(os.path.join(directory, str(name)), "w").close()


def test_driver_dispatches_queued_tasks_while_user_code_runs(cluster):
    for _ in range(50):
        oxray.get(quick.remote())  # a streak: the background turns lazy
    d = tempfile.mkdtemp()
    refs = [touch.remote(d, i) for i in range(60)]
    # Most of these wait in the driver's queue; each reply must dispatch the
    # next one while the driver only sleeps.
    _wait_for_files(d, 60)
    oxray.get(refs)


@oxray.remote
class Reader:
    def read(self, boxed, directory):
        value = oxray.get(boxed[0])
        open(os.path.join(directory, value), "w").close()


@oxray.remote
def owner_busy_in_python(reader, directory):
    for _ in range(50):
        oxray.get(quick.remote())
    # A small value stays in this worker's own store: the reader must fetch
    # it from here while this task is busy in plain Python.
    ref = oxray.put("served")
    reader.read.remote([ref], directory)
    _wait_for_files(directory, 1)
    return sorted(os.listdir(directory))


def test_owner_serves_its_objects_while_running_user_code(cluster):
    d = tempfile.mkdtemp()
    reader = Reader.remote()
    assert oxray.get(owner_busy_in_python.remote(reader, d), timeout=60) == ["served"]


def test_threads_block_in_get_at_once(cluster):
    import threading

    @oxray.remote
    def slow(x):
        time.sleep(0.2)
        return x

    results = {}

    def call(i):
        for _ in range(20):
            oxray.get(quick.remote())
        results[i] = oxray.get(slow.remote(i))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i: i for i in range(4)}
