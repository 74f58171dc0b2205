"""Worker output reaches the driver prefixed with its origin."""

import re

from conftest import run_driver


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
