"""oxray's microbenchmark: the workloads of Ray's `ray microbenchmark`
(same names and shapes) plus start-up time, idle footprint and task
round-trip latency.

    oxray microbenchmark [--seconds S] [--only NAME ...] [--smoke]

Each figure prints as one JSON line `{"name", "value", "unit"}`. `--smoke`
runs every workload a few times and checks its results instead of timing
it (the test suite does this so the benchmark cannot rot).
"""

import argparse
import asyncio
import json
import os
import sys
import time

MB = 1 << 20


def process_tree_pss_mb(root):
    """PSS (MB) and process count of `root` and all its descendants."""
    from oxray._private.procs import descendants

    tree = descendants(root)
    total_kb = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total_kb += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            pass
    return total_kb / 1024, len(tree)


class Runner:
    """Times workloads (or, in smoke mode, runs them once and checks them)."""

    def __init__(self, seconds, only, smoke, out=sys.stdout):
        self.seconds = seconds
        self.only = only
        self.smoke = smoke
        self.out = out
        self.results = {}

    def emit(self, name, value, unit):
        self.results[name] = (value, unit)
        if not self.smoke:
            print(json.dumps({"name": name, "value": round(value, 3), "unit": unit}), file=self.out, flush=True)

    def wanted(self, name):
        return not self.only or any(o in name for o in self.only)

    def rate(self, name, fn, per_call=1):
        """Calls of `fn` per second times `per_call`: the median of three
        windows after a warm-up."""
        if not self.wanted(name):
            return
        if self.smoke:
            fn()
            self.results[name] = (None, "per_s")
            return
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < min(0.5, self.seconds):
            fn()
            n += 1
        step = max(1, n // 10)
        rates = []
        for _ in range(3):
            t0, count = time.perf_counter(), 0
            while time.perf_counter() - t0 < self.seconds:
                for _ in range(step):
                    fn()
                count += step
            rates.append(per_call * count / (time.perf_counter() - t0))
        self.emit(name, sorted(rates)[1], "per_s")


def run(seconds=1.5, only=(), smoke=False, num_cpus=None, out=sys.stdout):
    """Runs the benchmark; returns {name: (value, unit)}."""
    import numpy as np

    import oxray as ray

    r = Runner(seconds, list(only), smoke, out)
    scale = 10 if smoke else 1  # smaller batches in smoke mode

    t0 = time.perf_counter()
    ray.init(num_cpus=num_cpus or os.cpu_count())
    try:
        @ray.remote
        def small_value():
            return b"ok"

        assert ray.get(small_value.remote()) == b"ok"
        r.emit("startup: init to first task result", time.perf_counter() - t0, "s")
        if not smoke:
            time.sleep(1.0)
        pss, count = process_tree_pss_mb(os.getpid())
        r.emit("idle footprint: PSS of driver and its process tree", pss, "MB")
        r.emit("idle footprint: processes in the tree", count, "count")
        _workloads(ray, np, r, scale, small_value)
    finally:
        t0 = time.perf_counter()
        ray.shutdown()
        r.emit("shutdown", time.perf_counter() - t0, "s")
    return r.results


def _workloads(ray, np, r, scale, small_value):
    @ray.remote(num_cpus=0)
    class Actor:
        def small_value(self):
            return b"ok"

        def small_value_arg(self, x):
            return b"ok"

    @ray.remote(num_cpus=0)
    class AsyncActor:
        async def small_value(self):
            return b"ok"

        async def small_value_with_arg(self, x):
            return b"ok"

    @ray.remote(num_cpus=0)
    class Client:
        def __init__(self, servers):
            self.servers = servers if isinstance(servers, list) else [servers]

        def small_value_batch(self, n):
            refs = [s.small_value.remote() for s in self.servers for _ in range(n)]
            assert set(ray.get(refs)) == {b"ok"}

        def small_value_batch_arg(self, n):
            x = ray.put(0)
            refs = [s.small_value_arg.remote(x) for s in self.servers for _ in range(n)]
            assert set(ray.get(refs)) == {b"ok"}

    @ray.remote
    def small_value_batch(n):
        assert set(ray.get([small_value.remote() for _ in range(n)])) == {b"ok"}
        return 0

    @ray.remote
    def do_put_small():
        for _ in range(100):
            ray.put(0)

    @ray.remote
    def do_put():
        for _ in range(10):
            ray.put(np.zeros(10 * MB // scale, dtype=np.int64))

    @ray.remote
    def create_object_containing_ref():
        return [ray.put(1) for _ in range(10000 // scale)]

    def check(value, expected):
        assert value == expected, f"{value!r} != {expected!r}"
        return value

    # --- object store --------------------------------------------------------
    value = ray.put(0)
    r.rate("single client get calls (Plasma Store)", lambda: check(ray.get(value), 0))
    r.rate("single client put calls (Plasma Store)", lambda: ray.put(0))
    r.rate("multi client put calls (Plasma Store)", lambda: ray.get([do_put_small.remote() for _ in range(10)]), 1000)
    arr = np.zeros(100 * MB // scale, dtype=np.int64)  # 800 MB, as Ray's benchmark
    r.rate("single client put gigabytes", lambda: ray.put(arr), 0.8 / scale)
    refs = {"big": ray.put(arr)}
    r.rate("single client get gigabytes", lambda: check(ray.get(refs["big"]).shape, arr.shape), 0.8 / scale)
    refs.clear()
    r.rate("multi client put gigabytes", lambda: ray.get([do_put.remote() for _ in range(10)]), 10 * 0.8 / scale)
    if r.wanted("single client get object containing 10k refs"):
        with_refs = create_object_containing_ref.remote()
        r.rate("single client get object containing 10k refs",
               lambda: check(len(ray.get(with_refs)), 10000 // scale))
        del with_refs

    # --- tasks ---------------------------------------------------------------
    batch = 1000 // scale
    r.rate("single client tasks and get batch", lambda: check(len(ray.get([small_value.remote() for _ in range(batch)])), batch))

    def wait_multiple_refs():
        not_ready = [small_value.remote() for _ in range(batch)]
        while not_ready:
            _, not_ready = ray.wait(not_ready)

    r.rate("single client wait 1k refs", wait_multiple_refs)
    r.rate("single client tasks sync", lambda: check(ray.get(small_value.remote()), b"ok"))
    r.rate("single client tasks async", lambda: ray.get([small_value.remote() for _ in range(batch)]), batch)
    if r.wanted("latency"):
        samples = []
        for _ in range(2000 // scale):
            t0 = time.perf_counter()
            ray.get(small_value.remote())
            samples.append(time.perf_counter() - t0)
        samples.sort()
        r.emit("task round-trip latency p50", samples[len(samples) // 2] * 1e6, "us")
        r.emit("task round-trip latency p99", samples[int(len(samples) * 0.99)] * 1e6, "us")

    # --- actors --------------------------------------------------------------
    n, m = 10000 // scale, 4
    if r.wanted("multi client tasks async"):
        actors = [Actor.remote() for _ in range(m)]
        r.rate("multi client tasks async", lambda: ray.get([small_value_batch.remote(n) for _ in actors]), n * m)
        del actors
    a = Actor.remote()
    r.rate("1:1 actor calls sync", lambda: check(ray.get(a.small_value.remote()), b"ok"))
    r.rate("1:1 actor calls async", lambda: ray.get([a.small_value.remote() for _ in range(batch)]), batch)
    c = Actor.options(max_concurrency=16).remote()
    r.rate("1:1 actor calls concurrent", lambda: ray.get([c.small_value.remote() for _ in range(batch)]), batch)
    n_cpu = max(1, (os.cpu_count() or 2) // 2)
    if r.wanted("1:n actor calls async"):
        client = Client.remote([Actor.remote() for _ in range(n_cpu)])
        r.rate("1:n actor calls async", lambda: ray.get(client.small_value_batch.remote(5000 // scale)),
               5000 // scale * n_cpu)
    if r.wanted("n:n actor calls with arg async"):
        clients = [Client.remote(Actor.remote()) for _ in range(n_cpu)]
        r.rate("n:n actor calls with arg async",
               lambda: ray.get([cl.small_value_batch_arg.remote(batch) for cl in clients]), batch * n_cpu)
    aa = AsyncActor.remote()
    r.rate("1:1 async-actor calls sync", lambda: check(ray.get(aa.small_value.remote()), b"ok"))
    r.rate("1:1 async-actor calls async", lambda: ray.get([aa.small_value.remote() for _ in range(batch)]), batch)
    r.rate("1:1 async-actor calls with args async",
           lambda: ray.get([aa.small_value_with_arg.remote(i) for i in range(batch)]), batch)

    # --- many actors: creation rate -----------------------------------------
    if r.wanted("actor creation"):
        t0 = time.perf_counter()
        many = [Actor.remote() for _ in range(20)]
        check(ray.get([x.small_value.remote() for x in many]), [b"ok"] * 20)
        r.emit("actor creation (20 actors, first call answered)", 20 / (time.perf_counter() - t0), "per_s")
        del many

    # --- await ---------------------------------------------------------------
    if r.wanted("asyncio"):
        async def gather():
            return await asyncio.gather(*[small_value.remote() for _ in range(batch)])

        r.rate("single client asyncio gather of tasks", lambda: check(len(asyncio.run(gather())), batch), batch)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="oxray microbenchmark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=1.5, help="length of each timing window")
    ap.add_argument("--only", action="append", default=[], help="run benchmarks whose name contains this")
    ap.add_argument("--smoke", action="store_true", help="run each workload briefly and check results")
    ap.add_argument("--num-cpus", type=int, default=None)
    args = ap.parse_args(argv)
    results = run(args.seconds, args.only, args.smoke, args.num_cpus)
    if args.smoke:
        print(f"smoke run: {len(results)} workloads ran and checked their results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
