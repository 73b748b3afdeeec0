"""Bad input gets a clear TypeError/ValueError naming the problem."""

import numpy as np
import pytest

import fastmoments as fm


@pytest.mark.parametrize("x,word", [
    (np.array(["a", "b"]), "str"),
    (np.array([1 + 2j]), "complex"),
    (np.array([object()], dtype=object), "object"),
    (np.array(["2020-01-01"], dtype="datetime64[D]"), "datetime"),
    (np.zeros(2, dtype=[("a", "f8")]), "structured"),
])
def test_bad_dtypes(x, word):
    for f in (fm.moments, fm.summarize, lambda a: fm.summarize_each([a])):
        with pytest.raises(TypeError, match=word):
            f(x)


def test_axis_errors():
    x = np.zeros((3, 4))
    with pytest.raises(np.exceptions.AxisError):
        fm.moments(x, axis=2)
    with pytest.raises(np.exceptions.AxisError):
        fm.moments(x, axis=-3)
    with pytest.raises(ValueError, match="repeated"):
        fm.moments(x, axis=(0, 0))
    with pytest.raises(TypeError, match="axis"):
        fm.moments(x, axis=1.5)
    with pytest.raises(np.exceptions.AxisError):
        fm.moments(x, axis=0).reduce(axis=1)


def test_merge_type_errors():
    m = fm.moments([1.0, 2.0])
    s = fm.summarize([1.0, 2.0])
    with pytest.raises(TypeError, match="Summary"):
        m.merge(s)
    with pytest.raises(TypeError, match="Moments or Summary"):
        fm.merge(3, m)
    with pytest.raises(TypeError):
        fm.RunningMoments().merge("x")


def test_ragged_and_mismatched():
    with pytest.raises(ValueError):
        fm.moments([[1, 2], [3]])
    with pytest.raises(ValueError, match=r"shapes \(2,\) and \(3,\)"):
        fm.combine_mean_std([1.0, 2.0], [1.0, 1.0], [2, 2], [1.0, 2.0, 3.0], 1.0, 2)
    with pytest.raises(ValueError, match="non-negative"):
        fm.combine_mean_std(1.0, 1.0, -2, 1.0, 1.0, 2)
    with pytest.raises(ValueError, match="std"):
        fm.Moments.from_mean_std(1.0, -1.0, 5)
    with pytest.raises(TypeError, match="sequence"):
        fm.summarize_each(np.float64(3.0))


def test_summary_not_constructible_directly():
    with pytest.raises(TypeError, match="summarize"):
        fm.Summary(1, 2, 3)


def test_masked_arrays_rejected_not_unmasked():
    x = np.ma.array([1.0, 100.0, 3.0], mask=[0, 1, 0])
    for f in (fm.moments, fm.summarize, lambda a: fm.summarize_each([a]), fm.RunningMoments().update):
        with pytest.raises(TypeError, match="masked"):
            f(x)
    # what the message suggests gives the masked statistics
    assert fm.moments(x.compressed()).mean == x.mean()
    assert fm.moments(x.filled(np.nan), skipna=True).var() == pytest.approx(x.var(), rel=1e-15)


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="longdouble is float64 here")
def test_longdouble_rejected_on_every_path():
    x = np.ones((100, 3), np.longdouble)
    calls = [fm.moments, fm.summarize, lambda a: fm.moments(a, axis=0), lambda a: fm.moments(a, axis=()),
             lambda a: fm.summarize_each([a])]
    for f in calls:
        with pytest.raises(TypeError, match="longdouble"):
            f(x)


@pytest.mark.parametrize("count", [np.inf, -np.inf, np.nan, 1e30, 2.0**63, np.uint64(2**63 + 5)])
def test_counts_out_of_int64_range_rejected(count):
    with pytest.raises(ValueError, match="count"):
        fm.Moments(count, 0.0, 0.0)
    with pytest.raises(ValueError, match="count"):
        fm.combine_mean_std(1.0, 1.0, count, 3.0, 1.0, 1)


def test_largest_counts_still_accepted():
    assert fm.Moments(np.uint64(2**63 - 1), 0.0, 0.0).count == 2**63 - 1
    assert fm.Moments(2.0**62, 0.0, 0.0).count == 2**62
    assert fm.Moments(np.uint8(255), 0.0, 0.0).count == 255


def test_from_fields_validates():
    with pytest.raises(ValueError, match="non-negative"):
        fm.Moments.from_fields(count=-1, mean=2.0, m2=0.0)
    with pytest.raises(ValueError, match="m2"):
        fm.Moments.from_fields(count=3, mean=2.0, m2=-5.0)
    with pytest.raises(ValueError, match="whole"):
        fm.Moments.from_fields(count=2.7, mean=2.0, m2=1.0)
    with pytest.raises(TypeError, match="count"):
        fm.Moments.from_fields(count="a", mean=2.0, m2=1.0)
    with pytest.raises(TypeError, match="mean"):
        fm.Moments.from_fields(count=1, mean="a", m2=1.0)
    s = fm.summarize(np.array([1.0, np.inf, 0.0]))
    with pytest.raises(ValueError, match="n_zero"):
        fm.Summary.from_fields(**{**{f: getattr(s, f) for f in s._fields}, "n_zero": -1})
    again = fm.Summary.from_fields(**{f: getattr(s, f) for f in s._fields})
    assert again.n_nonfinite == 1 and again.n_zero == 1 and again.max == 1.0


def test_shape_mismatch_names_the_right_arguments():
    with pytest.raises(ValueError, match=r"count \(\), mean \(2,\), std \(3,\)"):
        fm.combine_mean_std([1.0, 2.0], [1.0, 1.0, 1.0], 3, 0.0, 1.0, 2)


def test_running_moments_keeps_its_shape(rng):
    x = rng.standard_normal((100, 3))
    rm = fm.RunningMoments().update(x)
    for bad in (x[:5, :1], x[:5, 0], x[:5, :2]):
        with pytest.raises(ValueError, match="shape"):
            rm.update(bad)
    with pytest.raises(ValueError, match="shape"):
        rm.merge(fm.moments(x[:, 0]))
    assert rm.count.tolist() == [100, 100, 100]  # nothing merged by the failed calls
    rm.merge(fm.RunningMoments())  # an empty stream is the identity
    np.testing.assert_allclose(rm.var(), x.var(0), rtol=1e-13)


def test_iterating_states():
    with pytest.raises(TypeError, match="0-d"):
        list(fm.moments(np.ones(3)))
    m = fm.moments(np.arange(12.0).reshape(4, 3), axis=0)
    means = [s.mean for s in m]
    assert means == [4.5, 5.5, 6.5]


def test_masks_inside_lists_and_state_arguments_rejected():
    ma = np.ma.array([1.0, 99.0], mask=[0, 1])
    calls = [lambda: fm.moments([ma]), lambda: fm.summarize([[ma, ma]]),
             lambda: fm.Moments.from_mean_std(ma, 1.0, 5), lambda: fm.Moments(np.ma.array([1, 5], mask=[0, 1]), 1.0, 0.0),
             lambda: fm.combine_mean_std(np.ma.array([1.0], mask=[1]), 0.5, 2, 3.0, 1.0, 4),
             lambda: fm.Moments.from_fields(count=2, mean=ma, m2=0.0)]
    for f in calls:
        with pytest.raises(TypeError, match="masked"):
            f()
    # plain lists of numbers and of unmasked arrays still work
    assert fm.moments([1.0, 2.0, 3.0]).mean == 2.0
    assert fm.moments([np.array([1.0, 2.0]), np.array([3.0, 4.0])]).mean == 2.5


def test_counts_passing_int64_are_an_error_not_a_wrap():
    big = fm.Moments(2**62, 1.0, 0.0)
    with pytest.raises(ValueError, match="2\\*\\*63"):
        big.merge(big)
    with pytest.raises(ValueError, match="2\\*\\*63"):
        fm.combine_mean_std(1.0, 0.5, 2**62, 3.0, 1.0, 2**62)
    with pytest.raises(ValueError, match="2\\*\\*63"):
        fm.Moments([2**62] * 3, 1.0, 0.0).reduce()
    s = fm.summarize(np.array([np.nan, 1.0]))
    huge = fm.Summary.from_fields(**{**{f: getattr(s, f) for f in s._fields}, "n_nonfinite": 2**62 + 1})
    with pytest.raises(ValueError, match="2\\*\\*63"):
        huge.merge(huge)
    # right below the limit, exact
    assert fm.Moments([2**61] * 3, 1.0, 0.0).reduce().count == 3 * 2**61
    assert big.merge(fm.Moments(2**62 - 1, 1.0, 0.0)).count == 2**63 - 1


def test_from_fields_empties_states_of_no_values():
    s = fm.Summary.from_fields(count=[0], mean=[5.0], m2=[3.0], min=[1.0], max=[2.0], n_nonfinite=[0], n_zero=[0])
    assert np.isnan(s.mean[0]) and s.m2[0] == 0 and np.isnan(s.min[0]) and np.isnan(s.max[0])
    merged = s.merge(fm.summarize(np.array([[10.0, 20.0]]), axis=1))
    assert merged.min[0] == 10.0 and merged.max[0] == 20.0 and merged.mean[0] == 15.0
    m = fm.Moments.from_fields(count=[0, 0], mean=[5.0, 5.0], m2=[3.0, 3.0]).reduce()
    assert m.count == 0 and np.isnan(m.mean) and m.m2 == 0


def test_ddof_must_be_a_number():
    m = fm.moments(np.arange(5.0))
    for bad in ("1", None, True, [1]):
        with pytest.raises(TypeError, match="ddof"):
            m.var(ddof=bad)
        with pytest.raises(TypeError, match="ddof"):
            fm.combine_mean_std(1.0, 0.5, 2, 3.0, 1.0, 4, ddof=bad)
    assert m.var(ddof=np.int64(1)) == np.var(np.arange(5.0), ddof=1)
    assert m.var(ddof=0.5) == np.var(np.arange(5.0), ddof=0.5)
