#!/usr/bin/env bash
# Every test: set up (idempotent), the Rust unit tests, then the Python
# suite through the public API.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --release --locked --workspace --exclude oxray-python
# The dashboard's browser tests drive Debian's chromium (Playwright's own download is not reachable).
command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
.venv/bin/python -m pytest tests -q "$@"
