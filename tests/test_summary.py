"""summarize / summarize_each against NumPy on the finite values."""

import pickle

import numpy as np
import pytest

import fastmoments as fm


def ref_summary(x, axis=None):
    x = np.asarray(x, dtype=np.float64)
    fin = np.isfinite(x)
    count = fin.sum(axis=axis)
    xs = np.where(fin, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xs.sum(axis=axis) / count
        dev = np.where(fin, x - (mean if axis is None else np.expand_dims(mean, axis)), 0.0)
    m2 = (dev**2).sum(axis=axis)
    lo = np.where(count > 0, np.where(fin, x, np.inf).min(axis=axis, initial=np.inf), np.nan)
    hi = np.where(count > 0, np.where(fin, x, -np.inf).max(axis=axis, initial=-np.inf), np.nan)
    return dict(count=count, mean=mean, m2=m2, min=lo, max=hi,
                n_nonfinite=(~fin).sum(axis=axis), n_zero=(x == 0).sum(axis=axis))


def check(s, ref, rel=1e-11):
    for k in ("count", "n_nonfinite", "n_zero"):
        np.testing.assert_array_equal(getattr(s, k), ref[k], err_msg=k)
        assert getattr(s, k).dtype == np.int64
    for k in ("mean", "m2", "min", "max"):
        np.testing.assert_allclose(getattr(s, k), ref[k], rtol=rel, atol=1e-12, err_msg=k)


def with_specials(rng, shape, dtype=np.float64):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    flat = x.reshape(-1)
    if flat.size >= 10:
        idx = rng.choice(flat.size, size=min(flat.size // 5, 300), replace=False)
        for i, v in zip(idx, np.resize([np.nan, np.inf, -np.inf, 0.0, -0.0], idx.size)):
            flat[i] = v
    return x


@pytest.mark.parametrize("shape,axis", [((100_000,), None), ((3000, 7), 0), ((3000, 7), 1),
                                        ((7, 3000), 1), ((20, 30, 40), (0, 2)),
                                        ((0, 5), 0), ((5, 0), 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_summarize_vs_numpy(rng, shape, axis, dtype):
    x = with_specials(rng, shape, dtype)
    s = fm.summarize(x, axis=axis)
    check(s, ref_summary(x, axis))
    finite = np.isfinite(x.astype(np.float64))
    if axis is None and finite.any():
        v = x.astype(np.float64)[finite]
        assert s.var() == pytest.approx(v.var(), rel=1e-11)
        assert s.norm() == pytest.approx(np.linalg.norm(v), rel=1e-11)


@pytest.mark.parametrize("k,m", [(65, 2100), (1003, 300), (8191, 40)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_summarize_rows_with_tails(rng, k, m, dtype):
    # Rows of one block are summarized four at a time, float rows in one loop
    # of 8-value steps and the last k % 8 values apart: put each row's
    # minimum, maximum, a zero or a non-finite value there, and in the steps.
    x = rng.standard_normal((m, k)) * 10 + 3
    for i in range(m):
        at = k - 1 - (i // 6) % (k % 8) if i % 2 else int(rng.integers(0, k - k % 8))
        x[i, at] = [x[i].min() - 1, x[i].max() + 1, 0.0, np.nan, -np.inf, -0.0][i % 6]
    if dtype == np.int32:
        x = np.nan_to_num(x, nan=7.0, neginf=-99.0)
    x = x.astype(dtype)
    s = fm.summarize(x, axis=1)
    check(s, ref_summary(x, axis=1), rel=1e-12)
    np.testing.assert_array_equal(s.min, ref_summary(x, axis=1)["min"])
    np.testing.assert_array_equal(s.max, ref_summary(x, axis=1)["max"])
    each = fm.summarize_each(list(x))  # each row alone: one block, no quartets
    check(each, ref_summary(x, axis=1), rel=1e-12)
    for i in range(0, m, m // 7):
        alone = fm.summarize(x[i])
        for f in ("count", "mean", "m2", "min", "max", "n_nonfinite", "n_zero"):
            np.testing.assert_array_equal(getattr(alone, f), getattr(each, f)[i], err_msg=f"{i} {f}")


def test_summarize_all_nonfinite_and_empty():
    s = fm.summarize([np.nan, np.inf, -np.inf])
    assert s.count == 0 and s.n_nonfinite == 3 and np.isnan(s.min) and np.isnan(s.max)
    assert s.norm() == 0.0
    e = fm.summarize(np.array([], np.float32))
    assert e.count == 0 and e.n_nonfinite == 0 and e.norm() == 0.0
    m = e.merge(fm.summarize([1.0, 0.0, np.nan]))
    assert (m.count, m.min, m.max, m.n_nonfinite, m.n_zero) == (2, 0.0, 1.0, 1, 1)


def test_summarize_integers_and_bool():
    s = fm.summarize(np.array([0, 5, -3, 0], np.int32))
    assert (s.count, s.min, s.max, s.n_zero) == (4, -3.0, 5.0, 2)
    b = fm.summarize(np.array([True, False, True]))
    assert b.mean == pytest.approx(2 / 3) and b.n_zero == 1


def test_summarize_each_matches_each(rng):
    shapes = [(64, 3, 7, 7), (64,), (), (0,), (1000, 1000), (10,), (3, 0), (256, 64, 1, 1)]
    arrays = [with_specials(rng, s, np.float32 if i % 2 else np.float64)
              for i, s in enumerate(shapes)]
    arrays.append(rng.standard_normal((50, 40)).T)  # not contiguous
    arrays.append(np.arange(12, dtype=np.float16).reshape(3, 4))
    s = fm.summarize_each(arrays)
    assert s.shape == (len(arrays),)
    for i, a in enumerate(arrays):
        check(s[i], ref_summary(a))
        one = fm.summarize(a)
        for k in s._fields:  # same partition and tree: bit-identical
            np.testing.assert_array_equal(getattr(s[i], k), getattr(one, k), err_msg=k)
    assert fm.summarize_each([]).shape == (0,)


def test_summary_merge_reduce_pickle(rng):
    xs = [with_specials(rng, (500, 3)) for _ in range(3)]
    parts = [fm.summarize(x, axis=0) for x in xs]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    check(merged, ref_summary(np.concatenate(xs), 0), rel=1e-10)
    stacked = fm.summarize_each([x for x in xs])
    total = stacked.reduce()
    check(total, ref_summary(np.concatenate([x.ravel() for x in xs])), rel=1e-10)
    again = pickle.loads(pickle.dumps(merged))
    for k in merged._fields:
        np.testing.assert_array_equal(getattr(again, k), getattr(merged, k))
    assert isinstance(merged.moments, fm.Moments)
    assert merged[0].shape == ()


def test_summary_from_fields_roundtrip(rng):
    s = fm.summarize(rng.standard_normal((10, 4)), axis=0)
    t = fm.Summary.from_fields(**{k: getattr(s, k) for k in s._fields})
    check(t, {k: getattr(s, k) for k in s._fields}, rel=0)
    with pytest.raises(TypeError, match="missing"):
        fm.Summary.from_fields(count=[1])


@pytest.mark.parametrize("case", ["offset", "trend", "outlier_first", "far_first", "zeros",
                                  "signed_zeros"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_summary_accuracy_finite(rng, case, dtype):
    # All-finite blocks take a one-pass shifted-sums path (shift: the mean of
    # the block's first 8 values) with a two-pass fallback when the shift is
    # far from the block's mean. Each case is checked against math.fsum.
    from conftest import fsum_mean_var

    n = 9 * 8192 + 17  # two groups of four blocks read together, one block alone, a partial one
    if case == "offset":  # shift close to the mean: the one-pass result stands
        x = rng.standard_normal(n) + 1e4
    elif case == "trend":  # first values far below each block's mean: fallback
        x = np.linspace(0.0, 1e3, n) + 1e5
    elif case == "outlier_first":  # a huge first value in every block: fallback
        x = rng.standard_normal(n) + 3.0
        x[::8192] = 1e7
    elif case == "far_first":  # shift 1e5 off, var ~1e7: q cancels ~1e3-fold without the fallback
        x = rng.standard_normal(n) + 1e6
        for b in range(0, n, 8192):
            x[b : b + 8] += 1e5
    elif case == "signed_zeros":  # zeros are counted only in blocks whose range holds 0
        x = rng.random(n) + 0.5
        x[8192 + 5] = -0.0  # the only zero of its block, below all of it
        x[2 * 8192 + 100 : 2 * 8192 + 103] = [0.0, -0.0, 0.0]
        x[3 * 8192 + 3] = -1.0  # a range holding 0 but no zero
        x[8 * 8192 + 7] = 0.0  # the block after the groups
    else:
        x = np.where(rng.random(n) < 0.5, 0.0, rng.standard_normal(n))
    x = x.astype(dtype)
    mean, var = fsum_mean_var(x)
    for s in (fm.summarize(x), fm.summarize_each([x])[0], fm.summarize(x.reshape(1, -1), axis=1)[0]):
        assert s.count == n and s.n_nonfinite == 0 and s.n_zero == np.count_nonzero(x == 0)
        assert s.min == x.min() and s.max == x.max()
        assert abs(s.mean - mean) <= 1e-15 * np.abs(x.astype(np.float64)).max()
        assert abs(s.var() - var) <= 1e-12 * var
