"""fastmoments_dask.comoments: one CoMoments per chunk of observations, tree-merged."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

import fastmoments
import fastmoments_dask as fmd

RNG = np.random.default_rng(19)
X = RNG.standard_normal((1000, 7)) * np.arange(1, 8) + 1e4
W = RNG.random(1000)


def close_state(got, x, w=None, skipna=False, rtol=1e-11):
    want = fastmoments.comoments(x, weights=w, skipna=skipna)
    assert isinstance(got, fastmoments.CoMoments)
    assert int(got.count) == int(want.count)
    np.testing.assert_allclose(got.sum_weights, want.sum_weights, rtol=1e-13)
    np.testing.assert_allclose(got.sum_weights2, want.sum_weights2, rtol=1e-13)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-13)
    scale = np.sqrt(np.outer(np.diag(want.c2), np.diag(want.c2)))
    assert np.all(np.abs(got.c2 - want.c2) <= rtol * scale)


@pytest.mark.parametrize("chunks", [(1000, 7), (100, 7), (37, 3), (333, 2)])
@pytest.mark.parametrize("split_every", [None, 2, 3])
def test_against_core_and_np_cov(chunks, split_every):
    x = da.from_array(X, chunks=chunks)
    lazy = fmd.comoments(x, split_every=split_every)
    state = lazy.compute()
    close_state(state, X)
    np.testing.assert_allclose(state.cov(), np.cov(X, rowvar=False), rtol=1e-10)
    np.testing.assert_allclose(lazy.corr().compute(), np.corrcoef(X, rowvar=False), rtol=1e-10, atol=1e-13)
    (again,) = dask.compute(lazy)
    np.testing.assert_array_equal(again.c2, state.c2)  # a fixed tree: the same bits


def test_axis_1_and_weights():
    xt = da.from_array(X.T, chunks=(3, 150))
    close_state(fmd.comoments(xt, axis=1).compute(), X)
    close_state(fmd.comoments(xt, axis=-1, weights=W).compute(), X, W)
    x = da.from_array(X, chunks=(128, 7))
    close_state(fmd.comoments(x, weights=da.from_array(W, chunks=300)).compute(), X, W)  # rechunked
    w_int = RNG.integers(0, 4, 1000)
    s = fmd.comoments(x, weights=w_int).compute()
    np.testing.assert_allclose(s.cov(), np.cov(X, rowvar=False, fweights=w_int), rtol=1e-10)
    np.testing.assert_allclose(s.cov(weights="reliability"), np.cov(X, rowvar=False, aweights=W * 0 + w_int),
                               rtol=1e-10)


def test_skipna_and_nan():
    y = X.copy()
    y[[3, 400, 999], [0, 5, 2]] = np.nan
    x = da.from_array(y, chunks=(90, 7))
    close_state(fmd.comoments(x, skipna=True).compute(), y, skipna=True)
    s = fmd.comoments(x).compute()
    assert np.isnan(s.c2[0]).all() and not np.isnan(s.c2[1, 1])


def test_unknown_chunks_with_aligned_weights():
    x = da.from_array(X, chunks=(100, 7))
    keep = da.from_array(X[:, 0] > 1e4, chunks=100)
    xs = x[keep]
    ws = da.from_array(W, chunks=100)[keep]
    mask = X[:, 0] > 1e4
    close_state(fmd.comoments(xs, weights=ws).compute(), X[mask], W[mask])
    close_state(fmd.comoments(xs).compute(), X[mask])
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fmd.comoments(xs, weights=W[mask])


def test_empty_and_lists():
    e = fmd.comoments(da.zeros((0, 3), chunks=(10, 3))).compute()
    assert int(e.count) == 0 and np.isnan(e.mean).all()
    close_state(fmd.comoments(X[:20].tolist()).compute(), X[:20])


def test_errors():
    x = da.from_array(X, chunks=(100, 7))
    with pytest.raises(ValueError, match=r"2-D x .* got shape \(1000,\)"):
        fmd.comoments(x[:, 0])
    with pytest.raises(TypeError, match="complex"):
        fmd.comoments(x.astype(complex))
    with pytest.raises(TypeError, match="axis must be 0 or 1"):
        fmd.comoments(x, axis=None)
    with pytest.raises(np.exceptions.AxisError):
        fmd.comoments(x, axis=2)
    with pytest.raises(ValueError, match=r"weights of shape \(999,\) do not fit x of 1000 observations"):
        fmd.comoments(x, weights=W[:999])
    with pytest.raises(ValueError, match="negative"):
        fmd.comoments(x, weights=-W)
    with pytest.raises(TypeError, match="weights: unsupported dtype complex"):
        fmd.comoments(x, weights=W.astype(complex))
    with pytest.raises(ValueError, match="negative"):  # Dask weights: when computed
        fmd.comoments(x, weights=da.from_array(-W, chunks=100)).compute()
    with pytest.raises(ValueError, match="split_every must be at least 2"):
        fmd.comoments(x, split_every=1)


@pytest.mark.gpu
def test_cupy_chunks():
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as e:  # a broken CUDA install
        pytest.skip(f"no usable CUDA device: {e}")
    x = da.from_array(cp.asarray(X), chunks=(128, 7), asarray=False)
    w = da.from_array(cp.asarray(W), chunks=128, asarray=False)
    s = fmd.comoments(x, weights=w).compute()
    assert type(s.c2).__module__.startswith("cupy")
    close_state(s.to_numpy(), X, W)
    with pytest.raises(TypeError, match="the chunks are CuPy arrays and the weights NumPy"):
        fmd.comoments(x, weights=W)
