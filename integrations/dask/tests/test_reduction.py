"""fastmoments_dask on the threaded scheduler, checked against NumPy in float64."""

from __future__ import annotations

import pickle
import warnings

import dask
import dask.array as da
import numpy as np
import pytest

import fastmoments
import fastmoments_dask as fmd

RTOL = 1e-12


def close(actual, desired, scale=None, rtol=RTOL):
    """Relative error against ``desired``, or against ``scale`` where given.

    Means near zero have no useful relative error of their own: they are
    compared relative to the data's spread (what a mean's error is made of).
    """
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(desired))
    ok = ~np.isnan(desired)
    ref = np.abs(desired) if scale is None else np.abs(desired) + np.abs(scale)
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf
        err = np.where(actual == desired, 0.0, np.abs(actual - desired))[ok]
    assert np.all(err <= rtol * ref[ok]), f"max rel err {np.max(err / np.maximum(ref[ok], 1e-300))}"


def check_moments(m, x, axis, ddof=0, skipna=False):
    assert isinstance(m, fastmoments.Moments)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if skipna:
            n = np.sum(~np.isnan(x), axis=axis)
            mean = np.nanmean(x, axis=axis)
            var = np.nanvar(x, axis=axis)
        else:
            n = np.sum(np.ones_like(x, dtype=np.int64), axis=axis)
            mean = np.mean(x, axis=axis, dtype=np.float64)
            var = np.var(x, axis=axis, dtype=np.float64)
    np.testing.assert_array_equal(m.count, n)
    close(m.mean, mean, scale=np.sqrt(var))
    close(m.var(), var)


RNG = np.random.default_rng(20240601)
X3 = RNG.normal(3.0, 2.0, size=(120, 17, 6))

CHUNKINGS = [
    "one chunk",
    (120, 17, 6),
    (7, 17, 6),
    (50, 5, 6),
    (13, 4, 5),
    (1, 17, 3),
    ((60, 0, 60), (10, 7), (1, 5)),  # a zero-size chunk
    ((1, 119), (16, 1), (6,)),
]
AXES = [None, 0, 1, 2, -1, (0, 1), (0, 2), (1, 2), (0, 1, 2)]


@pytest.fixture(autouse=True)
def threaded():
    with dask.config.set(scheduler="threads"):
        yield


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=str)
@pytest.mark.parametrize("axis", AXES, ids=str)
def test_moments_match_numpy(chunks, axis):
    d = da.from_array(X3, chunks=X3.shape if chunks == "one chunk" else chunks)
    lazy = fmd.moments(d, axis=axis)
    m = lazy.compute()
    check_moments(m, X3, axis)
    assert m.shape == lazy.shape == np.mean(X3, axis=axis).shape


@pytest.mark.parametrize("split_every", [2, 3, 8, {0: 2, 1: 3}])
@pytest.mark.parametrize("axis", [None, 0, (0, 2)], ids=str)
def test_split_every_trees(split_every, axis):
    d = da.from_array(X3, chunks=(5, 3, 2))  # 24 x 6 x 3 chunks: a deep tree
    m = fmd.moments(d, axis=axis, split_every=split_every).compute()
    check_moments(m, X3, axis)


@pytest.mark.parametrize("offset, rtol", [(1e3, RTOL), (1e8, 1e-9)])
def test_offset_data_and_many_chunks(offset, rtol):
    # A large offset is where a sum of squares loses everything (relative error
    # 1.0 at 1e8). Merging block means costs about ulp(offset) / sigma, which
    # at 1e8 is above 1e-12 (REFERENCES.md measures 2e-11 for a pairwise tree),
    # so that case is held to 1e-9.
    x = offset + RNG.random(20_000)
    m = fmd.moments(da.from_array(x, chunks=333), split_every=2).compute()
    np.testing.assert_array_equal(m.count, x.size)
    close(m.mean, x.mean())
    close(m.var(), x.var(), rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8, np.bool_, np.float16])
def test_dtypes(dtype):
    x = (RNG.random((300, 4)) * 100).astype(dtype)
    m = fmd.moments(da.from_array(x, chunks=(41, 3)), axis=0).compute()
    check_moments(m, x.astype(np.float64), 0)


@pytest.mark.parametrize("axis", [None, 0, 1], ids=str)
def test_skipna(axis):
    x = RNG.normal(size=(200, 9))
    x[RNG.random(x.shape) < 0.1] = np.nan
    x[:, 4] = np.nan  # a column with nothing left
    d = da.from_array(x, chunks=(33, 4))
    check_moments(fmd.moments(d, axis=axis, skipna=True).compute(), x, axis, skipna=True)
    check_moments(fmd.moments(d, axis=axis).compute(), x, axis)  # NaN propagates


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)], ids=str)
def test_summarize_matches_numpy(axis):
    x = RNG.normal(size=(150, 8)) * 10
    x[RNG.random(x.shape) < 0.05] = np.nan
    x[3, 2] = np.inf
    x[7, 5] = -np.inf
    x[RNG.random(x.shape) < 0.05] = 0.0
    d = da.from_array(x, chunks=(23, 3))
    lazy = fmd.summarize(d, axis=axis, split_every=2)
    s = lazy.compute()
    assert isinstance(s, fastmoments.Summary)
    finite = np.isfinite(x)
    xf = np.where(finite, x, np.nan)
    np.testing.assert_array_equal(s.count, finite.sum(axis=axis))
    np.testing.assert_array_equal(s.n_nonfinite, (~finite).sum(axis=axis))
    np.testing.assert_array_equal(s.n_zero, (x == 0).sum(axis=axis))
    var = np.nanvar(xf, axis=axis)
    close(s.mean, np.nanmean(xf, axis=axis), scale=np.sqrt(var))
    close(s.var(), var)
    np.testing.assert_array_equal(s.min, np.nanmin(xf, axis=axis))
    np.testing.assert_array_equal(s.max, np.nanmax(xf, axis=axis))
    # lazy fields are dask arrays with the right values
    np.testing.assert_array_equal(lazy.max.compute(), np.nanmax(xf, axis=axis))
    np.testing.assert_array_equal(lazy.n_nonfinite.compute(), (~finite).sum(axis=axis))
    close(lazy.norm().compute(), np.sqrt(np.nansum(xf**2, axis=axis)))


def test_lazy_fields_are_dask_arrays():
    d = da.from_array(X3, chunks=(13, 4, 5))
    lazy = fmd.moments(d, axis=0)
    for arr in (lazy.count, lazy.mean, lazy.m2, lazy.var(ddof=1), lazy.std(ddof=1)):
        assert isinstance(arr, da.Array)
        assert arr.shape == (17, 6)
        assert arr.chunks == lazy.chunks
    assert lazy.count.dtype == np.int64
    close(lazy.var(ddof=1).compute(), X3.var(axis=0, ddof=1))
    close(lazy.std(ddof=1).compute(), X3.std(axis=0, ddof=1))
    # and compose with other dask work
    z = ((d - lazy.mean) / lazy.std()).compute()
    close(z, (X3 - X3.mean(0)) / X3.std(0), scale=1.0)


def test_dask_compute_persist_and_pickle():
    d = da.from_array(X3, chunks=(13, 4, 5))
    lazy = fmd.moments(d, axis=(0, 2))
    m, total = dask.compute(lazy, d.sum())
    check_moments(m, X3, (0, 2))
    close(total, X3.sum())
    p = lazy.persist()
    assert isinstance(p, fmd.LazyMoments)
    check_moments(p.compute(), X3, (0, 2))
    check_moments(pickle.loads(pickle.dumps(lazy)).compute(), X3, (0, 2))
    assert dask.base.tokenize(lazy) == dask.base.tokenize(fmd.moments(d, axis=(0, 2)))
    assert dask.base.tokenize(lazy) != dask.base.tokenize(fmd.moments(d, axis=0))


def test_unknown_chunk_sizes():
    x = RNG.normal(size=5000)
    d = da.from_array(x, chunks=700)
    keep = d[d > 0]  # chunk sizes unknown until computed
    assert np.isnan(keep.chunks[0][0])
    check_moments(fmd.moments(keep).compute(), x[x > 0], None)


def test_empty_array():
    m = fmd.moments(da.zeros((0, 3), chunks=(1, 3)), axis=0).compute()
    np.testing.assert_array_equal(m.count, [0, 0, 0])
    assert np.all(np.isnan(m.mean))


def test_numpy_input_is_wrapped():
    m = fmd.moments(X3, axis=1).compute()
    check_moments(m, X3, 1)


def test_bad_input():
    d = da.from_array(X3, chunks=10)
    with pytest.raises(TypeError, match="complex"):
        fmd.moments(d.astype(np.complex128))
    with pytest.raises(np.exceptions.AxisError):
        fmd.moments(d, axis=3)
    with pytest.raises(ValueError, match="repeated"):
        fmd.moments(d, axis=(0, -3))
    with pytest.raises(TypeError, match="axis"):
        fmd.moments(d, axis=1.5)
    with pytest.raises(ValueError, match="split_every"):
        fmd.moments(d, split_every=1)


def test_split_every_dicts_are_checked():
    # Dask takes a dict's fan-ins as given: 1 kept only the last chunk's
    # statistics, and a negative axis was ignored.
    x = np.arange(20.0)
    d = da.from_array(x, chunks=7)
    for bad, err in [({0: 1}, ValueError), ({0: 0}, ValueError), ({0: True}, TypeError),
                     ({0: 2.5}, TypeError), ({"0": 4}, TypeError), ({1: 4}, np.exceptions.AxisError),
                     ({0: 4, -1: 4}, ValueError), (True, TypeError)]:
        with pytest.raises(err, match="split_every|axis"):
            fmd.moments(d, split_every=bad)
    m = fmd.moments(d, split_every={-1: 2}).compute()
    np.testing.assert_array_equal(m.count, 20)
    close(m.mean, x.mean())
    close(m.var(), x.var())
    # the negative axis is honoured: the same tree as its positive twin, deeper than the default
    tasks = lambda se: len(dict(fmd.moments(d, split_every=se).__dask_graph__()))  # noqa: E731
    assert tasks({-1: 2}) == tasks({0: 2}) == tasks(2) > tasks(None)


@pytest.mark.gpu
def test_cupy_chunks():
    cp = pytest.importorskip("cupy")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception:  # pragma: no cover - no device
        pytest.skip("no CUDA device")
    x = RNG.normal(size=(4000, 5))
    d = da.from_array(cp.asarray(x), chunks=(333, 2))
    lazy = fmd.moments(d, axis=0)
    assert type(lazy.mean._meta).__module__.startswith("cupy")
    m = lazy.compute()
    assert type(m.mean).__module__.startswith("cupy")
    check_moments(m.to_numpy(), x, 0)
    s = fmd.summarize(d, axis=None).compute().to_numpy()
    np.testing.assert_array_equal(s.min, x.min())


def test_masked_arrays_rejected_at_graph_construction():
    x = np.array([1.0, 2.0, np.nan, 4.0, 100.0])
    d = da.ma.masked_greater(da.from_array(x, chunks=2), 50)
    for f in (fmd.moments, fmd.summarize):
        with pytest.raises(TypeError, match="masked"):
            f(d)
    # what the message suggests leaves the masked values out
    filled = d.map_blocks(np.ma.filled, np.nan)
    m = fmd.moments(filled, skipna=True).compute()
    assert m.count == 3 and m.mean == pytest.approx(7 / 3, rel=1e-15)


@pytest.mark.parametrize("axis", [None, 0, (0, 2), -1])
def test_keepdims(axis):
    x = np.random.default_rng(1).normal(size=(40, 6, 5))
    d = da.from_array(x, chunks=(7, 4, 2))
    for f in (fmd.moments, fmd.summarize):
        r = f(d, axis=axis, keepdims=True)
        got = r.compute()
        want = np.var(x, axis=axis, keepdims=True)
        assert got.shape == want.shape
        np.testing.assert_allclose(got.var(), want, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(r.var().compute()), want, rtol=1e-12)
