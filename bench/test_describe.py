"""``fastmoments describe`` on a page-cached file vs simply reading it (issue 6).

The file (400 MB of float64, 8 columns, ``.npy``) is read once before timing so
it sits in the page cache. Baselines, timed in the same run with rounds
interleaved:

* ``read``: the file read start to end with ``readinto`` in chunks of the same
  size (64 MB) into one reused buffer: what any tool must at least do;
* ``read-1MiB``: the same with a 1 MiB buffer (stays in cache: the fastest
  plain read, like ``cat``).

``extra_info`` holds ``frac_read`` (read time / describe time; target 0.8) and
``frac_read_1mib``. ``describe`` runs in-process (``fastmoments.cli.main``), so
the interpreter's start-up (~2 s for NumPy + Numba) is not in the figure.

With ``--benchmark-disable`` the file is 4 MB and only the output is checked.
``FASTMOMENTS_DESCRIBE_BENCH_MB`` overrides the size.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import time

import numpy as np
import pytest

from fastmoments.cli import main

MB = 1_000_000
CHUNK = 64 * 1024 * 1024
ROUNDS = 5


@pytest.fixture(scope="module")
def npy_file(tmp_path_factory, timing):
    env = os.environ.get("FASTMOMENTS_DESCRIBE_BENCH_MB")
    nbytes = int(float(env) * MB) if env else (400 * MB if timing else 4 * MB)
    cols = 8
    rows = nbytes // (8 * cols)
    p = tmp_path_factory.mktemp("describe") / "data.npy"
    x = np.lib.format.open_memmap(p, mode="w+", dtype=np.float64, shape=(rows, cols))
    rng = np.random.default_rng(0)
    step = 1 << 20
    for i in range(0, rows, step):
        x[i : i + step] = rng.normal(size=(min(step, rows - i), cols)) * 3 + np.arange(cols)
    x.flush()
    ref_mean, ref_std = np.mean(x, axis=0), np.std(x, axis=0)
    del x
    return p, ref_mean, ref_std


def _read(path, bufsize):
    buf = bytearray(bufsize)
    view = memoryview(buf)
    n = 0
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(view):
            n += k
    return n


def _describe(path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["describe", str(path), "--json", "--no-progress", "--chunk-size", str(CHUNK)])
    assert rc == 0
    return out.getvalue()


def test_describe_vs_read(benchmark, npy_file, timing):
    path, ref_mean, ref_std = npy_file
    got = json.loads(_describe(path))  # warm-up: page cache, Numba cache
    np.testing.assert_allclose([got[str(i)]["mean"] for i in range(8)], ref_mean, rtol=1e-12)
    np.testing.assert_allclose([got[str(i)]["std"] for i in range(8)], ref_std, rtol=1e-12)
    size = os.path.getsize(path)
    assert _read(path, CHUNK) == size
    extra = {"nbytes": size, "chunk": CHUNK, "target": 0.8}
    if timing:
        t_d, t_r, t_r1 = [], [], []
        for _ in range(ROUNDS):
            t = time.perf_counter(); _describe(path); t_d.append(time.perf_counter() - t)
            t = time.perf_counter(); _read(path, CHUNK); t_r.append(time.perf_counter() - t)
            t = time.perf_counter(); _read(path, 1 << 20); t_r1.append(time.perf_counter() - t)
        d, r, r1 = map(statistics.median, (t_d, t_r, t_r1))
        extra.update(
            describe_s=d, read_s=r, read_1mib_s=r1, frac_read=r / d, frac_read_1mib=r1 / d,
            describe_gbps=size / d / 1e9, read_gbps=size / r / 1e9, read_1mib_gbps=size / r1 / 1e9,
        )
    benchmark.extra_info.update(extra)
    benchmark.group = "describe"
    benchmark.pedantic(_describe, args=(path,), rounds=ROUNDS if timing else 1, iterations=1)
