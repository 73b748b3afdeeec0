"""Grouped moments and summaries (issue 20) against independent references:
a NumPy loop over the groups in float64, exact sums (math.fsum), pandas'
``groupby().var`` and ``numpy_groupies.aggregate``; splits merged; threads.
"""

from __future__ import annotations

import warnings

import numba
import numpy as np
import pytest

import fastmoments as fm

from conftest import fsum_mean_var

RNG = np.random.default_rng(20261205)


def _ref(x, by, G, axis=0, skipna=False):
    """(count, mean, m2) per group by a NumPy loop: x's shape with ``axis`` replaced by G."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
    count = np.zeros((G,) + x.shape[1:], np.int64)
    mean = np.full((G,) + x.shape[1:], np.nan)
    m2 = np.zeros((G,) + x.shape[1:])
    for g in range(G):
        v = x[by == g]
        if skipna:
            ok = ~np.isnan(v)
            count[g] = ok.sum(axis=0)
            with warnings.catch_warnings(), np.errstate(invalid="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
                mu = np.nanmean(v, axis=0)
            mean[g] = np.where(count[g] > 0, mu, np.nan)
            m2[g] = np.where(count[g] > 0, np.nansum((v - mu) ** 2, axis=0), 0.0)
        elif v.shape[0]:
            count[g] = v.shape[0]
            mean[g] = v.mean(axis=0)
            m2[g] = ((v - mean[g]) ** 2).sum(axis=0)
    return tuple(np.moveaxis(a, 0, axis) for a in (count, mean, m2))


def _check(m, ref, rtol=1e-12):
    count, mean, m2 = ref
    np.testing.assert_array_equal(m.count, count)
    np.testing.assert_allclose(m.mean, mean, rtol=rtol, atol=1e-13, equal_nan=True)  # data of scale ~1-50
    np.testing.assert_allclose(m.m2, m2, rtol=rtol, atol=1e-300, equal_nan=True)


def _labels(kind, n, G):
    if kind == "random":
        return RNG.integers(0, G, n)
    if kind == "sorted":
        return np.sort(RNG.integers(0, G, n))
    if kind == "constant":
        return np.full(n, G - 1)
    raise ValueError(kind)


# -- against NumPy per group ------------------------------------------------------

@pytest.mark.parametrize("labels", ["random", "sorted", "constant"])
@pytest.mark.parametrize("G", [1, 7, 1000, 6000, 40_000])  # 40,000: partitioned by label first
def test_1d_against_numpy(labels, G):
    n = 200_003
    x = RNG.normal(3.0, 2.0, n)
    by = _labels(labels, n, G)
    m = fm.group_moments(x, by, ngroups=G)
    assert m.shape == (G,)
    _check(m, _ref(x, by, G))


def test_ngroups_default_and_empty_groups():
    x = RNG.normal(size=1000)
    by = RNG.choice([0, 2, 5], size=1000)
    m = fm.group_moments(x, by)
    assert m.shape == (6,)
    for g in (1, 3, 4):
        assert m.count[g] == 0 and np.isnan(m.mean[g]) and m.m2[g] == 0
    _check(m, _ref(x, by, 6))
    # an empty group is the identity of merge
    e = fm.group_moments(x, by, ngroups=9)[7]
    assert fm.merge(e, m[2]).mean == m.mean[2] and fm.merge(m[2], e).m2 == m.m2[2]


def test_negative_labels_left_out():
    x = RNG.normal(size=50_000)
    by = RNG.integers(-3, 4, 50_000)
    m = fm.group_moments(x, by)
    assert m.shape == (4,)
    assert int(m.count.sum()) == int((by >= 0).sum())
    _check(m, _ref(x, by, 4))
    assert fm.group_moments(x, np.full(x.size, -1)).shape == (0,)


def test_accuracy_with_offset_and_outlier_first():
    # Offsets far beyond the spread, and a group whose first value is far
    # from its mean (its shifted sums cancel: read again around the mean).
    n = 100_000
    by = RNG.integers(0, 5, n)
    x = RNG.normal(size=n) + np.array([0.0, 1e6, -1e8, 1e9, 3.0])[by]
    first = np.flatnonzero(by == 4)[0]
    x[first] = 1e9
    m = fm.group_moments(x, by)
    for g in range(5):
        mean, var = fsum_mean_var(x[by == g])
        assert m.mean[g] == pytest.approx(mean, rel=1e-14, abs=1e-12)
        assert m.m2[g] / m.count[g] == pytest.approx(var, rel=1e-11)


@pytest.mark.parametrize("G", [4, 3000, 30_000])
def test_accuracy_few_values_per_group_offset(G):
    # Few values per group (a task's slots never reach RECENTER values and are
    # not read again) far from zero, first values off their means: the bound
    # q <= (n + 1) * m2 of a shift that is one of the values keeps m2 to a few ulps.
    by = np.repeat(np.arange(G), 9)[RNG.permutation(9 * G)]
    x = 1e7 + RNG.normal(size=by.size) * np.exp(RNG.normal(size=G))[by]
    x[RNG.integers(0, x.size, G // 3 + 1)] += 30.0
    m = fm.group_moments(x, by, ngroups=G)
    for g in RNG.integers(0, G, 50):
        mean, var = fsum_mean_var(x[by == g])
        assert m.mean[g] == pytest.approx(mean, rel=1e-15)
        assert m.m2[g] / m.count[g] == pytest.approx(var, rel=1e-11)


@pytest.mark.parametrize("lanes", [False, True])
def test_accuracy_group_that_drifts_after_recentering(lanes):
    # The shift moves to the mean of a slot's first 16 values; values that
    # then drift far from it make the sums cancel, and the task is read again.
    n = 100_000
    by = np.sort(RNG.integers(0, 3, n)) if lanes else RNG.integers(0, 3, n)
    x = RNG.normal(size=n)
    for g in range(3):
        idx = np.flatnonzero(by == g)
        x[idx[200:]] += 1e6 * (g + 1)  # past every lane's first 16 values
    m = fm.group_moments(x, by)
    for g in range(3):
        mean, var = fsum_mean_var(x[by == g])
        assert m.mean[g] == pytest.approx(mean, rel=1e-15)
        assert m.m2[g] / m.count[g] == pytest.approx(var, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8, np.bool_])
def test_dtypes(dtype):
    x = (RNG.normal(size=30_000) * 50).astype(dtype)
    by = RNG.integers(0, 11, 30_000)
    _check(fm.group_moments(x, by), _ref(x, by, 11))


@pytest.mark.parametrize("label_dtype", [np.int8, np.int16, np.int32, np.uint16, np.uint64, np.intp])
def test_label_dtypes(label_dtype):
    x = RNG.normal(size=10_000)
    by = RNG.integers(0, 13, 10_000).astype(label_dtype)
    _check(fm.group_moments(x, by), _ref(x, by.astype(np.int64), 13))


# -- axes ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", [((30_000, 3), 0), ((4, 30_000), 1), ((5, 9_000, 2), 1), ((5, 9_000, 2), -2),
                                        ((200, 40), 0), ((6, 7, 500), 2)])
def test_axes(shape, axis):
    x = RNG.normal(1.0, 3.0, shape)
    by = RNG.integers(-1, 17, shape[axis])
    m = fm.group_moments(x, by, axis=axis, ngroups=17)
    want = list(shape)
    want[axis] = 17
    assert m.shape == tuple(want)
    _check(m, _ref(x, by, 17, axis=axis))


def test_non_contiguous_input():
    x = RNG.normal(size=(4000, 6))[::2, ::3]
    by = RNG.integers(0, 5, x.shape[0])
    _check(fm.group_moments(x, by), _ref(x, by, 5))


def test_axis_none_labels_of_x_shape():
    x = RNG.normal(size=(300, 70))
    by = RNG.integers(-1, 9, x.shape)
    m = fm.group_moments(x, by, axis=None)
    assert m.shape == (9,)
    _check(m, _ref(x.ravel(), by.ravel(), 9))
    s = fm.group_summarize(x, by, axis=None)
    assert s.shape == (9,)
    np.testing.assert_array_equal(s.max, [x[by == g].max() for g in range(9)])


# -- NaN and Inf --------------------------------------------------------------------

def _with_nonfinite(n=60_000, G=6, sort=False):
    x = RNG.normal(size=n)
    by = RNG.integers(0, G, n)
    if sort:
        by.sort()
    idx = np.flatnonzero(by == 1)
    x[idx[::50]] = np.nan  # group 1: NaN
    x[np.flatnonzero(by == 2)[5]] = np.inf  # group 2: +Inf
    x[np.flatnonzero(by == 3)[7]] = -np.inf  # group 3: -Inf
    x[np.flatnonzero(by == 4)[1]] = np.inf  # group 4: both
    x[np.flatnonzero(by == 4)[-1]] = -np.inf
    x[np.flatnonzero(by == 5)] = np.nan  # group 5: all NaN
    return x, by, G


@pytest.mark.parametrize("layout", ["random", "sorted", "partitioned"])
@pytest.mark.parametrize("skipna", [False, True])
def test_nan_inf_follow_moments(skipna, layout):
    # sorted labels take lanes per group; more than 2**14 groups the partition
    x, by, G = _with_nonfinite(sort=layout == "sorted")
    if layout == "partitioned":
        by = by * 7919  # groups 0 .. 39,595 in three buckets, most empty
        G = int(by.max()) + 1
    m = fm.group_moments(x, by, skipna=skipna)
    if layout == "partitioned":
        empty = np.setdiff1d(np.arange(G), by)
        assert (m.count[empty] == 0).all() and np.isnan(m.mean[empty]).all() and (m.m2[empty] == 0).all()
        m = m[::7919]
        by = by // 7919
        G = 6
    for g in range(G):
        want = fm.moments(x[by == g], skipna=skipna)
        assert m.count[g] == want.count
        np.testing.assert_allclose(m.mean[g], want.mean, rtol=1e-12, atol=1e-15, equal_nan=True)
        assert np.isnan(m.mean[g]) == np.isnan(want.mean) and np.isinf(m.mean[g]) == np.isinf(want.mean)
        np.testing.assert_allclose(m.m2[g], want.m2, rtol=1e-12, equal_nan=True)
    if skipna:
        assert m.count[5] == 0 and np.isnan(m.mean[5]) and m.m2[5] == 0
        # the mean of N(0, 1) data lies near 0: its error is relative to the spread
        np.testing.assert_allclose(m.mean[1], np.nanmean(x[by == 1]), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(m.m2[1] / m.count[1], np.nanvar(x[by == 1]), rtol=1e-12)
    else:
        assert np.isnan(m.mean[1]) and np.isnan(m.m2[1])
        assert m.mean[2] == np.inf and np.isnan(m.m2[2])
        assert m.mean[3] == -np.inf and np.isnan(m.mean[4])
    np.testing.assert_allclose(m.mean[0], x[by == 0].mean(), rtol=1e-12)


@pytest.mark.parametrize("layout", ["random", "sorted", "partitioned"])
def test_summary_against_numpy(layout):
    x, by, G = _with_nonfinite(sort=layout == "sorted")
    x[np.flatnonzero(by == 0)[:40]] = 0.0
    if layout == "partitioned":
        s = fm.group_summarize(x, by * 5003 + 17, ngroups=(G + 1) * 5003)[17::5003]
    else:
        s = fm.group_summarize(x, by, ngroups=G + 1)
    assert s.shape == (G + 1,)
    for g in range(G + 1):
        v = x[by == g]
        f = v[np.isfinite(v)]
        assert s.count[g] == f.size
        assert s.n_nonfinite[g] == v.size - f.size
        assert s.n_zero[g] == (f == 0).sum()
        if f.size:
            assert s.min[g] == f.min() and s.max[g] == f.max()
            np.testing.assert_allclose(s.mean[g], f.mean(), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(s.m2[g], ((f - f.mean()) ** 2).sum(), rtol=1e-12)
        else:
            assert np.isnan(s.mean[g]) and np.isnan(s.min[g]) and np.isnan(s.max[g]) and s.m2[g] == 0


def test_summary_2d_and_equals_summarize_per_group():
    x = RNG.normal(size=(20_000, 4))
    by = RNG.integers(0, 3, 20_000)
    s = fm.group_summarize(x, by)
    assert s.shape == (3, 4)
    for g in range(3):
        want = fm.summarize(x[by == g], axis=0)
        for f in ("count", "min", "max", "n_nonfinite", "n_zero"):
            np.testing.assert_array_equal(getattr(s, f)[g], getattr(want, f))
        np.testing.assert_allclose(s.m2[g], want.m2, rtol=1e-12)


def test_overflowing_sums_redone():
    x = RNG.normal(size=1000)
    by = np.zeros(1000, np.int64)
    by[::2] = 1
    x[by == 1] = np.where(RNG.random(500) < 0.5, 1.7e308, -1.6e308)
    m = fm.group_moments(x, by)
    want = fm.moments(x[by == 1])
    assert np.isfinite(m.mean[1]) and m.mean[1] == pytest.approx(float(want.mean), rel=1e-12)
    assert m.m2[1] == want.m2  # inf: the spread passes float64's range


# -- other libraries ------------------------------------------------------------------

@pytest.mark.parametrize("ddof", [0, 1])
def test_against_pandas(ddof):
    pd = pytest.importorskip("pandas")
    x = RNG.normal(5.0, 3.0, 100_000)
    by = RNG.integers(0, 300, 100_000)
    want = pd.Series(x).groupby(by).var(ddof=ddof).reindex(range(300)).to_numpy()
    np.testing.assert_allclose(fm.group_moments(x, by).var(ddof=ddof), want, rtol=1e-10)


def test_against_numpy_groupies():
    npg = pytest.importorskip("numpy_groupies")
    x = RNG.normal(5.0, 3.0, 100_000)
    by = RNG.integers(0, 300, 100_000)
    m = fm.group_moments(x, by)
    np.testing.assert_allclose(m.var(), npg.aggregate(by, x, func="var", size=300), rtol=1e-10)
    np.testing.assert_allclose(m.mean, npg.aggregate(by, x, func="mean", size=300), rtol=1e-12)
    np.testing.assert_array_equal(m.count, npg.aggregate(by, 1, func="sum", size=300))


# -- merges and threads ---------------------------------------------------------------

@pytest.mark.parametrize("G", [3, 5000])
def test_merged_random_splits_equal_whole(G):
    n = 300_000
    x = RNG.normal(2.0, 1.0, n)
    by = RNG.integers(0, G, n)
    whole = fm.group_moments(x, by, ngroups=G)
    part = RNG.random(n) < 0.3
    a = fm.group_moments(x[part], by[part], ngroups=G)
    b = fm.group_moments(x[~part], by[~part], ngroups=G)
    merged = fm.merge(a, b)
    np.testing.assert_array_equal(merged.count, whole.count)
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-13)
    np.testing.assert_allclose(merged.m2, whole.m2, rtol=1e-12)
    # also: the same rows with their labels masked out are the same parts
    c = fm.group_moments(x, np.where(part, by, -1), ngroups=G)
    np.testing.assert_array_equal(c.count, a.count)
    np.testing.assert_allclose(c.m2, a.m2, rtol=1e-12)


@pytest.mark.parametrize("G", [10, 20_000])
@pytest.mark.parametrize("summary", [False, True])
def test_threads_bit_identical(G, summary):
    n = 1_500_000
    x = RNG.normal(1.0, 2.0, n)
    by = RNG.integers(0, G, n)
    f = fm.group_summarize if summary else fm.group_moments
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = f(x, by, ngroups=G)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = f(x, by, ngroups=G)
    finally:
        numba.set_num_threads(old)
    for a, b in zip(one.fields, two.fields):
        np.testing.assert_array_equal(a, b)


# -- weights and higher orders ----------------------------------------------------------

@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("skipna", [False, True])
def test_weights_and_orders_equal_moments_per_group(order, skipna):
    x = RNG.normal(4.0, 2.0, (6000, 2))
    x[::97, 0] = np.nan
    w = RNG.random((6000, 2))
    w[::13] = 0.0
    by = RNG.integers(-1, 8, 6000)
    m = fm.group_moments(x, by, weights=w, order=order, skipna=skipna)
    assert m.shape == (8, 2) and m.order == order
    for g in range(8):
        want = fm.moments(x[by == g], axis=0, weights=w[by == g], order=order, skipna=skipna)
        for f in m._fields:
            np.testing.assert_allclose(getattr(m, f)[g], getattr(want, f), rtol=1e-10, atol=1e-12, equal_nan=True)


def test_unweighted_order4_and_1d_weights_along_axis():
    x = RNG.normal(size=(5, 3000))
    by = RNG.integers(0, 4, 3000)
    w = RNG.random(3000)
    m = fm.group_moments(x, by, axis=1, weights=w, order=4)
    assert m.shape == (5, 4)
    for g in range(4):
        want = fm.moments(x[:, by == g], axis=1, weights=np.broadcast_to(w[by == g], (5, (by == g).sum())), order=4)
        np.testing.assert_allclose(m.m4[:, g], want.m4, rtol=1e-10)
    u = fm.group_moments(x, by, axis=1, order=3)
    for g in range(4):
        np.testing.assert_allclose(u.skew()[:, g], fm.moments(x[:, by == g], axis=1, order=3).skew(), rtol=1e-9)


def test_bad_weights():
    x = RNG.normal(size=100)
    by = RNG.integers(0, 3, 100)
    with pytest.raises(ValueError, match="negative"):
        fm.group_moments(x, by, weights=-np.ones(100))
    with pytest.raises(ValueError, match=r"\(7,\).*\(100,\)"):
        fm.group_moments(x, by, weights=np.ones(7))


# -- bad input ---------------------------------------------------------------------------

def test_bad_labels():
    x = RNG.normal(size=(10, 4))
    with pytest.raises(TypeError, match="integers"):
        fm.group_moments(x, np.arange(10.0))
    with pytest.raises(TypeError, match="integers"):
        fm.group_moments(x, np.array(list("abcdefghij")))
    with pytest.raises(TypeError, match="bool"):
        fm.group_moments(x, np.ones(10, bool))
    with pytest.raises(ValueError, match=r"\(9,\).*\(10, 4\)"):
        fm.group_moments(x, np.zeros(9, int))
    with pytest.raises(ValueError, match=r"\(10, 1\).*\(10, 4\)"):
        fm.group_moments(x, np.zeros((10, 1), int))
    with pytest.raises(ValueError, match=r"\(10,\).*\(10, 4\)"):
        fm.group_moments(x, np.zeros(10, int), axis=None)
    with pytest.raises(ValueError, match="label 12"):
        fm.group_moments(x, np.r_[np.zeros(9, int), 12], ngroups=5)
    with pytest.raises(ValueError, match="label 12"):
        fm.group_summarize(x, np.r_[np.zeros(9, int), 12], ngroups=5)
    with pytest.raises(ValueError, match="label 50000"):  # partitioned by label first
        fm.group_moments(np.zeros(10), np.r_[np.zeros(9, int), 50_000], ngroups=40_000)
    with pytest.raises(ValueError, match="label 7"):
        fm.group_moments(x, np.r_[np.zeros(9, int), 7], ngroups=5, order=3)
    with pytest.raises(ValueError, match="non-negative"):
        fm.group_moments(x, np.zeros(10, int), ngroups=-1)
    with pytest.raises(TypeError, match="ngroups"):
        fm.group_moments(x, np.zeros(10, int), ngroups=2.0)
    with pytest.raises(TypeError, match="axis"):
        fm.group_moments(x, np.zeros(10, int), axis=(0,))


@pytest.mark.parametrize("shape", [(0,), (0, 3), (0, 2, 4)])
@pytest.mark.parametrize("call", ["summarize", "moments", "moments_skipna", "order3", "weighted"])
def test_no_values_along_the_grouped_axis(shape, call):
    # Every group is empty: states of count 0 with the group axis in place of axis 0.
    x = np.zeros(shape)
    by = np.zeros(0, np.int64)
    G = 5
    if call == "summarize":
        r = fm.group_summarize(x, by, ngroups=G)
    elif call == "weighted":
        r = fm.group_moments(x, by, ngroups=G, weights=np.zeros(0))
    else:
        r = fm.group_moments(x, by, ngroups=G, skipna=call == "moments_skipna", order=3 if call == "order3" else 2)
    assert r.count.shape == (G,) + shape[1:]
    np.testing.assert_array_equal(r.count, 0)
    assert np.isnan(r.mean).all()
    np.testing.assert_array_equal(r.m2, 0.0)


# -- the CPU's weighted / higher-order grouped kernel (cpu/grouped_weighted.py) -------------

from fractions import Fraction  # noqa: E402
import sys  # noqa: E402

import fastmoments.grouped as FG  # noqa: E402


@pytest.fixture
def small_tasks(monkeypatch):
    """Tasks of 7 rows: small data then spans many tasks, merged in the tree."""
    GK = sys.modules["fastmoments.cpu.grouped"] if "fastmoments.cpu.grouped" in sys.modules else None
    if GK is None:
        import fastmoments.cpu.grouped as GK
    monkeypatch.setattr(GK, "TASK_ROWS", 7)


def _exact_weighted(v, w, order):
    """(count, W, mean, m2..m_order) of values v with weights w, in Fractions."""
    fv = [Fraction(float(a)) for a in v]
    fw = [Fraction(float(a)) for a in w]
    W = sum(fw)
    mu = sum(a * b for a, b in zip(fw, fv)) / W
    return W, mu, [sum(b * (a - mu) ** p for a, b in zip(fv, fw)) for p in range(2, order + 1)]


@pytest.mark.parametrize("offset", [0.0, 1e6, 1e9])
def test_weighted_order4_exact_far_from_zero(offset, small_tasks):
    n, G = 600, 5
    x = RNG.normal(0.0, 1.0, n) + offset
    w = RNG.random(n) * 3
    w[::11] = 0.0
    by = RNG.integers(-1, G, n)
    m = fm.group_moments(x, by, weights=w, order=4, ngroups=G)
    for g in range(G):
        sel = (by == g) & (w > 0)
        W, mu, ms = _exact_weighted(x[sel], w[sel], 4)
        assert int(m.count[g]) == sel.sum()
        assert float(m.sum_weights[g]) == pytest.approx(float(W), rel=1e-14)
        assert abs(float(m.mean[g]) - float(mu)) <= 1e-15 * max(abs(offset), 1.0) + 1e-14
        scale2 = float(ms[0])
        for p, (got, want) in enumerate(zip((m.m2[g], m.m3[g], m.m4[g]), ms), start=2):
            # relative to the scale of the p-th moment (m3 may cancel to near 0)
            tol = 1e-10 * scale2 ** (p / 2) * float(W) ** (1 - p / 2)
            assert abs(float(got) - float(want)) <= tol, (p, float(got), float(want))


@pytest.mark.parametrize("case", ["weights", "order3", "order4", "weights_order4_skipna", "nonfinite",
                                  "rows_2d_axis1", "axis_none", "float32", "int_bool_weights"])
def test_weighted_kernel_against_numpy_per_group(case, small_tasks):
    G = 6
    x = RNG.normal(3.0, 2.0, (400, 3))
    w = RNG.random((400, 3))
    kw, axis = {}, 0
    if case == "weights":
        kw = dict(weights=w)
    elif case in ("order3", "order4"):
        kw = dict(order=int(case[-1]))
    elif case == "weights_order4_skipna":
        x[RNG.integers(0, 400, 40), RNG.integers(0, 3, 40)] = np.nan
        kw = dict(weights=w, order=4, skipna=True)
    elif case == "nonfinite":
        w[::5] = 0.0
        x[::5, :] = np.nan  # weight 0: left out, NaN or not
        x[1, 0], x[2, 1], x[3, 1] = np.nan, np.inf, -np.inf
        x[6, 2] = np.inf
        kw = dict(weights=w, order=4)
    elif case == "rows_2d_axis1":
        x, w, axis = x.T.copy(), w.T.copy(), 1
        kw = dict(weights=w, order=4)
    elif case == "axis_none":
        axis = None
        kw = dict(weights=w, order=3)
    elif case == "float32":
        x = x.astype(np.float32)
        kw = dict(weights=w.astype(np.float32), order=4)
    elif case == "int_bool_weights":
        x = RNG.integers(-50, 50, (400, 3)).astype(np.int16)
        kw = dict(weights=RNG.random((400, 3)) < 0.7, order=4)
    n_lab = x.size if axis is None else x.shape[axis]
    by = RNG.integers(-1, G, n_lab)
    if axis is None:
        by = by.reshape(x.shape)
    m = fm.group_moments(x, by, axis=axis, ngroups=G, **kw)
    xs = np.asarray(x, np.float64)
    wts = kw.get("weights")
    wts = np.ones(x.shape) if wts is None else np.broadcast_to(np.asarray(wts, np.float64), x.shape)
    for g in range(G):
        if axis is None:
            sel = by == g
            want = fm.moments(xs[sel], weights=wts[sel], order=kw.get("order", 2), skipna=kw.get("skipna", False))
            got = m[g]
        else:
            sel = by == g
            xg = np.take(xs, np.flatnonzero(sel), axis=axis)
            wg = np.take(wts, np.flatnonzero(sel), axis=axis)
            want = fm.moments(xg, axis=axis, weights=wg, order=kw.get("order", 2), skipna=kw.get("skipna", False))
            got = m[(slice(None), g) if axis == 1 else g]
        for f in want._fields:
            np.testing.assert_allclose(getattr(got, f), getattr(want, f), rtol=1e-10, atol=1e-11,
                                       equal_nan=True, err_msg=f"{case} group {g} field {f}")
    # and the array code the GPU runs (bincount passes) agrees on these tame data
    be = FG.backend_for(x, by)
    arr, lab, ax, G2 = FG._prepare(be, x, by, axis, G)
    wv = None
    if "weights" in kw:
        wv = FG._weights_for(be, kw["weights"], x if axis is None else arr, axis)
        wv = wv.reshape(-1) if axis is None else wv
    ref = FG._group_weighted(np, arr, lab, ax, G2, wv, kw.get("skipna", False), kw.get("order", 2))
    for a, b in zip(m.fields, ref):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("G", [10, 20_000])
def test_weighted_threads_bit_identical(G):
    n = 400_000
    x = RNG.normal(1.0, 2.0, n)
    w = RNG.random(n)
    by = RNG.integers(0, G, n)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fm.group_moments(x, by, ngroups=G, weights=w, order=4)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = fm.group_moments(x, by, ngroups=G, weights=w, order=4)
    finally:
        numba.set_num_threads(old)
    for a, b in zip(one.fields, two.fields):
        np.testing.assert_array_equal(a, b)


def test_weighted_splits_merge_to_the_whole(small_tasks):
    n, G = 3000, 9
    x = RNG.normal(1e6, 3.0, n)
    w = RNG.random(n)
    by = RNG.integers(0, G, n)
    whole = fm.group_moments(x, by, ngroups=G, weights=w, order=4)
    cut = RNG.integers(1, n)
    parts = fm.group_moments(x[:cut], by[:cut], ngroups=G, weights=w[:cut], order=4).merge(
        fm.group_moments(x[cut:], by[cut:], ngroups=G, weights=w[cut:], order=4))
    np.testing.assert_array_equal(parts.count, whole.count)
    np.testing.assert_allclose(parts.mean, whole.mean, rtol=1e-14)
    for f in ("m2", "m3", "m4"):
        scale = whole.m2 ** (int(f[1]) / 2) / whole.sum_weights ** (int(f[1]) / 2 - 1)
        assert np.all(np.abs(getattr(parts, f) - getattr(whole, f)) <= 1e-10 * scale), f


def test_weighted_kernel_leaves_inputs_alone():
    x = RNG.normal(size=(50, 2))
    w = RNG.random((50, 2))
    by = RNG.integers(0, 3, 50)
    copies = [a.copy() for a in (x, w, by)]
    fm.group_moments(x, by, weights=w, order=4)
    for a, b in zip((x, w, by), copies):
        np.testing.assert_array_equal(a, b)


def test_weighted_many_slots_take_the_array_code(monkeypatch):
    import fastmoments.cpu.grouped_weighted as GW
    x = RNG.normal(5.0, 2.0, (3000, 2))
    w = RNG.random((3000, 2))
    by = RNG.integers(0, 40, 3000)
    kernel = fm.group_moments(x, by, weights=w, order=4)
    monkeypatch.setattr(GW, "MAX_SLOTS", 79)  # 40 groups x 2 columns: one too many
    calls = []
    real = FG._group_weighted
    monkeypatch.setattr(FG, "_group_weighted", lambda *a, **k: calls.append(1) or real(*a, **k))
    arrays = fm.group_moments(x, by, weights=w, order=4)
    assert calls == [1]
    for a, b in zip(kernel.fields, arrays.fields):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_array_code_keeps_the_spread_at_an_offset(order):
    # The bincount passes' mean rounds at 1e12 (ulp 1.2e-4): deviations from
    # it carry that offset, which m2 felt at ~(1e-4)**2 / var (2.4e-9 found in
    # review); the binomial correction by the mean deviation takes it out.
    rng = np.random.default_rng(31)
    x = 1e12 + rng.normal(0, 1, 20000)
    by = rng.integers(0, 4, x.size)
    w = rng.random(x.size)
    got = FG._group_weighted(np, x, by, 0, 4, w, False, order)
    ref = FG._group_weighted(np, x - 1e12, by, 0, 4, w, False, order)  # exact shift: same spread, small mean
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_allclose(got[3], ref[3] + 1e12, rtol=1e-15)
    for a, b in zip(got[4:], ref[4:]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())
    plain = FG._group_weighted(np, x, by, 0, 4, None, False, 2, plain=True)
    ref = FG._group_weighted(np, x - 1e12, by, 0, 4, None, False, 2, plain=True)
    np.testing.assert_allclose(plain[2], ref[2], rtol=1e-12)
