"""Grouped moments (issue 20): ``fm.group_moments`` vs numpy_groupies and pandas.

Workloads: 10**7 float64 values (mean 1, std 2) with int64 labels, random in
10, 1,000 and 10**6 groups, and sorted in 1,000 groups; ``ngroups`` given
(the default, ``by.max() + 1``, adds a pass over the labels).

Baselines: ``numpy_groupies.aggregate_numba.aggregate(by, x, func="var")``
(its Numba engine; plain sums of values and squares) and
``pandas.Series(x).groupby(by).var(ddof=0)``. The bound reads the values and
the labels once each (two parallel sums). Targets (issue 20): at least 5x
the faster baseline, and at least 0.5 of the bound up to 1,000 groups.
Every result is checked against a NumPy reference (bincount two-pass).
"""

import numpy as np
import pandas as pd
import pytest
from numpy_groupies import aggregate_numba as npg

import fastmoments as fm

N = 10_000_000
SMALL = 200_003
TARGET_BOUND = 0.5
CASES = {  # name: (ngroups, sorted)
    "random G=10": (10, False),
    "random G=1000": (1000, False),
    "random G=1e6": (1_000_000, False),
    "sorted G=1000": (1000, True),
}


def _reference(x, by, G):
    count = np.bincount(by, minlength=G)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(by, x, minlength=G) / count
        d = x - mean[by]
        var = np.bincount(by, d * d, minlength=G) / count
    return count, mean, var


@pytest.fixture(scope="module", params=list(CASES))
def data(request, kit):
    G, sort = CASES[request.param]
    n = N if kit.timing else SMALL
    x = kit.normal(n, "float64")
    by = np.random.default_rng(7).integers(0, G, n)
    if sort:
        by.sort()
    yield request.param, G, x, by, _reference(x, by, G)
    del x, by


VARIANTS = {
    "fastmoments.group_moments": ("fastmoments", lambda x, by, G: fm.group_moments(x, by, ngroups=G)),
    "numpy_groupies (numba) var": ("baseline", lambda x, by, G: npg.aggregate(by, x, func="var", size=G)),
    "pandas groupby().var": ("baseline", lambda x, by, G: pd.Series(x).groupby(by).var(ddof=0)),
    "bound": ("bound", None),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_groups(benchmark, kit, data, variant):
    name, G, x, by, (count, mean, var) = data
    role, call = VARIANTS[variant]

    def bound(x, by):
        return kit.stream_sum(x) + kit.stream_sum(by)

    if role == "bound":
        call = lambda x, by, G: bound(x, by)  # noqa: E731
    result, bound_s = kit.run_big(benchmark, call, x, by, G, bound=(bound, (x, by)))
    err = None
    have = count > 0
    if role == "fastmoments":
        np.testing.assert_array_equal(result.count, count)
        np.testing.assert_allclose(result.mean[have], mean[have], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(result.var()[have], var[have], rtol=1e-9)
        err = float(np.max(np.abs(result.var()[have] / var[have] - 1)))
    elif role == "baseline":
        got = np.asarray(result.reindex(range(G)) if isinstance(result, pd.Series) else result, dtype=np.float64)
        np.testing.assert_allclose(got[have], var[have], rtol=1e-6)
        err = float(np.max(np.abs(got[have] / var[have] - 1)))
    kit.recorder.record(
        benchmark, workload=f"groups 1d float64 n={x.size:.0e} {name}", variant=variant, role=role,
        nbytes=x.nbytes + by.nbytes, bound_s=bound_s, elements=x.size,
        target=TARGET_BOUND if role == "fastmoments" and G <= 1000 else None,
        primary=role == "fastmoments", var_rel_err=err,
    )


# -- weights and order 4 (cpu/grouped_weighted.py) ------------------------------------

def _weighted_reference(x, w, by, G):
    """Per group: sum of weights and the weighted m2, m4 about the weighted mean (bincount two-pass)."""
    W = np.bincount(by, w, minlength=G)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(by, w * x, minlength=G) / W
        d = x - mean[by]
        return W, mean, np.bincount(by, w * d**2, minlength=G), np.bincount(by, w * d**4, minlength=G)


def _bincount_passes(x, w, by, G):
    """What group_moments computed for weights and orders 3/4 before its kernel
    (and still does on the GPU and beyond 2**16 groups x columns)."""
    from fastmoments import grouped as FG

    return FG._group_weighted(np, x, by, 0, G, w, False, 4)


WEIGHTED_VARIANTS = {
    "fastmoments.group_moments(weights, order=4)": (
        "fastmoments", lambda x, w, by, G: fm.group_moments(x, by, ngroups=G, weights=w, order=4)),
    "bincount passes (array code)": ("baseline", _bincount_passes),
}


@pytest.mark.parametrize("variant", list(WEIGHTED_VARIANTS))
def test_groups_weighted_order4(benchmark, kit, data, variant):
    name, G, x, by, _ = data
    if G > 1000:
        pytest.skip("above 2**16 groups the kernel hands over to the bincount passes: nothing to compare")
    w = np.random.default_rng(8).random(x.size)
    role, call = WEIGHTED_VARIANTS[variant]
    result, bound_s = kit.run_big(benchmark, call, x, w, by, G,
                                  bound=(lambda x, w, by: kit.stream_sum(x) + kit.stream_sum(w) + kit.stream_sum(by),
                                         (x, w, by)))
    W, mean, m2, m4 = _weighted_reference(x, w, by, G)
    fields = result.fields if role == "fastmoments" else result
    have = W > 0
    np.testing.assert_allclose(fields[1][have], W[have], rtol=1e-12)
    np.testing.assert_allclose(fields[3][have], mean[have], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fields[4][have], m2[have], rtol=1e-9)
    np.testing.assert_allclose(fields[6][have], m4[have], rtol=1e-9)
    err = float(np.max(np.abs(fields[4][have] / m2[have] - 1)))
    kit.recorder.record(
        benchmark, workload=f"groups weighted order 4 n={x.size:.0e} {name}", variant=variant, role=role,
        nbytes=x.nbytes + w.nbytes + by.nbytes, bound_s=bound_s, elements=x.size,
        target=None, primary=role == "fastmoments", var_rel_err=err,
    )
