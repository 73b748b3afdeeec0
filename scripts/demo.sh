#!/usr/bin/env bash
# The main job, from a fresh machine: sets up .venv, then trains three small
# Chainer networks on scikit-learn's digits (healthy, vanishing, exploding)
# with fastmoments' GradientMonitor, printing per-layer tables and alerts and
# writing logs and gradient-flow PNGs under result/. Extra arguments go to the
# demo (e.g. --device @cupy:0, --runs healthy).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
exec .venv/bin/python -m fastmoments_chainer.demo --out result "$@"
