"""Merging states: exactness against whole-data moments, algebraic properties,
from_mean_std / combine_mean_std and RunningMoments."""

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmoments as fm


def assert_same_state(a, b, rel=1e-12):
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_allclose(a.mean, b.mean, rtol=rel, atol=rel * 10)
    np.testing.assert_allclose(a.m2, b.m2, rtol=rel, atol=rel * 10)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=0, max_size=200), st.data())
def test_random_splits_equal_whole(values, data):
    x = np.array(values, dtype=np.float64)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(values)), max_size=6)))
    pieces = np.split(x, cuts)
    merged = fm.Moments.empty()
    for p in pieces:
        merged = fm.merge(merged, fm.moments(p))
    whole = fm.moments(x)
    assert merged.count == x.size
    if x.size:
        assert merged.mean == pytest.approx(np.mean(x), rel=1e-12, abs=1e-9)
        assert merged.m2 == pytest.approx(np.var(x) * x.size, rel=1e-9, abs=1e-6)
        assert_same_state(merged, whole, rel=1e-9)


def test_merge_commutative_associative(rng):
    a, b, c = (fm.moments(rng.normal(k, abs(k) + 1, size=n))
               for k, n in ((0, 100), (5, 7), (-3, 1000)))
    assert_same_state(a.merge(b), b.merge(a), rel=1e-14)
    assert_same_state(a.merge(b).merge(c), a.merge(b.merge(c)), rel=1e-13)


def test_merge_elementwise_broadcast(rng):
    x = rng.standard_normal((400, 6))
    y = rng.standard_normal((50, 6)) + 3
    a = fm.moments(x, axis=0)
    b = fm.moments(y, axis=0)
    ab = a.merge(b)
    both = np.concatenate([x, y])
    np.testing.assert_allclose(ab.var(), both.var(axis=0), rtol=1e-12)
    # broadcasting a (6,) state against a scalar state
    s = fm.moments(y[:, 0])
    bc = a.merge(s)
    assert bc.shape == (6,)
    np.testing.assert_allclose(bc.mean[2], np.concatenate([x[:, 2], y[:, 0]]).mean(), rtol=1e-12)


def test_merge_shape_mismatch_message():
    a = fm.moments(np.zeros((3, 4)), axis=0)
    b = fm.moments(np.zeros((3, 5)), axis=0)
    with pytest.raises(ValueError, match=r"\(4,\).*\(5,\)"):
        a.merge(b)


def test_reduce_equals_moments_of_whole(rng):
    x = rng.standard_normal((30, 40, 50)) * 2 + 7
    per_elem = fm.moments(x, axis=())
    for axis in (None, 0, 1, (0, 2), -1):
        red = fm.moments(x, axis=(1,)).reduce(axis=axis if axis in (None, 0) else None)
        ref = fm.moments(x, axis=None if axis not in (0,) else (0, 1))
        assert_same_state(red, ref, rel=1e-11)
    r = per_elem.reduce(axis=(0, 2))
    np.testing.assert_allclose(r.var(), x.var(axis=(0, 2)), rtol=1e-11)
    np.testing.assert_array_equal(r.count, 30 * 50)


def test_from_mean_std_round_trip(rng):
    x = rng.standard_normal((5, 300))
    mean, std = x.mean(1), x.std(1, ddof=1)
    m = fm.Moments.from_mean_std(mean, std, 300, ddof=1)
    np.testing.assert_allclose(m.std(ddof=1), std, rtol=1e-14)
    np.testing.assert_allclose(m.var(ddof=0), x.var(1), rtol=1e-13)
    m0 = fm.Moments.from_mean_std(mean, x.std(1), 300, ddof=0)
    np.testing.assert_allclose(m0.m2, m.m2, rtol=1e-13)


def test_from_mean_std_small_groups():
    m = fm.Moments.from_mean_std([1.0, 2.0, 3.0], [np.nan, 5.0, 0.5], [1, 0, 2])
    assert m.m2[0] == 0.0 and m.mean[0] == 1.0  # one value: no spread, NaN std ignored
    assert m.count[1] == 0 and np.isnan(m.mean[1])  # empty group
    assert m.m2[2] == pytest.approx(0.25)
    # one value has no spread whatever ddof the std was computed with
    m = fm.Moments.from_mean_std([1.0, 1.0], [np.nan, 7.0], 1, ddof=0)
    assert m.m2.tolist() == [0.0, 0.0]
    # two or more values whose std had ddof >= count: the spread is unknown
    m = fm.Moments.from_mean_std([0.0, 0.0, 0.0], [np.nan, 1.0, 1.0], [2, 2, 3], ddof=2)
    assert np.isnan(m.m2[0]) and np.isnan(m.m2[1]) and m.m2[2] == 1.0
    mean, std, n = fm.combine_mean_std(1.0, np.nan, 1, 3.0, 0.0, 1, ddof=0)
    assert (mean, std, n) == (2.0, 1.0, 2)  # as np.std([1, 3])
    mean, std, n = fm.combine_mean_std(0.0, np.nan, 2, 0.0, np.nan, 2, ddof=2)
    assert n == 4 and np.isnan(std)


def seed_combine(m1, s1, n1, m2, s2, n2):
    """The seed blog's formula (sample std), valid for n1, n2 >= 1 and n1 + n2 >= 2."""
    n = n1 + n2
    mean = (n1 * m1 + n2 * m2) / n
    var = ((n1 - 1) * s1**2 + (n2 - 1) * s2**2 + n1 * n2 / n * (m1 - m2) ** 2) / (n - 1)
    return mean, math.sqrt(var), n


@settings(max_examples=100, deadline=None)
@given(st.floats(-1e3, 1e3), st.floats(0, 1e3), st.integers(2, 10_000),
       st.floats(-1e3, 1e3), st.floats(0, 1e3), st.integers(2, 10_000))
def test_combine_matches_seed_where_defined(m1, s1, n1, m2, s2, n2):
    mean, std, n = fm.combine_mean_std(m1, s1, n1, m2, s2, n2)
    rm, rs, rn = seed_combine(m1, s1, n1, m2, s2, n2)
    assert n == rn
    assert mean == pytest.approx(rm, rel=1e-12, abs=1e-9)
    assert std == pytest.approx(rs, rel=1e-9, abs=1e-9)


def test_combine_edge_groups():
    # n = 0 is the identity
    mean, std, n = fm.combine_mean_std(5.0, 2.0, 10, 123.0, 99.0, 0)
    assert (mean, std, n) == (5.0, pytest.approx(2.0), 10)
    # n = 1 contributes no spread whatever std says, NaN included
    mean, std, n = fm.combine_mean_std(0.0, 0.0, 1, 2.0, np.nan, 1)
    assert n == 2 and mean == 1.0 and std == pytest.approx(math.sqrt(2.0))
    # total n <= ddof: std is NaN, no ZeroDivisionError
    mean, std, n = fm.combine_mean_std(3.0, 0.0, 1, 0.0, 0.0, 0)
    assert n == 1 and mean == 3.0 and np.isnan(std)
    mean, std, n = fm.combine_mean_std(3.0, 0.0, 0, 0.0, 0.0, 0)
    assert n == 0 and np.isnan(mean) and np.isnan(std)


def test_combine_vectorized(rng):
    groups = [rng.normal(rng.uniform(-5, 5), rng.uniform(0.1, 3), size=s) for s in (1, 2, 50, 7)]
    other = [rng.normal(1, 2, size=s) for s in (3, 1, 1, 40)]
    m1 = np.array([g.mean() for g in groups])
    s1 = np.array([g.std(ddof=1) if g.size > 1 else np.nan for g in groups])
    n1 = np.array([g.size for g in groups])
    m2 = np.array([g.mean() for g in other])
    s2 = np.array([g.std(ddof=1) if g.size > 1 else np.nan for g in other])
    n2 = np.array([g.size for g in other])
    mean, std, n = fm.combine_mean_std(m1, s1, n1, m2, s2, n2)
    for i, (g, h) in enumerate(zip(groups, other)):
        both = np.concatenate([g, h])
        assert n[i] == both.size
        assert mean[i] == pytest.approx(both.mean(), rel=1e-12)
        assert std[i] == pytest.approx(both.std(ddof=1), rel=1e-10)


def test_running_moments_per_feature(rng):
    rm = fm.RunningMoments()
    batches = [rng.normal(2, 3, size=(n, 4)) for n in (1, 17, 250, 3)]
    for b in batches:
        rm.update(b)
    allx = np.concatenate(batches)
    np.testing.assert_array_equal(rm.count, allx.shape[0])
    np.testing.assert_allclose(rm.mean, allx.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rm.var(ddof=1), allx.var(0, ddof=1), rtol=1e-11)
    np.testing.assert_allclose(rm.std(), allx.std(0), rtol=1e-11)
    other = fm.RunningMoments().update(rng.normal(size=(10, 4)))
    rm.merge(other)
    assert rm.count[0] == allx.shape[0] + 10
    assert fm.RunningMoments().count == 0


def test_state_immutable_pickle_index(rng):
    m = fm.moments(rng.standard_normal((100, 3)), axis=0)
    with pytest.raises(AttributeError):
        m.mean = 3
    with pytest.raises(ValueError):
        m.mean[0] = 1.0
    again = pickle.loads(pickle.dumps(m))
    assert_same_state(again, m, rel=0)
    assert type(again) is fm.Moments
    sub = m[1]
    assert sub.shape == () and sub.mean == m.mean[1]
    assert m[1:].shape == (2,)


def test_moments_constructor_validates_and_copies():
    count = np.array([1, 2])
    mean = np.array([0.5, 1.0])
    m = fm.Moments(count, mean, [0.0, 2.0])
    mean[0] = 99.0
    assert m.mean[0] == 0.5 and count.flags.writeable
    with pytest.raises(ValueError, match="non-negative"):
        fm.Moments([-1], [0.0], [0.0])
    with pytest.raises(ValueError, match="m2"):
        fm.Moments([3], [0.0], [-1.0])
    with pytest.raises(ValueError, match="mismatched shapes"):
        fm.Moments([1, 2, 3], [0.0, 1.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="whole"):
        fm.Moments([1.5], [0.0], [0.0])


def test_scalar_inputs_give_0d_states():
    m = fm.Moments.from_mean_std(1.0, 2.0, 5)
    assert m.shape == () and m.var(ddof=1) == pytest.approx(4.0)
    mean, std, n = fm.combine_mean_std(1.0, 2.0, 5, 1.0, 2.0, 5)
    assert np.ndim(mean) == 0 and np.ndim(std) == 0 and np.ndim(n) == 0
    assert f"{std:.3f}" == f"{math.sqrt(4.0 * 8 / 9):.3f}"


def test_reduce_with_empty_kept_axes():
    m = fm.moments(np.zeros((2, 0, 3)), axis=2)  # shape (2, 0)
    r = m.reduce(axis=0)
    assert r.shape == (0,)
    e = fm.moments(np.zeros((0, 4)), axis=0).reduce()
    assert e.count == 0 and np.isnan(e.mean)


@pytest.mark.parametrize("ddof", [0, 1, 2.5])
def test_combine_mean_std_fused_equals_states(ddof):
    """The one-pass combine gives bit for bit what building the two states and
    merging them gives, edge cases included (empty groups, single values, NaN
    stds, counts at most ddof, broadcasting, int32 counts)."""
    rng = np.random.default_rng(7)
    n = 5000
    m1, m2 = rng.normal(size=n) * 1e3, rng.normal(size=(3, 1)) * 2
    s1 = np.where(rng.random(n) < 0.05, np.nan, rng.random(n) * 4)
    s2 = rng.random((3, 1))
    n1 = rng.integers(0, 5, n).astype(np.int32)
    n2 = rng.integers(0, 4, (3, 1))
    mean, std, cnt = fm.combine_mean_std(m1, s1, n1, m2, s2, n2, ddof=ddof)
    a = fm.Moments.from_mean_std(m1, s1, n1, ddof=ddof)
    b = fm.Moments.from_mean_std(m2, s2, n2, ddof=ddof)
    ref = a.merge(b)
    np.testing.assert_array_equal(cnt, ref.count)
    np.testing.assert_array_equal(mean, ref.mean)
    np.testing.assert_array_equal(std, ref.std(ddof))
    assert mean.shape == std.shape == cnt.shape == (3, n)


@pytest.mark.parametrize("kind", ["summary", "moments"])
def test_fold_equals_merging_one_at_a_time(rng, kind):
    """State._fold (one backend call) gives bit for bit the running total of
    merges in order, NaN/Inf, empty states and float32 data included."""
    n, k = 7, 13
    states = []
    for j in range(k):
        arrays = []
        for i in range(n):
            a = rng.standard_normal(int(rng.integers(0, 40))) * 10.0 ** int(rng.integers(-3, 6)) + 1e6 * (i - 3)
            if a.size and rng.random() < 0.2:
                a[int(rng.integers(a.size))] = [np.nan, np.inf, -np.inf][j % 3]
            arrays.append(a.astype(np.float32) if (i + j) % 2 else a)
        s = fm.summarize_each(arrays)
        states.append(s if kind == "summary" else s.moments)
    total = states[0]
    for s in states[1:]:
        total = total.merge(s)
    folded = type(states[0])._fold(states)
    assert type(folded) is type(total)
    for a, b in zip(total.fields, folded.fields):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert type(states[0])._fold(states[:1]) is states[0]


def test_fold_checks_like_merging_one_at_a_time():
    """Review findings: a tally that wraps past 2**63 mid-fold raises even if
    later merges would bring it back positive; states that merge refuses
    (histogram with none, orders 2 and 4) or that are not plain Moments are
    folded one at a time, with merge's results and errors."""
    big = int(0.7 * 2**63)
    for field in ("n_nonfinite", "n_zero"):
        kw = dict(count=1, mean=0.0, m2=0.0, min=0.0, max=0.0, n_nonfinite=0, n_zero=0)
        kw[field] = big
        s = fm.Summary.from_fields(**kw)
        with pytest.raises(ValueError):
            s._merge(s, False)._merge(s, False)
        with pytest.raises(ValueError):
            fm.Summary._fold([s, s, s])
    x = [np.arange(5.0), np.ones(3)]
    plain, hist = fm.summarize_each(x), fm.summarize_each(x, histogram=True)
    with pytest.raises(ValueError, match="histogram"):
        fm.Summary._fold([plain, hist])
    m4 = fm.moments(np.arange(6.0).reshape(2, 3), axis=1, order=4)
    want = m4._merge(m4, False)
    got = fm.Moments._fold([m4, m4])
    assert type(got) is type(want)
    for a, b in zip(want.fields, got.fields):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        fm.Moments._fold([fm.moments(np.arange(6.0).reshape(2, 3), axis=1), m4])
