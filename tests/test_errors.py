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
