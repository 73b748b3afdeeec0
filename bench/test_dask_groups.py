"""fastmoments_dask.group_moments vs flox's ``groupby_reduce(func="nanvar")`` (issue 20).

Workload (the issue's): 10**7 float64 values, a NumPy array wrapped by
``da.from_array`` in 16 chunks (the same chunks for both), int64 labels as a
NumPy array: random in 10, 1,000 and 10**6 groups, and sorted in 1,000.
flox is not run for 10**6 groups: its graph construction asks for a
(chunks x groups)-sized array of 4.6 GiB already for 10**5 values
(MemoryError here, 0.11.2, whatever ``method``/``reindex``), so that
workload times fastmoments alone.
Both run on Dask's threaded scheduler; flox with its default method
("map-reduce", numpy_groupies' Numba engine where installed) and the groups
given up front (``expected_groups``), as ``ngroups`` is for fastmoments. Each
benchmark's ``extra_info`` holds ``speedup`` (flox's median / fastmoments'
median, rounds interleaved in the same run) and ``target`` (3.0).

With ``--benchmark-disable`` the arrays are 10**5 values and the results
are only checked against a NumPy loop over the groups.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
fmd = pytest.importorskip("fastmoments_dask")
flox = pytest.importorskip("flox")

ROUNDS = 5
CHUNKS = 16
TARGET = 3.0
FLOX_MAX_GROUPS = 10**5
WORKLOADS = {  # name: (groups, sorted labels)
    "random G=10": (10, False),
    "random G=1000": (1000, False),
    "random G=1e6": (10**6, False),
    "sorted G=1000": (1000, True),
}


@pytest.fixture(scope="module", params=list(WORKLOADS))
def workload(request, timing):
    G, sort = WORKLOADS[request.param]
    n = 10**7 if timing else 10**5
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=n)
    by = rng.integers(0, G, n)
    if sort:
        by.sort()
    d = da.from_array(x, chunks=(-(-n // CHUNKS),))
    return request.param, x, by, d, G


def _fm(d, by, G):
    return fmd.group_moments(d, by, ngroups=G).compute(scheduler="threads")


def _flox(d, by, G):
    res, _groups = flox.groupby_reduce(d, by, func="nanvar", expected_groups=np.arange(G))
    return res.compute(scheduler="threads")


def _reference_var(x, by, G):
    """Per group in float64: np.var of each group's values (NaN for none)."""
    order = np.argsort(by, kind="stable")
    xs, bs = x[order], by[order]
    cuts = np.searchsorted(bs, np.arange(G + 1))
    out = np.full(G, np.nan)
    for g in range(G):
        if cuts[g + 1] > cuts[g]:
            out[g] = np.var(xs[cuts[g]:cuts[g + 1]])
    return out


def test_dask_group_moments_vs_flox(benchmark, workload, timing):
    name, x, by, d, G = workload
    with_flox = G <= FLOX_MAX_GROUPS
    m = _fm(d, by, G)  # warm-up (and JIT) outside the timing
    ref = _reference_var(x, by, G)
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(m.var()[ok], ref[ok], rtol=1e-12, atol=1e-15)
    assert np.all(m.count[~ok] == 0)
    if with_flox:
        fv = _flox(d, by, G)
        np.testing.assert_allclose(fv[ok], ref[ok], rtol=1e-9, atol=1e-12)
    extra = {"workload": name, "nbytes": x.nbytes + by.nbytes, "chunks": str(d.chunksize),
             "target": TARGET if with_flox else None}
    if timing and not with_flox:
        t_fm = []
        for _ in range(ROUNDS):
            t = time.perf_counter(); _fm(d, by, G); t_fm.append(time.perf_counter() - t)
        extra.update(fm_s=statistics.median(t_fm), flox="not run (MemoryError, see the module docstring)")
        print(f"\n{name}: fastmoments_dask {extra['fm_s'] * 1e3:.1f} ms (flox not run)")
    elif timing:
        t_fm, t_flox = [], []
        for _ in range(ROUNDS):
            t = time.perf_counter(); _fm(d, by, G); t_fm.append(time.perf_counter() - t)
            t = time.perf_counter(); _flox(d, by, G); t_flox.append(time.perf_counter() - t)
        fm_s, flox_s = statistics.median(t_fm), statistics.median(t_flox)
        extra.update(fm_s=fm_s, flox_s=flox_s, speedup=flox_s / fm_s)
        print(f"\n{name}: fastmoments_dask {fm_s * 1e3:.1f} ms, flox nanvar {flox_s * 1e3:.1f} ms, "
              f"speedup {flox_s / fm_s:.2f} (target {TARGET})")
    benchmark.extra_info.update(extra)
    benchmark.group = "dask groups"
    benchmark.pedantic(_fm, args=(d, by, G), rounds=ROUNDS if timing else 1, iterations=1)
