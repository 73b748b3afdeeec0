"""Grouped kernels on labels in long runs: blocks of RUN values of one label
summed at once (``fastmoments.cpu.grouped._scan_runs``), each checked
against an independent per-group reference (``math.fsum`` two passes, or
NumPy in float64)."""

import math

import numpy as np
import pytest

import fastmoments as fm
from fastmoments.cpu import grouped as GK


def _runs(rng, n, G, lo, hi):
    """Labels in runs of random lengths lo..hi, groups in random order (a
    group comes back later: its slot holds values before its next run)."""
    out = []
    total = 0
    while total < n:
        k = int(rng.integers(lo, hi + 1))
        out.append(np.full(k, rng.integers(0, G)))
        total += k
    return np.concatenate(out)[:n]


def _ref(x, lab, G):
    cnt = np.zeros(G, np.int64)
    mean = np.full(G, np.nan)
    m2 = np.zeros(G)
    for g in range(G):
        v = x[lab == g]
        cnt[g] = v.size
        if v.size:
            k = v[0]
            mu = math.fsum(v - k) / v.size
            mu += math.fsum(v - k - mu) / v.size
            mean[g] = k + mu
            m2[g] = math.fsum((v - k - mu) ** 2)
    return cnt, mean, m2


def test_long_runs_take_blocks_short_runs_lanes():
    rng = np.random.default_rng(1)
    assert GK.lanes_for(np.sort(rng.integers(0, 100, 10**5)), 1, 100) == 1
    assert GK.lanes_for(_runs(rng, 10**5, 100, 2, 12), 1, 100) == GK.LANES
    assert GK.lanes_for(rng.integers(0, 100, 10**5), 1, 100) == 1


@pytest.mark.parametrize("offset", [0.0, 1e6, 1e9])
@pytest.mark.parametrize("lengths", [(1, 5), (60, 70), (100, 3000)])
def test_runs_against_fsum(offset, lengths):
    rng = np.random.default_rng(2)
    n = 150_001
    lab = _runs(rng, n, 7, *lengths)
    x = offset + rng.standard_normal(n) * np.where(lab % 2 == 0, 1.0, 1e-3)
    G = 8  # group 7 empty
    cnt, mean, m2 = _ref(x, lab, G)
    res = fm.group_moments(x, lab, ngroups=G)
    assert np.array_equal(res.count, cnt)
    has = cnt > 0
    sd = np.sqrt(m2[has] / cnt[has])
    assert np.all(np.abs(res.mean[has] - mean[has]) <= 1e-15 * abs(offset) + 1e-12 * sd)
    assert np.isnan(res.mean[~has]).all() and res.m2[~has].sum() == 0
    np.testing.assert_allclose(res.m2[has], m2[has], rtol=1e-9)
    s = fm.group_summarize(x, lab, ngroups=G)
    assert np.array_equal(s.count, cnt)
    np.testing.assert_allclose(s.m2[has], m2[has], rtol=1e-9)
    for g in np.flatnonzero(has):
        v = x[lab == g]
        assert s.min[g] == v.min() and s.max[g] == v.max()


def test_constant_runs_exact():
    """A run of equal values: the shift is one of them, so its deviations are
    0, its mean exact and m2 exactly 0, whatever the value."""
    lab = np.repeat(np.arange(5), 1000)
    x = np.repeat([1e300, -3.25, 0.1, 7e-310, 1e9 + 0.5], 1000)
    res = fm.group_moments(x, lab)
    assert np.array_equal(res.mean, [1e300, -3.25, 0.1, 7e-310, 1e9 + 0.5])
    assert np.array_equal(res.m2, np.zeros(5))
    s = fm.group_summarize(x, lab)
    assert np.array_equal(s.min, s.max) and np.array_equal(s.min, res.mean)


def test_zeros_counted_in_runs():
    rng = np.random.default_rng(3)
    lab = np.repeat(np.arange(4), 5000)
    x = np.where(rng.random(lab.size) < 0.3, 0.0, rng.standard_normal(lab.size))
    x[lab == 2] = 0.0
    s = fm.group_summarize(x, lab)
    assert np.array_equal(s.n_zero, [np.count_nonzero(x[lab == g] == 0) for g in range(4)])


def test_bad_label_run_raises_negative_run_left_out():
    x = np.arange(5000.0)
    lab = np.repeat([0, 1, 2, 3, 4], 1000)
    lab[2000:3000] = -1
    res = fm.group_moments(x, lab, ngroups=5)
    assert list(res.count) == [1000, 1000, 0, 1000, 1000]
    np.testing.assert_allclose(res.mean, [499.5, 1499.5, np.nan, 3499.5, 4499.5])
    lab[3008:3520] = 7  # a label past ngroups in whole blocks only (3008 = 47 * 64)
    with pytest.raises(ValueError, match=r"label 7 "):
        fm.group_moments(x, lab, ngroups=5)
    with pytest.raises(ValueError, match=r"label 7 "):
        fm.group_summarize(x, lab, ngroups=5)


@pytest.mark.parametrize("skipna", [False, True])
def test_non_finite_and_huge_values_in_runs(skipna):
    """A block with a NaN, an Inf or deviations past float64's range goes a
    value at a time; the results are those of ``moments`` per group."""
    rng = np.random.default_rng(4)
    lab = np.repeat(np.arange(6), 3000)
    x = rng.standard_normal(lab.size)
    x[100] = np.nan
    x[3100] = np.inf
    x[6100], x[6200] = np.inf, -np.inf
    x[9000:12000] = np.where(np.arange(3000) % 2, 1.5e308, -1.5e308)  # deviations overflow, values do not
    x[12000:15000] = 1e300 * rng.standard_normal(3000)  # squares overflow
    got = fm.group_moments(x, lab, skipna=skipna)
    for g in range(6):
        want = fm.moments(x[lab == g], skipna=skipna)
        assert got.count[g] == want.count
        np.testing.assert_allclose(got.mean[g], want.mean, rtol=1e-12)
        np.testing.assert_allclose(got.m2[g], want.m2, rtol=1e-9)
    s = fm.group_summarize(x, lab)
    for g in range(6):
        v = x[lab == g]
        fin = v[np.isfinite(v)]
        assert s.count[g] == fin.size and s.n_nonfinite[g] == v.size - fin.size
        assert s.min[g] == fin.min() and s.max[g] == fin.max()


def _exact_m2(v):
    """m2 of float64 values by exact rational arithmetic, rounded once."""
    from fractions import Fraction
    fr = [Fraction(t) for t in v.tolist()]
    mean = sum(fr) / len(fr)
    return float(sum((t - mean) ** 2 for t in fr))


@pytest.mark.parametrize("layout", ["runs", "random", "columns"])
def test_step_within_a_task_keeps_two_pass_accuracy(layout):
    """A level step inside a task (a fraction p of the rows lower): the sums
    around an early shift cancel; past one bit the task is read again (the
    review found 250-900 ulps when 4 bits were let through)."""
    rng = np.random.default_rng(7)
    n = 1 << 16
    for p in (0.06, 0.25):
        x = np.where(np.arange(n) < int(p * n), 0.0, 1.0) + rng.random(n) * 1e-3 + 1e3
        by = np.zeros(n, np.int64) if layout == "runs" else rng.integers(0, 2, n)
        if layout == "columns":
            m2 = fm.group_moments(np.stack([x, x], 1), by).m2[:, 0]
        else:
            m2 = fm.group_moments(x, by).m2
        for g in range(int(by.max()) + 1):
            want = _exact_m2(x[by == g])
            assert abs(m2[g] - want) <= 128 * np.spacing(want), (p, g, m2[g], want)


def test_outlier_first_value_of_a_run():
    """A group whose first value is an outlier: a block's sums around it and
    recentered after would cancel log2(65) bits unseen (review: 862 ulps)."""
    rng = np.random.default_rng(5)
    x = np.concatenate([np.r_[0.0, 1.0 + rng.random(639) * 1e-3] for _ in range(50)])
    by = np.repeat(np.arange(50), 640)
    m2 = fm.group_moments(x, by).m2
    for g in range(50):
        want = _exact_m2(x[by == g])
        assert abs(m2[g] - want) <= 64 * np.spacing(want), (g, m2[g], want)


@pytest.mark.parametrize("layout", ["sorted", "random"])
def test_finite_sums_past_the_range_beside_non_finite_values(layout):
    """Two values of 1e308 in a group that also holds an Inf (summaries) or a
    NaN (moments skipping NaN): the finite values' mean is finite (review:
    -inf on the runs path)."""
    n = 301
    x = np.zeros(n)
    x[10] = x[20] = 1e308
    x[n - 1] = np.inf
    by = np.zeros(n, np.int64) if layout == "sorted" else np.random.default_rng(0).integers(0, 2, n)
    by[[10, 20, n - 1]] = 0
    v = x[by == 0]
    s = fm.group_summarize(x, by)
    want = fm.summarize(v)
    assert s.count[0] == want.count and s.n_nonfinite[0] == 1
    np.testing.assert_allclose(s.mean[0], want.mean, rtol=1e-15)
    np.testing.assert_allclose(s.m2[0], want.m2, rtol=1e-12)
    xn = x.copy()
    xn[n - 1] = np.nan
    m = fm.group_moments(xn, by, skipna=True)
    want = fm.moments(xn[by == 0], skipna=True)
    assert np.isfinite(m.mean[0])
    np.testing.assert_allclose(m.mean[0], want.mean, rtol=1e-15)
    np.testing.assert_allclose(m.m2[0], want.m2, rtol=1e-12)
