"""Ray's Core Walkthrough, run unchanged on oxray (`import oxray as ray`).

Each section prints what it shows; the script fails loudly if any result
differs from what the walkthrough promises.
"""

import time

import numpy as np

import oxray as ray

# --- Starting Ray ------------------------------------------------------------
ray.init()
print("cluster resources:", ray.cluster_resources())


# --- Remote functions (tasks) -------------------------------------------------
def regular_function():
    return 1


@ray.remote
def remote_function():
    return 1


assert regular_function() == 1
object_id = remote_function.remote()
assert ray.get(object_id) == 1

for _ in range(4):
    regular_function()  # these happen serially
refs = [remote_function.remote() for _ in range(4)]  # these happen in parallel
assert ray.get(refs) == [1, 1, 1, 1]
print("remote functions: ok")


@ray.remote
def remote_chain_function(value):
    return value + 1


y1_id = remote_function.remote()
assert ray.get(y1_id) == 1
chained_id = remote_chain_function.remote(y1_id)
assert ray.get(chained_id) == 2
print("object refs as arguments: ok")


# --- Resources ---------------------------------------------------------------
@ray.remote(num_cpus=1)
def uses_one_cpu():
    return 1


@ray.remote(num_gpus=0.5)
def h():
    return ray.get_gpu_ids()


@ray.remote(resources={"Custom": 1})
def f():
    return 1


assert ray.get(uses_one_cpu.remote()) == 1
print("resource requests: ok (GPU and custom tasks wait for a node that has them)")


# --- Multiple returns --------------------------------------------------------
@ray.remote(num_return_vals=3)
def return_multiple():
    return 1, 2, 3


a_id, b_id, c_id = return_multiple.remote()
assert ray.get([a_id, b_id, c_id]) == [1, 2, 3]
print("multiple returns: ok")

# --- Objects in Ray ----------------------------------------------------------
y = 1
object_id = ray.put(y)
assert ray.get(object_id) == 1
array = np.arange(1_000_000, dtype=np.float64)
assert np.array_equal(ray.get(ray.put(array)), array)
print("put/get: ok")

# --- Fetching results --------------------------------------------------------
from oxray.exceptions import RayTimeoutError  # noqa: E402


@ray.remote
def long_running_function():
    time.sleep(8)


obj_id = long_running_function.remote()
try:
    ray.get(obj_id, timeout=4)
    raise AssertionError("expected a timeout")
except RayTimeoutError:
    print("`get` timed out.")


@ray.remote
def sleep_for(seconds):
    time.sleep(seconds)
    return seconds


object_ids = [sleep_for.remote(s) for s in (0.1, 2, 0.2)]
ready_ids, remaining_ids = ray.wait(object_ids, num_returns=1, timeout=None)
assert ready_ids == [object_ids[0]] and len(remaining_ids) == 2
ready_ids, remaining_ids = ray.wait(object_ids, num_returns=2, timeout=None)
assert len(ready_ids) == 2 and len(remaining_ids) == 1
assert ready_ids == [r for r in object_ids if r in ready_ids]  # input order is kept
print("wait: ok")


@ray.remote
def fails():
    raise ValueError("raised in a task")


try:
    ray.get(fails.remote())
except ValueError as e:
    print("task error re-raised in the driver:", type(e).__name__)



# --- Remote classes (actors) -------------------------------------------------
@ray.remote
class Counter(object):
    def __init__(self):
        self.value = 0

    def increment(self):
        self.value += 1
        return self.value


a1 = Counter.remote()
a2 = Counter.remote()


@ray.remote(num_cpus=2, num_gpus=0.5)
class Actor(object):
    pass


obj_id = a1.increment.remote()
assert ray.get(obj_id) == 1

# Create ten Counter actors.
counters = [Counter.remote() for _ in range(10)]

# Increment each Counter once and get the results. These tasks all happen in
# parallel.
results = ray.get([c.increment.remote() for c in counters])
print(results)  # prints [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
assert results == [1] * 10

# Increment the first Counter five times. These tasks are executed serially
# and share state.
results = ray.get([counters[0].increment.remote() for _ in range(5)])
print(results)  # prints [2, 3, 4, 5, 6]
assert results == [2, 3, 4, 5, 6]

ray.shutdown()
print("walkthrough finished")
