#!/usr/bin/env bash
# Sets everything up on a fresh machine: a virtualenv with maturin and the
# Python dependencies, the release build of the daemon and of the Python
# extension. Idempotent; safe to run again after a change.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements-dev.txt

cargo build --release --locked -p oxray-cli
mkdir -p python/oxray/_bin
# Copy then rename: a daemon still running the old binary keeps it.
cp target/release/oxray python/oxray/_bin/oxray.new
mv -f python/oxray/_bin/oxray.new python/oxray/_bin/oxray
# The extension is one abi3 module (_native.abi3.so); a per-version one left
# by an older checkout would shadow it.
rm -f python/oxray/_native.cpython-*.so
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release --locked --quiet 2>&1 | grep -v "^📦\|^🔗\|^🐍\|^✏️" || true
.venv/bin/python -c "import oxray, oxray._native" \
  || { echo "setup: the oxray package did not install" >&2; exit 1; }
