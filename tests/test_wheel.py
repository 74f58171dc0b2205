"""The package as users install it: one abi3 wheel built with maturin,
installed into a fresh virtualenv on its own, runs tasks (its daemon runs
from the extension module: the wheel ships no separate binary) and hands
large values back zero-copy through the buffer protocol."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

MATURIN = os.path.join(os.path.dirname(sys.executable), "maturin")


@pytest.mark.timeout(600)
def test_a_built_wheel_installs_and_runs_tasks(tmp_path):
    out = tmp_path / "wheels"
    subprocess.run([MATURIN, "build", "--release", "--locked", "--strip", "-o", str(out)], cwd=REPO,
                   check=True, capture_output=True, timeout=540)
    (wheel,) = out.glob("oxray-*.whl")
    # One wheel for every CPython from 3.9 on.
    assert "-cp39-abi3-" in wheel.name, wheel.name
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel)], check=True, timeout=300)
    program = textwrap.dedent("""
        import os
        import pickle

        import oxray
        from oxray._private import node

        package = os.path.dirname(oxray.__file__)
        assert not os.path.exists(os.path.join(package, "_bin")), "the wheel carries a daemon binary"
        assert node.daemon_command()[-1] == oxray._native.__file__

        oxray.init(num_cpus=1)

        @oxray.remote
        def double(x):
            return 2 * x

        @oxray.remote
        class Counter:
            def __init__(self):
                self.n = 0

            def add(self):
                self.n += 1
                return self.n

        counter = Counter.remote()
        print(oxray.get(double.remote(21)), oxray.get([counter.add.remote() for _ in range(3)]))

        # A large value with an out-of-band buffer comes back as a read-only
        # view of the shared store, and the store lets it go afterwards.
        value = oxray.get(oxray.put(pickle.PickleBuffer(bytearray(b"oxray" * 300_000))))
        view = memoryview(value)
        assert view.readonly and view.nbytes == 1_500_000 and bytes(view[:10]) == b"oxrayoxray"
        assert type(view.obj).__name__ == "SharedBuffer"
        del value, view
        print("buffer ok")
        oxray.shutdown()
    """)
    # Run away from the repository, with nothing of it on the path.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "OXRAY_", "VIRTUAL_ENV"))}
    result = subprocess.run([python, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["42 [1, 2, 3]", "buffer ok"]
