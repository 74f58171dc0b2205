#!/usr/bin/env bash
# The main job: set everything up, then run Ray's Core Walkthrough on an
# embedded local cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/walkthrough.py
