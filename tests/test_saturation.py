"""No node is declared dead falsely while both cores are saturated for
minutes: by the cluster's own CPU-bound tasks on every node, and by as many
busy processes again outside it. Default health checks (1 s, 4 misses).
`OXRAY_SATURATION_SECONDS` sets the length (120 s by default)."""

import os
import subprocess
import sys
import time

import pytest

import oxray

SECONDS = float(os.environ.get("OXRAY_SATURATION_SECONDS", "120"))


@oxray.remote(num_cpus=1)
def spin(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


@pytest.mark.timeout(SECONDS + 120)
def test_saturated_cores_declare_no_node_dead(make_cluster):
    cluster, nodes = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1})
    ids = {n.node_id for n in nodes}
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * os.cpu_count())]
    try:
        busy = [spin.remote(SECONDS) for _ in range(len(nodes))]
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            dead = [n["NodeID"] for n in oxray.nodes() if n["NodeID"] in ids and not n["Alive"]]
            assert not dead, f"declared dead under load: {dead}"
            time.sleep(1)
        assert all(v > 0 for v in oxray.get(busy, timeout=120))
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert {n["NodeID"] for n in oxray.nodes() if n["Alive"]} >= ids
