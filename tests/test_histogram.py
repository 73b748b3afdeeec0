"""Magnitude histograms of summarize / summarize_each (histogram=True) against NumPy's frexp."""

import pickle

import numpy as np
import pytest

import fastmoments as fm
from fastmoments import _histogram as H

N_BINS = H.N_BINS
# bfloat16-like bit patterns include NaNs, whose cast NumPy warns about.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in cast")


def frexp_histogram(x):
    """The reference, independent of the kernels' bit operations: np.frexp's
    exponent e (|v| = m * 2**e, 0.5 <= m < 1) puts v in binade E = e - 1."""
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v) & (v != 0)]
    _, e = np.frexp(np.abs(v))
    b = np.clip(e - 1 - H.MIN_EXPONENT + 1, 0, N_BINS - 1)
    return np.bincount(b, minlength=N_BINS).astype(np.int64)


def specials(dtype):
    """Powers of two, their neighbours below, subnormals and the extremes of ``dtype``."""
    fi = np.finfo(dtype)
    vals = [fi.tiny, fi.smallest_subnormal, fi.max, -fi.max, fi.eps, 1.0, -1.0, 0.0, -0.0, np.nan, np.inf, -np.inf]
    for e in range(int(np.log2(float(fi.smallest_subnormal))), int(np.log2(float(fi.max))) + 1, 3):
        p = np.ldexp(np.float64(1.0), e)
        p_t = dtype(p)
        vals += [p_t, np.nextafter(p_t, dtype(0)), -p_t]
    return np.array(vals, dtype=dtype)


def test_layout():
    edges = H.histogram_edges()
    assert edges.size == N_BINS + 1
    assert edges[0] == 0 and edges[-1] == np.inf
    assert edges[1] == np.ldexp(1.0, -149) and edges[-2] == 2.0**128
    # The issue's range: float16's and bfloat16's underflow thresholds and float16's largest value.
    assert fm.HISTOGRAM_EXPONENTS[0] <= -133 and fm.HISTOGRAM_EXPONENTS[-1] >= 15
    assert np.all(np.diff(fm.HISTOGRAM_EXPONENTS) == 1)
    assert N_BINS == fm.HISTOGRAM_EXPONENTS.size + 2


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_exact_powers_and_subnormals(dtype):
    x = specials(dtype)
    s = fm.summarize(x, histogram=True)
    np.testing.assert_array_equal(s.histogram, frexp_histogram(x))
    assert s.histogram.sum() == s.count - s.n_zero
    each = fm.summarize_each([x, x[::-1].copy()], histogram=True)
    np.testing.assert_array_equal(each.histogram[0], frexp_histogram(x))
    np.testing.assert_array_equal(each.histogram[1], frexp_histogram(x))


def test_under_and_overflow_bins():
    x = np.array([5e-324, 1e-300, 2.0**-150, np.nextafter(2.0**-149, 0), 2.0**-149,
                  2.0**127, np.nextafter(2.0**128, 0), 2.0**128, 1e300, -1e308])
    h = fm.summarize(x, histogram=True).histogram
    assert h[0] == 4  # below 2**-149
    assert h[1] == 1  # 2**-149
    assert h[N_BINS - 2] == 2  # [2**127, 2**128)
    assert h[N_BINS - 1] == 3  # 2**128 and above
    np.testing.assert_array_equal(h, frexp_histogram(x))


def test_float16_thresholds():
    """The monitor's figures: below 2**-24 flushes to zero in float16, [2**-24, 2**-14) is subnormal."""
    x = np.array([2.0**-25, 2.0**-24, 3 * 2.0**-20, 2.0**-14, 65504.0, 2.0**-133, 2.0**-134])
    h = fm.summarize(x, histogram=True).histogram
    e = H.histogram_edges()
    flush = h[: np.searchsorted(e, 2.0**-24)].sum()
    sub = h[np.searchsorted(e, 2.0**-24) : np.searchsorted(e, 2.0**-14)].sum()
    assert (flush, sub) == (3, 2)
    assert h[1 + 15 - H.MIN_EXPONENT] == 1  # 65504 in [2**15, 2**16)


def bfloat16_like(rng, n):
    """float32 values with bfloat16's precision (the low 16 bits cleared), subnormals included."""
    bits = rng.integers(0, 2**16, n, dtype=np.uint32) << np.uint32(16)
    return bits.view(np.float32)


@pytest.mark.parametrize("n", [0, 1, 7, 64, 65, 1000, 8192 * 4 + 5, 8192 * 70 + 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_summarize_each_vs_frexp(rng, n, dtype):
    arrays = [
        (rng.standard_normal(n) * 10.0 ** rng.uniform(-40, 5, n)).astype(dtype),
        bfloat16_like(rng, n).astype(dtype),
        rng.standard_normal((n, 2)).astype(dtype),
    ]
    arrays[0].reshape(-1)[::7] = 0
    if n > 10:
        arrays[0][3] = np.nan
        arrays[0][4] = -np.inf
    s = fm.summarize_each(arrays, histogram=True)
    assert s.histogram.shape == (3, N_BINS) and s.histogram.dtype == np.int64
    for a, h in zip(arrays, s.histogram):
        np.testing.assert_array_equal(h, frexp_histogram(a))
    plain = fm.summarize_each(arrays)
    for f in plain._fields:  # histogram=False unchanged, and the other fields bit-identical with it
        np.testing.assert_array_equal(getattr(s, f), getattr(plain, f), err_msg=f)


@pytest.mark.parametrize("shape,axis", [((1000,), None), ((30, 40, 50), None), ((3000, 7), 0), ((7, 3000), 1),
                                        ((20, 30, 40), (0, 2)), ((5, 0), 1), ((4, 5), ())])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.bool_])
def test_summarize_vs_frexp(rng, shape, axis, dtype):
    x = (rng.standard_normal(shape) * 1e3).astype(dtype)
    s = fm.summarize(x, axis=axis, histogram=True)
    plain = fm.summarize(x, axis=axis)
    for f in plain._fields:
        np.testing.assert_array_equal(getattr(s, f), getattr(plain, f), err_msg=f)
    assert s.histogram.shape == plain.shape + (N_BINS,)
    axes = tuple(range(x.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    moved = np.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))
    flat = moved.reshape(plain.shape + (-1,))
    for idx in np.ndindex(plain.shape):
        np.testing.assert_array_equal(s.histogram[idx], frexp_histogram(flat[idx]))
    k = fm.summarize(x, axis=axis, keepdims=True, histogram=True)
    assert k.histogram.shape == k.shape + (N_BINS,)


def test_merge_reduce_index_pickle(rng):
    a, b = rng.standard_normal(5000), rng.standard_normal(3000) * 1e-10
    sa, sb = fm.summarize(a, histogram=True), fm.summarize(b, histogram=True)
    whole = fm.summarize(np.concatenate([a, b]), histogram=True)
    np.testing.assert_array_equal(fm.merge(sa, sb).histogram, whole.histogram)
    np.testing.assert_array_equal(sa.merge(sb).histogram, whole.histogram)
    each = fm.summarize_each([a, b, a[:10]], histogram=True)
    np.testing.assert_array_equal(each[:2].reduce().histogram, whole.histogram)
    np.testing.assert_array_equal(each[1].histogram, sb.histogram)
    np.testing.assert_array_equal(each[..., 2].histogram, frexp_histogram(a[:10]))
    np.testing.assert_array_equal(each[np.array([True, False, True])].histogram[1], frexp_histogram(a[:10]))
    back = pickle.loads(pickle.dumps(each))
    assert back.has_histogram
    for f in each._fields:
        np.testing.assert_array_equal(getattr(back, f), getattr(each, f))
    np.testing.assert_array_equal(each.to_numpy().histogram, each.histogram)
    assert "histogram" in repr(each[0]) and repr(each[0]).startswith("Summary(")
    # Broadcasting merge: (3,) with a 0-d state.
    m = each.merge(sb)
    np.testing.assert_array_equal(m.histogram, each.histogram + sb.histogram)


def test_from_fields_and_errors(rng):
    s = fm.summarize_each([rng.standard_normal(100), rng.standard_normal(10)], histogram=True)
    t = fm.Summary.from_fields(**{f: getattr(s, f) for f in s._fields})
    for f in s._fields:
        np.testing.assert_array_equal(getattr(t, f), getattr(s, f))
    with pytest.raises(ValueError, match="bins"):
        fm.Summary.from_fields(**{f: getattr(s, f) for f in s._fields[:7]}, histogram=np.zeros((2, 5)))
    plain = fm.summarize_each([rng.standard_normal(100)])
    assert not plain.has_histogram
    with pytest.raises(AttributeError, match="histogram=True"):
        plain.histogram
    with pytest.raises(ValueError, match="histogram"):
        plain.merge(s[:1])
    for bad in ("yes", 1, None, np.array(True)):
        with pytest.raises(TypeError, match="histogram"):
            fm.summarize(np.ones(3), histogram=bad)
        with pytest.raises(TypeError, match="histogram"):
            fm.summarize_each([np.ones(3)], histogram=bad)


def test_count_overflow_in_merge():
    s = fm.summarize(np.ones(3), histogram=True)
    big = fm.Summary.from_fields(**{f: getattr(s, f) for f in s._fields[:7]},
                                 histogram=np.full(N_BINS, 2**62, np.int64))
    with pytest.raises(ValueError, match="2\\*\\*63"):
        big.merge(big)


@pytest.mark.parametrize("shape,axis", [((0, 5), 1), ((5, 0), 0), ((2, 0, 3), (0, 2)), ((0, 0), 1)])
def test_partial_reduction_with_no_outputs(shape, axis):
    """Zero outputs (a kept axis of length 0): an empty histogram, as on the GPU, not a reshape error."""
    x = np.ones(shape)
    plain = fm.summarize(x, axis=axis)
    s = fm.summarize(x, axis=axis, histogram=True)
    assert s.shape == plain.shape and s.histogram.shape == plain.shape + (N_BINS,)
    k = fm.summarize(x, axis=axis, keepdims=True, histogram=True)
    assert k.histogram.shape == k.shape + (N_BINS,)


def test_merge_with_and_without_histogram_either_order(rng):
    """The same ValueError whichever side holds the histogram (was a TypeError
    naming the private class when the histogram summary was on the left)."""
    x = rng.standard_normal(100)
    h, plain = fm.summarize(x, histogram=True), fm.summarize(x)
    for a, b in ((h, plain), (plain, h)):
        with pytest.raises(ValueError, match="histogram"):
            a.merge(b)
        with pytest.raises(ValueError, match="histogram"):
            fm.merge(a, b)
    with pytest.raises(TypeError, match="cannot merge"):
        h.merge(h.moments)


def _window_cases(rng, dtype):
    """Data that defeats a 32-binade window placed on its first block: values
    far below it, values growing past it, first blocks with no normal value,
    NaN/Inf at the top of the range, and a block of only out-of-window values."""
    fi = np.finfo(dtype)
    n = 8192 * 5 + 77
    e = np.arange(int(np.log2(float(fi.smallest_subnormal))), int(np.log2(float(fi.max))) + 1)
    spread = rng.permutation(np.resize(np.ldexp(1.0, e), n)).astype(dtype)  # every binade, first block too
    small_first = spread.copy()
    small_first[:8192] = rng.uniform(0.5, 1.0, 8192)  # the window sits on [2**-31, 2]: most later values outside
    growing = np.geomspace(1e-3, float(fi.max) / 4, n).astype(dtype)
    quiet_start = rng.standard_normal(n).astype(dtype)
    quiet_start[: 3 * 8192] = 0
    quiet_start[5 : 3 * 8192 : 11] = fi.smallest_subnormal * 3  # only subnormals and zeros at first
    near_max = rng.uniform(0.5, 1.0, n).astype(dtype) * fi.max
    near_max[::9] = np.inf
    near_max[4::9] = np.nan
    edges = np.zeros(n, dtype)
    edges[:8192] = 1.5  # top: 2 binades above 1.5's
    k = np.arange(8192, n)
    edges[8192:] = np.ldexp(1.0, 2 - (k % 36)).astype(dtype)  # binades 2 down to -33: across the window's floor
    return {"spread": spread, "small_first": small_first, "growing": growing, "quiet_start": quiet_start,
            "near_max": near_max, "edges": edges}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_counts_outside_the_window(rng, dtype):
    cases = _window_cases(rng, dtype)
    s = fm.summarize_each(list(cases.values()), histogram=True)
    for (name, a), h in zip(cases.items(), s.histogram):
        np.testing.assert_array_equal(h, frexp_histogram(a), err_msg=name)
    for name, a in cases.items():  # one row each through the row kernel, and as columns of a 2-D reduction
        np.testing.assert_array_equal(fm.summarize(a, histogram=True).histogram, frexp_histogram(a), err_msg=name)
        two = np.stack([a, a[::-1]], axis=1)
        got = fm.summarize(two, axis=0, histogram=True).histogram
        np.testing.assert_array_equal(got[1], frexp_histogram(a), err_msg=name)


def test_counts_do_not_depend_on_the_thread_count(rng):
    import numba

    a = (rng.standard_normal(8192 * 200) * 10.0 ** rng.uniform(-12, 3, 8192 * 200)).astype(np.float32)
    arrays = [a, a[: 8192 * 70 + 1].astype(np.float64), a[5:9000]]
    want = [frexp_histogram(x) for x in arrays]
    saved = numba.get_num_threads()
    try:
        for t in sorted({1, saved}):
            numba.set_num_threads(t)
            got = fm.summarize_each(arrays, histogram=True).histogram
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
    finally:
        numba.set_num_threads(saved)
