"""The GPU wing's weighted and higher-order moments (fm_weighted.cu) against the
CPU wing and against an independent float64 NumPy reference.

Needs CuPy and a CUDA device, or the CUDA emulator (FASTMOMENTS_GPU_EMULATOR=1
or CI=true); skipped otherwise, as tests/test_gpu.py. Each distinct (data
dtype, weight dtype, order) is one kernel module, compiled once per run (about
a second each on the emulator), so the cases below pick their combinations to
cover every dtype without compiling every product.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

import fastmoments as fm
from fastmoments import _pebay
from fastmoments._inputs import COUNT_OVERFLOW, weights_error


from gpu_skip import REASON, cupy, pytestmark  # noqa: F401 (the module's marks)

FIELDS = ("count", "sum_weights", "sum_weights2", "mean", "m2", "m3", "m4")


# -- the independent reference ---------------------------------------------------------


def ref_weighted(x, w, axis, skipna, order):
    """(count, W, W2, mean, M2[, M3[, M4]]) in float64 NumPy, as the protocol
    defines them: two passes over values shifted by a whole number near their
    mean (exact for data far from zero), the mean corrected by the first
    central sum. ``axis``: None, an int or a tuple."""
    x = np.asarray(x, np.float64)
    w = np.ones_like(x) if w is None else np.asarray(w).astype(np.float64)
    axis = tuple(range(x.ndim)) if axis is None else (axis,) if np.isscalar(axis) else tuple(axis)
    take = w > 0
    if skipna:
        take &= ~np.isnan(x)
    wt = np.where(take, w, 0.0)
    xv = np.where(take, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        count = take.sum(axis=axis).astype(np.int64)
        W = wt.sum(axis=axis)
        W2 = (wt * wt).sum(axis=axis)
        mean1 = (wt * xv).sum(axis=axis) / W
        shift = np.where(np.isfinite(mean1), np.round(mean1), 0.0)
        shift_k = np.expand_dims(shift, axis)
        mean_s = (wt * (xv - shift_k)).sum(axis=axis) / W
        d = np.where(take, x - shift_k - np.expand_dims(mean_s, axis), 0.0)
        corr = (wt * d).sum(axis=axis) / W
        mean_s = mean_s + np.where(np.isfinite(corr), corr, 0.0)
        d = np.where(take, x - shift_k - np.expand_dims(mean_s, axis), 0.0)
        ms = [(wt * d**p).sum(axis=axis) for p in range(2, order + 1)]
        mean = np.where(np.isfinite(mean_s), shift + mean_s, mean1)
    ms = [np.where(count == 0, 0.0, np.where(np.isfinite(mean), m, np.nan)) for m in ms]
    return (count, W, W2, mean, *ms)


def test_reference_against_exact_fractions():
    """The reference itself, on a few values far from zero, against exact arithmetic."""
    from fractions import Fraction

    x = np.array([1e9 + d for d in (0.25, 1.5, -0.75, 2.0, 0.125, -1.0, 3.0, 0.5)])
    w = np.array([0.5, 1.0, 2.0, 0.25, 1.5, 3.0, 0.75, 1.0])
    v = [Fraction(float(a)) for a in x]
    f = [Fraction(float(b)) for b in w]
    W = sum(f)
    mean = sum(a * b for a, b in zip(v, f)) / W
    exact = [sum(b * (a - mean) ** p for a, b in zip(v, f)) for p in (2, 3, 4)]
    got = ref_weighted(x, w, None, False, 4)
    assert got[3] == pytest.approx(float(mean), rel=1e-16)
    for g, e in zip(got[4:], exact):
        assert float(g) == pytest.approx(float(e), rel=1e-12, abs=1e-12 * float(exact[0]) ** 1.5)


# -- comparisons -------------------------------------------------------------------------


def _close(got, want, name, atol, rtol=1e-9):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    if want.dtype.kind in "iu":
        np.testing.assert_array_equal(got, want, err_msg=name)
        return
    atol = np.broadcast_to(np.asarray(atol, np.float64), want.shape)
    both = np.isfinite(got) & np.isfinite(want)
    with np.errstate(invalid="ignore"):
        bad = both & ~(np.abs(got - want) <= atol + rtol * np.abs(want))
    assert not bad.any(), f"{name}: got {got[bad][:5]} want {want[bad][:5]} (atol {atol[bad][:5]})"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name + " NaN")
    np.testing.assert_array_equal(np.where(np.isinf(got), got, 0), np.where(np.isinf(want), want, 0),
                                  err_msg=name + " Inf")


def assert_same(got, want, order, scale=1.0):
    """Field tuples (host arrays) equal within float64 accumulation error:
    ``scale`` bounds |values|, M<p> is compared at W * spread**p."""
    got, want = [np.asarray(g) for g in got], [np.asarray(v) for v in want]
    assert len(got) == len(want) == 3 + order
    assert got[0].dtype == np.int64 and all(g.dtype == np.float64 for g in got[1:])
    W = np.where(np.isfinite(want[1]), want[1], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(W > 0, want[4] / np.where(W > 0, W, 1.0), 0.0)
    spread = np.sqrt(np.where(np.isfinite(var), var, 0.0))
    _close(got[0], want[0], "count", 0)
    _close(got[1], want[1], "sum_weights", 0, 1e-12)
    _close(got[2], want[2], "sum_weights2", 0, 1e-12)
    _close(got[3], want[3], "mean", 1e-13 * scale)
    for p in range(2, order + 1):
        _close(got[2 + p], want[2 + p], f"m{p}", 1e-10 * W * spread**p + 1e-300)


def _data(shape, dtype, rng, special=False):
    dt = np.dtype(dtype)
    if dt == np.bool_:
        x = rng.random(shape) < 0.3
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        x = rng.integers(max(info.min, -1000), min(info.max, 1000), size=shape, endpoint=True).astype(dt)
    else:
        x = (rng.standard_normal(shape) * 3 + 1.5).astype(dt)
        if special and x.size:
            flat = x.reshape(-1)
            k = max(1, x.size // 50)
            for v in (np.nan, np.inf, -np.inf):
                flat[rng.integers(0, x.size, k)] = v
    return np.asarray(x)


def _weights(shape, dtype, rng, zero_frac=0.2):
    dt = np.dtype(dtype)
    if dt == np.bool_:
        w = rng.random(shape) < 0.7
    elif dt.kind in "iu":
        w = rng.integers(0, 5, size=shape).astype(dt)
    else:
        w = np.asarray(rng.random(shape) * 2)
        w = np.where(rng.random(shape) < zero_frac, 0.0, w).astype(dt)
    return np.asarray(w)


def _scale(x):
    f = np.asarray(x, np.float64)
    f = np.abs(f[np.isfinite(f)])
    return float(f.max()) if f.size else 1.0


def _moments(x, axis, skipna, w, order):
    """fm.moments(x, weights=w, order=order), or, for unweighted order 2
    (which the public API takes to the plain moments()), the backend's
    weighted_moments: always the weighted layout."""
    if w is not None or order > 2:
        return fm.moments(x, axis=axis, skipna=skipna, weights=w, order=order)
    from fastmoments._dispatch import backend_for
    from fastmoments._inputs import normalize_axes

    return fm.Moments._wrap(backend_for(x).weighted_moments(x, None, normalize_axes(axis, x.ndim), skipna, 2))


def check(x, w, axis=None, skipna=False, order=4, cpu=True):
    """GPU moments of (x, w) against the reference and, with ``cpu``, the CPU wing."""
    gx = cupy.asarray(x)
    gw = None if w is None else cupy.asarray(w)
    got = _moments(gx, axis, skipna, gw, order)
    assert all(isinstance(f, cupy.ndarray) for f in got.fields)
    host = [f.get() for f in got.fields]
    wfull = w
    if w is not None and w.shape != x.shape:  # 1-D weights along the reduced axis
        shape = [1] * x.ndim
        shape[axis if axis >= 0 else x.ndim + axis] = w.shape[0]
        wfull = np.broadcast_to(w.reshape(shape), x.shape)
    scale = _scale(x)
    assert_same(host, ref_weighted(x, wfull, axis, skipna, order), order, scale)
    if cpu:
        assert_same(host, _moments(x, axis, skipna, w, order).fields, order, scale)
    return got


def _all_axes(ndim):
    yield None
    for r in range(ndim + 1):
        yield from itertools.combinations(range(ndim), r)


# -- float64 data and weights: every kernel path, every layout ----------------------------------

SHAPES = [
    ((), None),
    ((1,), 0),
    ((7,), 0),  # lane kernel, the tail loop only
    ((1000,), 0),  # lane kernel, several chunks, then fm_wfinalize
    ((5000,), None),  # segment kernel, one chunk
    ((100_003,), 0),  # segment kernel, several chunks (origin passed to fm_wfinalize)
    ((37, 300), -1),  # lane kernel over rows
    ((3000, 40), 0),  # lane kernel over columns, chunked
    ((3, 20_000), 1),  # segment kernel per row, chunked
    ((20_000, 3), 0),  # strided segment (M < 32)
    ((4, 5, 6), (0, 2)),  # no common strided run: copied to a contiguous tail
    ((6, 7, 8), (1, 2)),
    ((2, 3, 4, 5), (1, 3)),
]


@pytest.mark.parametrize("shape, axis", SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("order", [2, 4])
def test_float64_shapes(shape, axis, order):
    rng = np.random.default_rng(zlib.crc32(repr((shape, axis, order)).encode()))
    x = _data(shape, np.float64, rng)
    w = _weights(shape, np.float64, rng)
    check(x, w, axis, order=order)


def test_every_axis_of_3d():
    rng = np.random.default_rng(1)
    x = _data((5, 6, 7), np.float64, rng)
    w = _weights((5, 6, 7), np.float64, rng)
    for axis in _all_axes(3):
        check(x, w, axis, order=4)


VIEWS = [
    ("step 2", lambda a: a[::2]),
    ("transposed", lambda a: a.T),
    ("reversed", lambda a: a[:, ::-1]),
    ("strided both", lambda a: a[::-3, 1:]),
    ("3-D transposed slice", lambda a: a.reshape(6, 10, 50).transpose(1, 0, 2)[:, :, ::2]),
]


@pytest.mark.parametrize("name, make", VIEWS, ids=[v[0] for v in VIEWS])
def test_non_contiguous_data_and_weights(name, make):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((60, 50)) * 2 - 1
    w = rng.random((60, 50))
    xv, wv = make(x), make(w)
    gxv, gwv = make(cupy.asarray(x)), make(cupy.asarray(w))
    for axis in _all_axes(xv.ndim):
        got = fm.moments(gxv, axis=axis, weights=gwv, order=4)
        assert_same([f.get() for f in got.fields], ref_weighted(xv, wv, axis, False, 4), 4, 5.0)
        assert_same([f.get() for f in got.fields], fm.moments(xv, axis=axis, weights=wv, order=4).fields, 4, 5.0)
    # data and weights in different layouts: no common coalesced view
    got = fm.moments(cupy.asarray(np.ascontiguousarray(xv)), axis=0, weights=gwv, order=3)
    assert_same([f.get() for f in got.fields], ref_weighted(xv, wv, 0, False, 3), 3, 5.0)


@pytest.mark.parametrize("shape, axis", [((40, 300), 1), ((300, 40), 0), ((3, 5000), -1), ((5000, 3), 0),
                                         ((4, 50, 6), 1)], ids=str)
def test_broadcast_1d_weights(shape, axis):
    rng = np.random.default_rng(11)
    x = _data(shape, np.float64, rng)
    w = _weights((shape[axis],), np.float64, rng)
    got = check(x, w, axis, order=4)
    # a broadcast view of x's shape (zero strides) given directly: the same
    line = [1] * x.ndim
    line[axis % x.ndim] = shape[axis]
    view = cupy.broadcast_to(cupy.asarray(w).reshape(line), shape)
    assert 0 in view.strides
    again = fm.moments(cupy.asarray(x), axis=axis, weights=view, order=4)
    for a, b in zip(got.fields, again.fields):
        np.testing.assert_array_equal(a.get(), b.get())


# -- dtypes: each data dtype, each weight dtype, unweighted ----------------------------------------

# (data dtype, weight dtype or None, order): every data dtype with float64
# weights, every weight dtype with float64 data, unweighted at each order.
DTYPE_CASES = [
    (np.bool_, np.float64, 2),
    (np.int8, np.float64, 3),
    (np.uint8, np.float64, 4),
    (np.int32, np.float64, 2),
    (np.int64, np.float64, 3),
    (np.uint64, np.float64, 4),
    (np.float16, np.float64, 4),
    (np.float32, np.float64, 3),
    (np.float64, np.bool_, 4),
    (np.float64, np.int8, 2),
    (np.float64, np.int32, 3),
    (np.float64, np.uint16, 4),
    (np.float64, np.float16, 3),
    (np.float64, np.float32, 2),
    (np.float64, None, 2),
    (np.float64, None, 3),
    (np.float32, None, 4),
]


@pytest.mark.parametrize("dtype, wdtype, order", DTYPE_CASES,
                         ids=lambda v: v if isinstance(v, int) else np.dtype(v).name if v is not None else "none")
def test_dtypes(dtype, wdtype, order):
    rng = np.random.default_rng(zlib.crc32(repr((np.dtype(dtype).name, str(wdtype), order)).encode()))
    for shape, axis in (((500,), None), ((30, 70), 0), ((30, 70), 1), ((4000,), 0)):
        x = _data(shape, dtype, rng, special=np.dtype(dtype).kind == "f")
        w = None if wdtype is None else _weights(shape, wdtype, rng)
        # The CPU wing compiles (Numba) per dtype signature and skipna: it is
        # compared without skipna here, and with it on float64 below.
        for skipna in (False, True):
            check(x, w, axis, skipna, order, cpu=not skipna)


def test_bool_weights_count_any_nonzero_byte_as_one():
    raw = np.resize(np.array([2, 0, 255, 1, 0, 7, 0, 0, 128, 3], np.uint8), 40 * 13)
    wb = raw.view(np.bool_).reshape(40, 13)
    x = np.arange(40 * 13, dtype=np.float64).reshape(40, 13) % 17
    g = fm.moments(cupy.asarray(x), axis=0, weights=cupy.asarray(wb), order=4)
    assert_same([f.get() for f in g.fields], ref_weighted(x, raw.reshape(40, 13) != 0, 0, False, 4), 4, 17.0)


def test_weights_and_data_of_either_byte_order():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 70))
    w = rng.random((30, 70))
    want = ref_weighted(x, w, 1, False, 4)
    for xd, wd in (("<f8", ">f8"), (">f8", "<f8"), (">f8", ">f4")):
        gx = cupy.asarray(x.astype(xd))
        gw = cupy.asarray(w.astype(wd))
        got = fm.moments(gx, axis=1, weights=gw, order=4)
        tol_want = want if wd != ">f4" else ref_weighted(x, w.astype(np.float32), 1, False, 4)
        assert_same([f.get() for f in got.fields], tol_want, 4, 5.0)


# -- the protocol's special values ----------------------------------------------------------------


@pytest.mark.parametrize("shape, axis", [((0,), None), ((7, 0), 1), ((0, 3), 0), ((7, 0), 0), ((2, 0, 3), (0, 2))],
                         ids=str)
@pytest.mark.parametrize("order", [2, 4])
def test_empty(shape, axis, order):
    x = cupy.zeros(shape)
    for w in (None, cupy.ones(shape, np.float32)):
        got = _moments(x, axis, False, w, order)
        want = _moments(np.zeros(shape), axis, False, None if w is None else np.ones(shape, np.float32), order)
        host = [f.get() for f in got.fields]
        assert_same(host, want.fields, order)
        assert_same(host, ref_weighted(np.zeros(shape), None, axis, False, order), order)


def test_zero_weights_leave_nan_and_inf_out():
    rng = np.random.default_rng(3)
    for shape, axis in (((3000, 40), 0), ((40, 3000), 1), ((100_003,), None), ((37,), 0)):
        x = _data(shape, np.float64, rng)
        w = _weights(shape, np.float64, rng, zero_frac=0.3)
        flat_x, flat_w = x.reshape(-1), w.reshape(-1)
        zero = np.flatnonzero(flat_w == 0)
        flat_x[zero[::3]] = np.nan
        flat_x[zero[1::3]] = np.inf
        flat_x[zero[2::3]] = -np.inf
        got = check(x, w, axis, order=4)
        assert np.all(np.isfinite(got.mean.get())) and np.all(np.isfinite(got.m4.get()))
    # a whole row of weight 0 (NaN values included) is an empty state
    x = np.array([[np.nan, np.inf, 1.0], [1.0, 2.0, 4.0]])
    w = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 2.0]])
    got = check(x, w, 1, order=3)
    h = got.to_numpy()
    assert h.count.tolist() == [0, 2] and np.isnan(h.mean[0]) and h.m2[0] == 0 and h.m3[0] == 0


def test_nan_and_inf_taken_and_skipna():
    cases = [
        ([1.0, np.nan, 2.0], [1.0, 1.0, 1.0]),
        ([1.0, np.inf, 2.0], [1.0, 2.0, 1.0]),
        ([-np.inf, 1.0, np.inf], [1.0, 1.0, 3.0]),
        ([np.inf], [0.5]),
        ([np.nan], [0.5]),
        ([np.nan] * 20, [1.0] * 20),
        ([np.nan, 1.0] * 10, [0.0, 1.0] * 10),
        (list(np.arange(20.0)) + [np.nan], [1.0] * 21),
        (list(np.arange(20.0)) + [-np.inf], [1.0] * 21),
    ]
    for vals, ws in cases:
        x, w = np.array(vals), np.array(ws)
        for skipna in (False, True):
            for order in (2, 4):
                check(x, w, None, skipna, order)
                check(x, None, None, skipna, order)
    # one NaN per row under skipna, rows long enough for whole groups and tails
    rng = np.random.default_rng(5)
    x = _data((50, 301), np.float64, rng)
    x[np.arange(50), rng.integers(0, 301, 50)] = np.nan
    x[::7, 5] = np.inf
    w = _weights((50, 301), np.float64, rng)
    for skipna in (False, True):
        check(x, w, 1, skipna, 4)
        check(x.T.copy(), w.T.copy(), 0, skipna, 4)


@pytest.mark.parametrize("shape, axis", [((8,), None), ((4001,), None), ((300_001,), None), ((2000, 3), 0),
                                         ((3, 70_001), 1)], ids=str)
def test_data_offset_by_1e9(shape, axis):
    """Means far from zero against the spread: skewness and kurtosis stay
    accurate (means merged relative to an origin, not as rounded absolutes)."""
    rng = np.random.default_rng(21)
    x = 1e9 + rng.standard_normal(shape) + rng.exponential(1.0, shape)
    w = rng.random(shape) + 0.1
    got = check(x, w, axis, order=4)
    want = ref_weighted(x, w, axis, False, 4)
    W, m2, m3, m4 = want[1], want[4], want[5], want[6]
    g1, b2 = (m3 / W) / (m2 / W) ** 1.5, (m4 / W) / (m2 / W) ** 2
    # Plain float64 means merged as absolutes would miss by ~1e-9 to 1e-8 here
    # (u * 1e9 / spread, at first order through M3's and M4's d terms).
    np.testing.assert_allclose(got.skew().get(), g1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.kurtosis(fisher=False).get(), b2, rtol=1e-12)
    np.testing.assert_allclose(got.var(weights="reliability").get(), fm.moments(
        x, axis=axis, weights=w, order=4).var(weights="reliability"), rtol=1e-10)


@pytest.mark.parametrize("shape, axis", [((4001,), None), ((300_001,), None), ((3, 70_001), 1)], ids=str)
def test_outliers_and_nan_at_the_start_do_not_become_the_origin(shape, axis):
    """The origin is the median of values spread over the run (as without
    weights): a first value of 1e15 among values near 1e9 would leave the
    means rounded at ulps of 1e15 (0.125), against a spread of 1."""
    rng = np.random.default_rng(22)
    x = 1e9 + rng.standard_normal(shape)
    w = rng.random(shape) + 0.1
    first = (Ellipsis, slice(0, 3)) if axis == 1 else slice(0, 3)
    x[first] = np.nan
    w[first] = 0.0  # left out: not the origin either
    x[(Ellipsis, 3) if axis == 1 else 3] = 1e15
    got = check(x, w, axis, order=2)
    want = ref_weighted(x, w, axis, False, 2)
    np.testing.assert_allclose(got.m2.get(), want[4], rtol=1e-12)
    np.testing.assert_allclose(got.mean.get(), want[3], rtol=1e-15)


# -- weights that are not non-negative and finite ---------------------------------------------------


@pytest.mark.parametrize("bad", [[-1.0], [np.nan], [np.inf], [np.nan, -0.5], [-np.inf, np.nan, -2.0]], ids=str)
def test_bad_float_weights(bad):
    rng = np.random.default_rng(7)
    for shape, axis in (((100_003,), None), ((3000, 40), 0), ((40, 3000), 1), ((13,), 0)):
        x = _data(shape, np.float64, rng)
        w = _weights(shape, np.float64, rng)
        flat = w.reshape(-1)
        # anywhere, and always at the last element (a tail, not a whole group)
        spots = rng.choice(flat.size, len(bad), replace=False)
        spots[-1] = flat.size - 1
        flat[spots] = bad
        msg = weights_error(w, np)
        assert msg is not None
        with pytest.raises(ValueError) as e:
            fm.moments(cupy.asarray(x), axis=axis, weights=cupy.asarray(w), order=3)
        assert str(e.value) == msg
        with pytest.raises(ValueError) as e:
            fm.moments(x, axis=axis, weights=w, order=3)
        assert str(e.value) == msg


def test_bad_integer_weights_and_good_ones():
    x = np.arange(20.0)
    w = np.ones(20, np.int32)
    w[17] = -3
    with pytest.raises(ValueError, match="non-negative"):
        fm.moments(cupy.asarray(x), weights=cupy.asarray(w), order=3)
    # -0.0 and subnormal weights are valid; a NaN value of weight 0 is no error
    w = np.full(20, 5e-324)
    w[:3] = -0.0
    x[1] = np.nan
    check(x, w, None, order=3)


# -- merge and reduce against _pebay ----------------------------------------------------------------


def _states(rng, shape, order, empty_frac=0.2):
    n = rng.integers(1, 50, shape)
    n[rng.random(shape) < empty_frac] = 0
    W = n * (rng.random(shape) + 0.5)
    W2 = W * (rng.random(shape) + 0.5)
    mean = rng.standard_normal(shape) * 10
    m2 = rng.random(shape) * W
    ms = [m2, rng.standard_normal(shape) * W, rng.random(shape) * W * 3][: order - 1]
    fields = (n, W, W2, mean, *ms)
    # empty states as the constructor clears them
    return tuple(np.where(n == 0, v, f) for f, v in zip(fields, (0, 0.0, 0.0, np.nan, 0.0, 0.0, 0.0)))


def _to_state(fields):
    """A Moments of the weighted layout from its field tuple (NumPy or CuPy)."""
    extra = dict(zip(("m3", "m4"), fields[5:]))
    return fm.Moments(fields[0], fields[3], fields[4], sum_weights=fields[1], sum_weights2=fields[2], **extra)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_merge_against_pebay(order):
    rng = np.random.default_rng(12 + order)
    kind = f"weighted{order}"
    from fastmoments import gpu

    for sa, sb in [((), ()), ((5,), ()), ((4, 1), (1, 6)), ((1000,), (1000,)), ((0,), (1,))]:
        a, b = _states(rng, sa, order), _states(rng, sb, order)
        want = _pebay.merge_weighted(np, order, a, b)
        got = gpu.merge(kind, tuple(cupy.asarray(f) for f in a), tuple(cupy.asarray(f) for f in b))
        assert_same([f.get() for f in got], want, order, 40.0)
        # through the public API, and the CPU wing agrees
        ga = _to_state(tuple(cupy.asarray(f) for f in a))
        gb = _to_state(tuple(cupy.asarray(f) for f in b))
        merged = ga.merge(gb)
        assert merged.order == order
        assert_same([f.get() for f in merged.fields], want, order, 40.0)
        assert_same([f.get() for f in fm.merge(gb, ga).fields], _to_state(b).merge(_to_state(a)).fields, order, 40.0)


def test_merge_special_means_as_pebay():
    """Non-finite and opposite near-overflow means follow _pebay's rules exactly."""
    means = [np.nan, np.inf, -np.inf, 1.7e308, -1.7e308, 1.0]
    pairs = np.array(list(itertools.product(means, means))).T
    k = pairs.shape[1]
    a = (np.full(k, 3), np.full(k, 2.0), np.full(k, 2.0), pairs[0], np.full(k, 1.0), np.full(k, 0.5), np.full(k, 2.0))
    b = (np.full(k, 5), np.full(k, 3.0), np.full(k, 3.0), pairs[1], np.full(k, 2.0), np.full(k, -0.5), np.full(k, 3.0))
    from fastmoments import gpu

    for order in (2, 3, 4):
        want = _pebay.merge_weighted(np, order, a[: 3 + order], b[: 3 + order])
        got = gpu.merge(f"weighted{order}", tuple(cupy.asarray(f) for f in a[: 3 + order]),
                        tuple(cupy.asarray(f) for f in b[: 3 + order]))
        for name, g, wnt in zip(FIELDS, got, want):
            np.testing.assert_array_equal(np.isnan(g.get()), np.isnan(wnt), err_msg=name)
            np.testing.assert_array_equal(np.where(np.isinf(g.get()), g.get(), 0), np.where(np.isinf(wnt), wnt, 0),
                                          err_msg=name)
            ok = np.isfinite(wnt)
            np.testing.assert_allclose(g.get()[ok], wnt[ok], rtol=1e-15, err_msg=name)


def _fold(order, fields, axis):
    """Merge the states of ``fields`` along ``axis`` one by one with _pebay."""
    moved = [np.moveaxis(f, axis, 0) for f in fields]
    acc = tuple(m[0] for m in moved)
    for i in range(1, moved[0].shape[0]):
        acc = _pebay.merge_weighted(np, order, acc, tuple(m[i] for m in moved))
    return acc


@pytest.mark.parametrize("shape, axis", [((2, 5), 0), ((7, 100), 1), ((3000, 4), 0), ((4, 3, 5), 1), ((1,), 0)],
                         ids=str)
@pytest.mark.parametrize("order", [2, 3, 4])
def test_reduce_against_pebay(shape, axis, order):
    rng = np.random.default_rng(15)
    fields = _states(rng, shape, order)
    gpu_state = _to_state(tuple(cupy.asarray(f) for f in fields))
    got = gpu_state.reduce(axis)
    assert_same([f.get() for f in got.fields], _fold(order, fields, axis), order, 40.0)
    assert_same([f.get() for f in got.fields], _to_state(fields).reduce(axis).fields, order, 40.0)


def test_reduce_all_axes_and_empty():
    rng = np.random.default_rng(16)
    fields = _states(rng, (4, 5, 6), 4)
    g = _to_state(tuple(cupy.asarray(f) for f in fields))
    c = _to_state(fields)
    for axis in _all_axes(3):
        assert_same([f.get() for f in g.reduce(axis).fields], c.reduce(axis).fields, 4, 40.0)
    e = fm.Moments.empty((3, 0), like=cupy.zeros(1), order=3)
    assert_same([f.get() for f in e.reduce(1).fields], fm.Moments.empty((3,), order=3).fields, 3)


def test_split_moments_reduce_to_the_whole():
    """States of pieces, stacked and reduced (and merged), equal the moments of the whole,
    also far from zero."""
    rng = np.random.default_rng(17)
    x = 1e6 + rng.standard_normal((8, 2500))
    w = rng.random((8, 2500))
    gx, gw = cupy.asarray(x), cupy.asarray(w)
    parts = fm.moments(gx, axis=1, weights=gw, order=4)
    whole = fm.moments(gx, weights=gw, order=4)
    want = ref_weighted(x, w, None, False, 4)
    assert_same([f.get() for f in parts.reduce().fields], want, 4, 1e6)
    assert_same([f.get() for f in whole.fields], want, 4, 1e6)
    halves = fm.moments(gx[:, :1000], axis=1, weights=gw[:, :1000], order=4).merge(
        fm.moments(gx[:, 1000:], axis=1, weights=gw[:, 1000:], order=4))
    assert_same([f.get() for f in halves.fields], ref_weighted(x, w, 1, False, 4), 4, 1e6)


def test_counts_past_int64_are_refused():
    from fastmoments import gpu

    big = 2**62 + 5
    for order in (2, 4):
        host = (np.array([big, 1]), [1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0])
        one = tuple(cupy.asarray(np.asarray(v)) for v in host[: 3 + order])
        with pytest.raises(ValueError, match=r"2\*\*63") as e:
            gpu.merge(f"weighted{order}", one, one)
        assert str(e.value) == COUNT_OVERFLOW
        gpu.merge(f"weighted{order}", one, one, checked=False)  # unchecked: no error
        two = tuple(f.reshape(1, 2) for f in one)
        with pytest.raises(ValueError, match=r"2\*\*63"):
            gpu.reduce(f"weighted{order}", tuple(cupy.concatenate([f, f]) for f in two), (0,))
        with pytest.raises(ValueError, match=r"2\*\*63"):
            _to_state(tuple(cupy.concatenate([f, f]).reshape(-1) for f in one)).reduce()


# -- the emulator notices broken weighted kernels ------------------------------------------------

# (what, text in fm_weighted.cu with fm_wstate.cuh inlined, its broken form)
BREAKS = [
    ("block barrier removed", "    if (lane == 0) warps[warp] = s;\n    __syncthreads();\n",
     "    if (lane == 0) warps[warp] = s;\n"),
    ("lane-kernel barrier removed", "    tile[threadIdx.y][threadIdx.x] = s;\n    __syncthreads();\n",
     "    tile[threadIdx.y][threadIdx.x] = s;\n"),
    ("origin not added back", "mean[slot] = s.mean + origin;", "mean[slot] = s.mean;"),
    ("sign of M3's cross term", "+ 3.0 * d * (ra * b2 - rb * a2)", "- 3.0 * d * (ra * b2 - rb * a2)"),
]


def _weighted_fails(source, monkeypatch):
    from cupy import _emu
    from cupy._emu import EmulatorError

    from fastmoments.gpu import _kernels, _sources

    orig = _sources.read_source
    monkeypatch.setattr(_sources, "read_source", lambda path=_sources.REDUCE_SOURCE: source
                        if path == _sources.WEIGHTED_SOURCE else orig(path))
    rng = np.random.default_rng(20261205)
    cases = [((100_003,), None), ((37, 300), 1), ((3000, 40), 0)]
    problems = []
    try:
        for mode in (0, 1, 2):
            monkeypatch.setattr(_emu.settings, "mode", mode)
            _kernels._modules.clear()
            for shape, axis in cases:
                x = 100.0 + rng.standard_normal(shape) + rng.exponential(1.0, shape)
                w = rng.random(shape)
                try:
                    got = fm.moments(cupy.asarray(x), axis=axis, weights=cupy.asarray(w), order=4)
                    assert_same([f.get() for f in got.fields], ref_weighted(x, w, axis, False, 4), 4, 200.0)
                except (EmulatorError, AssertionError) as e:
                    problems.append(f"order {mode}, shape {shape}: {str(e)[:200]}")
    finally:
        _kernels._modules.clear()
    return problems


@pytest.mark.skipif(not getattr(cupy, "__fmemu__", False), reason="needs the CUDA emulator")
def test_unbroken_weighted_kernels_pass_in_every_order(monkeypatch):
    from fastmoments.gpu import _sources

    assert _weighted_fails(_sources.read_source(_sources.WEIGHTED_SOURCE), monkeypatch) == []


@pytest.mark.skipif(not getattr(cupy, "__fmemu__", False), reason="needs the CUDA emulator")
@pytest.mark.parametrize("what, find, broken", BREAKS, ids=[b[0] for b in BREAKS])
def test_broken_weighted_kernel_fails(what, find, broken, monkeypatch):
    from fastmoments.gpu import _sources

    source = _sources.read_source(_sources.WEIGHTED_SOURCE)
    assert source.count(find) == 1, f"the text to break is not in the source once: {find!r}"
    assert _weighted_fails(source.replace(find, broken), monkeypatch), f"{what}: the emulated run did not notice"
