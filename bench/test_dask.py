"""fastmoments_dask.moments vs ``da.mean`` + ``da.var`` on the threaded scheduler (issue 6).

Workload: a 400 MB float64 NumPy array wrapped by ``da.from_array`` (the same
chunks for both), reduced over all axes (1-D) and per column (2-D, axis 0).
The baseline computes ``da.mean`` and ``da.var`` in one ``dask.compute`` (their
shared chunks read once per function, as a user would write it). Each
benchmark's ``extra_info`` holds ``speedup`` (baseline median / fastmoments
median, rounds interleaved in the same run) and ``target`` (3.0).

With ``--benchmark-disable`` the arrays are 4 MB and the results are only
checked against NumPy. ``FASTMOMENTS_DASK_BENCH_MB`` overrides the size.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
fmd = pytest.importorskip("fastmoments_dask")

MB = 1_000_000
ROUNDS = 5


def _size(timing):
    env = os.environ.get("FASTMOMENTS_DASK_BENCH_MB")
    return int(float(env) * MB) if env else (400 * MB if timing else 4 * MB)


WORKLOADS = {
    # name: (columns, axis, chunk rows as a fraction of the rows)
    "1d-all": (None, None, 1 / 16),
    "2d-cols8-axis0": (8, 0, 1 / 16),
}


@pytest.fixture(scope="module", params=list(WORKLOADS))
def workload(request, timing):
    cols, axis, frac = WORKLOADS[request.param]
    n = _size(timing) // 8
    rng = np.random.default_rng(0)
    if cols is None:
        x = rng.normal(3.0, 2.0, size=n)
        chunks = (max(1, int(n * frac)),)
    else:
        x = rng.normal(3.0, 2.0, size=(n // cols, cols))
        chunks = (max(1, int(x.shape[0] * frac)), cols)
    d = da.from_array(x, chunks=chunks)
    return request.param, x, d, axis


def _fm(d, axis):
    return fmd.moments(d, axis=axis).compute(scheduler="threads")


def _baseline(d, axis):
    return dask.compute(da.mean(d, axis=axis), da.var(d, axis=axis), scheduler="threads")


def test_dask_moments_vs_mean_var(benchmark, workload, timing):
    name, x, d, axis = workload
    m = _fm(d, axis)  # warm-up (and JIT) outside the timing
    mean, var = _baseline(d, axis)
    ref_var = np.var(x, axis=axis)
    np.testing.assert_allclose(m.var(), ref_var, rtol=1e-12)
    np.testing.assert_allclose(var, ref_var, rtol=1e-10)
    np.testing.assert_allclose(m.mean, np.mean(x, axis=axis), rtol=1e-12)
    extra = {"workload": name, "nbytes": x.nbytes, "chunks": str(d.chunksize), "target": 3.0}
    if timing:
        t_fm, t_base = [], []
        for _ in range(ROUNDS):
            t = time.perf_counter(); _fm(d, axis); t_fm.append(time.perf_counter() - t)
            t = time.perf_counter(); _baseline(d, axis); t_base.append(time.perf_counter() - t)
        fm_s, base_s = statistics.median(t_fm), statistics.median(t_base)
        extra.update(
            fm_s=fm_s, baseline_s=base_s, speedup=base_s / fm_s,
            fm_gbps=x.nbytes / fm_s / 1e9, baseline_gbps=x.nbytes / base_s / 1e9,
        )
    benchmark.extra_info.update(extra)
    benchmark.group = "dask"
    benchmark.pedantic(_fm, args=(d, axis), rounds=ROUNDS if timing else 1, iterations=1)
