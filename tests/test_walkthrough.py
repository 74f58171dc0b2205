"""The README's main job: Ray's Core Walkthrough runs unchanged."""

import os
import subprocess
import sys

from conftest import REPO


def test_walkthrough_example_runs():
    out = subprocess.run([sys.executable, os.path.join(REPO, "examples", "walkthrough.py")],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]" in out.stdout
    assert "[2, 3, 4, 5, 6]" in out.stdout
    assert "`get` timed out." in out.stdout
    assert out.stdout.strip().endswith("walkthrough finished")
