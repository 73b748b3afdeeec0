#!/usr/bin/env bash
# The main job, from a fresh machine: sets up .venv and runs the demo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
exec .venv/bin/python examples/combine_groups.py "$@"
