"""Weighted and higher-order moments through the public API, against
independent references: exact rational arithmetic (fractions), scipy.stats,
np.repeat for integer weights, np.cov's fweights/aweights, and merged splits.
"""

from __future__ import annotations

import pickle
from fractions import Fraction

import numpy as np
import pytest
import scipy.stats

import fastmoments as fm

RNG = np.random.default_rng(20261205)


# -- exact references ---------------------------------------------------------------


def _exact(values, weights=None):
    """(W, mean, M2, M3, M4) of float values in exact rational arithmetic."""
    v = [Fraction(float(a)) for a in values]
    w = [Fraction(1)] * len(v) if weights is None else [Fraction(float(b)) for b in weights]
    W = sum(w)
    mean = sum(wi * vi for wi, vi in zip(w, v)) / W
    ms = [sum(wi * (vi - mean) ** p for wi, vi in zip(w, v)) for p in (2, 3, 4)]
    return W, mean, *ms


def _exact_shape(values, weights=None):
    W, mean, m2, m3, m4 = _exact(values, weights)
    g1 = float(m3 / W) / float(m2 / W) ** 1.5
    b2 = float((m4 / W) / (m2 / W) ** 2)
    return g1, b2


DATASETS = {
    "small": [1.0, 2.0, 4.0, 8.0, 3.5, -1.25, 0.5],
    "skewed": [0.0] * 9 + [10.0],
    "offset 1e6": [1e6 + d for d in (0.25, 1.5, -0.75, 2.0, 0.125, -1.0, 3.0)],
    "offset 1e9": [1e9 + d for d in (0.25, 1.5, -0.75, 2.0, 0.125, -1.0, 3.0, 0.5)],
}


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("weighted", [False, True])
def test_skew_kurtosis_exact(name, weighted):
    values = np.array(DATASETS[name])
    w = np.linspace(0.5, 2.0, values.size) if weighted else None
    m = fm.moments(values, weights=w, order=4)
    W, mean, m2, m3, m4 = _exact(values, w)
    g1, b2 = _exact_shape(values, w)
    assert m.count == values.size
    assert m.sum_weights == pytest.approx(float(W), rel=1e-15)
    assert m.mean == pytest.approx(float(mean), rel=1e-15)
    assert m.m2 == pytest.approx(float(m2), rel=1e-10)
    assert m.m3 == pytest.approx(float(m3), rel=1e-10, abs=1e-10 * float(m2) ** 1.5)
    assert m.m4 == pytest.approx(float(m4), rel=1e-10)
    assert m.skew() == pytest.approx(g1, rel=1e-10, abs=1e-12)
    assert m.kurtosis(fisher=False) == pytest.approx(b2, rel=1e-10)
    assert m.kurtosis() == pytest.approx(b2 - 3.0, rel=1e-9, abs=1e-12)


def test_skew_kurtosis_exact_long_offset():
    """Several blocks (merged in the kernels' trees) of data far from zero."""
    base = RNG.integers(-50, 50, 20_000) / 8.0
    values = 1e9 + base + (base > 4) * 3.0  # exact in binary
    m = fm.moments(values, order=4)
    W, mean, m2, m3, m4 = _exact(values)
    assert m.mean == pytest.approx(float(mean), rel=1e-15)
    assert m.m2 == pytest.approx(float(m2), rel=1e-10)
    var = m2 / W
    assert m.skew() == pytest.approx(float(m3 / W) / float(var) ** 1.5, rel=1e-10)
    assert m.kurtosis(fisher=False) == pytest.approx(float((m4 / W) / var**2), rel=1e-10)


# -- against scipy.stats ---------------------------------------------------------------

SHAPES_AXES = [
    ((1000,), None),
    ((257, 3), 0),
    ((3, 257), -1),
    ((40, 30), (0, 1)),
    ((6, 7, 50), (0, 2)),
    ((50, 4, 6), 1),
]


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_against_scipy(shape, axis, bias, dtype):
    x = (RNG.gamma(2.0, size=shape) * 3 - 1).astype(dtype)
    m = fm.moments(x, axis=axis, order=4)
    xa = x.astype(np.float64)
    ax = axis if axis is not None else None
    if isinstance(ax, tuple):  # scipy takes one axis: move them to the end and flatten
        kept = [i for i in range(x.ndim) if i not in ax]
        xa = xa.transpose(kept + list(ax)).reshape([x.shape[i] for i in kept] + [-1])
        ax = -1
    if ax is None:
        xa, ax = xa.ravel(), 0
    np.testing.assert_allclose(m.skew(bias=bias), scipy.stats.skew(xa, axis=ax, bias=bias), rtol=1e-9, atol=1e-12)
    for fisher in (True, False):
        np.testing.assert_allclose(
            m.kurtosis(fisher=fisher, bias=bias),
            scipy.stats.kurtosis(xa, axis=ax, fisher=fisher, bias=bias),
            rtol=1e-9, atol=1e-12,
        )
    np.testing.assert_allclose(m.var(1), np.var(xa, axis=ax, ddof=1), rtol=1e-12)


def test_undefined_shape_is_nan():
    const = fm.moments(np.full(10, 3.7), order=4)
    assert np.isnan(const.skew()) and np.isnan(const.kurtosis())
    assert np.isnan(const.skew(bias=False)) and np.isnan(const.kurtosis(bias=False))
    two = fm.moments([1.0, 2.0], order=4)
    assert two.skew() == 0.0  # defined, biased
    assert np.isnan(two.skew(bias=False))  # scipy would fall back to the biased value
    three = fm.moments([1.0, 2.0, 4.0], order=4)
    assert three.skew(bias=False) == pytest.approx(scipy.stats.skew([1.0, 2.0, 4.0], bias=False))
    assert np.isnan(three.kurtosis(bias=False))
    empty = fm.moments(np.empty((0, 3)), axis=0, order=4)
    assert np.isnan(empty.skew()).all() and np.isnan(empty.kurtosis()).all()
    # NaN where undefined is per element
    x = np.stack([np.full(20, 1.0), RNG.normal(size=20)])
    sk = fm.moments(x, axis=1, order=3).skew()
    assert np.isnan(sk[0]) and sk[1] == pytest.approx(scipy.stats.skew(x[1]), rel=1e-10)


# -- weights -----------------------------------------------------------------------------


@pytest.mark.parametrize("order", [2, 3, 4])
def test_integer_weights_equal_repetition(order):
    x = RNG.normal(size=(300, 4)) * 5 + 2
    w = RNG.integers(0, 5, size=x.shape)
    m = fm.moments(x, axis=0, weights=w, order=order)
    for j in range(x.shape[1]):
        rep = np.repeat(x[:, j], w[:, j])
        r = fm.moments(rep, order=order)
        assert m.count[j] == np.count_nonzero(w[:, j])
        assert m.sum_weights[j] == rep.size
        assert m.sum_weights2[j] == (w[:, j] ** 2).sum()
        np.testing.assert_allclose(m.mean[j], rep.mean(), rtol=1e-13)
        d = rep - rep.mean()
        np.testing.assert_allclose(m.m2[j], (d**2).sum(), rtol=1e-11)
        np.testing.assert_allclose(r.m2, (d**2).sum(), rtol=1e-11)
        if order >= 3:
            np.testing.assert_allclose(m.m3[j], (d**3).sum(), rtol=1e-9, atol=1e-9 * (d**2).sum() ** 1.5)
            assert m[j].skew() == pytest.approx(scipy.stats.skew(rep), rel=1e-9)
            assert m[j].skew(bias=False) == pytest.approx(scipy.stats.skew(rep, bias=False), rel=1e-9)
        if order == 4:
            np.testing.assert_allclose(m.m4[j], (d**4).sum(), rtol=1e-10)
            assert m[j].kurtosis(bias=False) == pytest.approx(scipy.stats.kurtosis(rep, bias=False), rel=1e-9)
        np.testing.assert_allclose(m.var(1)[j], np.var(rep, ddof=1), rtol=1e-11)
        np.testing.assert_allclose(m.var(1)[j], np.cov(x[:, j], fweights=w[:, j], ddof=1), rtol=1e-11)


@pytest.mark.parametrize("ddof", [0, 1, 2])
def test_reliability_weights_equal_np_cov(ddof):
    x = RNG.normal(size=(4, 500))
    w = RNG.random((4, 500)) * 3
    m = fm.moments(x, axis=1, weights=w)
    for i in range(4):
        want = np.cov(x[i], aweights=w[i], ddof=ddof)
        assert m.var(ddof, weights="reliability")[i] == pytest.approx(float(want), rel=1e-11)
        fwant = np.sum(w[i] * (x[i] - np.average(x[i], weights=w[i])) ** 2) / (w[i].sum() - ddof)
        assert m.var(ddof)[i] == pytest.approx(fwant, rel=1e-11)
        assert m.std(ddof, weights="reliability")[i] == pytest.approx(float(np.sqrt(want)), rel=1e-11)


def test_weights_1d_along_the_reduced_axis():
    x = RNG.normal(size=(30, 200))
    w = RNG.random(200)
    a = fm.moments(x, axis=1, weights=w, order=4)
    b = fm.moments(x, axis=1, weights=np.broadcast_to(w, x.shape).copy(), order=4)
    for f in a._fields:
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(a.mean, np.average(x, axis=1, weights=w), rtol=1e-13)
    wc = RNG.random(30)
    c = fm.moments(x, axis=0, weights=wc, order=3)
    np.testing.assert_allclose(c.mean, np.average(x, axis=0, weights=wc), rtol=1e-13)


def test_zero_weight_leaves_values_out():
    x = np.array([1.0, np.nan, 2.0, np.inf, 4.0, -np.inf])
    w = np.array([1.0, 0.0, 2.0, 0.0, 1.5, 0.0])
    m = fm.moments(x, weights=w, order=4)
    ref = fm.moments(x[w > 0], weights=w[w > 0], order=4)
    assert m.count == 3
    for f in m._fields:
        assert getattr(m, f) == pytest.approx(getattr(ref, f), rel=1e-15)
    assert np.isfinite(m.m4)
    none = fm.moments(np.array([1.0, 2.0]), weights=np.zeros(2), order=3)
    assert none.count == 0 and none.sum_weights == 0 and np.isnan(none.mean) and none.m2 == 0


def test_skipna_with_weights():
    x = np.array([1.0, np.nan, 2.0, 5.0])
    w = np.array([1.0, 3.0, 2.0, 0.5])
    m = fm.moments(x, weights=w, skipna=True, order=4)
    keep = ~np.isnan(x)
    ref = fm.moments(x[keep], weights=w[keep], order=4)
    for f in m._fields:
        assert getattr(m, f) == pytest.approx(getattr(ref, f), rel=1e-15)
    nan = fm.moments(x, weights=w, order=4)
    assert np.isnan(nan.mean) and np.isnan(nan.m2) and nan.count == 4
    inf = fm.moments(np.array([1.0, np.inf]), weights=np.array([1.0, 1.0]), order=3)
    assert inf.mean == np.inf and np.isnan(inf.m2) and np.isnan(inf.m3)


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("weighted", [False, True])
def test_random_splits_merged_equal_the_whole(order, weighted):
    x = RNG.normal(size=(5000, 3)) * 2 + 100
    w = RNG.random(x.shape) * 2 if weighted else None
    whole = fm.moments(x, axis=0, weights=w, order=order)
    cuts = np.sort(RNG.choice(np.arange(1, 5000), 7, replace=False))
    parts = [
        fm.moments(xp, axis=0, weights=None if w is None else wp, order=order)
        for xp, wp in zip(np.split(x, cuts), np.split(w if w is not None else x, cuts))
    ]
    merged = parts[0]
    for p in parts[1:]:
        merged = fm.merge(merged, p)
    stacked = type(parts[0])._wrap(tuple(np.stack(f) for f in zip(*(p.fields for p in parts))))
    reduced = stacked.reduce(axis=0)
    var = whole.m2 / whole.sum_weights
    for got in (merged, reduced):
        assert got.order == order
        np.testing.assert_array_equal(got.count, whole.count)
        np.testing.assert_allclose(got.sum_weights, whole.sum_weights, rtol=1e-13)
        np.testing.assert_allclose(got.mean, whole.mean, rtol=1e-14)
        for p in range(2, order + 1):
            # m3 can be near 0: its error is measured against the spread's scale
            scale = whole.sum_weights * var ** (p / 2)
            np.testing.assert_allclose(getattr(got, f"m{p}"), getattr(whole, f"m{p}"), rtol=0, atol=1e-11 * scale.max())


def test_order2_unweighted_unchanged():
    """weights=None, order=2 is the existing kernel path: same layout, same bits."""
    x = RNG.normal(size=(70, 33))
    for axis in (None, 0, 1):
        a = fm.moments(x, axis=axis)
        b = fm.moments(x, axis=axis, order=2, weights=None)
        assert type(a) is fm.Moments and a._fields == ("count", "mean", "m2")
        for f in a._fields:
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        c = fm.moments(x, axis=axis, weights=np.ones_like(x))  # another path, the same to rounding
        np.testing.assert_allclose(c.mean, a.mean, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(c.m2, a.m2, rtol=1e-12)
        np.testing.assert_array_equal(c.sum_weights, a.sum_weights)


def test_mixed_merge_promotes_order2():
    x, y = RNG.normal(size=100), RNG.normal(size=50)
    a = fm.moments(x)
    b = fm.moments(y, weights=np.ones(50))
    m = a.merge(b)
    ref = fm.moments(np.concatenate([x, y]))
    assert m.order == 2 and m.count == 150 and m.sum_weights == 150
    assert m.mean == pytest.approx(ref.mean, rel=1e-13)
    assert m.m2 == pytest.approx(ref.m2, rel=1e-12)
    assert b.merge(a).count == 150


def test_running_moments_with_weights():
    rm = fm.RunningMoments(order=4)
    xs = [RNG.normal(size=(n, 2)) for n in (10, 300, 1, 57)]
    ws = [RNG.random(n) for n in (10, 300, 1, 57)]
    for x, w in zip(xs, ws):
        rm.update(x, weights=w)
    whole = fm.moments(np.concatenate(xs), axis=0, weights=np.concatenate(ws), order=4)
    np.testing.assert_allclose(rm.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(rm.skew(), whole.skew(), rtol=1e-9)
    np.testing.assert_allclose(rm.kurtosis(bias=False), whole.kurtosis(bias=False), rtol=1e-9)
    assert fm.RunningMoments(order=3).state.order == 3
    with pytest.raises(ValueError, match="order 2.*order 4"):
        rm.merge(fm.moments(np.ones((3, 2)), axis=0))


def test_pickle_and_indexing_keep_every_field():
    m = fm.moments(RNG.normal(size=(5, 40)), axis=1, weights=RNG.random((5, 40)), order=4)
    p = pickle.loads(pickle.dumps(m))
    assert p.order == 4 and p._fields == m._fields
    for f in m._fields:
        np.testing.assert_array_equal(getattr(p, f), getattr(m, f))
    row = m[2]
    assert row.order == 4 and row.shape == ()
    assert row.m4 == m.m4[2] and row.sum_weights2 == m.sum_weights2[2]
    assert m[1:3].shape == (2,)
    k = fm.moments(RNG.normal(size=(5, 40)), axis=1, order=3, keepdims=True)
    assert k.shape == (5, 1) and k.m3.shape == (5, 1)


def test_constructor_with_higher_fields():
    m = fm.Moments(4, 2.0, 3.0, m3=0.5, m4=7.0)
    assert m.order == 4 and m.sum_weights == 4.0 and m.sum_weights2 == 4.0
    w = fm.Moments(3, 1.0, 2.0, sum_weights=2.5, sum_weights2=2.25)
    assert w.order == 2 and w.sum_weights == 2.5
    assert fm.Moments.empty((2,), order=4).m4.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="m3"):
        fm.Moments(4, 2.0, 3.0, m4=7.0)
    with pytest.raises(ValueError, match="sum_weights2"):
        fm.Moments(4, 2.0, 3.0, sum_weights=4.0)
    with pytest.raises(ValueError, match="m4 must be non-negative"):
        fm.Moments(4, 2.0, 3.0, m3=0.5, m4=-1.0)


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights,exc,match",
    [
        (np.array([1.0, -1.0, 2.0]), ValueError, "negative"),
        (np.array([1.0, np.nan, 2.0]), ValueError, "NaN"),
        (np.array([1.0, np.inf, 2.0]), ValueError, "infinite"),
        (np.array([1, -3, 2]), ValueError, "non-negative"),
        (np.array([1.0, 2.0]), ValueError, r"shape \(2,\)"),
        (np.ones((3, 1)), ValueError, "shape"),
        (np.array([1 + 1j, 2, 3]), TypeError, "weights.*complex"),
        (np.array([1, 2, 3], dtype=object), TypeError, "weights.*object"),
        (np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0]), TypeError, "weights.*masked"),
    ],
)
def test_bad_weights(weights, exc, match):
    x = np.array([1.0, 2.0, 3.0])
    before = weights.copy()
    with pytest.raises(exc, match=match):
        fm.moments(x, weights=weights, order=3)
    assert np.array_equal(np.asarray(before), np.asarray(weights), equal_nan=weights.dtype.kind == "f")


def test_bad_weights_in_2d_and_along_axis():
    x = np.ones((4, 5))
    with pytest.raises(ValueError, match="negative"):
        fm.moments(x, axis=0, weights=np.array([1.0, 1.0, -0.5, 1.0]))
    with pytest.raises(ValueError, match=r"1-D of length 4"):
        fm.moments(x, axis=0, weights=np.ones(5))
    with pytest.raises(ValueError, match="shape"):
        fm.moments(x, axis=(0, 1), weights=np.ones(5))


@pytest.mark.parametrize("order,exc", [(1, ValueError), (5, ValueError), (2.0, TypeError), (True, TypeError), ("4", TypeError)])
def test_bad_order(order, exc):
    with pytest.raises(exc, match="order"):
        fm.moments([1.0, 2.0], order=order)


def test_wrong_order_errors():
    m2 = fm.moments([1.0, 2.0, 4.0])
    m3 = fm.moments([1.0, 2.0, 4.0], order=3)
    m4 = fm.moments([1.0, 2.0, 4.0], order=4)
    with pytest.raises(AttributeError, match="order 2"):
        m2.m3
    with pytest.raises(AttributeError, match="order 3"):
        m3.m4
    with pytest.raises(AttributeError, match="order 2"):
        m2.skew()
    with pytest.raises(AttributeError, match="order 3"):
        m3.kurtosis()
    with pytest.raises(ValueError, match="order 3.*order 4"):
        m3.merge(m4)
    with pytest.raises(ValueError, match="order 2.*order 3"):
        fm.merge(m2, m3)
    with pytest.raises(ValueError, match="reliability"):
        m3.var(1, weights="analytic")
    assert m3.skew() == pytest.approx(scipy.stats.skew([1.0, 2.0, 4.0]), rel=1e-12)


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_merge_formulas_exact(offset):
    """Merging exact states of two parts gives the exact state of the whole
    (Pebay's formulas with sums of weights), to float64 rounding."""
    rng = np.random.default_rng(3)
    x = offset + rng.integers(-40, 40, 23) / 4.0
    w = rng.integers(1, 9, 23) / 8.0
    parts = []
    for sl in (slice(0, 9), slice(9, 23)):
        W, mean, m2, m3, m4 = _exact(x[sl], w[sl])
        W2 = sum(Fraction(float(v)) ** 2 for v in w[sl])
        parts.append(fm.Moments(sl.stop - sl.start, float(mean), float(m2), m3=float(m3), m4=float(m4),
                                sum_weights=float(W), sum_weights2=float(W2)))
    got = parts[0].merge(parts[1])
    W, mean, m2, m3, m4 = _exact(x, w)
    assert got.count == 23 and got.sum_weights == float(W)
    assert got.mean == pytest.approx(float(mean), rel=1e-15)
    assert got.m2 == pytest.approx(float(m2), rel=1e-12)
    assert got.m3 == pytest.approx(float(m3), rel=1e-9, abs=1e-12 * float(m2) ** 1.5)
    assert got.m4 == pytest.approx(float(m4), rel=1e-12)
