"""Grouped kernels on one column of random labels: each slot's sums are
shifted by a value its task sets beforehand (``fastmoments.cpu.grouped.
_preshift``), or by its first value where the task's first values hold none
of it. Each result is checked against an independent per-group reference
(``math.fsum`` in two passes, exact fractions for integers)."""

import math
from fractions import Fraction

import numpy as np
import pytest

import fastmoments as fm


def _fsum_moments(v):
    k = v[0]
    mu = math.fsum(v - k) / v.size
    mu += math.fsum(v - k - mu) / v.size
    return k + mu, math.fsum((v - k - mu) ** 2)


def _check(x, lab, G, *, skipna=False, rtol_m2=1e-12):
    res = fm.group_moments(x, lab, ngroups=G, skipna=skipna)
    for g in range(G):
        v = x[lab == g]
        if skipna:
            v = v[~np.isnan(v)]
        assert res.count[g] == v.size
        if v.size == 0:
            continue
        mean, m2 = _fsum_moments(v)
        sd = math.sqrt(m2 / v.size)
        assert abs(res.mean[g] - mean) <= 1e-15 * abs(mean) + 1e-13 * sd, (g, res.mean[g], mean)
        assert abs(res.m2[g] - m2) <= rtol_m2 * m2, (g, res.m2[g], m2)


@pytest.mark.parametrize("offset", [0.0, 1e6, 1e9])
def test_skewed_data(offset):
    """Exponential and lognormal values: a slot's first values may lie far
    from its mean."""
    rng = np.random.default_rng(1)
    n = 200_003
    lab = rng.integers(0, 50, n)
    x = offset + np.where(lab % 2, rng.exponential(3.0, n), rng.lognormal(0.0, 2.0, n))
    _check(x, lab, 50, rtol_m2=1e-10)


def test_groups_first_seen_late_and_far():
    """Groups that the first values of a task do not hold (their shift is
    their first value), lying far from the others."""
    rng = np.random.default_rng(2)
    n = 150_000
    lab = rng.integers(0, 4, n)
    late = np.flatnonzero(rng.random(n) < 0.01)
    late = late[(late % (1 << 16)) > 20_000]  # past the first values of each task
    lab[late] = 4 + (late % 2)
    x = rng.standard_normal(n) + np.where(lab >= 4, 1e9, 0.0) + np.where(lab == 5, -3e9, 0.0)
    _check(x, lab, 6)


@pytest.mark.parametrize("skipna", [False, True])
def test_first_values_of_a_group_all_nan(skipna):
    rng = np.random.default_rng(3)
    n = 100_000
    lab = rng.integers(0, 8, n)
    x = 1e6 + rng.standard_normal(n)
    first = np.flatnonzero(lab == 2)[:200]
    x[first] = np.nan  # every value of group 2 among the first ones
    res = fm.group_moments(x, lab, ngroups=8, skipna=skipna)
    if not skipna:
        assert np.isnan(res.mean[2]) and np.isnan(res.m2[2])
        assert res.count[2] == np.count_nonzero(lab == 2)
    _check(x, lab, 8, skipna=True) if skipna else None


def test_integer_data_exact():
    """Integers (as float64 or int16): the shift is one of the values, so
    every deviation and sum is exact, and the mean (shift + sum / count)
    is rounded twice: within half an ulp of the sum / count (at most the
    largest value's) and half an ulp of the result."""
    rng = np.random.default_rng(4)
    n = 120_000
    lab = rng.integers(0, 30, n)
    for x in (rng.integers(-3000, 3000, n).astype(np.int16), rng.integers(-2**40, 2**40, n).astype(np.float64)):
        res = fm.group_moments(x, lab, ngroups=30)
        for g in range(30):
            v = [int(t) for t in x[lab == g]]
            exact = Fraction(sum(v), len(v))
            bound = 0.5 * (np.spacing(float(max(map(abs, v)))) + np.spacing(abs(float(exact))))
            assert abs(res.mean[g] - float(exact)) <= bound
            m2 = sum((Fraction(t) - exact) ** 2 for t in v)
            assert abs(res.m2[g] - float(m2)) <= 1e-13 * float(m2)


def test_float32_data():
    rng = np.random.default_rng(5)
    n = 150_000
    lab = rng.integers(0, 11, n)
    x = (rng.standard_normal(n) * 50 + 7).astype(np.float32)
    res = fm.group_moments(x, lab, ngroups=11)
    for g in range(11):
        v = x[lab == g].astype(np.float64)
        mean, m2 = _fsum_moments(v)
        assert abs(res.mean[g] - mean) <= 1e-15 * abs(mean) + 1e-15 * 50
        assert abs(res.m2[g] - m2) <= 1e-13 * m2
