"""moments() against NumPy float64 on many shapes, axes, dtypes and layouts."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastmoments as fm


def check(x, axis=None, skipna=False, rel=1e-10):
    xf = np.asarray(x, dtype=np.float64)
    m = fm.moments(x, axis=axis, skipna=skipna)
    if skipna:
        count = np.sum(~np.isnan(xf), axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nanmean(xf, axis=axis) if xf.size else np.full(count.shape, np.nan)
            var = np.nanvar(xf, axis=axis) if xf.size else np.full(count.shape, np.nan)
    else:
        count = np.sum(np.ones_like(xf, dtype=np.int64), axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.mean(xf, axis=axis)
            var = np.var(xf, axis=axis)
    assert m.count.dtype == np.int64 and m.mean.dtype == np.float64
    assert m.shape == np.shape(count)
    np.testing.assert_array_equal(m.count, count)
    scale = np.nanmax(np.abs(xf)) if xf.size and np.isfinite(xf).any() else 1.0
    np.testing.assert_allclose(m.mean, mean, rtol=rel, atol=rel * scale)
    var_ok = m.var()
    np.testing.assert_allclose(var_ok, var, rtol=rel, atol=rel * scale * scale)
    return m


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64, np.int32,
                                   np.uint8, np.int16, np.bool_])
def test_dtypes(rng, dtype):
    x = (rng.standard_normal(30_001) * 50).astype(dtype)
    m = check(x)
    np.testing.assert_array_equal(check(x[:30_000].reshape(-1, 6)[:, :4], axis=0).count, 5_000)
    check(x[:30_000].reshape(-1, 6)[:, :4], axis=1)


@pytest.mark.parametrize("shape,axis", [
    ((100_000,), None), ((100_000,), 0), ((37, 41, 5), None), ((37, 41, 5), 0),
    ((37, 41, 5), 1), ((37, 41, 5), 2), ((37, 41, 5), (0, 2)), ((37, 41, 5), (-1, -2)),
    ((3, 20_000), 1), ((20_000, 3), 0), ((20_000, 3), 1), ((600, 1000), 0), ((1000, 600), 1),
    ((5, 1, 300_000), 2), ((2, 3), ()), ((0, 4), 0), ((4, 0), 0), ((4, 0), 1), ((0,), None),
    ((1, 9000, 3), (0, 1)),
])
def test_shapes_axes(rng, shape, axis):
    x = rng.standard_normal(shape) * 3 + 1
    check(x, axis)


def test_layouts(rng):
    base = rng.standard_normal((300, 200)) + 2
    for x in (np.asfortranarray(base), base[::2, ::3], base.T, base[:, 50:150], base[::-1]):
        for axis in (None, 0, 1, (0, 1)):
            check(x, axis)
    x3 = rng.standard_normal((20, 30, 40)).transpose(2, 0, 1)[:, ::2]
    for axis in (0, 1, 2, (0, 2), (1, 2), None):
        check(x3, axis)


def test_non_native_byte_order(rng):
    x = rng.standard_normal(10_000)
    big = x.astype(">f8")
    check(big)
    np.testing.assert_array_equal(big, x)  # the caller's data is untouched


def test_python_inputs():
    check([1, 2, 3, 4.5])
    check(3.5)
    check([[1, 2], [3, 4]], axis=1)
    m = fm.moments(7.0)
    assert m.count == 1 and m.mean == 7.0 and m.m2 == 0.0 and np.isnan(m.var(ddof=1))


def test_keepdims(rng):
    x = rng.standard_normal((4, 5, 6))
    m = fm.moments(x, axis=(0, 2), keepdims=True)
    assert m.shape == (1, 5, 1)
    np.testing.assert_allclose(m.var(), x.var(axis=(0, 2), keepdims=True), rtol=1e-12)


def test_nan_propagates_and_skipna(rng):
    x = rng.standard_normal((50_000, 3))
    x[12_345, 1] = np.nan
    m = check(x, axis=0)
    assert np.isnan(m.mean[1]) and np.isnan(m.var()[1]) and np.isfinite(m.var()[0])
    check(x, axis=0, skipna=True)
    check(x.ravel(), skipna=True)
    check(x.T.copy(), axis=1, skipna=True)
    allnan = np.full(10, np.nan)
    m = fm.moments(allnan, skipna=True)
    assert m.count == 0 and np.isnan(m.mean)


def test_infinities_follow_numpy():
    with np.errstate(invalid="ignore"):
        for x in ([1.0, np.inf, 3.0], [np.inf, -np.inf], [-np.inf, 2.0]):
            m = fm.moments(x)
            np.testing.assert_equal(m.mean, np.mean(x))
            np.testing.assert_equal(m.var(), np.var(x))
        big = np.zeros(100_000)
        big[70_000] = np.inf
        assert fm.moments(big).mean == np.inf


def test_empty():
    m = fm.moments(np.array([]))
    assert m.count == 0 and np.isnan(m.mean) and np.isnan(m.var())
    other = fm.moments([1.0, 2.0])
    for merged in (m.merge(other), other.merge(m)):
        assert merged.count == 2 and merged.mean == 1.5 and merged.m2 == 0.5


@pytest.mark.parametrize("n", [0, 1, 10, 64, 65, 100_000])
def test_full_reduction_fields_are_0d_arrays(n):
    # Each size takes another path (empty, short row, one block, many blocks);
    # all must give read-only 0-d arrays, as Moments.empty() and merge do, never
    # NumPy scalars for some sizes and arrays for others.
    x = np.arange(n, dtype=np.float64)
    states = [fm.moments(x), fm.moments(x, skipna=True), fm.summarize(x),
              fm.moments(x.reshape(1, n), axis=None), fm.summarize_each([x])[0]]
    states.append(states[0].merge(fm.Moments.empty()))
    for st in states:
        for f in st.fields:
            assert type(f) is np.ndarray and f.shape == () and not f.flags.writeable
        assert int(st.count) == n
    if n:
        np.testing.assert_allclose(states[0].var(), np.var(x), rtol=1e-14)
    row = fm.moments(np.ones((3, 4)), axis=0)[1]
    assert all(type(f) is np.ndarray and f.shape == () and not f.flags.writeable for f in row.fields)


def test_input_not_modified(rng):
    x = rng.standard_normal(20_000).astype(np.float32)
    before = x.copy()
    fm.moments(x, skipna=True)
    fm.summarize(x)
    np.testing.assert_array_equal(x, before)
    assert x.flags.writeable


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=30),
                  elements=st.floats(-1e6, 1e6)),
       st.data())
def test_hypothesis_vs_numpy(x, data):
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    check(x, axis, rel=1e-9)


@pytest.mark.parametrize("m", [1, 2, 3, 5, 6, 7, 12, 15, 31])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16, np.bool_])
def test_narrow_columns(rng, m, dtype):
    # Reducing over axis 0, rows narrower than 128 bytes are viewed as g
    # interleaved copies (g up to 128 for bools), merged pairwise, then the
    # leftover rows. Row counts: fewer than 2g (no widening), a multiple of
    # g, and a multiple plus a remainder; against NumPy in float64.
    for k in (5, 256 * 3, 256 * 3 + 77, 20_011):
        x = (rng.standard_normal((k, m)) * 7 + 3).astype(dtype)
        check(x, axis=0)
        s = fm.summarize(x, axis=0)
        xf = x.astype(np.float64)
        np.testing.assert_array_equal(s.min, xf.min(axis=0))
        np.testing.assert_array_equal(s.max, xf.max(axis=0))
        np.testing.assert_array_equal(s.n_zero, (xf == 0).sum(axis=0))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 31, 32, 64, 65])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16])
def test_short_rows(rng, k, dtype):
    # Rows of up to 64 values take their own unrolled kernel (one per k <= 8,
    # four rows per step in vector code for 16, 32 and 64); 40,000 rows cross
    # its parallel task boundaries, and 39,999 leave rows after the last step
    # of four; an offset of 1e6 tests the corrected two-pass per row against
    # exact rational arithmetic.
    from conftest import exact_mean_var

    x = (rng.standard_normal((40_000, k)) * 7 + (1e6 if dtype != np.int16 else 0)).astype(dtype)
    m = check(x, axis=-1)
    check(x.reshape(200, 200, k), axis=2)
    tail = check(x[:39_999], axis=-1)
    for i in (39_996, 39_998):
        mean, var = exact_mean_var(x[i])
        assert abs(tail.var()[i] - float(var)) <= 1e-11 * float(var) + 1e-300
    for i in (0, 39_999):
        mean, var = exact_mean_var(x[i])
        scale = float(np.abs(x[i].astype(np.float64)).max())
        assert abs(m.mean[i] - float(mean)) <= 4.5e-16 * scale  # one ulp of the data
        assert abs(m.var()[i] - float(var)) <= 1e-11 * float(var) + 1e-300
    assert not m.count.flags.writeable and not m.mean.flags.writeable
    if dtype != np.int16 and k > 1:
        y = x.astype(np.float64)
        y[1, 0], y[2, -1], y[3, :2] = np.nan, np.inf, (np.inf, -np.inf)
        with np.errstate(invalid="ignore"):
            ms = fm.moments(y, axis=1)
            np.testing.assert_equal(ms.mean[1:4], y[1:4].mean(axis=1))
            np.testing.assert_equal(ms.var()[1:4], y[1:4].var(axis=1))


@pytest.mark.parametrize("k", [100, 1000, 8192])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_of_one_block(rng, k, dtype):
    # Rows of 65..8192 values are one block each, reduced four at a time (rows a
    # quarter of a task apart, read in one loop) but for the rows after the last
    # whole task. Some rows start far from their mean, which sends their
    # one-pass sums to the two-pass fallback inside those quartets.
    from conftest import exact_mean_var

    m_rows = 4 * ((1 << 16) // (k * np.dtype(dtype).itemsize) + 1) * 3 + 5  # 3 tasks and 5 more rows
    x = rng.standard_normal((m_rows, k)) * 7 + 1e6
    x[::3, :8] += 1e5
    x[1::4, 5] = 0.0
    x = x.astype(dtype)
    m = check(x, axis=1)
    s = fm.summarize(x, axis=1)
    y = x.astype(np.float64)
    np.testing.assert_array_equal(s.n_zero, (y == 0).sum(axis=1))
    np.testing.assert_array_equal(s.min, y.min(axis=1))
    np.testing.assert_array_equal(s.max, y.max(axis=1))
    for i in (0, 1, 3, m_rows // 2, m_rows - 1):
        mean, var = exact_mean_var(x[i])
        for got in (m[i], s[i]):
            assert abs(got.mean - float(mean)) <= 1e-15 * float(np.abs(y[i]).max())
            assert abs(got.var() - float(var)) <= 1e-13 * float(var)
