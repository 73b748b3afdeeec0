"""Weighted and higher-order moments (issue 18): fastmoments vs the bound, scipy and cmomy.

Workloads, float64 and float32:

- 1-D ``order=4`` of 50 M values: against the read bound (target 0.75), and
  against ``scipy.stats.skew`` + ``scipy.stats.kurtosis`` (what people call
  today; target 20x) and ``cmomy.reduce_vals(mom=4)`` in float64 (target 5x).
- 1-D with ``weights`` (``order=2`` and ``4``): against the bound of reading
  ``x`` and ``w`` once each (target 0.75); ``np.average`` + weighted variance
  in NumPy as the baseline.
- 2-D ``order=4`` of ~400 MB, (N, 1000) over axis 0 and (1000, N) over axis
  -1: against the read bound (target 0.6).

Each result is checked against NumPy in float64 (scipy's own figures for
skew/kurtosis) before it is recorded.
"""

import cmomy
import numpy as np
import pytest
import scipy.stats

import fastmoments as fm

TARGET_1D = 0.75
TARGET_2D = 0.6
SMALL_1D = 1_000_003
SMALL_BYTES = 4_000_000


def _ref4(x, axis=None, w=None):
    """(mean, m2, m3, m4) in float64 NumPy, weighted when ``w`` is given."""
    x = x.astype(np.float64)
    w = np.ones_like(x) if w is None else w.astype(np.float64)
    W = w.sum(axis=axis, keepdims=True)
    mean = (w * x).sum(axis=axis, keepdims=True) / W
    d = x - mean
    return [np.squeeze(a, axis=axis) for a in (mean, (w * d**2).sum(axis=axis, keepdims=True),
                                               (w * d**3).sum(axis=axis, keepdims=True),
                                               (w * d**4).sum(axis=axis, keepdims=True))]


def _check(m, ref, order):
    mean, m2, m3, m4 = ref
    np.testing.assert_allclose(m.mean, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.m2, m2, rtol=1e-9)
    if order >= 3:
        np.testing.assert_allclose(m.m3, m3, rtol=1e-7, atol=1e-9 * np.max(m2) ** 1.5 / np.sqrt(np.max(m2)))
    if order == 4:
        np.testing.assert_allclose(m.m4, m4, rtol=1e-9)


@pytest.fixture(scope="module", params=["float64", "float32"])
def data1d(request, kit):
    n = kit.N_1D if kit.timing else SMALL_1D
    x = kit.normal(n, request.param)
    x = np.abs(x, out=x)  # skewed: the shape statistics are not ~0
    w = np.random.default_rng(5).random(n, dtype=np.dtype(request.param))
    yield request.param, x, w
    del x, w


def _scipy_shape(x):
    return scipy.stats.skew(x), scipy.stats.kurtosis(x)


def _cmomy4(x):
    # float64 accumulation, as fastmoments; cmomy picks its parallelism
    return cmomy.reduce_vals(x, mom=4, axis=0, dtype=np.float64)


VARIANTS_1D = ["fastmoments order=4", "scipy skew+kurtosis", "cmomy mom=4", "bound"]


@pytest.mark.parametrize("variant", VARIANTS_1D)
def test_order4_1d(benchmark, kit, data1d, variant):
    dtype, x, _ = data1d
    calls = {
        "fastmoments order=4": ("fastmoments", lambda a: fm.moments(a, order=4)),
        "scipy skew+kurtosis": ("baseline", _scipy_shape),
        "cmomy mom=4": ("baseline", _cmomy4),
        "bound": ("bound", kit.stream_sum),
    }
    role, call = calls[variant]
    result, bound_s = kit.run_big(benchmark, call, x, bound=(kit.stream_sum, (x,)))
    want_skew, want_kurt = scipy.stats.skew(x.astype(np.float64)), scipy.stats.kurtosis(x.astype(np.float64))
    if role == "fastmoments":
        assert result.skew() == pytest.approx(want_skew, rel=1e-8)
        assert result.kurtosis() == pytest.approx(want_kurt, rel=1e-8)
    elif variant == "cmomy mom=4":
        # (weight, mean, then the 2nd, 3rd and 4th central moments per weight)
        assert result[3] / result[2] ** 1.5 == pytest.approx(want_skew, rel=1e-6)
    elif variant == "scipy skew+kurtosis":
        assert result[0] == pytest.approx(want_skew, rel=1e-4 if dtype == "float32" else 1e-8)
    kit.recorder.record(
        benchmark, workload=f"order 4, 1d {dtype} n={x.size:.0e}", variant=variant, role=role,
        nbytes=x.nbytes, bound_s=bound_s, elements=x.size,
        target=TARGET_1D if role == "fastmoments" else None, primary=role == "fastmoments",
    )


def _numpy_weighted(x, w):
    mean = np.average(x, weights=w)
    return mean, np.average((x - mean) ** 2, weights=w)


@pytest.mark.parametrize("order", [2, 4])
@pytest.mark.parametrize("variant", ["fastmoments", "np.average", "bound"])
def test_weighted_1d(benchmark, kit, data1d, order, variant):
    dtype, x, w = data1d
    if variant == "np.average" and order == 4:
        pytest.skip("the NumPy baseline is the same for both orders: measured once")

    def bound(a, b):
        return kit.stream_sum(a) + kit.stream_sum(b)

    calls = {
        "fastmoments": ("fastmoments", lambda a, b: fm.moments(a, weights=b, order=order)),
        "np.average": ("baseline", _numpy_weighted),
        "bound": ("bound", bound),
    }
    role, call = calls[variant]
    result, bound_s = kit.run_big(benchmark, call, x, w, bound=(bound, (x, w)))
    if role == "fastmoments":
        _check(result, _ref4(x, w=w), order)
    kit.recorder.record(
        benchmark, workload=f"weighted order {order}, 1d {dtype} n={x.size:.0e}", variant=variant,
        role=role, nbytes=x.nbytes + w.nbytes, bound_s=bound_s, elements=x.size,
        target=TARGET_1D if role == "fastmoments" else None, primary=role == "fastmoments",
    )


@pytest.fixture(scope="module", params=[("float64", "N,1000", 0), ("float64", "1000,N", -1),
                                        ("float32", "N,1000", 0), ("float32", "1000,N", -1)],
                ids=lambda p: f"{p[0]}-({p[1]})-axis{p[2]}")
def data2d(request, kit):
    dtype, kind, axis = request.param
    nbytes = kit.BYTES_2D if kit.timing else SMALL_BYTES
    n = nbytes // (np.dtype(dtype).itemsize * 1000)
    shape = (1000, n) if kind == "1000,N" else (n, 1000)
    x = kit.normal(shape, dtype)
    yield dtype, kind, axis, x
    del x


@pytest.mark.parametrize("variant", ["fastmoments order=4", "bound"])
def test_order4_2d(benchmark, kit, data2d, variant):
    dtype, kind, axis, x = data2d
    if variant == "bound":
        role, call = "bound", kit.bound_of_array
    else:
        role, call = "fastmoments", lambda a: fm.moments(a, axis=axis, order=4)
    result, bound_s = kit.run_big(benchmark, call, x, bound=(kit.bound_of_array, (x,)))
    if role == "fastmoments":
        _check(result, _ref4(x, axis=axis), 4)
    kit.recorder.record(
        benchmark, workload=f"order 4, 2d {dtype} ({kind}) axis {axis}", variant=variant, role=role,
        nbytes=x.nbytes, bound_s=bound_s, elements=x.size,
        target=TARGET_2D if role == "fastmoments" else None, primary=role == "fastmoments",
    )
