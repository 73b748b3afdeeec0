"""The GPU wing against the CPU wing (and NumPy float64) on the same data.

Needs CuPy and a CUDA device; skipped otherwise, with the reason. Run on a GPU
machine with ``python bench/gpu_check.py`` (or ``pytest tests/test_gpu.py``).
"""

from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
import pytest

import fastmoments as fm


from gpu_skip import REASON, cupy, pytestmark  # noqa: F401 (the module's marks)

RTOL = 1e-9


def _scale(*arrays):
    vals = [np.abs(a[np.isfinite(a)]) for a in arrays if a.size]
    vals = [v for v in vals if v.size]
    return max((float(v.max()) for v in vals), default=1.0) or 1.0


def _close(gpu, cpu, name, atol):
    g = np.asarray(gpu)
    c = np.asarray(cpu)
    assert g.shape == c.shape, (name, g.shape, c.shape)
    assert g.dtype == c.dtype, (name, g.dtype, c.dtype)
    if g.dtype.kind in "iu":
        np.testing.assert_array_equal(g, c, err_msg=name)
    else:
        # atol may be an array (per element: m2's scale grows with the count),
        # which np.testing.assert_allclose does not take.
        atol = np.broadcast_to(np.asarray(atol, np.float64), c.shape)
        both = np.isfinite(g) & np.isfinite(c)
        with np.errstate(invalid="ignore"):
            bad = both & ~(np.abs(g - c) <= atol + RTOL * np.abs(c))
        assert not bad.any(), f"{name}: GPU {g[bad][:5]} != CPU {c[bad][:5]} (atol {atol[bad][:5]})"
        # the same places are NaN / Inf (of the same sign), whatever the tolerance
        np.testing.assert_array_equal(np.isnan(g), np.isnan(c), err_msg=name + " NaN")
        np.testing.assert_array_equal(np.where(np.isinf(g), g, 0), np.where(np.isinf(c), c, 0), err_msg=name + " Inf")


def assert_same_state(gpu_state, cpu_state, data_scale=1.0):
    assert type(gpu_state) is type(cpu_state)
    for f in gpu_state.fields:
        assert isinstance(f, cupy.ndarray), type(f)
    host = gpu_state.to_numpy()
    for name, g, c in zip(cpu_state._fields, host.fields, cpu_state.fields):
        atol = 1e-12 * data_scale
        if name == "m2":
            n = np.maximum(np.asarray(cpu_state.count), 1).astype(np.float64)
            atol = 1e-12 * data_scale * data_scale * n
        _close(g, c, name, atol)


def _data(shape, dtype, rng, special=False):
    dt = np.dtype(dtype)
    if dt == np.bool_:
        x = rng.random(shape) < 0.3
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = max(info.min, -1000), min(info.max, 1000)
        x = rng.integers(lo, hi, size=shape, endpoint=True).astype(dt)
    else:
        x = (rng.standard_normal(shape) * 3 + 1.5).astype(dt)
        if x.size:
            x.reshape(-1)[rng.integers(0, x.size, max(1, x.size // 10))] = 0
        if special and x.size:
            flat = x.reshape(-1)
            k = max(1, x.size // 50)
            flat[rng.integers(0, x.size, k)] = np.nan
            flat[rng.integers(0, x.size, k)] = np.inf
            flat[rng.integers(0, x.size, k)] = -np.inf
    return np.asarray(x)


SHAPES = [(), (0,), (1,), (5,), (8,), (1000,), (3, 4), (7, 0), (0, 3), (4, 5, 6), (2, 3, 4, 5), (2, 1, 3)]
DTYPES = [np.float64, np.float32, np.float16, np.int8, np.int32, np.int64, np.uint8, np.uint64, np.bool_]


def _all_axes(ndim):
    yield None
    for r in range(ndim + 1):
        yield from itertools.combinations(range(ndim), r)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_moments_every_axis(shape, dtype):
    rng = np.random.default_rng(zlib.crc32(repr((shape, np.dtype(dtype).name)).encode()))
    x = _data(shape, dtype, rng)
    gx = cupy.asarray(x)
    for axis in _all_axes(x.ndim):
        for skipna in (False, True):
            cpu = fm.moments(x, axis=axis, skipna=skipna)
            gpu = fm.moments(gx, axis=axis, skipna=skipna)
            assert_same_state(gpu, cpu, _scale(x.astype(np.float64)))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int16, np.bool_], ids=str)
def test_summarize_every_axis(shape, dtype):
    rng = np.random.default_rng(7)
    x = _data(shape, dtype, rng, special=True)
    gx = cupy.asarray(x)
    for axis in _all_axes(x.ndim):
        assert_same_state(fm.summarize(gx, axis=axis), fm.summarize(x, axis=axis), _scale(x.astype(np.float64)))


@pytest.mark.parametrize("skipna", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_moments_nan_inf(dtype, skipna):
    rng = np.random.default_rng(3)
    for shape in [(100,), (40, 50), (3, 5000), (5000, 3), (9, 8, 7)]:
        x = _data(shape, dtype, rng, special=True)
        gx = cupy.asarray(x)
        for axis in _all_axes(x.ndim):
            cpu = fm.moments(x, axis=axis, skipna=skipna)
            gpu = fm.moments(gx, axis=axis, skipna=skipna)
            assert_same_state(gpu, cpu, _scale(x.astype(np.float64)))


def test_all_nan_and_single_inf():
    for vals in ([np.nan], [np.inf], [-np.inf, 1.0], [np.inf, -np.inf], [np.nan] * 20, [1.0, np.nan]):
        x = np.array(vals)
        for skipna in (False, True):
            assert_same_state(fm.moments(cupy.asarray(x), skipna=skipna), fm.moments(x, skipna=skipna))
        assert_same_state(fm.summarize(cupy.asarray(x)), fm.summarize(x))


LARGE = [(1 << 20,), (3, 70001), (70001, 3), (33, 4099), (4099, 33), (2, 20000, 3), (1, 1 << 18), (1 << 16, 1)]


@pytest.mark.parametrize("shape", LARGE, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_against_cpu_and_numpy(shape, dtype):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(shape) * 2 + 1e4).astype(dtype)
    gx = cupy.asarray(x)
    x64 = x.astype(np.float64)
    for axis in _all_axes(x.ndim):
        gpu = fm.moments(gx, axis=axis)
        assert_same_state(gpu, fm.moments(x, axis=axis), 1e4)
        # independent reference: NumPy's two-pass float64 variance
        ref_var = np.var(x64, axis=axis)
        np.testing.assert_allclose(gpu.var().get(), ref_var, rtol=1e-9)
        np.testing.assert_allclose(gpu.mean.get(), np.mean(x64, axis=axis), rtol=1e-12)


def test_large_offset_accuracy():
    """Mean 1e8, sigma 1: float64 state must keep the variance (no sum of squares)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(1 << 22) + 1e8
    g = fm.moments(cupy.asarray(x))
    ref = np.var(x)
    assert abs(float(g.var().get()) / ref - 1) < 1e-8


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a[::2],
        lambda a: a.T,
        lambda a: a[:, ::-1],
        lambda a: a[::-3, 1:],
        lambda a: np.broadcast_to(a[:1], a.shape) if isinstance(a, np.ndarray) else cupy.broadcast_to(a[:1], a.shape),
        lambda a: a.reshape(6, 10, 50).transpose(1, 0, 2)[:, :, ::2],
        lambda a: np.asfortranarray(a) if isinstance(a, np.ndarray) else cupy.asfortranarray(a),
    ],
)
def test_views_and_strides(make):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((60, 50))
    v, gv = make(x), make(cupy.asarray(x))
    assert v.shape == gv.shape
    for axis in _all_axes(v.ndim):
        assert_same_state(fm.moments(gv, axis=axis), fm.moments(v, axis=axis), 5.0)
        assert_same_state(fm.summarize(gv, axis=axis), fm.summarize(v, axis=axis), 5.0)


def test_keepdims_and_negative_axis():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5, 6))
    gx = cupy.asarray(x)
    assert_same_state(fm.moments(gx, axis=-1, keepdims=True), fm.moments(x, axis=-1, keepdims=True), 5.0)
    assert fm.summarize(gx, axis=(0, 2), keepdims=True).shape == (1, 5, 1)


def test_input_is_not_modified_and_stays_on_device():
    rng = np.random.default_rng(2)
    gx = cupy.asarray(rng.standard_normal((30, 40)).astype(np.float32))
    before = gx.copy()
    s = fm.summarize(gx, axis=0)
    cupy.testing.assert_array_equal(gx, before)
    assert all(isinstance(f, cupy.ndarray) and f.device == gx.device for f in s.fields)


# -- summarize_each -------------------------------------------------------------------


def _ragged(rng):
    sizes = [0, 1, 7, 8, 255, 8191, 8192, 8193, 100_000, 1_000_003, 3]
    arrays = [_data((n,), np.float32, rng, special=(n % 2 == 1)) for n in sizes]
    arrays.append(_data((), np.float64, rng))
    arrays.append(_data((64, 3, 3, 3), np.float16, rng, special=True))
    arrays.append(_data((17, 9), np.int32, rng))
    arrays.append(_data((5, 0), np.float32, rng))
    arrays.append(_data((123,), np.bool_, rng))
    arrays.append(np.full(50, np.nan, np.float32))
    return arrays


def test_summarize_each_ragged_mixed_dtypes():
    rng = np.random.default_rng(4)
    arrays = _ragged(rng)
    garrays = [cupy.asarray(a) for a in arrays]
    gpu = fm.summarize_each(garrays)
    cpu = fm.summarize_each(arrays)
    assert gpu.shape == (len(arrays),)
    assert_same_state(gpu, cpu, 20.0)
    # again: the cached table gives the same result
    assert_same_state(fm.summarize_each(garrays), cpu, 20.0)
    # each row equals summarize of that array alone
    for i, a in enumerate(arrays):
        assert_same_state(gpu[i], fm.summarize(a), 20.0)


def test_summarize_each_views_and_edge_lists():
    rng = np.random.default_rng(6)
    base = rng.standard_normal((300, 200)).astype(np.float32)
    gbase = cupy.asarray(base)
    views = [lambda a: a.T, lambda a: a[::3], lambda a: a[:, 5:7], lambda a: a]
    gpu = fm.summarize_each([v(gbase) for v in views])
    cpu = fm.summarize_each([v(base) for v in views])
    assert_same_state(gpu, cpu, 5.0)
    empty = fm.summarize_each([])
    assert empty.shape == (0,)
    only_empty = fm.summarize_each([cupy.zeros(0), cupy.zeros((3, 0))])
    assert_same_state(only_empty, fm.summarize_each([np.zeros(0), np.zeros((3, 0))]))


def test_summarize_each_many_arrays():
    rng = np.random.default_rng(8)
    arrays = [_data((int(n),), np.float32, rng) for n in rng.integers(0, 5000, 3000)]
    gpu = fm.summarize_each([cupy.asarray(a) for a in arrays])
    assert_same_state(gpu, fm.summarize_each(arrays), 20.0)


# -- merge and reduce ------------------------------------------------------------------


def _states(rng, shape, empty_frac=0.2):
    n = rng.integers(0, 50, shape)
    n[rng.random(shape) < empty_frac] = 0
    mean = rng.standard_normal(shape) * 10
    m2 = rng.random(shape) * n
    return n, mean, m2


def test_merge_moments_broadcasting():
    rng = np.random.default_rng(12)
    for sa, sb in [((), ()), ((5,), ()), ((4, 1), (1, 6)), ((1000,), (1000,)), ((0,), (1,))]:
        a = fm.Moments(*_states(rng, sa))
        b = fm.Moments(*_states(rng, sb))
        ga = fm.Moments(*(cupy.asarray(f) for f in a.fields))
        gb = fm.Moments(*(cupy.asarray(f) for f in b.fields))
        assert_same_state(ga.merge(gb), a.merge(b), 40.0)
        assert_same_state(fm.merge(gb, ga), fm.merge(b, a), 40.0)


def test_merge_equals_moments_of_concatenation():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((7, 1000)) + 50
    y = rng.standard_normal((7, 3)) - 2
    gx, gy = cupy.asarray(x), cupy.asarray(y)
    merged = fm.moments(gx, axis=1).merge(fm.moments(gy, axis=1))
    ref = np.concatenate([x, y], axis=1)
    np.testing.assert_allclose(merged.var().get(), ref.var(axis=1), rtol=1e-10)
    np.testing.assert_allclose(merged.mean.get(), ref.mean(axis=1), rtol=1e-12)


def test_merge_summaries():
    rng = np.random.default_rng(14)
    xs = [_data((40, 30), np.float32, rng, special=True) for _ in range(2)]
    cpu = [fm.summarize(x, axis=0) for x in xs]
    gpu = [fm.summarize(cupy.asarray(x), axis=0) for x in xs]
    assert_same_state(gpu[0].merge(gpu[1]), cpu[0].merge(cpu[1]), 20.0)
    empty = fm.summarize(cupy.zeros((0, 30), np.float32), axis=0)
    assert_same_state(empty.merge(gpu[0]), cpu[0], 20.0)


@pytest.mark.parametrize("shape", [(0,), (1,), (5,), (3000,), (100_000,), (4, 5, 6), (7, 0, 2), (2, 3000)], ids=str)
def test_reduce_states(shape):
    rng = np.random.default_rng(15)
    cpu = fm.Moments(*_states(rng, shape))
    gpu = fm.Moments(*(cupy.asarray(f) for f in cpu.fields))
    for axis in _all_axes(len(shape)):
        assert_same_state(gpu.reduce(axis), cpu.reduce(axis), 40.0)


def test_reduce_summaries():
    rng = np.random.default_rng(16)
    x = _data((6, 50, 40), np.float32, rng, special=True)
    cpu = fm.summarize(x, axis=2)
    gpu = fm.summarize(cupy.asarray(x), axis=2)
    for axis in _all_axes(2):
        assert_same_state(gpu.reduce(axis), cpu.reduce(axis), 20.0)


# -- the rest of the public API on CuPy -------------------------------------------------


def test_running_moments_and_combine_mean_std():
    rng = np.random.default_rng(17)
    batches = [rng.standard_normal((int(n), 4)) for n in (1, 10, 1000)]
    run = fm.RunningMoments()
    for b in batches:
        run.update(cupy.asarray(b))
    ref = np.concatenate(batches)
    np.testing.assert_allclose(run.var().get(), ref.var(axis=0), rtol=1e-10)
    m, s, n = fm.combine_mean_std(
        cupy.asarray([1.0, 2.0]), cupy.asarray([0.5, 1.0]), cupy.asarray([3, 0]),
        cupy.asarray([2.0, 5.0]), cupy.asarray([1.5, 2.0]), cupy.asarray([4, 6]),
    )
    mc, sc, nc = fm.combine_mean_std(
        np.array([1.0, 2.0]), np.array([0.5, 1.0]), np.array([3, 0]),
        np.array([2.0, 5.0]), np.array([1.5, 2.0]), np.array([4, 6]),
    )
    np.testing.assert_allclose(m.get(), mc, rtol=1e-12)
    np.testing.assert_allclose(s.get(), sc, rtol=1e-12)
    np.testing.assert_array_equal(n.get(), nc)


def test_mixing_numpy_and_cupy_is_a_type_error():
    with pytest.raises(TypeError, match="mix"):
        fm.summarize_each([np.zeros(3), cupy.zeros(3)])
    a = fm.moments(np.zeros(3))
    b = fm.moments(cupy.zeros(3))
    with pytest.raises(TypeError, match="mix"):
        a.merge(b)


def test_bad_dtype_is_a_type_error():
    with pytest.raises(TypeError, match="complex"):
        fm.moments(cupy.zeros(3, np.complex64))


def test_bool_bytes_count_as_zero_and_one():
    """NumPy bools holding bytes other than 0x01 (frombuffer, uint8 views) are
    True: 1, never their byte value."""
    raw = np.resize(np.array([2, 0, 255, 1, 0, 7, 0, 0, 128, 3], np.uint8), 40 * 130)
    b = raw.view(np.bool_).reshape(40, 130)
    ref = (raw != 0).astype(np.float64).reshape(40, 130)
    g = cupy.asarray(b)
    assert int((g.view(np.uint8) > 1).sum()) > 0  # the odd bytes reached the device
    for axis in (None, 0, 1):
        m = fm.moments(g, axis=axis)
        np.testing.assert_allclose(m.mean.get(), ref.mean(axis=axis), rtol=1e-13)
        np.testing.assert_allclose(m.var().get(), ref.var(axis=axis), rtol=1e-12)
        s = fm.summarize(g, axis=axis).to_numpy()
        np.testing.assert_array_equal(s.max, ref.max(axis=axis))
        np.testing.assert_array_equal(s.n_zero, (ref == 0).sum(axis=axis))
    each = fm.summarize_each([g, g[:, :7]]).to_numpy()
    np.testing.assert_allclose(each.mean, [ref.mean(), ref[:, :7].mean()], rtol=1e-13)
    np.testing.assert_array_equal(each.max, [1.0, 1.0])


@pytest.mark.parametrize(
    "x",
    [
        np.full(4, 1e308),
        np.array([1.7e308] * 20 + [-1.7e308] * 10),
        np.full(3000, 1e306),
        np.tile([1.5e308, 1.0e308], 5000),
        np.concatenate([np.full(5000, 1e308), np.full(100, -1e308)]),
        np.array([0.0, 1.58e154]),  # m2 = d**2 / 2 fits, d**2 does not
    ],
    ids=["4x1e308", "opposite-signs", "3000x1e306", "alternating", "mixed", "d-squared"],
)
def test_values_whose_sums_overflow(x):
    """Values within float64's range whose sums are not: the true mean, and
    m2 inf only where it passes the range; as on the CPU."""
    n = x.size
    ref_mean = math.fsum(x * 2.0**-64) / n * 2.0**64
    d = x * 2.0**-600 - ref_mean * 2.0**-600  # exact scaling: no overflow, no underflow here
    with np.errstate(over="ignore"):
        ref_m2 = math.fsum(d * d) * 2.0**600 * 2.0**600  # inf where it passes the range
    pair = np.stack([x, x])
    for layout, axis in ((x, None), (pair, 1), (pair.T.copy(), 0)):
        for f in (fm.moments, fm.summarize):
            g = f(cupy.asarray(layout), axis=axis).to_numpy()
            np.testing.assert_allclose(g.mean, ref_mean, rtol=1e-14)
            if math.isinf(ref_m2):
                assert np.all(np.isinf(g.m2)), g.m2
            else:
                np.testing.assert_allclose(g.m2, ref_m2, rtol=1e-12, atol=0)


def test_counts_past_int64_are_refused():
    big = 2**62 + 5

    def state(counts):
        c = cupy.asarray(np.array(counts, np.int64))
        return fm.Moments(c, cupy.ones(c.shape), cupy.zeros(c.shape))

    with pytest.raises(ValueError, match=r"2\*\*63"):
        state([big, 1]).merge(state([big, 1]))
    with pytest.raises(ValueError, match=r"2\*\*63"):
        state([[big, big], [1, 1]]).reduce(1)
    with pytest.raises(ValueError, match=r"2\*\*63"):
        state([big, big]).reduce()
    s = fm.summarize(cupy.zeros(3))
    fields = {k: getattr(s, k) for k in s._fields}
    fields["n_zero"] = cupy.asarray(np.int64(big))
    huge = fm.Summary.from_fields(**fields)
    with pytest.raises(ValueError, match=r"2\*\*63"):
        huge.merge(huge)
    # just inside the range: exact, as on the CPU
    top = 2**62 - 1
    m = state([top]).merge(state([top]))
    assert int(m.count.get()[0]) == 2**63 - 2 == int(fm.Moments(np.array([top]), 1.0, 0.0).merge(
        fm.Moments(np.array([top]), 1.0, 0.0)).count[0])
    assert int(state([top, top]).reduce().count.get()) == 2**63 - 2
