"""The repository's examples run and report their own checks passing (issue 19's
"the example runs"): each is run as a user would, in a fresh interpreter, on
small sizes."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("script, args", [
    ("streaming_covariance.py", ["--batches", "4", "--rows", "5000", "--features", "12"]),
    ("combine_groups.py", []),
])
def test_example_runs(script, args):
    path = ROOT / "examples" / script
    assert path.exists(), path
    proc = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    if script == "streaming_covariance.py":
        assert "OK: streamed and Dask statistics match" in proc.stdout, proc.stdout[-2000:]
