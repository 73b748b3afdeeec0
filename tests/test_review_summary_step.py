"""Summaries around the step of the _summary_sums loop (16 float32 / 8 float64
values a step; commit 9dda94d), against an independent NumPy reference:
lengths not divisible by 16 (or divisible by 8 only), non-finite values and
zeros at step boundaries and in the scalar tail, extremes, two blocks read
together (rows, summarize_each), groups."""

import numpy as np
import pytest

import fastmoments as fm

FIELDS = ("count", "mean", "m2", "min", "max", "n_nonfinite", "n_zero")
EDGE_LENGTHS = list(range(0, 50)) + [63, 64, 65, 95, 96, 97, 8191, 8192, 8193, 8200, 8208, 16383, 16385, 40008]


def reference(x):
    x = np.asarray(x, dtype=np.float64).ravel()
    f = x[np.isfinite(x)]
    r = dict(count=f.size, n_nonfinite=x.size - f.size, n_zero=int(np.count_nonzero(x == 0)))
    if f.size:
        mean = f.mean()
        r.update(mean=mean, m2=((f - mean) ** 2).sum(), min=f.min(), max=f.max())
    return r


def field(s, name, i):
    return np.ravel(getattr(s, name))[i] if i is not None else getattr(s, name)


def assert_summary(s, x, i=None, what=""):
    r = reference(x)
    for k in ("count", "n_nonfinite", "n_zero"):
        assert int(field(s, k, i)) == r[k], (what, k)
    if not r["count"]:
        return
    assert float(field(s, "min", i)) == r["min"], (what, "min")
    assert float(field(s, "max", i)) == r["max"], (what, "max")
    spread = r["max"] - r["min"]
    mean, m2 = float(field(s, "mean", i)), float(field(s, "m2", i))
    assert abs(mean - r["mean"]) <= 1e-12 * max(abs(r["mean"]), spread) + 1e-300, (what, "mean")
    assert abs(m2 - r["m2"]) <= 1e-9 * r["m2"] + 1e-300, (what, "m2")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_length_with_zeros(dtype):
    rng = np.random.default_rng(0)
    for n in EDGE_LENGTHS:
        x = rng.normal(size=n).astype(dtype)
        x[rng.random(n) < 0.2] = 0.0
        x[rng.random(n) < 0.2] = -0.0
        assert_summary(fm.summarize(x), x, what=n)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_at_step_boundaries_and_in_the_tail(value):
    rng = np.random.default_rng(1)
    for n in [1, 15, 16, 17, 24, 31, 32, 33, 47, 8191, 8192, 8193, 8200, 16385]:
        x = rng.normal(size=n).astype(np.float32)
        tail = n - n % 16
        for p in sorted({0, 7, 8, 15, 16, 17, tail - 1, tail, n - 1}):
            if 0 <= p < n:
                y = x.copy()
                y[p] = value
                y[n // 2] = 0.0 if p != n // 2 else y[n // 2]
                assert_summary(fm.summarize(y), y, what=(n, p))


def test_extremes_subnormals_and_negative_zeros():
    f32 = np.finfo(np.float32)
    tiny = np.float32(1e-45)
    for n in [1, 8, 15, 16, 17, 24, 33, 8192, 8200]:
        for x in (np.full(n, f32.max, np.float32), np.full(n, -f32.max, np.float32),
                  np.full(n, -0.0, np.float32), np.full(n, tiny, np.float32)):
            y = x.copy()
            y[-1] = -y[-1] if n > 1 else y[-1]  # min and max in the tail
            assert_summary(fm.summarize(y), y, what=(n, x[0]))
        y = np.resize(np.array([tiny, -tiny, 0.0, -0.0, f32.max, -f32.max], np.float32), n)
        assert_summary(fm.summarize(y), y, what=n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(9, 8), (8, 24), (13, 31), (6, 8200), (5, 8193), (2, 16385), (64, 48)])
def test_rows_and_columns(dtype, shape):
    rng = np.random.default_rng(2)
    x = (rng.normal(size=shape) + rng.random(shape[0])[:, None] * 1e3).astype(dtype)
    x[rng.random(shape) < 0.05] = 0.0
    x[rng.random(shape) < 0.01] = np.nan
    x[rng.random(shape) < 0.01] = -np.inf
    x[:, -1] = -0.0
    for view in (x, x[:, ::2], x[::2], np.asfortranarray(x)):
        for axis in (-1, 0):
            s = fm.summarize(view, axis=axis)
            m = np.moveaxis(view, axis, -1)
            for i in range(m.shape[0]):
                assert_summary(s, m[i], i, what=(view.shape, axis, i))


@pytest.mark.parametrize("histogram", [False, True])
def test_summarize_each_mixed_and_equal_lengths(histogram):
    rng = np.random.default_rng(3)
    arrays = []
    for n in [0, 1, 15, 16, 17, 24, 33, 8191, 8192, 8193, 8200, 16385, 20001] * 2:
        dtype = np.float32 if rng.random() < 0.7 else np.float64
        a = (rng.normal(size=n) * rng.choice([1e-3, 1, 1e3]) + rng.choice([0, 1e6])).astype(dtype)
        if n and rng.random() < 0.4:
            a[rng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
        a[rng.random(n) < 0.1] = rng.choice([0.0, -0.0])
        arrays.append(a)
    for n in (17, 8200):  # equally long float32 arrays: summarized two at a time
        for _ in range(5):
            a = rng.normal(size=n).astype(np.float32)
            a[rng.random(n) < 0.1] = -0.0
            a[-1] = np.nan if rng.random() < 0.5 else a[-1]
            arrays.append(a)
    s = fm.summarize_each(arrays, histogram=histogram)
    for i, a in enumerate(arrays):
        assert_summary(s, a, i, what=(i, a.dtype, a.size))


def test_group_summarize_float32():
    rng = np.random.default_rng(4)
    for n in [17, 100, 8193, 40000]:
        x = rng.normal(size=n).astype(np.float32)
        x[rng.random(n) < 0.05] = -0.0
        x[rng.random(n) < 0.01] = np.nan
        by = rng.integers(0, 5, size=n)
        s = fm.group_summarize(x, by, ngroups=5)
        for g in range(5):
            assert_summary(s, x[by == g], g, what=(n, g))


def test_offset_data_keeps_its_digits():
    rng = np.random.default_rng(5)
    for n in [9, 16, 17, 31, 33, 8193, 16385]:
        for scale in (1e-2, 1.0, 1e3):
            x = (1e6 + rng.normal(size=n) * scale).astype(np.float32)
            x[:8] = 0.0 if scale == 1.0 else x[:8]  # a shift far from the mean
            assert_summary(fm.summarize(x), x, what=(n, scale))
            assert_summary(fm.summarize(np.stack([x] * 4), axis=-1), x, 3, what=(n, scale))
