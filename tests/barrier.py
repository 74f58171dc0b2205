"""A barrier across processes, for proving that tasks run at the same time:
each party marks its arrival in a directory and waits for the others, so the
tasks can only finish together."""

import os
import time


def arrive_and_wait(directory, parties, name, timeout=30.0):
    os.makedirs(directory, exist_ok=True)
    open(os.path.join(directory, str(name)), "w").close()
    deadline = time.monotonic() + timeout
    while len(os.listdir(directory)) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(os.listdir(directory))} of {parties} parties arrived")
        time.sleep(0.01)
    return True
