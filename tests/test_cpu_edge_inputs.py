"""CPU wing edge inputs, against independent NumPy float64 references.

1. Bool arrays whose True bytes are not 0x01 (a NumPy bool is True for any
   nonzero byte: ``np.frombuffer(b'\\x02\\x00\\xff', bool)`` is
   [True, False, True]). They count as 0 and 1 on every path, never as their
   bytes; the reference is a float64 0/1 copy made from the bytes.
2. A single value that is its own state (axis=(), 0-d input) or alone in its
   row: its variance is that of np.var / np.nanvar, also under skipna: 0 for
   a finite value, NaN for +-Inf; a NaN skipped leaves an empty state.
3. Runs of one value (constant columns, rows, arrays), whatever its size: m2
   is exactly 0 and the mean exactly the value, on every path (the reference
   is exact). Once a first pass's mean off by an ulp left m2 the rounding of
   the squares of that ulp's deviations: 2.7e-5 for (3000, 2) of 1e20 along
   axis 0, -0.75 for (20000, 2), 5e256 at 1e150, inf from 1e154 on. Beside
   them, large values that are not constant keep their digits (a float64
   two-pass reference on the values scaled by a power of two).
"""

import warnings

import numpy as np
import pytest

import fastmoments as fm
from fastmoments import cpu

# -- 1. bool arrays with bytes other than 0 and 1 ---------------------------------------


def dirty_bool(rng, shape):
    """A bool array of ``shape`` whose bytes are 0 (40%), 1 (10%) or 2..255."""
    raw = rng.integers(2, 256, size=shape, dtype=np.uint8)
    u = rng.random(shape)
    raw[u < 0.4] = 0
    raw[(u >= 0.4) & (u < 0.5)] = 1
    b = raw.view(bool)
    assert b.view(np.uint8).max(initial=0) > 1 or b.size < 8
    return b


def zero_one(b):
    """The 0/1 float64 values of bool array ``b``, from its bytes (any layout)."""
    return (np.asarray(b).view(np.uint8) != 0).astype(np.float64)


def _axis_size(shape, axis):
    if axis is None:
        return int(np.prod(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axes]))


def check_moments(b, axis, skipna=False):
    ref = zero_one(b)
    m = fm.moments(b, axis=axis, skipna=skipna)
    expected_shape = np.mean(ref, axis=axis).shape if ref.size else m.shape
    assert m.shape == expected_shape
    np.testing.assert_array_equal(m.count, np.full(m.shape, _axis_size(b.shape, axis)))
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_allclose(m.mean, np.mean(ref, axis=axis), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(m.var(), np.var(ref, axis=axis), rtol=1e-10, atol=1e-12)
    return m


def check_summary(s, ref, axis):
    """``s`` (a Summary) against the 0/1 float64 ``ref`` reduced over ``axis``."""
    np.testing.assert_array_equal(s.count, np.full(s.shape, _axis_size(ref.shape, axis)))
    np.testing.assert_array_equal(s.n_nonfinite, 0)
    np.testing.assert_array_equal(s.n_zero, np.sum(ref == 0, axis=axis))
    np.testing.assert_allclose(s.mean, np.mean(ref, axis=axis), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.var(), np.var(ref, axis=axis), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(s.min, np.min(ref, axis=axis))
    np.testing.assert_array_equal(s.max, np.max(ref, axis=axis))


def test_bool_bytes_example_from_the_report():
    b = np.frombuffer(b"\x02\x00\xff", bool)
    m = fm.moments(b)
    assert m.count == 3
    assert m.mean == pytest.approx(2 / 3) and m.var() == pytest.approx(np.var([1.0, 0.0, 1.0]))
    s = fm.summarize(b)
    assert (s.count, s.min, s.max, s.n_zero) == (3, 0.0, 1.0, 1)
    assert s.mean == pytest.approx(2 / 3)


def test_uint8_viewed_as_bool():
    b = np.arange(256, dtype=np.uint8).view(bool)  # one False, 255 True
    m = fm.moments(b)
    assert m.mean == pytest.approx(255 / 256) and m.var() == pytest.approx(np.var(zero_one(b)))
    s = fm.summarize(b)
    assert (s.count, s.min, s.max, s.n_zero) == (256, 0.0, 1.0, 1)
    assert s.mean == pytest.approx(255 / 256)
    rows = b.reshape(16, 16)
    check_moments(rows, 0)
    check_moments(rows, 1)
    check_summary(fm.summarize(rows, axis=1), zero_one(rows), 1)


BOOL_CASES = [
    ((3,), None), ((7,), 0), ((100_003,), None),
    ((1 << 19) + 5, None),  # past PARALLEL_MIN: the parallel row kernel
    ((1000, 1), 1), ((1000, 3), 1), ((1000, 8), 1), ((1000, 10), 1),  # short rows
    ((1000, 16), 1), ((1000, 32), 1), ((1000, 64), 1), ((1001, 64), 1),  # rows in vectors
    ((1000, 200), 1), ((3, 50_000), 1),  # long rows
    ((1000, 1), 0), ((1000, 3), 0), ((3001, 5), 0), ((300, 1000), 0),  # columns
    ((50, 70, 3), None), ((50, 70, 3), 1), ((50, 70, 3), 2), ((50, 70, 3), (0, 1)),
    ((50, 70, 3), (0, 2)), ((20, 3), ()), ((), None),
]


@pytest.mark.parametrize("skipna", [False, True])
@pytest.mark.parametrize("shape,axis", BOOL_CASES)
def test_bool_bytes_moments_and_summary(rng, shape, axis, skipna):
    b = dirty_bool(rng, shape)
    before = b.tobytes()
    check_moments(b, axis, skipna)
    m = fm.moments(b, axis=axis, skipna=skipna, keepdims=True)
    assert m.ndim == b.ndim
    check_summary(fm.summarize(b, axis=axis), zero_one(b), axis)
    assert b.tobytes() == before  # the user's array is never modified


@pytest.mark.parametrize("skipna", [False, True])
def test_bool_bytes_strided_views(rng, skipna):
    base = dirty_bool(rng, (600, 130))
    views = [base[::3], base[:, ::2], base.T, base[::-1, 5:90], np.asfortranarray(base),
             base[::2, ::7].T, base.reshape(-1)[::5]]
    for v in views:
        for axis in [None, 0, -1, ()] + ([(0, 1)] if v.ndim == 2 else []):
            check_moments(v, axis, skipna)
            check_summary(fm.summarize(v, axis=axis), zero_one(v), axis)


@pytest.mark.parametrize("k", [1, 3, 8, 10, 64])
def test_bool_short_rows_one_stray_byte(rng, k):
    """Short rows of bools whose bytes are 0 and 1 may be read as bytes; a
    single byte past 1, anywhere, must still count as 1."""
    clean = rng.random((3000, k)) < 0.3
    for where in (None, 0, clean.size // 2, clean.size - 1):
        raw = clean.view(np.uint8).copy()
        if where is not None:
            raw.reshape(-1)[where] = 0xFE
        b = raw.view(bool)
        for skipna in (False, True):
            check_moments(b, 1, skipna)
        check_summary(fm.summarize(b, axis=1), zero_one(b), 1)


def test_bool_bytes_zero_d():
    b = np.frombuffer(b"\x07", bool).reshape(())
    for skipna in (False, True):
        m = fm.moments(b, skipna=skipna)
        assert (m.count, m.mean, m.m2) == (1, 1.0, 0.0)
    s = fm.summarize(b)
    assert (s.count, s.mean, s.min, s.max, s.n_zero) == (1, 1.0, 1.0, 1.0, 0)


def test_bool_bytes_summarize_each(rng):
    arrays = [dirty_bool(rng, (64, 3, 7, 7)), rng.standard_normal(10), dirty_bool(rng, (5,)),
              dirty_bool(rng, ()), dirty_bool(rng, (0,)), dirty_bool(rng, (300, 40))[:, ::3],
              np.arange(256, dtype=np.uint8).view(bool), dirty_bool(rng, (2000, 9)).T]
    s = fm.summarize_each(arrays)
    assert s.shape == (len(arrays),)
    for i, a in enumerate(arrays):
        ref = zero_one(a) if a.dtype == bool else np.asarray(a, np.float64)
        if ref.size == 0:
            assert s.count[i] == 0
            continue
        check_summary(s[i], ref, None)


def test_bool_bytes_running_moments(rng):
    batches = [dirty_bool(rng, (n, 4)) for n in (1, 7, 300, 5000)]
    for skipna in (False, True):
        rm = fm.RunningMoments(skipna=skipna)
        for batch in batches:
            rm.update(batch)
        ref = np.concatenate([zero_one(b) for b in batches])
        np.testing.assert_array_equal(rm.count, ref.shape[0])
        np.testing.assert_allclose(rm.mean, ref.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(rm.var(ddof=1), ref.var(axis=0, ddof=1), rtol=1e-10)


def test_bool_bytes_merge_and_reduce(rng):
    b = dirty_bool(rng, (40, 30))
    ref = zero_one(b)
    whole = fm.moments(b[:17], axis=0).merge(fm.moments(b[17:], axis=0))
    np.testing.assert_allclose(whole.mean, ref.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(whole.var(), ref.var(axis=0), rtol=1e-10, atol=1e-15)
    red = fm.moments(b, axis=()).reduce(axis=0)
    np.testing.assert_allclose(red.var(), ref.var(axis=0), rtol=1e-10, atol=1e-15)


def test_bool_kernels_read_the_array_in_place(rng):
    """The fix reads bool data as it is: no normalized copy of the user's array."""
    b = dirty_bool(rng, (1000,))
    a = cpu.asarray(b)
    assert a.dtype == np.bool_ and np.shares_memory(a, b)
    for v in (b[::2], b.reshape(10, 100).T):
        assert np.shares_memory(cpu.asarray(v), b)


def test_bool_bytes_dask_chunks(rng):
    da = pytest.importorskip("dask.array")
    fmd = pytest.importorskip("fastmoments_dask")
    b = dirty_bool(rng, (1000, 6))
    ref = zero_one(b)
    d = da.from_array(b, chunks=(130, 4))
    for axis in (None, 0, 1):
        m = fmd.moments(d, axis=axis).compute(scheduler="sync")
        np.testing.assert_allclose(m.mean, ref.mean(axis=axis), rtol=1e-12)
        np.testing.assert_allclose(m.var(), ref.var(axis=axis), rtol=1e-10)
        s = fmd.summarize(d, axis=axis).compute(scheduler="sync")
        check_summary(s, ref, axis)


# -- 2. a single value as its own state, and single-value rows --------------------------

VALUES = [np.inf, -np.inf, np.nan, 1.5, 0.0, -2.0]


def expected_single(values, skipna):
    """(count, mean, m2, var) of states that each hold one of ``values``, as
    NumPy has them: np.var / np.nanvar over no axes (each value alone)."""
    v = np.asarray(values, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var = (np.nanvar if skipna else np.var)(v, axis=())
    dropped = np.isnan(v) & skipna  # a NaN left out: the empty state
    count = np.where(dropped, 0, 1)
    mean = np.where(dropped, np.nan, v)
    m2 = np.where(dropped | np.isfinite(v), 0.0, np.nan)
    return count, mean, m2, var


def assert_single_states(m, values, skipna):
    """Every state of ``m`` (any shape) is that of the matching one value."""
    values = np.asarray(values, np.float64).reshape(m.shape)
    count, mean, m2, var = expected_single(values, skipna)
    np.testing.assert_array_equal(m.count, count)
    np.testing.assert_array_equal(m.mean, mean)
    np.testing.assert_array_equal(m.m2, m2)
    np.testing.assert_array_equal(m.var(), var)


@pytest.mark.parametrize("skipna", [False, True])
@pytest.mark.parametrize("v", VALUES)
def test_single_value_zero_d(v, skipna):
    for x in (np.float64(v), float(v), np.array(v), np.float32(v), np.array(v, np.float16)):
        for keepdims in (False, True):
            m = fm.moments(x, skipna=skipna, keepdims=keepdims)
            assert m.shape == ()
            assert_single_states(m, v, skipna)
            assert_single_states(fm.moments(x, axis=(), skipna=skipna, keepdims=keepdims), v, skipna)


def test_lone_inf_skipna_examples_from_the_report():
    m = fm.moments(np.float64(np.inf), skipna=True)
    assert m.count == 1 and m.mean == np.inf and np.isnan(m.m2) and np.isnan(m.var())
    m = fm.moments(np.array([np.inf, 1.0, 5.0]), axis=(), skipna=True)
    np.testing.assert_array_equal(m.count, [1, 1, 1])
    np.testing.assert_array_equal(m.m2, [np.nan, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(np.nanvar(np.inf))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("skipna", [False, True])
def test_single_value_states_and_rows(dtype, skipna):
    x = np.array(VALUES, dtype)
    big = np.tile(x, 20_000)  # enough rows for the parallel kernels
    strided = np.tile(x, 3)
    cases = [  # (data, axis, the one value of each state)
        (x, (), x), (x.reshape(-1, 1), (), x), (x.reshape(2, 3), (), x),  # each element its own state
        (x.reshape(-1, 1), 1, x), (x.reshape(1, -1), 0, x), (x.reshape(-1, 1, 1), (1, 2), x),  # one per row
        (x.reshape(-1, 1), -1, x), (np.asfortranarray(x.reshape(1, -1)), 0, x),
        (big.reshape(-1, 1), 1, big), (big.reshape(1, -1), 0, big),
        (strided.reshape(-1, 1)[::2], 1, strided[::2]), (strided.reshape(1, -1)[:, ::2], 0, strided[::2]),
    ]
    for data, axis, values in cases:
        for keepdims in (False, True):
            m = fm.moments(data, axis=axis, skipna=skipna, keepdims=keepdims)
            assert m.size == values.size
            assert_single_states(m, values, skipna)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ref = (np.nanvar if skipna else np.var)(np.asarray(data, np.float64), axis=axis,
                                                        keepdims=keepdims)
            np.testing.assert_array_equal(m.var(), ref)


@pytest.mark.parametrize("skipna", [False, True])
def test_single_value_states_merge_like_the_whole(skipna):
    x = np.array([np.inf, 1.0, 5.0, np.nan, -np.inf, 2.0])
    for part in (x[:3], x[1:3], x[3:], x[:1], x[4:]):
        each = fm.moments(part, axis=(), skipna=skipna)
        whole = fm.moments(part, skipna=skipna)
        merged = each.reduce(axis=0)
        np.testing.assert_array_equal(merged.count, whole.count)
        np.testing.assert_array_equal(np.isnan(merged.m2), np.isnan(whole.m2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = (np.nanvar if skipna else np.var)(part)
        np.testing.assert_array_equal(np.isnan(merged.var()), np.isnan(ref))


@pytest.mark.parametrize("v", VALUES)
def test_single_value_summary(v):
    """Summaries leave non-finite values out altogether: a lone Inf or NaN is
    an empty state (count 0, m2 0) counted in n_nonfinite."""
    finite = bool(np.isfinite(v))
    for x, axis in ((np.float64(v), None), (np.array([v]), ()), (np.array([[v]]), 1),
                    (np.array([[v]]), 0), (np.full((5, 1), v), 1), (np.full((1, 5), v), 0)):
        s = fm.summarize(x, axis=axis)
        for idx in np.ndindex(s.shape):
            assert s.count[idx] == int(finite) and s.n_nonfinite[idx] == int(not finite)
            assert s.m2[idx] == 0.0 and s.n_zero[idx] == int(v == 0)
            if finite:
                assert (s.mean[idx], s.min[idx], s.max[idx], s.var()[idx]) == (v, v, v, 0.0)
            else:
                assert np.isnan(s.mean[idx]) and np.isnan(s.min[idx]) and np.isnan(s.max[idx])


# -- 3. runs of one value: m2 exactly 0, the mean exactly the value -----------------------

CONSTANTS64 = [0.1, -1 / 3, 2.5e-300, 1e20, -np.pi * 1e100, 1e150, 7.7e199, -3.3e250, 1e306, 1.7e308, -0.0]
CONSTANTS32 = [0.1, -1 / 3, 3.3e-38, 1e20, -np.pi * 1e30, 3.0e38]

# (shape, axis): narrow columns widened by interleaved copies, with and without
# leftover rows; columns of several tiles and chunks; wide columns; 3-D; short
# rows, rows of one block and of several; whole arrays.
CONSTANT_LAYOUTS = [
    ((3000, 2), 0), ((3001, 2), 0), ((100, 16), 0), ((100, 1000), 0), ((200_000, 3), 0), ((20_000, 5), 0),
    ((3000, 1), 0), ((7, 3), 0), ((50, 40, 3), 0), ((40, 50, 3), (0, 1)), ((3, 4000, 2), 1),
    ((40, 3), 1), ((40, 8), 1), ((40, 10), 1), ((41, 16), 1), ((40, 64), 1), ((40, 100), 1), ((3, 20_000), 1),
    ((3000,), None), ((100_000,), None), ((20, 30, 40), None),
]


def check_constant(r, c, count):
    """A state (Moments or Summary) of runs of ``c`` only: exact fields."""
    c = float(c)
    np.testing.assert_array_equal(r.count, np.full(r.shape, count))
    np.testing.assert_array_equal(r.m2, np.zeros(r.shape))
    np.testing.assert_array_equal(r.mean, np.full(r.shape, c))
    if isinstance(r, fm.Summary):
        np.testing.assert_array_equal(r.min, np.full(r.shape, c))
        np.testing.assert_array_equal(r.max, np.full(r.shape, c))
        np.testing.assert_array_equal(r.n_zero, np.full(r.shape, count if c == 0 else 0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["moments", "skipna", "summary"])
def test_constant_runs_have_m2_exactly_zero(dtype, kind):
    for c in CONSTANTS64 if dtype == np.float64 else CONSTANTS32:
        c = dtype(c)
        for shape, axis in CONSTANT_LAYOUTS:
            x = np.full(shape, c, dtype)
            if kind == "summary":
                r = fm.summarize(x, axis=axis)
            else:
                r = fm.moments(x, axis=axis, skipna=kind == "skipna")
            try:
                check_constant(r, c, _axis_size(shape, axis))
            except AssertionError as e:
                raise AssertionError(f"{np.dtype(dtype)} {c!r} {shape} axis={axis} {kind}") from e


def test_constant_runs_report_examples():
    assert fm.moments(np.full((3000, 2), 1e306), axis=0).m2.tolist() == [0.0, 0.0]
    assert fm.moments(np.full((3000, 2), 1e150), axis=0).m2.tolist() == [0.0, 0.0]
    m = fm.moments(np.full((100, 16), 1e306), axis=0)
    assert (m.m2 == 0).all() and (m.mean == 1e306).all() and (m.var() == 0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_constant_arrays_summarize_each(dtype):
    for c in CONSTANTS64 if dtype == np.float64 else CONSTANTS32:
        c = dtype(c)
        arrays = [np.full(n, c, dtype) for n in (1, 5, 64, 65, 3000, 8192 * 5 + 3)]
        s = fm.summarize_each(arrays)
        np.testing.assert_array_equal(s.m2, np.zeros(len(arrays)), err_msg=repr(c))
        np.testing.assert_array_equal(s.mean, np.full(len(arrays), float(c)), err_msg=repr(c))


def test_constant_runs_with_nan_skipped():
    """NaN left out (skipna; summaries leave out every non-finite value) of
    otherwise constant columns and rows, wherever they fall."""
    for c in (0.1, 1e20, -7.7e199, 1e306):
        for shape, axis in (((3000, 2), 0), ((100, 16), 0), ((100, 1000), 0), ((40, 10), 1), ((3, 20_000), 1),
                            ((100_000,), None)):
            x = np.full(shape, c)
            flat = x.reshape(-1)
            flat[::7] = np.nan
            if axis == 0:
                x[0] = np.nan  # a column's origin sample, and its first value
            r = fm.moments(x, axis=axis, skipna=True)
            np.testing.assert_array_equal(r.m2, np.zeros(r.shape), err_msg=f"{c} {shape}")
            np.testing.assert_array_equal(r.mean, np.full(r.shape, c), err_msg=f"{c} {shape}")
            x[x != x] = np.inf
            s = fm.summarize(x, axis=axis)
            np.testing.assert_array_equal(s.m2, np.zeros(s.shape), err_msg=f"{c} {shape}")
            np.testing.assert_array_equal(s.mean, np.full(s.shape, c), err_msg=f"{c} {shape}")


def scaled_reference(x, axis):
    """(mean, m2) of float64 ``x`` along ``axis`` by NumPy's two-pass, on the
    values scaled by a power of two so that no sum or square passes the range
    (then scaled back, m2 to inf where it passes), less their first value
    (exact for the small relative spreads, where it matters)."""
    e = int(np.frexp(np.max(np.abs(x)))[1])
    scale = 2.0 ** (-e)
    y = x * scale
    y0 = np.take(y, [0], axis=axis)
    d = y - y0
    mean_d = d.mean(axis=axis, keepdims=True)
    m2 = ((d - mean_d) ** 2).sum(axis=axis)
    with np.errstate(over="ignore"):
        return (y0 + mean_d).squeeze(axis) / scale, (m2 / scale) / scale


@pytest.mark.parametrize("skipna", [False, True])
def test_constant_columns_among_varied_and_large_columns(rng, skipna):
    """Constant columns beside varied ones, and varied columns of large values
    (relative spreads 1e-12 to 1, near the range's end), on the column paths
    and the row paths (transposed)."""
    for scale in (1.0, 1e20, 1e150, 1e300):
        for k, m in ((3000, 6), (100, 16), (70_000, 3), (100, 1000)):
            spread = np.array([1e-12, 1e-6, 1.0, 0.3, 1e-3, 1e-9] * (m // 6 + 1))[:m]
            x = scale * (1.0 + spread * rng.standard_normal((k, m)))
            if scale == 1e300:
                x[:, 2::6] = 1.7e308 * rng.uniform(-1.0, 1.0, (k, len(range(2, m, 6))))  # sums pass the range
            const = np.arange(m) % 5 == 1
            x[:, const] = scale * np.e
            for data, axis in ((x, 0), (np.ascontiguousarray(x.T), 1)):
                r = fm.moments(data, axis=axis, skipna=skipna)
                s = fm.summarize(data, axis=axis)
                ref_mean, ref_m2 = scaled_reference(data, axis)
                for got in (r, s):
                    np.testing.assert_array_equal(got.m2[const], 0.0)
                    np.testing.assert_array_equal(got.mean[const], scale * np.e)
                    err = np.abs(got.mean - ref_mean)
                    assert (err <= 1e-13 * np.max(np.abs(data), axis=axis)).all(), (scale, k, m, axis, err)
                    np.testing.assert_allclose(got.m2[~const], ref_m2[~const], rtol=1e-9, atol=0)
