"""A smoke run of every benchmark workload (results checked, never
timings), so the benchmark cannot rot."""

import json
import subprocess
import sys

from conftest import REPO


def test_every_workload_runs_and_checks_its_results():
    out = subprocess.run([sys.executable, "-m", "oxray.scripts", "microbenchmark", "--smoke", "--num-cpus", "2"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "28 workloads ran" in out.stdout


def test_timed_output_is_json_lines():
    out = subprocess.run([sys.executable, "-m", "oxray.scripts", "microbenchmark", "--seconds", "0.05",
                          "--only", "tasks sync", "--num-cpus", "2"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    names = {r["name"] for r in rows}
    assert "single client tasks sync" in names and "startup: init to first task result" in names
    assert all(r["value"] >= 0 for r in rows)
