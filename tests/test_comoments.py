"""comoments / CoMoments / RunningCoMoments (issue 19) on the CPU.

References: exact rational arithmetic (fractions) on small data far from zero,
np.cov / np.corrcoef in float64, replicated rows for frequency weights,
np.cov(fweights=, aweights=), and the state of all data against merged splits.
"""

from __future__ import annotations

import copy
import pickle
import sys
from fractions import Fraction

import numpy as np
import pytest

import fastmoments as fm

C = sys.modules["fastmoments.covariance"]


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 3 rows: small data then spans many blocks, leaves and threads."""
    monkeypatch.setattr(C, "BLOCK_BYTES_CPU", 1)
    monkeypatch.setattr(C, "BLOCK_ROWS_MIN", 3)
    monkeypatch.setattr(C, "ROWS_PER_VAR", 0)
    assert C._block_rows(4, False) == 3


def exact_comoments(x, w=None):
    """(count, W, mean, c2) in Fractions, x (n, d) float64, w float weights or None."""
    n, d = x.shape
    fw = [Fraction(1)] * n if w is None else [Fraction(float(v)) for v in w]
    keep = [i for i in range(n) if fw[i] > 0]
    fx = {i: [Fraction(float(v)) for v in x[i]] for i in keep}
    W = sum(fw[i] for i in keep)
    mean = [sum(fw[i] * fx[i][j] for i in keep) / W for j in range(d)]
    dev = {i: [fx[i][j] - mean[j] for j in range(d)] for i in keep}
    c2 = [[sum(fw[i] * dev[i][j] * dev[i][k] for i in keep) for k in range(d)] for j in range(d)]
    return len(keep), W, mean, c2


def assert_exact(state, x, w=None, rtol=1e-12):
    count, W, mean, c2 = exact_comoments(x, w)
    assert int(state.count) == count
    assert float(state.sum_weights) == pytest.approx(float(W), rel=1e-15)
    d = x.shape[1]
    for j in range(d):
        # the mean to a few ulps of its magnitude
        assert abs(Fraction(float(state.mean[j])) - mean[j]) <= 4 * np.spacing(abs(float(mean[j]))) + 1e-300
        for k in range(d):
            scale = float(c2[j][j] * c2[k][k]) ** 0.5
            err = abs(Fraction(float(state.c2[j, k])) - c2[j][k])
            assert float(err) <= rtol * scale, (j, k, float(err) / scale)


# -- exactness far from zero -----------------------------------------------------------


@pytest.mark.parametrize("offset", [0.0, 1e6, 1e9])
@pytest.mark.parametrize("blocks", ["one block", "small blocks"])
def test_exact_rational_offsets(offset, blocks, request):
    if blocks == "small blocks":
        request.getfixturevalue("small_blocks")
    rng = np.random.default_rng(int(offset) % 1000 + 7)
    x = rng.standard_normal((60, 4)) @ np.array([[1, 0.5, 0, 0], [0, 1, 0.3, 0], [0, 0, 2, 0], [0, 0, 0, 0.1]])
    x = x + offset + np.arange(4) * 10.0
    s = fm.comoments(x)
    assert_exact(s, x, rtol=1e-13)
    # Merged from unequal pieces: states store plain float64 means, whose
    # rounding at the offset's scale (u * offset) enters the merge term
    # through mean_b - mean_a, as for Moments (README: 2*u*kappa/sqrt(n)):
    # 1e-9 up to offsets of 1e6 here, about 1e-8 at 1e9 with pieces of 1 row.
    parts = [x[:7], x[7:8], x[8:41], x[41:]]
    merged = fm.comoments(parts[0])
    for p in parts[1:]:
        merged = merged.merge(fm.comoments(p))
    assert_exact(merged, x, rtol=1e-9 if offset <= 1e6 else 1e-7)
    # a stream keeps its origin: as exact as one call
    r = fm.RunningCoMoments()
    for p in parts:
        r.update(p)
    assert_exact(r.state, x, rtol=1e-13)


@pytest.mark.parametrize("offset", [1e6, 1e9])
def test_exact_rational_weighted(offset, small_blocks):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 3)) + offset
    w = rng.random(40) * 3
    w[[2, 17]] = 0.0
    x[2] = np.nan  # weight 0: left out, NaN and all
    s = fm.comoments(x, weights=w)
    assert_exact(s, x, w, rtol=1e-12)
    assert float(s.sum_weights2) == pytest.approx(float(np.sum(w**2)), rel=1e-14)


def test_drifting_rows_stay_accurate(small_blocks):
    # sorted data: each block's rows lie far from the mean of the whole
    x = np.stack([np.arange(3000.0), np.arange(3000.0) ** 1.5, np.sin(np.arange(3000.0))], axis=1) + 1e7
    s = fm.comoments(x)
    count, W, mean, c2 = exact_comoments(x[::1])
    for j in range(3):
        for k in range(3):
            scale = float(c2[j][j] * c2[k][k]) ** 0.5
            assert abs(float(s.c2[j, k]) - float(c2[j][k])) <= 1e-12 * scale


# -- against NumPy ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 3), (2, 2), (517, 5), (3000, 33)])
def test_cov_corr_against_numpy(shape, rng):
    x = rng.standard_normal(shape) * rng.uniform(0.1, 10, shape[1]) + rng.uniform(-5, 5, shape[1])
    s = fm.comoments(x)
    assert s.count.dtype == np.int64 and s.count.shape == () and int(s.count) == shape[0]
    assert s.mean.shape == (shape[1],) and s.c2.shape == (shape[1],) * 2
    np.testing.assert_array_equal(s.c2, s.c2.T)  # symmetric, bit for bit
    np.testing.assert_allclose(s.mean, x.mean(axis=0), rtol=1e-12, atol=1e-12)
    with np.errstate(divide="ignore", invalid="ignore"), pytest.warns() if shape[0] == 1 else _nowarn():
        want = np.atleast_2d(np.cov(x, rowvar=False))
    if shape[0] > 1:
        np.testing.assert_allclose(s.cov(), want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
        np.testing.assert_allclose(s.cov(ddof=0), np.atleast_2d(np.cov(x, rowvar=False, ddof=0)), rtol=1e-12,
                                   atol=1e-12 * np.abs(want).max())
        np.testing.assert_allclose(s.corr(), np.corrcoef(x, rowvar=False), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(s.var(), x.var(axis=0), rtol=1e-12)
        np.testing.assert_allclose(s.std(ddof=1), x.std(axis=0, ddof=1), rtol=1e-12)
    else:
        assert np.isnan(s.cov()).all()  # n - ddof = 0: undefined, silently
        np.testing.assert_array_equal(s.c2, 0.0)


class _nowarn:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_axis_1_and_negative(rng):
    x = rng.standard_normal((6, 400))
    a = fm.comoments(x, axis=1)
    b = fm.comoments(x, axis=-1)
    np.testing.assert_allclose(a.cov(), np.cov(x), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(a.c2, b.c2)
    np.testing.assert_allclose(fm.comoments(x.T, axis=-2).c2, a.c2, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "uint8", "int8", "bool"])
def test_dtypes_accumulate_in_float64(dtype, rng):
    if dtype == "bool":
        x = rng.random((500, 4)) < 0.3
    elif dtype.startswith(("int", "uint")):
        x = rng.integers(0, 100, (500, 4)).astype(dtype)
    else:
        x = (rng.standard_normal((500, 4)) * 3 + 1000).astype(dtype)
    s = fm.comoments(x)
    x64 = x.astype(np.float64)
    assert s.mean.dtype == np.float64 and s.c2.dtype == np.float64
    np.testing.assert_allclose(s.cov(), np.cov(x64, rowvar=False), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(s.mean, x64.mean(axis=0), rtol=1e-13)


def test_lists_and_non_contiguous(rng):
    x = rng.standard_normal((50, 6))
    np.testing.assert_allclose(fm.comoments(x.tolist()).c2, fm.comoments(x).c2, rtol=1e-13, atol=1e-13)
    v = x[::2, ::3]
    np.testing.assert_allclose(fm.comoments(v).cov(), np.cov(v, rowvar=False), rtol=1e-12, atol=1e-13)
    f = np.asfortranarray(x)
    np.testing.assert_allclose(fm.comoments(f).c2, fm.comoments(x).c2, rtol=1e-13, atol=1e-13)
    big_endian = x.astype(">f8")
    np.testing.assert_allclose(fm.comoments(big_endian).c2, fm.comoments(x).c2, rtol=1e-13, atol=1e-13)


# -- weights ---------------------------------------------------------------------------------


def test_weights_equal_repeated_rows(rng, small_blocks):
    x = rng.standard_normal((80, 4)) + 100
    w = rng.integers(0, 5, 80)
    s = fm.comoments(x, weights=w)
    r = fm.comoments(np.repeat(x, w, axis=0))
    assert int(s.count) == int(np.count_nonzero(w))
    assert float(s.sum_weights) == float(w.sum()) == int(r.count)
    np.testing.assert_allclose(s.mean, r.mean, rtol=1e-13)
    np.testing.assert_allclose(s.c2, r.c2, rtol=1e-10, atol=1e-10 * np.abs(r.c2).max())
    np.testing.assert_allclose(s.cov(), np.cov(x, rowvar=False, fweights=w), rtol=1e-10)
    np.testing.assert_allclose(s.cov(ddof=0), np.cov(x, rowvar=False, fweights=w, ddof=0), rtol=1e-10)


def test_reliability_weights_as_np_cov_aweights(rng):
    x = rng.standard_normal((300, 5)) * [1, 2, 3, 4, 5]
    w = rng.random(300).astype(np.float32)
    s = fm.comoments(x, weights=w)
    np.testing.assert_allclose(s.cov(weights="reliability"), np.cov(x, rowvar=False, aweights=w), rtol=1e-11)
    np.testing.assert_allclose(s.cov(ddof=0, weights="reliability"),
                               np.cov(x, rowvar=False, aweights=w, ddof=0), rtol=1e-11)
    np.testing.assert_allclose(s.var(weights="reliability"), np.diag(np.cov(x, rowvar=False, aweights=w, ddof=0)),
                               rtol=1e-11)
    ones = fm.comoments(x, weights=np.ones(300))
    np.testing.assert_allclose(ones.cov(), np.cov(x, rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(ones.cov(weights="reliability"), np.cov(x, rowvar=False), rtol=1e-12)


def test_bool_weights_select_rows(rng):
    x = rng.standard_normal((60, 3))
    keep = rng.random(60) < 0.5
    s = fm.comoments(x, weights=keep)
    np.testing.assert_allclose(s.cov(), np.cov(x[keep], rowvar=False), rtol=1e-12)
    assert int(s.count) == keep.sum()


def test_all_weights_zero_is_empty(rng):
    s = fm.comoments(rng.standard_normal((10, 3)), weights=np.zeros(10))
    assert int(s.count) == 0 and float(s.sum_weights) == 0
    assert np.isnan(s.mean).all() and (s.c2 == 0).all() and np.isnan(s.cov()).all()


# -- merging ---------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_random_splits_merge_to_the_whole(weighted, rng):
    x = rng.standard_normal((1000, 6)) * 3 + 50
    w = rng.random(1000) if weighted else None
    whole = fm.comoments(x, weights=w)
    for trial in range(3):
        cuts = np.sort(rng.choice(np.arange(1, 1000), size=rng.integers(1, 8), replace=False))
        pieces = np.split(np.arange(1000), cuts)
        states = [fm.comoments(x[p], weights=None if w is None else w[p]) for p in pieces]
        merged = states[0]
        for s in states[1:]:
            merged = fm.merge(merged, s)
        assert int(merged.count) == 1000
        np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-13)
        np.testing.assert_allclose(merged.c2, whole.c2, rtol=1e-11, atol=1e-11 * np.abs(whole.c2).max())
        np.testing.assert_allclose(merged.sum_weights2, whole.sum_weights2, rtol=1e-12)
        r = fm.RunningCoMoments()
        for p in pieces:
            r.update(x[p], weights=None if w is None else w[p])
        np.testing.assert_allclose(r.cov(), whole.cov(), rtol=1e-11)
        np.testing.assert_allclose(r.mean, whole.mean, rtol=1e-13)


def test_merge_with_empty_is_identity(rng):
    s = fm.comoments(rng.standard_normal((20, 3)))
    e = fm.CoMoments.empty(3)
    for m in (s.merge(e), e.merge(s), fm.merge(s, fm.comoments(np.empty((0, 3))))):
        for a, b in zip(m.fields, s.fields):
            np.testing.assert_array_equal(a, b)


def test_running_comoments(rng):
    x = rng.standard_normal((500, 4)) + 1e8
    r = fm.RunningCoMoments(4)
    assert int(r.count) == 0 and np.isnan(r.mean).all()
    assert r.update(x[:100]) is r
    r.update(x[100:400].T, axis=1)
    other = fm.RunningCoMoments().update(x[400:450])
    r.merge(other).merge(fm.comoments(x[450:])).merge(fm.RunningCoMoments())
    # merged plain states at 1e8: the README's 2*u*kappa/sqrt(n) term, relative to the variances
    np.testing.assert_allclose(r.cov(), np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(r.corr(), np.corrcoef(x, rowvar=False), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(r.var(), x.var(axis=0), rtol=1e-9)
    assert isinstance(r.state, fm.CoMoments) and "RunningCoMoments" in repr(r)
    # merging into an empty accumulator starts from the state
    r2 = fm.RunningCoMoments().merge(fm.comoments(x))
    np.testing.assert_allclose(r2.cov(), np.cov(x, rowvar=False), rtol=1e-11, atol=1e-12)
    # batches of one stream, far from zero, keep one call's accuracy (the origin)
    r3 = fm.RunningCoMoments()
    for b in np.array_split(x, 9):
        r3.update(b)
    np.testing.assert_allclose(r3.cov(), np.cov(x, rowvar=False), rtol=1e-11, atol=1e-12)
    skip = fm.RunningCoMoments(skipna=True)
    y = x.copy()
    y[5, 1] = np.nan
    skip.update(y)
    assert int(skip.count) == 499


# -- non-finite values -------------------------------------------------------------------------


def test_nan_propagates_to_its_variable(rng):
    x = rng.standard_normal((200, 4))
    x[17, 2] = np.nan
    s = fm.comoments(x)
    want = np.cov(x, rowvar=False)
    assert np.isnan(s.mean[2]) and np.isnan(s.c2[2]).all() and np.isnan(s.c2[:, 2]).all()
    np.testing.assert_array_equal(np.isnan(s.cov()), np.isnan(want))
    ok = [0, 1, 3]
    np.testing.assert_allclose(s.cov()[np.ix_(ok, ok)], want[np.ix_(ok, ok)], rtol=1e-12)


def test_inf_makes_its_variable_nan_as_np_cov(rng, small_blocks):
    x = rng.standard_normal((50, 3))
    x[0, 0] = np.inf  # in the rows the shift is estimated from
    x[30, 1] = -np.inf
    s = fm.comoments(x)
    assert s.mean[0] == np.inf and s.mean[1] == -np.inf
    with np.errstate(invalid="ignore"):
        want = np.cov(x, rowvar=False)
    np.testing.assert_array_equal(np.isnan(s.cov()), np.isnan(want))
    assert s.cov()[2, 2] == pytest.approx(want[2, 2], rel=1e-12)


def test_skipna_takes_complete_cases(rng, small_blocks):
    x = rng.standard_normal((100, 4)) + 1e6
    x[rng.integers(0, 100, 15), rng.integers(0, 4, 15)] = np.nan
    x[:4, 1] = np.nan  # in the first block, whose mean is the shift
    complete = ~np.isnan(x).any(axis=1)
    s = fm.comoments(x, skipna=True)
    assert int(s.count) == complete.sum()
    np.testing.assert_allclose(s.cov(), np.cov(x[complete], rowvar=False), rtol=1e-9)
    w = rng.random(100)
    sw = fm.comoments(x, skipna=True, weights=w)
    np.testing.assert_allclose(sw.cov(), np.cov(x[complete], rowvar=False, aweights=w[complete], ddof=0)
                               * w[complete].sum() / (w[complete].sum() - 1), rtol=1e-8)
    all_nan = fm.comoments(np.full((5, 2), np.nan), skipna=True)
    assert int(all_nan.count) == 0 and np.isnan(all_nan.mean).all()


# -- the state's conventions ---------------------------------------------------------------------


def test_state_conventions(rng):
    x = rng.standard_normal((30, 3))
    before = x.copy()
    w = rng.random(30)
    wb = w.copy()
    s = fm.comoments(x, weights=w)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(w, wb)
    assert s.count.shape == () and s.sum_weights.shape == () and s.sum_weights2.shape == ()
    assert s.sum_weights.dtype == np.float64
    with pytest.raises(AttributeError, match="immutable"):
        s.mean = None
    with pytest.raises(ValueError):
        s.c2[0, 0] = 1.0  # read-only fields
    p = pickle.loads(pickle.dumps(s))
    assert type(p) is fm.CoMoments
    for a, b in zip(p.fields, s.fields):
        np.testing.assert_array_equal(a, b)
    assert copy.deepcopy(s) is s
    n = s.to_numpy()
    assert n.c2 is not s.c2 and np.array_equal(n.c2, s.c2)
    assert s.nvars == 3 and "nvars=3" in repr(s)
    u = fm.comoments(x)
    np.testing.assert_array_equal(u.sum_weights, 30.0)
    np.testing.assert_array_equal(u.sum_weights2, 30.0)


def test_moments_view(rng):
    x = rng.standard_normal((40, 3)) + 5
    m = fm.comoments(x).moments()
    assert type(m) is fm.Moments and m.shape == (3,)
    np.testing.assert_array_equal(m.count, [40, 40, 40])
    np.testing.assert_allclose(m.var(ddof=1), x.var(axis=0, ddof=1), rtol=1e-12)
    ref = fm.moments(x, axis=0)
    np.testing.assert_allclose(m.m2, ref.m2, rtol=1e-12)
    w = rng.random(40)
    mw = fm.comoments(x, weights=w).moments()
    np.testing.assert_allclose(mw.var(ddof=1, weights="reliability"),
                               fm.moments(x, axis=0, weights=w).var(ddof=1, weights="reliability"), rtol=1e-12)


def test_constructor_and_from_fields(rng):
    s = fm.comoments(rng.standard_normal((10, 2)))
    t = fm.CoMoments(s.count, s.mean, s.c2)
    np.testing.assert_array_equal(t.c2, s.c2)
    t2 = fm.CoMoments(10, [0.0, 1.0], [[2.0, 1.0], [1.0, 3.0]], sum_weights=4.0, sum_weights2=2.0)
    assert float(t2.sum_weights) == 4.0 and t2.count.dtype == np.int64
    e = fm.CoMoments(0, [5.0, 5.0], [[1.0, 0], [0, 1.0]])
    assert np.isnan(e.mean).all() and (e.c2 == 0).all()
    with pytest.raises(ValueError, match="symmetric"):
        fm.CoMoments(3, [0.0, 0.0], [[1.0, 2.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"mean \(3,\), c2 \(2, 2\)"):
        fm.CoMoments(3, [0.0, 0.0, 0.0], np.eye(2))
    with pytest.raises(ValueError, match="non-negative"):
        fm.CoMoments(-1, [0.0], [[1.0]])
    with pytest.raises(ValueError, match="0-d"):
        fm.CoMoments([1, 2], [0.0], [[1.0]])
    with pytest.raises(ValueError, match="both"):
        fm.CoMoments(1, [0.0], [[1.0]], sum_weights=1.0)
    with pytest.raises(ValueError, match="sum_weights must be non-negative"):
        fm.CoMoments(1, [0.0], [[1.0]], sum_weights=-1.0, sum_weights2=1.0)
    with pytest.raises(TypeError, match="non-negative int"):
        fm.CoMoments.empty(2.5)


@pytest.mark.parametrize("leaf_blocks", [False, True], ids=["leaf_per_block", "leaves_of_8_blocks"])
def test_deterministic_whatever_the_threads(leaf_blocks, rng, small_blocks, monkeypatch):
    if leaf_blocks:  # the plan of large d (d x d of LEAF_BLOCKS_FROM bytes and more)
        monkeypatch.setattr(C, "LEAF_BLOCKS_FROM", 0)
    x = rng.standard_normal((300, 5)) * 7 + 3  # 100 blocks of 3 rows
    assert len(C._plan(300, 3, 5)) == (12 if leaf_blocks else 32)
    threaded = fm.comoments(x)
    monkeypatch.setattr(C, "_workers", lambda nleaves: 1)
    serial = fm.comoments(x)
    for a, b in zip(threaded.fields, serial.fields):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(serial.cov(), np.cov(x, rowvar=False), rtol=1e-13)


def test_blas_threads_restored(rng, small_blocks):
    ctl = C._blas_controller()
    if ctl is None:
        pytest.skip("threadpoolctl is not installed: no BLAS limits are set")
    before = [lib.num_threads for lib in ctl.select(user_api="blas").lib_controllers]
    fm.comoments(rng.standard_normal((500, 3)))
    after = [lib.num_threads for lib in C._blas_controller().select(user_api="blas").lib_controllers]
    assert C._blas_users == 0 and before == after


def test_count_overflow_on_merge():
    big = fm.CoMoments(2**62, [0.0], [[1.0]])
    with pytest.raises(ValueError, match="2\\*\\*63 - 1"):
        big.merge(big)


# -- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("x, exc, match", [
    (np.zeros(5), ValueError, r"2-D x .* got shape \(5,\)"),
    (np.zeros((2, 3, 4)), ValueError, r"2-D x .* got shape \(2, 3, 4\)"),
    (np.zeros((3, 2), complex), TypeError, "complex"),
    (np.array([["a", "b"]]), TypeError, "strings are not numeric"),
    (np.zeros((2, 2), object), TypeError, "object arrays"),
    (np.ma.masked_array(np.zeros((3, 2))), TypeError, "masked arrays"),
    (np.zeros((2, 2), np.longdouble), TypeError, "extended precision"),
])
def test_bad_x(x, exc, match):
    with pytest.raises(exc, match=match):
        fm.comoments(x)


def test_bad_axis():
    x = np.zeros((4, 2))
    with pytest.raises(TypeError, match="axis must be 0 or 1"):
        fm.comoments(x, axis=None)
    with pytest.raises(TypeError, match="axis must be 0 or 1"):
        fm.comoments(x, axis=True)
    with pytest.raises(TypeError, match="axis must be 0 or 1"):
        fm.comoments(x, axis=(0,))
    with pytest.raises(np.exceptions.AxisError):
        fm.comoments(x, axis=2)


@pytest.mark.parametrize("w, exc, match", [
    (np.ones(3), ValueError, r"weights of shape \(3,\) do not fit x of shape \(4, 2\).*one per observation \(4"),
    (np.ones((4, 2)), ValueError, r"weights of shape \(4, 2\)"),
    (np.array([1.0, -1.0, 1.0, 1.0]), ValueError, "negative"),
    (np.array([1.0, np.nan, 1.0, 1.0]), ValueError, "NaN"),
    (np.array([1.0, np.inf, 1.0, 1.0]), ValueError, "infinite"),
    (np.array([1, -2, 1, 1]), ValueError, "non-negative"),
    (np.ones(4, complex), TypeError, "weights: unsupported dtype complex128"),
    (np.array(["a"] * 4), TypeError, "weights: unsupported dtype"),
    (np.ma.masked_array(np.ones(4)), TypeError, "weights: masked arrays"),
])
def test_bad_weights(w, exc, match):
    with pytest.raises(exc, match=match):
        fm.comoments(np.zeros((4, 2)), weights=w)


def test_bad_merges_and_arguments(rng):
    a = fm.comoments(rng.standard_normal((5, 2)))
    b = fm.comoments(rng.standard_normal((5, 3)))
    with pytest.raises(ValueError, match="different numbers of variables: 2 and 3"):
        a.merge(b)
    with pytest.raises(ValueError, match="2 and 3"):
        fm.merge(a, b)
    with pytest.raises(TypeError, match="cannot merge CoMoments with Moments"):
        a.merge(fm.moments([1.0, 2.0]))
    with pytest.raises(TypeError, match="merge takes Moments or Summary states, or CoMoments"):
        fm.merge(1.0, a)
    with pytest.raises(TypeError, match="ddof must be a real number"):
        a.cov(ddof="1")
    with pytest.raises(ValueError, match='"frequency" or "reliability"'):
        a.cov(weights="analytic")
    r = fm.RunningCoMoments(2)
    with pytest.raises(ValueError, match="the batch has 3 variables, the running statistics 2"):
        r.update(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="the merged state has 3 variables"):
        r.merge(b)
    with pytest.raises(TypeError, match="cannot merge Moments into RunningCoMoments"):
        r.merge(fm.moments([1.0]))
    with pytest.raises(TypeError, match="d must be None or a non-negative int"):
        fm.RunningCoMoments(2.0)
    with pytest.raises(ValueError, match="2-D"):
        fm.RunningCoMoments().update(np.zeros(3))


def test_from_other_threads_same_bits(rng, small_blocks):
    from concurrent.futures import ThreadPoolExecutor

    x = rng.standard_normal((900, 4)) + 1e5
    main = fm.comoments(x)
    with ThreadPoolExecutor(3) as ex:
        results = list(ex.map(lambda _: fm.comoments(x), range(6)))
    for r in results:
        for a, b in zip(r.fields, main.fields):
            np.testing.assert_array_equal(a, b)
    assert C._blas_users == 0


# -- the CPU's centering kernel against the array code the GPU runs ----------------------------


class _ArrayCodeBackend:
    """The CPU backend without its optional ``center_rows``: comoments then
    centers in array code, as on the GPU."""

    def __init__(self, be):
        self._be = be

    def __getattr__(self, name):
        if name == "center_rows":
            raise AttributeError(name)
        return getattr(self._be, name)


def _both_paths(x, w=None, skipna=False):
    be, arr, ww = C._observations(x, 0, w)
    kernel, origin = C._reduce(be, arr, ww, skipna)
    arrays, origin2 = C._reduce(_ArrayCodeBackend(be), arr, ww, skipna)
    assert hasattr(be, "center_rows") and not hasattr(_ArrayCodeBackend(be), "center_rows")
    np.testing.assert_array_equal(origin, origin2)
    return kernel, arrays


@pytest.mark.parametrize("case", ["plain", "far", "weights", "zero_weights", "skipna", "skipna_weights",
                                  "int16", "float32", "fortran", "strided"])
def test_centering_kernel_equals_array_code(case, rng, small_blocks):
    x = rng.standard_normal((200, 5)) * [1, 10, 0.1, 3, 1] + [0, 1e6, -3e3, 1e9, 5]
    w = None
    skipna = case.startswith("skipna")
    if case in ("weights", "zero_weights", "skipna_weights"):
        w = rng.random(200) * 3
    if case == "zero_weights":
        w[rng.integers(0, 200, 40)] = 0.0
        x[w == 0, 2] = np.nan  # left out with their weight, NaN or not
        x[np.flatnonzero(w == 0)[:3], 0] = np.inf
    if skipna:
        x[rng.integers(0, 200, 30), rng.integers(0, 5, 30)] = np.nan
    if case == "int16":
        x = rng.integers(-300, 300, (200, 5)).astype(np.int16)
    if case == "float32":
        x = x.astype(np.float32)
    if case == "fortran":
        x = np.asfortranarray(x)
    if case == "strided":
        x = rng.standard_normal((400, 10))[::2, ::2] + 7.0
    kernel, arrays = _both_paths(x, w, skipna)
    assert int(kernel[0]) == int(arrays[0])
    for a, b in zip(kernel[1:3], arrays[1:3]):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    np.testing.assert_allclose(kernel[3], arrays[3], rtol=1e-13, atol=1e-12)
    scale = np.sqrt(np.outer(np.diag(arrays[4]), np.diag(arrays[4])))
    assert np.all(np.abs(kernel[4] - arrays[4]) <= 1e-11 * scale)
    # and both against np.cov of the rows taken
    keep = np.ones(x.shape[0], bool)
    if skipna:
        keep &= ~np.isnan(x).any(axis=1)
    if w is not None:
        keep &= w > 0
    s = fm.comoments(x, weights=w, skipna=skipna)
    ref = np.cov(np.asarray(x, np.float64)[keep], rowvar=False, ddof=0,
                 aweights=None if w is None else w[keep])
    np.testing.assert_allclose(s.cov(ddof=0), ref, rtol=1e-9, atol=1e-9 * np.sqrt(np.outer(np.diag(ref), np.diag(ref))).max())


def test_bools_of_any_byte_count_as_one(rng):
    b = rng.random((300, 4)) < 0.4
    odd = b.view(np.uint8) * rng.integers(1, 256, b.shape).astype(np.uint8)
    odd = odd.view(np.bool_)  # True stored as bytes 1..255
    s = fm.comoments(odd)
    np.testing.assert_allclose(s.cov(), np.cov(b.astype(np.float64), rowvar=False), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(s.mean, b.mean(axis=0), rtol=1e-14)
