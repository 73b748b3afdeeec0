"""``summarize(x, axis=0)`` of C-ordered 2-D arrays over many column tiles
(``cpu/tiles.py::_shifted_tile_summary``: one pass shifted by the previous
tile's means, the two-pass tile where a shift is too far), against NumPy in
float64 on the finite values of each column.

The arrays are several MiB, so that a column block spans many 1 MiB tiles
and each task's later tiles take the one-pass path; narrow rows (3 or 8
columns) also go through the interleaved copies of the narrow-array path."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastmoments as fm

RNG = np.random.default_rng(9090)

SHAPES = [((300_000, 8), np.float64), ((200_000, 3), np.float32), ((3000, 1000), np.float64), ((150_000, 5), np.int64)]


def reference(x):
    x = np.asarray(x, np.float64)
    out = {k: [] for k in ("count", "mean", "m2", "min", "max", "n_nonfinite", "n_zero")}
    for j in range(x.shape[1]):
        col = x[:, j]
        fin = col[np.isfinite(col)]
        n = fin.size
        out["count"].append(n)
        out["n_nonfinite"].append(col.size - n)
        out["n_zero"].append(int(np.count_nonzero(col == 0)))
        if n:
            mean = math.fsum(fin) / n
            out["mean"].append(mean)
            out["m2"].append(math.fsum((fin - mean) ** 2))
            out["min"].append(fin.min())
            out["max"].append(fin.max())
        else:
            out["mean"].append(np.nan)
            out["m2"].append(0.0)
            out["min"].append(np.nan)
            out["max"].append(np.nan)
    return {k: np.array(v) for k, v in out.items()}


def check(x, rtol=1e-12):
    s = fm.summarize(x, axis=0)
    ref = reference(x)
    for k in ("count", "n_nonfinite", "n_zero"):
        np.testing.assert_array_equal(getattr(s, k), ref[k], err_msg=k)
    for k in ("min", "max"):
        np.testing.assert_array_equal(getattr(s, k), ref[k].astype(np.float64), err_msg=k)
    have = ref["count"] > 0
    np.testing.assert_array_equal(np.isnan(s.mean), ~have, err_msg="empty columns' mean")
    spread = np.sqrt(ref["m2"][have] / ref["count"][have])
    err = np.abs(s.mean[have] - ref["mean"][have])
    assert np.all(err <= rtol * (np.abs(ref["mean"][have]) + spread)), ("mean", err.max())
    np.testing.assert_allclose(s.m2, ref["m2"], rtol=rtol * 10, atol=0, err_msg="m2")
    return s


@pytest.mark.parametrize("shape, dtype", SHAPES)
def test_offset_data(shape, dtype):
    x = RNG.normal(size=shape) * 3 + (1e4 if dtype != np.int64 else 0)
    if dtype == np.int64:
        x = RNG.integers(-1000, 1000, size=shape) + 10**9
    check(x.astype(dtype), rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("shape, dtype", SHAPES[:3])
@pytest.mark.parametrize("data", ["trend", "stairs"])
def test_far_shifts_take_the_two_pass_tiles(shape, dtype, data):
    """Columns whose level moves through the rows: a climb, and stairs of
    1e6 with a spread of 1e-3 on each step, so that the tile after a step
    is shifted by the mean of one that straddled it, ~1e5 of its spreads
    away; the one-pass sums would lose every digit, and the tile is redone
    in two passes."""
    n, m = shape
    noise = RNG.normal(size=shape) * 1e-3 * np.arange(1, m + 1)
    if data == "trend":
        x = np.linspace(0, 1e6, n)[:, None] + noise
    else:
        x = (np.arange(n) // (n // 6) * 1e6)[:, None] + noise
    x = x.astype(dtype)
    check(x, rtol=1e-6 if dtype == np.float32 else 1e-11)


@pytest.mark.parametrize("shape, dtype", SHAPES)
def test_constant_columns_have_m2_exactly_zero(shape, dtype):
    x = np.empty(shape, dtype)
    x[:] = np.array([0.1, 3, -7e10, 0, 2.5, 1, 1, 1][: shape[1] % 8 or 8] * (shape[1] // 8 + 1))[: shape[1]].astype(dtype)
    s = check(x)
    assert np.all(s.m2 == 0.0)
    np.testing.assert_array_equal(s.mean, x[0].astype(np.float64))


@pytest.mark.parametrize("shape, dtype", [s for s in SHAPES if s[1] != np.int64])
def test_nan_inf_zeros_and_empty_columns(shape, dtype):
    n, m = shape
    x = (RNG.normal(size=shape) * 2 + 1).astype(dtype)
    x[RNG.random(shape) < 0.01] = np.nan
    x[RNG.random(shape) < 0.005] = np.inf
    x[RNG.random(shape) < 0.005] = -np.inf
    x[RNG.random(shape) < 0.02] = 0
    x[:, 1] = np.nan  # no finite value at all
    x[n // 3 : 2 * n // 3, 2] = np.inf  # tiles of one column with no finite value
    x[: n // 2, 0] = 0.0  # half zeros
    check(x, rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_values_whose_squares_overflow():
    x = RNG.normal(size=(300_000, 8)) * 1e300
    x[:, 3] = RNG.normal(size=300_000) * 1e150 + 1e155
    s = fm.summarize(x, axis=0)
    ref = reference(x / 1e300)
    np.testing.assert_allclose(s.mean / 1e300, ref["mean"], rtol=1e-12, atol=1e-12 * np.sqrt(ref["m2"] / 300_000).max())
    assert np.all(np.isfinite(s.mean)) and not np.any(np.isnan(s.m2))
    np.testing.assert_array_equal(s.min, x.min(axis=0))
    np.testing.assert_array_equal(s.max, x.max(axis=0))


def test_matches_moments_and_merges_of_splits():
    x = RNG.normal(size=(400_000, 8)) * 5 + 100
    s = fm.summarize(x, axis=0)
    mo = fm.moments(x, axis=0)
    np.testing.assert_array_equal(s.count, mo.count)
    np.testing.assert_allclose(s.mean, mo.mean, rtol=1e-14)
    np.testing.assert_allclose(s.m2, mo.m2, rtol=1e-12)
    cut = 123_457
    parts = fm.summarize(x[:cut], axis=0).merge(fm.summarize(x[cut:], axis=0))
    np.testing.assert_allclose(parts.mean, s.mean, rtol=1e-14)
    np.testing.assert_allclose(parts.m2, s.m2, rtol=1e-12)
    np.testing.assert_array_equal(parts.min, s.min)
    np.testing.assert_array_equal(parts.max, s.max)


def test_input_not_modified():
    x = RNG.normal(size=(300_000, 8))
    x[::7, 2] = np.nan
    before = x.copy()
    fm.summarize(x, axis=0)
    np.testing.assert_array_equal(x, before)
