"""Data far from zero on the GPU wing: the unweighted kernels keep their means
relative to an origin per output (a value of the data), as the CPU wing and
the weighted GPU kernels do, so M2 keeps the digits of a two-pass method.

Runs on a CUDA device, or in CI on the CPU emulator (FASTMOMENTS_GPU_EMULATOR=1).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastmoments as fm

from gpu_skip import REASON, cupy, pytestmark  # noqa: F401 (the module's marks)


def _reference(x, axis):
    """(mean, M2) per slice along ``axis`` from correctly rounded sums
    (math.fsum) about a rounded mean m, corrected by the deviations' own sum:
    M2 = sum((x - m)**2) - sum(x - m)**2 / n. (NumPy's sums along axis 0, or
    the square sum about a mean rounded at 3e12, are off by up to 1e-8.)"""
    x = np.asarray(x, np.float64)
    kept = tuple(n for i, n in enumerate(x.shape) if i != axis)
    cols = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
    means, m2s = [], []
    for col in cols:
        m = math.fsum(col) / col.size
        d = col - m  # exact: col and m are within a factor 2 of each other
        r = math.fsum(d)
        means.append(m + r / col.size)
        m2s.append(math.fsum(d * d) - r * r / col.size)
    return np.array(means).reshape(kept), np.array(m2s).reshape(kept)


@pytest.mark.parametrize("offset", [1e6, 1e9, -3e12])
@pytest.mark.parametrize("shape,axis", [((600,), 0), ((100_003,), 0), ((3000, 40), 0), ((40, 3000), 1)])
def test_m2_far_from_zero(offset, shape, axis):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape) + offset
    g = cupy.asarray(x)
    mean, want = _reference(x, axis)
    for got in (fm.moments(g, axis=axis), fm.summarize(g, axis=axis)):
        np.testing.assert_allclose(cupy.asnumpy(got.m2), want, rtol=1e-12)
        np.testing.assert_allclose(cupy.asnumpy(got.mean), mean, rtol=4e-16, atol=0)
    parts = np.array_split(x.reshape(-1), 7)
    each = fm.summarize_each([cupy.asarray(p) for p in parts])
    np.testing.assert_allclose(cupy.asnumpy(each.m2), [_reference(p, 0)[1] for p in parts], rtol=1e-12)


def test_group_summarize_far_from_zero():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(3000) + 1e9
    lab = rng.integers(0, 5, x.size)
    got = fm.group_summarize(cupy.asarray(x), cupy.asarray(lab), ngroups=5)
    want = [_reference(x[lab == g], 0)[1] for g in range(5)]
    np.testing.assert_allclose(cupy.asnumpy(got.m2), want, rtol=1e-12)


def test_extremes_and_nonfinite_first_values():
    # The origin is skipped where it could overflow a difference, or is not finite.
    big = np.array([np.nan, np.inf, 1e300, 3e300, 1.0, 2.0] * 50)  # first finite value: past the origin bound
    s = fm.summarize(cupy.asarray(big)).to_numpy()
    c = fm.summarize(big)
    np.testing.assert_array_equal(s.count, c.count)
    np.testing.assert_array_equal(s.n_nonfinite, c.n_nonfinite)
    assert s.min == c.min and s.max == c.max
    np.testing.assert_allclose(s.mean, c.mean, rtol=1e-12)
    np.testing.assert_allclose(s.mean, np.mean(big[np.isfinite(big)]), rtol=1e-12)
    assert np.isinf(s.m2) == np.isinf(c.m2)
    small = np.array([np.nan, -np.inf, 5.0, 7.0, 9.0] * 40)  # first values not finite: the origin is 5
    s, c = fm.summarize(cupy.asarray(small)).to_numpy(), fm.summarize(small)
    assert (s.count, s.n_nonfinite, s.mean, s.m2) == (c.count, c.n_nonfinite, 7.0, c.m2) and c.m2 == 40 * 8.0
    m = fm.moments(cupy.asarray(np.array([np.inf, 1.0, 2.0]))).to_numpy()
    assert m.mean == np.inf and np.isnan(m.m2)


def test_origin_near_the_range_end_does_not_overflow():
    # |v - origin| must round to at most the largest double: origins up to 2**969.
    x = np.array([1.4e292, -np.finfo(float).max, 1.0, 2.0])
    for f in (fm.moments, fm.summarize):
        g, c = f(cupy.asarray(x)).to_numpy(), f(x)
        assert np.isfinite(g.mean) and g.mean == pytest.approx(c.mean, rel=1e-12)
        assert np.isinf(g.m2) and np.isinf(c.m2)
    w = fm.moments(cupy.asarray(x), weights=cupy.ones(4)).to_numpy()
    assert np.isfinite(w.mean) and w.mean == pytest.approx(float(np.mean(x / 4) * 4), rel=1e-12)


@pytest.mark.parametrize("case", ["outlier_first", "big_first", "leading_nan"])
def test_origin_is_robust_to_its_first_values(case):
    rng = np.random.default_rng(11)
    if case == "outlier_first":
        x = np.concatenate([[1e15, -1e15], np.full(1000, 0.1)])
    elif case == "big_first":
        x = np.concatenate([[1e12], rng.standard_normal(5000)])
    else:
        x = rng.standard_normal(3000) + 1e9
        x[:40] = np.nan
    exact_mean = math.fsum(v for v in x if np.isfinite(v)) / np.isfinite(x).sum()
    fin = x[np.isfinite(x)]
    _, want_m2 = _reference(fin, 0)
    g = cupy.asarray(x)
    outs = [fm.summarize(g), fm.moments(g, skipna=True), fm.summarize_each([g, g[::-1]])]
    for s in outs:
        mean = np.atleast_1d(cupy.asnumpy(s.mean))
        m2 = np.atleast_1d(cupy.asnumpy(s.m2))
        if case == "outlier_first":  # +-1e15 cancelling: no float64 sum keeps 0.1 exactly;
            cpu_err = abs(float(fm.summarize(x).mean) - exact_mean)  # no worse than the CPU wing's
            assert np.all(np.abs(mean - exact_mean) <= cpu_err)
        else:
            np.testing.assert_allclose(mean, exact_mean, rtol=1e-15)
        np.testing.assert_allclose(m2, want_m2, rtol=1e-12)
    if case == "leading_nan":  # the lane kernel, split (C > 1)
        cols = np.tile(x[:, None], (1, 3))
        s = fm.summarize(cupy.asarray(np.concatenate([cols] * 70)), axis=0)
        _, want = _reference(np.concatenate([fin] * 70), 0)
        np.testing.assert_allclose(cupy.asnumpy(s.m2), want, rtol=1e-12)
