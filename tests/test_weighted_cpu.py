"""The CPU wing's weighted and higher-order moments (fastmoments.cpu.weighted
and its protocol functions weighted_moments, merge and reduce of the kinds
weighted2/3/4), against independent references: NumPy two-pass float64
computations, math.fsum, np.repeat for integer weights, np.cov(aweights=),
scipy.stats, the array-code merge of fastmoments._pebay.

Most tests use order 4 with float64 data and weights, so that few kernel
variants compile (each (order, weighted, skipna, dtypes, layout) is one).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from fastmoments import cpu as C
from fastmoments._inputs import COUNT_OVERFLOW
from fastmoments._pebay import merge_weighted

RNG = np.random.default_rng(20261205)
NAMES = ("count", "W", "W2", "mean", "m2", "m3", "m4")


def wm(x, w=None, axes=None, skipna=False, order=4):
    x = C.asarray(x)
    if axes is None:
        axes = tuple(range(x.ndim))
    return C.weighted_moments(x, w, tuple(sorted(a % x.ndim for a in axes)), skipna, order)


def reference(x, w=None, axes=None, skipna=False, order=4):
    """Float64 NumPy two-pass weighted central moments of the values taken."""
    x = np.asarray(x, dtype=np.float64)
    w = np.ones(x.shape) if w is None else np.broadcast_to(np.asarray(w, dtype=np.float64), x.shape)
    if axes is None:
        axes = tuple(range(x.ndim))
    axes = tuple(a % x.ndim for a in axes)
    take = w > 0
    if skipna:
        take &= ~np.isnan(x)
    wt = np.where(take, w, 0.0)
    xv = np.where(take, x, 0.0)
    count = take.sum(axis=axes)
    W = wt.sum(axis=axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (wt * xv).sum(axis=axes) / W
        d = np.where(take, xv - np.expand_dims(mean, axes), 0.0)
        # the first mean's rounding error, removed (corrected two-pass)
        d = np.where(take, d - np.expand_dims((wt * d).sum(axis=axes) / W, axes), 0.0)
        ms = [(wt * d**p).sum(axis=axes) for p in range(2, order + 1)]
    mean = np.where(count > 0, mean, np.nan)
    return [count, W, (wt * wt).sum(axis=axes), mean] + ms


def assert_close(got, exp, rtol=1e-10, order=4):
    assert len(got) == 3 + order
    for name, g, e in zip(NAMES, got, exp):
        g = np.asarray(g)
        e = np.asarray(e)
        assert g.shape == e.shape, name
        assert g.dtype == (np.int64 if name == "count" else np.float64), name
        if name == "count":
            np.testing.assert_array_equal(g, e, err_msg=name)
            continue
        scale = np.max(np.abs(e[np.isfinite(e)]), initial=0.0)
        if name == "m3":  # a difference of large terms: its error scales with m2**1.5 / sqrt(W)
            with np.errstate(invalid="ignore", divide="ignore"):
                s3 = np.asarray(exp[4]) ** 1.5 / np.sqrt(np.asarray(exp[1]))
            scale = max(scale, np.max(s3[np.isfinite(s3)], initial=0.0))
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol * scale, equal_nan=True, err_msg=name)


# -- shapes, axes and layouts against the NumPy reference ---------------------------

LAYOUTS = [
    ((5000,), (0,)),
    ((3, 20000), (1,)),  # rows of several blocks
    ((40000,), (0,)),
    ((2000, 7), (0,)),  # narrow columns
    ((300, 1500), (0,)),  # columns over two column tiles
    ((30, 700), (0, 1)),
    ((6, 9, 11), (0, 2)),
    ((6, 9, 11), (1,)),
    ((6, 9, 11), (0, 1, 2)),
    ((4, 5, 6, 7), (1, 3)),
    ((20_001, 3), (0,)),  # narrow columns: interleaved copies, leftover rows
    ((20_001, 3), (1,)),  # short rows, reduced transposed
    ((3001, 16), (1,)),
]


@pytest.mark.parametrize("shape,axes", LAYOUTS)
@pytest.mark.parametrize("weighted", [True, False])
def test_against_numpy(shape, axes, weighted):
    x = RNG.normal(size=shape) * 2 + 5
    w = RNG.random(shape) * 3 if weighted else None
    if weighted:
        w[RNG.random(shape) < 0.2] = 0.0
    assert_close(wm(x, w, axes), reference(x, w, axes))


def test_views_fortran_and_broadcast_weights():
    base = RNG.normal(size=(60, 90)) + 1
    wb = RNG.random((60, 90))
    cases = [
        (base[::2, ::3], wb[::2, ::3], (0,)),  # strided views
        (base[::2, ::3], wb[::2, ::3], (1,)),
        (np.asfortranarray(base), np.asfortranarray(wb), (0,)),
        (np.asfortranarray(base), wb, (1,)),  # layouts of x and w differ
        (base.T, wb.T, (0,)),
        (base[:, 5:70], wb[:, 5:70], (0, 1)),
    ]
    for x, w, axes in cases:
        assert_close(wm(x, w, axes), reference(x, w, axes))
    # 1-D weights along the reduced axis, as a zero-stride broadcast view
    for axis in (0, 1):
        w1 = RNG.random(base.shape[axis])
        shape = [1, 1]
        shape[axis] = -1
        wbc = np.broadcast_to(w1.reshape(shape), base.shape)
        assert 0 in wbc.strides
        got = wm(base, wbc, (axis,))
        assert_close(got, reference(base, wbc, (axis,)))
        # np.average agrees on the mean
        np.testing.assert_allclose(got[3], np.average(base, axis=axis, weights=w1), rtol=1e-13)


def test_three_d_every_axis_tuple():
    x = RNG.normal(size=(5, 6, 300)) * 10 - 3
    w = RNG.random(x.shape)
    for axes in [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]:
        assert_close(wm(x, w, axes), reference(x, w, axes))
        assert_close(wm(x, None, axes), reference(x, None, axes))


def test_axes_empty_tuple_is_every_value_its_own_state():
    x = np.array([[1.0, np.nan, np.inf], [-2.0, 4.0, np.nan]])
    w = np.array([[2.0, 0.0, 1.0], [0.5, 0.0, 3.0]])
    n, W, W2, mean, m2, m3, m4 = C.weighted_moments(x, w, (), False, 4)
    np.testing.assert_array_equal(n, [[1, 0, 1], [1, 0, 1]])
    np.testing.assert_array_equal(W, np.where(w > 0, w, 0))
    np.testing.assert_array_equal(W2, np.where(w > 0, w * w, 0))
    np.testing.assert_array_equal(mean, [[1.0, np.nan, np.inf], [-2.0, np.nan, np.nan]])
    for f in (m2, m3, m4):
        np.testing.assert_array_equal(f, [[0.0, 0.0, np.nan], [0.0, 0.0, np.nan]])
    n, W, _, mean, m2, _, _ = C.weighted_moments(x, w, (), True, 4)
    np.testing.assert_array_equal(n, [[1, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(mean, [[1.0, np.nan, np.inf], [-2.0, np.nan, np.nan]])
    with pytest.raises(ValueError, match="negative"):
        C.weighted_moments(x, -w, (), False, 4)


# -- independent references ------------------------------------------------------------


def test_fsum_reference_offset_data():
    # 1e9 + N(0, 1) over many blocks: the block means merge relative to an origin
    x = 1e9 + RNG.normal(size=300_001)
    w = RNG.random(x.size) + 0.5
    n, W, W2, mean, m2, m3, m4 = wm(x, w)
    W_ref = math.fsum(w)
    mean_ref = math.fsum(w * x) / W_ref
    d = x - mean_ref
    corr = math.fsum(w * d) / W_ref
    d = d - corr
    assert W == pytest.approx(W_ref, rel=1e-14)
    assert W2 == pytest.approx(math.fsum(w * w), rel=1e-14)
    assert abs(mean - (mean_ref + corr)) <= 2e-16 * 1e9  # an ulp or so
    assert m2 == pytest.approx(math.fsum(w * d * d), rel=1e-12)
    m2r = math.fsum(w * d * d)
    assert m3 == pytest.approx(math.fsum(w * d**3), abs=1e-9 * m2r**1.5 / W_ref**0.5)
    assert m4 == pytest.approx(math.fsum(w * d**4), rel=1e-10)


def test_shifted_and_two_pass_blocks_agree():
    # Blocks after the first sum about the previous block's mean where it is
    # near theirs, else take two passes: sorted data (far shifts, every block
    # two-pass), i.i.d. data (shifted) and a level change midway both match.
    base = RNG.normal(size=200_000) * 2 + 50
    w = RNG.random(base.size)
    for x in (np.sort(base), base, np.concatenate([base[:100_000], base[100_000:] + 1e4])):
        assert_close(wm(x, w), reference(x, w), rtol=1e-11)
        assert_close(wm(x.reshape(40, -1), w.reshape(40, -1), (1,)),
                     reference(x.reshape(40, -1), w.reshape(40, -1), (1,)), rtol=1e-11)
    # columns: tiles after a chunk's first sum about the previous tile's means
    xc = RNG.normal(size=(30_000, 12)) + 7
    wc = RNG.random(xc.shape)
    wc[:, 3] = 0.0  # an empty column among them
    wc[20_000:, 4] = 0.0  # a column empty in its last tile
    for x in (xc, np.sort(xc, axis=0), np.concatenate([xc[:15_000], xc[15_000:] * 100 + 1e5])):
        for ww in (wc, None):
            assert_close(wm(x, ww, (0,)), reference(x, ww, (0,)), rtol=1e-11)


# Each (order, dtype, weighted, skipna) compiles its own kernels: a few suffice,
# the orders sharing one loop whose higher terms LLVM drops.
@pytest.mark.parametrize(("order", "dtype"), [(4, "float64"), (4, "float32"), (3, "float64")])
def test_column_tiles_with_remainder_rows(order, dtype):
    # 1000 columns: a tile holds 131 (float64) or 262 (float32) rows, not a
    # multiple of the rows summed per step, and 2000 rows end in a partial
    # tile, so the one-pass loop's leftover rows and several tiles (shifted
    # about the previous tile's means) are all taken; weights with zeros,
    # NaNs left out by skipna, and a column far from zero.
    x = (RNG.normal(size=(2000, 1000)) * 3 + 10).astype(dtype)
    x[:, 7] += np.array(1e6, dtype)
    w = RNG.random(x.shape)
    w[RNG.random(x.shape) < 0.1] = 0.0
    xn = x.copy()
    xn[RNG.random(x.shape) < 0.05] = np.nan
    for args in ((x, None, False), (x, w, False), (xn, None, True), (xn, w, True)):
        got = wm(args[0], args[1], (0,), skipna=args[2], order=order)
        assert_close(got, reference(args[0], args[1], (0,), skipna=args[2], order=order), rtol=1e-10, order=order)


def test_integer_weights_equal_repeated_values():
    x = RNG.normal(size=30_000) * 4 + 2
    w = RNG.integers(0, 4, size=x.size)
    rep = np.repeat(x, w)
    n, W, W2, mean, m2, m3, m4 = wm(x, w)
    rn, rW, _, rmean, rm2, rm3, rm4 = wm(rep)  # unweighted, every value once
    assert n == np.count_nonzero(w)
    assert rn == W == rep.size
    assert W2 == float((w.astype(np.int64) ** 2).sum())
    assert mean == pytest.approx(rmean, rel=1e-13)
    assert m2 == pytest.approx(rm2, rel=1e-11)
    assert m3 == pytest.approx(rm3, abs=1e-9 * rm2**1.5 / rep.size**0.5)
    assert m4 == pytest.approx(rm4, rel=1e-11)
    # and both against NumPy on the repeated values
    assert rmean == pytest.approx(rep.mean(), rel=1e-13)
    assert rm2 == pytest.approx(rep.var() * rep.size, rel=1e-11)


def test_reliability_and_frequency_weights_against_np_cov():
    x = RNG.normal(size=(4, 5000)) + 7
    w = RNG.random(5000)
    n, W, W2, mean, m2 = wm(x, np.broadcast_to(w, x.shape), (1,), order=2)
    fw = RNG.integers(0, 5, size=5000)
    _, fW, _, _, fm2 = wm(x, np.broadcast_to(fw, x.shape), (1,), order=2)
    for i in range(4):
        assert m2[i] / (W[i] - W2[i] / W[i]) == pytest.approx(np.cov(x[i], aweights=w), rel=1e-12)
        assert fm2[i] / (fW[i] - 1) == pytest.approx(np.cov(x[i], fweights=fw), rel=1e-12)


def test_skew_and_kurtosis_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    x = RNG.gamma(2.0, size=(3, 20000))
    n, W, W2, mean, m2, m3, m4 = wm(x, None, (1,))
    np.testing.assert_array_equal(W, 20000.0)
    np.testing.assert_array_equal(W2, 20000.0)
    g1 = (m3 / W) / (m2 / W) ** 1.5
    b2 = (m4 / W) / (m2 / W) ** 2 - 3
    np.testing.assert_allclose(g1, stats.skew(x, axis=1), rtol=1e-11)
    np.testing.assert_allclose(b2, stats.kurtosis(x, axis=1), rtol=1e-11)
    # the same along axis 0 (columns)
    n, W, W2, mean, m2, m3, m4 = wm(x.T.copy(), None, (0,))
    np.testing.assert_allclose((m3 / W) / (m2 / W) ** 1.5, stats.skew(x, axis=1), rtol=1e-11)


def test_lower_orders_match_order_four():
    x = RNG.normal(size=(40, 3000)) + 2
    w = RNG.random(x.shape)
    four = wm(x, w, (1,), order=4)
    for order in (2, 3):
        got = wm(x, w, (1,), order=order)
        assert len(got) == 3 + order
        assert_close(got, reference(x, w, (1,), order=order), order=order)
        for g, f in zip(got, four):
            np.testing.assert_allclose(g, f, rtol=1e-12)


# -- empty, zero weights, NaN and Inf ---------------------------------------------------


def _is_empty_state(fields, shape):
    n, W, W2, mean, *ms = fields
    assert n.shape == shape
    assert (n == 0).all() and (W == 0).all() and (W2 == 0).all()
    assert np.isnan(mean).all()
    for f in ms:
        assert (f == 0).all()


def test_empty_arrays_and_all_zero_weights():
    _is_empty_state(wm(np.empty(0), np.empty(0)), ())
    _is_empty_state(wm(np.empty((0, 5)), np.empty((0, 5)), (0,)), (5,))
    _is_empty_state(wm(np.empty((5, 0)), np.empty((5, 0)), (1,)), (5,))
    assert wm(np.empty((0, 5)), None, (1,))[0].shape == (0,)
    x = RNG.normal(size=(3, 20000))
    _is_empty_state(wm(x, np.zeros(x.shape), (1,)), (3,))
    _is_empty_state(wm(x.T.copy(), np.zeros(x.T.shape), (0,)), (3,))
    _is_empty_state(wm(x, np.zeros(x.shape)), ())
    # one row empty among others
    w = RNG.random(x.shape)
    w[1] = 0
    got = wm(x, w, (1,))
    assert got[0][1] == 0 and np.isnan(got[3][1])
    assert_close(got, reference(x, w, (1,)))


@pytest.mark.parametrize("transpose", [False, True], ids=["rows", "cols"])
def test_non_finite_values(transpose):
    k = 3 * 8192 + 17  # several blocks per row
    x = RNG.normal(size=(6, k))
    w = RNG.random(x.shape) + 0.1
    # row 0: NaN and Inf of weight zero are left out
    x[0, [5, 9000, 20000]] = [np.nan, np.inf, -np.inf]
    w[0, [5, 9000, 20000]] = 0.0
    # row 1: a NaN taken
    x[1, 12345] = np.nan
    # row 2: +Inf taken
    x[2, 100] = np.inf
    # row 3: both infinities taken
    x[3, [7, 17000]] = [np.inf, -np.inf]
    # row 4: -Inf taken, NaN of weight zero
    x[4, 3] = -np.inf
    x[4, 20] = np.nan
    w[4, 20] = 0.0
    if transpose:
        got = wm(x.T.copy(), w.T.copy(), (0,))
    else:
        got = wm(x, w, (1,))
    n, W, W2, mean, m2, m3, m4 = got
    clean = reference(np.where(w > 0, x, 0.0), w, (1,))
    for i in (0, 5):
        for g, e in zip(got, clean):
            assert g[i] == pytest.approx(e[i], rel=1e-11, abs=1e-11 * abs(clean[4][i]))
    np.testing.assert_array_equal(n, np.count_nonzero(w, axis=1))
    assert np.isnan(mean[1]) and mean[2] == np.inf and np.isnan(mean[3]) and mean[4] == -np.inf
    for f in (m2, m3, m4):
        assert np.isnan(f[1:5]).all() and np.isfinite(f[[0, 5]]).all()


def test_narrow_columns_and_short_rows_with_non_finite_values():
    x = RNG.normal(size=(10_001, 3)) + 2
    w = RNG.random(x.shape)
    x[[5, 7000], 0] = np.nan  # weight 0: left out
    w[[5, 7000], 0] = 0.0
    x[100, 1] = np.inf  # taken
    x[9999, 2] = np.nan  # taken, or skipped by skipna
    x32 = x.astype(np.float32)
    for xx in (x, x32):
        n, W, W2, mean, m2, m3, m4 = wm(xx, w, (0,))
        clean = reference(np.where(w > 0, xx, 0.0), w, (0,))
        assert_close([f[:1] for f in (n, W, W2, mean, m2, m3, m4)], [f[:1] for f in clean])
        assert mean[1] == np.inf and np.isnan(mean[2]) and np.isnan(m4[1:]).all()
        got = wm(xx, w, (0,), skipna=True)
        assert got[3][1] == np.inf and np.isfinite(got[3][2]) and got[0][2] == 10_000
        # short rows: the same values as rows
        got_rows = wm(np.ascontiguousarray(xx.T), np.ascontiguousarray(w.T), (1,))
        for a, b in zip(got_rows, (n, W, W2, mean, m2, m3, m4)):
            np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)


def test_skipna():
    x = RNG.normal(size=(4, 20000)) + 3
    w = RNG.random(x.shape)
    x[RNG.random(x.shape) < 0.1] = np.nan
    w[0, :100] = 0.0
    w[1] = 0.0
    w[1, np.flatnonzero(np.isnan(x[1]))[:3]] = 1.0  # NaN of positive weight only: still empty
    x[2, 5] = np.inf  # kept under skipna
    for axes, xx, ww in [((1,), x, w), ((0,), x.T.copy(), w.T.copy())]:
        got = wm(xx, ww, axes, skipna=True)
        exp = reference(xx, ww, axes, skipna=True)
        i = [0, 3]
        assert_close([g[i] for g in got], [e[i] for e in exp])
        assert got[0][1] == 0 and np.isnan(got[3][1]) and got[1][1] == 0
        assert got[3][2] == np.inf and np.isnan(got[4][2])
        # NaN without skipna: the slices with a NaN taken are NaN
        assert np.isnan(wm(xx, ww, axes)[3][[0, 2, 3]]).all()
    # unweighted skipna
    got = wm(x, None, (1,), skipna=True)
    exp = reference(x, None, (1,), skipna=True)
    assert_close([g[[0, 1, 3]] for g in got], [e[[0, 1, 3]] for e in exp])


# -- dtypes ---------------------------------------------------------------------------------


def test_dtypes_of_values_and_weights():
    x64 = RNG.normal(size=(5, 3000)) * 3
    w64 = RNG.random(x64.shape) * 4
    xs = {
        "float32": x64.astype(np.float32),
        "int32": np.round(x64 * 100).astype(np.int32),
        "int64": np.round(x64 * 100).astype(np.int64),
        "uint8": np.abs(np.round(x64 * 10)).astype(np.uint8),
        "bool": x64 > 0,
        "float16": x64.astype(np.float16),
    }
    ws = {
        "float32": w64.astype(np.float32),
        "int16": np.round(w64).astype(np.int16),
        "bool": w64 > 1,
        "uint64": np.round(w64).astype(np.uint64),
    }
    for axes in [(1,), (0,)]:
        for name, x in xs.items():
            assert_close(wm(x, w64, axes), reference(x.astype(np.float64), w64, axes), rtol=1e-9)
        for name, w in ws.items():  # float32 weights with float32 values: one compiled variant fewer
            x = xs["float32"] if w.dtype == np.float32 else x64
            assert_close(wm(x, w, axes), reference(x.astype(np.float64), w.astype(np.float64), axes), rtol=1e-9)
    # weights in the other byte order
    assert_close(wm(x64, w64.astype(">f8"), (1,)), reference(x64, w64, (1,)))


def test_bool_bytes_other_than_one():
    raw = RNG.integers(0, 4, size=(3, 1000)).astype(np.uint8)
    b = raw.view(np.bool_)
    ref = reference((raw != 0).astype(float), (raw != 0).astype(float) * 2 + 1, (1,))
    assert_close(wm(b, (raw != 0) * 2.0 + 1, (1,)), ref)
    # bool weights: any nonzero byte weighs 1
    x = RNG.normal(size=raw.shape)
    assert_close(wm(x, b, (1,)), reference(x, (raw != 0).astype(float), (1,)))


# -- bad weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad,words", [(-1.0, ["negative"]), (np.nan, ["NaN"]), (np.inf, ["infinite"]),
                                       (-np.inf, ["infinite", "negative"])])
@pytest.mark.parametrize("axes", [(1,), (0,), (0, 1)])
def test_bad_weights_are_named(bad, words, axes):
    x = RNG.normal(size=(50, 400))
    w = RNG.random(x.shape)
    w[7, 300] = bad
    with pytest.raises(ValueError) as e:
        wm(x, w, axes)
    for word in words:
        assert word in str(e.value)
    # whatever the value, and with skipna
    x[7, 300] = np.nan
    with pytest.raises(ValueError, match=words[0]):
        wm(x, w, axes, skipna=True)


def test_bad_integer_and_float32_weights():
    x = RNG.normal(size=(3, 100))
    w = np.ones(x.shape, np.int8)
    w[2, 4] = -3
    with pytest.raises(ValueError, match="non-negative"):
        wm(x, w, (1,))
    w32 = np.ones(x.shape, np.float32)
    w32[0, 0] = np.nan
    w32[1, 0] = -1
    with pytest.raises(ValueError, match="NaN and negative"):
        wm(x, w32, (1,))


# -- values near float64's limit ------------------------------------------------------------


def test_sums_past_the_range_of_values_within_it():
    x = np.full(30000, 1.5e308)
    x[::2] = 1.7e308
    w = np.ones(x.size)
    w[::3] = 2.0
    n, W, W2, mean, m2, m3, m4 = wm(x, w)
    exp_mean = float(np.average(x / 1e300, weights=w)) * 1e300
    assert mean == pytest.approx(exp_mean, rel=1e-14)
    assert m2 == np.inf  # the true m2 passes the range
    # as columns
    got = wm(np.stack([x, x / 1e300]).T.copy(), np.stack([w, w]).T.copy(), (0,))
    assert got[3][0] == pytest.approx(exp_mean, rel=1e-14)
    assert got[3][1] == pytest.approx(exp_mean / 1e300, rel=1e-14)
    # large weights times moderate values: sums of w*v past the range
    y = RNG.normal(size=20000) + 1e12
    big = RNG.random(y.size) * 1e295 + 1e294
    n, W, W2, mean, m2, m3, m4 = wm(y, big)
    rn, rW, _, rmean, rm2, rm3, rm4 = reference(y, big / 1e295)
    assert n == rn and W == pytest.approx(rW * 1e295, rel=1e-13) and W2 == np.inf
    assert mean == pytest.approx(rmean, rel=1e-14)
    assert m2 / W == pytest.approx(rm2 / rW, rel=1e-10)
    assert m4 / W == pytest.approx(rm4 / rW, rel=1e-10)
    # spread within range but deviations past it
    z = np.array([-1.7e308, 1.7e308] * 5000)
    n, W, W2, mean, m2, m3, m4 = wm(z)
    assert mean == 0.0 and m2 == np.inf


# -- determinism, merge and reduce ---------------------------------------------------------


def test_thread_count_does_not_change_results():
    x = RNG.normal(size=(3, 400_000)) + 10
    w = RNG.random(x.shape)
    xc = RNG.normal(size=(700_000, 3)) + 10
    wc = RNG.random(xc.shape)
    x1 = RNG.normal(size=1_200_000).astype(np.float32)
    n0 = numba.get_num_threads()
    results = []
    try:
        for t in (1, 2):
            numba.set_num_threads(t)
            results.append([wm(x, w, (1,)), wm(x, w, (0, 1)), wm(xc, wc, (0,)), wm(x1)])
    finally:
        numba.set_num_threads(n0)
    for a, b in zip(*results):
        for fa, fb in zip(a, b):
            np.testing.assert_array_equal(fa, fb)


def _merge(a, b, order=4):
    return C.merge(f"weighted{order}", a, b)


def test_random_splits_merged_equal_the_whole():
    x = RNG.normal(size=100_000) * 3 + 1e6
    w = RNG.random(x.size)
    whole = wm(x, w)
    cuts = np.sort(RNG.choice(np.arange(1, x.size), size=12, replace=False))
    parts = [wm(a, b) for a, b in zip(np.split(x, cuts), np.split(w, cuts))]
    acc = parts[0]
    for p in parts[1:]:
        acc = _merge(acc, p)
    assert_close(acc, whole, rtol=1e-10)
    # an empty part is the identity, bit for bit
    empty = wm(np.empty(0), np.empty(0))
    for fa, fb in zip(_merge(whole, empty), whole):
        np.testing.assert_array_equal(fa, fb)
    for fa, fb in zip(_merge(empty, whole), whole):
        np.testing.assert_array_equal(fa, fb)


def test_reduce_equals_sequential_merge():
    x = RNG.normal(size=(3, 37, 400)) + 5
    w = RNG.random(x.shape)
    w[:, 5] = 0.0  # empty states among them
    states = wm(x, w, (2,))
    red = C.reduce("weighted4", states, (1,))
    acc = tuple(f[:, 0] for f in states)
    for j in range(1, 37):
        acc = _merge(acc, tuple(f[:, j] for f in states))
    assert_close(red, acc, rtol=1e-11)
    assert_close(red, reference(x, w, (1, 2)), rtol=1e-10)
    full = C.reduce("weighted4", states, (0, 1))
    assert_close(full, reference(x, w), rtol=1e-10)
    for order in (2, 3):
        s = wm(x, w, (2,), order=order)
        assert_close(C.reduce(f"weighted{order}", s, (1,)), reference(x, w, (1, 2), order=order), order=order)


def test_merge_kernel_matches_the_array_reference():
    # Pebay's formulas in array code (_pebay.merge_weighted), with broadcasting,
    # empty states, NaN and infinite means and means of opposite signs near the end
    # of the range: the kernel follows the same steps, so equal bit for bit.
    k = 64
    def states(seed):
        r = np.random.default_rng(seed)
        n = r.integers(0, 4, size=k)
        W = np.where(n > 0, r.random(k) * n, 0.0)
        mean = np.where(n > 0, r.normal(size=k) * 10, np.nan)
        mean[[3, 4, 5]] = [np.nan, np.inf, 1.7e308 if seed % 2 else -1.7e308]
        n[[3, 4, 5]] = 1
        W[[3, 4, 5]] = 1.0
        ms = [np.where(n > 0, r.random(k) * 5, 0.0), np.where(n > 0, r.normal(size=k), 0.0),
              np.where(n > 0, r.random(k) * 50, 0.0)]
        return (n.astype(np.int64), W, W * 0.7, mean, *ms)
    a, b = states(1), states(2)
    for order in (2, 3, 4):
        aa, bb = a[: 3 + order], b[: 3 + order]
        got = C.merge(f"weighted{order}", aa, bb)
        exp = merge_weighted(np, order, aa, bb)
        for name, g, e in zip(NAMES, got, exp):
            np.testing.assert_array_equal(g, e, err_msg=name)
    # broadcasting: (k,) with (2, 1)
    b2 = tuple(f[:2].reshape(2, 1) for f in b)
    got = C.merge("weighted4", a, b2)
    exp = merge_weighted(np, 4, a, b2)
    for g, e in zip(got, exp):
        assert g.shape == (2, k)
        np.testing.assert_array_equal(g, e)


def test_count_overflow_in_merge_and_reduce():
    big = (np.array([2**62], np.int64), np.ones(1), np.ones(1), np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match="2\\*\\*63"):
        _merge(big, _merge(big, big))
    assert COUNT_OVERFLOW
    stacked = tuple(np.concatenate([f, f, f]) for f in big)
    with pytest.raises(ValueError, match="2\\*\\*63"):
        C.reduce("weighted4", stacked, (0,))


def test_merge_of_an_overflowing_m4_is_inf():
    # M4 >= 0: a merge whose M3 term gives inf - inf beside an overflowed M4
    # (or spread term) is inf, in the array code (_pebay) and the CPU kernel's
    # merge alike, bit for bit (found in review of the GPU's grouped kernels,
    # 2026-12-08: the GPU merged to NaN where its sums gave inf).
    a = (np.array([3, 3], np.int64), np.array([3.0, 3.0]), np.array([3.0, 3.0]), np.array([0.0, 0.0]),
         np.array([1e201, 1e201]), np.array([np.inf, -np.inf]), np.array([np.inf, np.inf]))
    b = (np.array([1, 1], np.int64), np.array([1.0, 1.0]), np.array([1.0, 1.0]), np.array([1e100, -1e100]),
         np.zeros(2), np.zeros(2), np.zeros(2))
    exp = merge_weighted(np, 4, a, b)
    got = C.merge("weighted4", a, b)
    assert np.isinf(exp[6]).all() and (exp[6] > 0).all()
    for name, g, e in zip(NAMES, got, exp):
        np.testing.assert_array_equal(g, e, err_msg=name)
