"""Failure figures the shared cluster benchmark does not take: how long a
frozen node takes to be declared dead, how long a lost object takes to be
rebuilt by lineage (from the node's death to `get` returning), and (oxray
only) how long a killed head takes to be back with its nodes.

    .venv/bin/python benchmarks/failures.py [--impl oxray|ray] [--rounds N]

Prints one JSON line per figure (the median of the rounds), as the shared
benchmarks do. Nodes are started with the implementation's own
`cluster_utils.Cluster` on this machine, 1 CPU each.
"""

import argparse
import importlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time

CAP = 90.0  # seconds; a figure that reaches it is reported as the cap


def pid_of(node):
    procs = node.all_processes["raylet"]
    return getattr(procs[0], "process", procs[0]).pid


def _load_descendants():
    # oxray's helper, loaded by path: this script also runs under Ray's
    # interpreter, where oxray is not installed.
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "python", "oxray", "_private", "procs.py")
    spec = importlib.util.spec_from_file_location("oxray_procs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.descendants


descendants = _load_descendants()


def until_dead(ray, node_id):
    start = time.monotonic()
    while time.monotonic() - start < CAP:
        if not any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes()):
            return time.monotonic() - start
        time.sleep(0.02)
    return CAP


def frozen_node(ray, cluster_utils):
    cluster = cluster_utils.Cluster()
    try:
        cluster.add_node(num_cpus=1)
        node = cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address)
        cluster.wait_for_nodes()
        frozen = descendants(pid_of(node))
        for p in frozen:
            os.kill(p, signal.SIGSTOP)
        try:
            return until_dead(ray, node.node_id)
        finally:
            for p in frozen:
                try:
                    os.kill(p, signal.SIGCONT)
                except ProcessLookupError:
                    pass
    finally:
        ray.shutdown()
        cluster.shutdown()


def lineage_rebuild(ray, cluster_utils):
    import numpy as np
    from importlib import import_module

    strategies = import_module(ray.__name__ + ".util.scheduling_strategies")
    cluster = cluster_utils.Cluster()
    try:
        cluster.add_node(num_cpus=0)
        doomed = cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address)
        cluster.wait_for_nodes()

        @ray.remote(num_cpus=1, max_retries=3)
        def make():
            return np.ones(100 << 17)  # 100 MiB

        ref = make.options(scheduling_strategy=strategies.NodeAffinitySchedulingStrategy(
            doomed.node_id, soft=True)).remote()
        ray.wait([ref], fetch_local=False, timeout=60)
        start = time.monotonic()
        cluster.remove_node(doomed, allow_graceful=False)
        value = ray.get(ref, timeout=CAP)
        took = time.monotonic() - start
        assert value.shape == (100 << 17,) and float(value[-1]) == 1.0
        return took
    finally:
        ray.shutdown()
        cluster.shutdown()


def head_restart(ray, cluster_utils):
    if not hasattr(cluster_utils.Cluster, "restart_head"):
        return None
    cluster = cluster_utils.Cluster()
    try:
        cluster.add_node(num_cpus=0)
        node = cluster.add_node(num_cpus=1)
        start = time.monotonic()
        cluster.restart_head()
        ray.init(address=cluster.address)
        while not any(n["NodeID"] == node.node_id and n["Alive"] for n in ray.nodes()):
            time.sleep(0.01)

        @ray.remote(num_cpus=1)
        def one():
            return 1

        assert ray.get(one.remote(), timeout=CAP) == 1
        return time.monotonic() - start
    finally:
        ray.shutdown()
        cluster.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", default="oxray")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("RAY_TMPDIR", tempfile.mkdtemp(prefix="failbench-"))
    ray = importlib.import_module(args.impl)
    cluster_utils = importlib.import_module(args.impl + ".cluster_utils")
    for name, run in [("frozen node declared dead", frozen_node),
                      ("lost 100 MiB object rebuilt by lineage", lineage_rebuild),
                      ("killed head back with its nodes", head_restart)]:
        values = [run(ray, cluster_utils) for _ in range(args.rounds)]
        if values[0] is None:
            continue
        print(json.dumps({"impl": args.impl, "name": name, "seconds": round(statistics.median(values), 3),
                          "rounds": [round(v, 3) for v in values]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
