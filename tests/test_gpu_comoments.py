"""comoments / CoMoments / RunningCoMoments on CuPy arrays against the CPU wing.

Needs CuPy and a CUDA device, or the CUDA emulator's stand-in CuPy (CI=true
or FASTMOMENTS_GPU_EMULATOR=1, see tests/gpu_emu/activate.py); skipped
otherwise, with the reason. The GPU path is the CPU's array code on CuPy
arrays (a cuBLAS product per block), so results agree to rounding.
"""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

import fastmoments as fm

from gpu_skip import REASON, cupy, pytestmark  # noqa: F401 (the module's marks)

C = sys.modules["fastmoments.covariance"]


def assert_close(gpu_state, cpu_state, rtol=1e-12):
    assert type(gpu_state) is fm.CoMoments
    for f in gpu_state.fields:
        assert isinstance(f, cupy.ndarray), type(f)
    host = gpu_state.to_numpy()
    assert int(host.count) == int(cpu_state.count)
    assert host.count.dtype == np.int64 and host.count.shape == ()
    np.testing.assert_allclose(host.sum_weights, cpu_state.sum_weights, rtol=1e-14)
    np.testing.assert_allclose(host.sum_weights2, cpu_state.sum_weights2, rtol=1e-14)
    scale = np.sqrt(np.abs(np.outer(np.diag(cpu_state.c2), np.diag(cpu_state.c2))))
    np.testing.assert_array_equal(np.isnan(host.c2), np.isnan(cpu_state.c2))
    np.testing.assert_array_equal(np.isnan(host.mean), np.isnan(cpu_state.mean))
    ok = ~np.isnan(cpu_state.c2)
    assert np.all(np.abs(host.c2 - cpu_state.c2)[ok] <= rtol * scale[ok] + 1e-300)
    okm = ~np.isnan(cpu_state.mean)
    np.testing.assert_allclose(host.mean[okm], cpu_state.mean[okm], rtol=1e-14, atol=1e-14)
    np.testing.assert_array_equal(host.c2, host.c2.T)


@pytest.fixture(params=["one block", "many blocks"])
def blocks(request, monkeypatch):
    if request.param == "many blocks":
        monkeypatch.setattr(C, "BLOCK_BYTES_GPU", 1)
        monkeypatch.setattr(C, "BLOCK_ROWS_MIN", 64)
    return request.param


@pytest.mark.parametrize("dtype", ["float64", "float32", "int32", "bool"])
def test_against_cpu(dtype, blocks):
    rng = np.random.default_rng(1)
    if dtype == "bool":
        x = rng.random((1000, 6)) < 0.4
    elif dtype == "int32":
        x = rng.integers(-50, 50, (1000, 6)).astype(dtype)
    else:
        x = (rng.standard_normal((1000, 6)) * [1, 2, 3, 4, 5, 6] + 1e6).astype(dtype)
    g = fm.comoments(cupy.asarray(x))
    assert_close(g, fm.comoments(x))
    cov = g.cov()
    assert isinstance(cov, cupy.ndarray)
    np.testing.assert_allclose(cov.get(), np.cov(x.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g.corr().get(), np.corrcoef(x.astype(np.float64), rowvar=False),
                               rtol=1e-10, atol=1e-12)


def test_weights_skipna_axis(blocks):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((700, 4)) + 100
    x[[5, 300], [1, 2]] = np.nan
    w = rng.random(700)
    w[[7, 8, 9]] = 0.0
    x[8] = np.inf  # weight 0: left out
    gx, gw = cupy.asarray(x), cupy.asarray(w)
    assert_close(fm.comoments(gx, weights=gw, skipna=True), fm.comoments(x, weights=w, skipna=True))
    assert_close(fm.comoments(gx, weights=gw), fm.comoments(x, weights=w))  # NaN columns, as np.cov
    assert_close(fm.comoments(gx.T, axis=1, skipna=True), fm.comoments(x.T, axis=1, skipna=True))


def test_merge_running_pickle():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 3)) * 4 + 1e7
    gx = cupy.asarray(x)
    whole = fm.comoments(x)
    a, b = fm.comoments(gx[:250]), fm.comoments(gx[250:])
    assert_close(a.merge(b), whole, rtol=1e-9)
    assert_close(fm.merge(a, b), whole, rtol=1e-9)
    r = fm.RunningCoMoments()
    for part in (gx[:100], gx[100:101], gx[101:]):
        r.update(part)
    assert_close(r.state, whole)
    assert isinstance(r.cov(), cupy.ndarray)
    p = pickle.loads(pickle.dumps(a))
    assert isinstance(p.c2, cupy.ndarray)
    np.testing.assert_array_equal(p.c2.get(), a.c2.get())
    m = a.moments()
    assert isinstance(m.m2, cupy.ndarray)
    np.testing.assert_allclose(m.var().get(), x[:250].var(axis=0), rtol=1e-10)
    e = fm.CoMoments.empty(3, like=gx)
    assert isinstance(e.c2, cupy.ndarray) and int(e.merge(a).count) == 250


def test_errors():
    gx = cupy.asarray(np.zeros((4, 2)))
    with pytest.raises(TypeError, match="cannot mix NumPy and CuPy"):
        fm.comoments(gx, weights=np.ones(4))
    with pytest.raises(ValueError, match="negative"):
        fm.comoments(gx, weights=cupy.asarray([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="2-D"):
        fm.comoments(cupy.zeros(3))
    with pytest.raises(TypeError, match="cannot mix NumPy and CuPy"):
        fm.comoments(gx).merge(fm.comoments(np.zeros((4, 2))))
    r = fm.RunningCoMoments().update(gx)
    with pytest.raises(TypeError, match="cannot mix NumPy and CuPy"):
        r.update(np.zeros((4, 2)))
