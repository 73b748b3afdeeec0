#!/usr/bin/env bash
# Creates .venv (once) and installs fastmoments, its integrations and the test
# and benchmark tools into it. Idempotent: re-running reinstalls only when a
# pyproject.toml or this script changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PY=${PYTHON:-python3}
venv=.venv
if [ ! -x "$venv/bin/python" ]; then
    "$PY" -m venv "$venv"
fi
stamp=$venv/.fastmoments-installed
want=$(cat scripts/setup.sh pyproject.toml integrations/*/pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# Chainer 7.8.1's sdist imports pkg_resources in its setup.py: it builds only
# with setuptools<82 and without build isolation.
"${pip[@]}" install --upgrade pip "setuptools<82" wheel
"${pip[@]}" install -e ".[test,bench,io]"
# The framework-free monitor core, before the adapters that depend on it.
if [ -f integrations/monitor/pyproject.toml ]; then
    "${pip[@]}" install -e "integrations/monitor[test]"
fi
if [ -f integrations/chainer/pyproject.toml ]; then
    "${pip[@]}" install --no-build-isolation "chainer==7.8.1"
    "${pip[@]}" install --no-build-isolation -e "integrations/chainer[test]"
fi
if [ -f integrations/dask/pyproject.toml ]; then
    "${pip[@]}" install -e "integrations/dask[test]"
fi
# PyTorch: the CPU build (a plain "torch" requirement pulls a CUDA build of several GB).
if [ -f integrations/torch/pyproject.toml ]; then
    "${pip[@]}" install "torch==2.13.0"
    "${pip[@]}" install -e "integrations/torch[test]"
fi
echo "$want" > "$stamp"
