"""The worker template process (`python -m oxray._private.zygote`), started
by the node daemon. It imports oxray once, then forks a ready worker for
each worker id the daemon writes to its stdin: a worker starts in
milliseconds, and workers share the template's memory pages.

The template never starts threads or connects anywhere, so forking it is
safe; each child connects its own core worker."""

import os
import random
import signal
import sys

import cloudpickle  # noqa: F401  (warm import for the children)

import oxray  # noqa: F401
from oxray import _native  # noqa: F401
from oxray._private import worker_main


def main():
    # Children are reaped automatically; the daemon learns of their exit
    # from their connection.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    requests = sys.stdin.buffer
    while True:
        line = requests.readline()
        if not line:
            return  # the daemon is gone
        worker_id = line.strip().decode()
        if not worker_id:
            continue
        if os.fork() == 0:
            _become_worker(worker_id)


def _become_worker(worker_id):
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    random.seed()
    os.environ["OXRAY_WORKER_ID"] = worker_id
    try:
        worker_main.main()
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
