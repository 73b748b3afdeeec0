"""group_summarize on the GPU wing against NumPy per group and the CPU wing.

Runs on a CUDA device, or in CI on the CPU emulator (FASTMOMENTS_GPU_EMULATOR=1).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmoments as fm

from gpu_skip import REASON, cupy, pytestmark  # noqa: F401 (the module's marks)


def _reference(x, lab, axis, G):
    """Per group, with NumPy in float64: the summary fields of the finite values."""
    xm = np.moveaxis(np.asarray(x, np.float64), axis, 0)
    out = {k: [] for k in ("count", "mean", "m2", "min", "max", "n_nonfinite", "n_zero")}
    for g in range(G):
        v = xm[lab == g]
        fin = np.isfinite(v)
        cnt = fin.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.where(fin, v, 0.0).sum(axis=0)
            mean = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
            m2 = np.where(fin, (v - mean) ** 2, 0.0).sum(axis=0)
        out["count"].append(cnt)
        out["mean"].append(mean)
        out["m2"].append(m2)
        out["min"].append(np.where(cnt > 0, np.where(fin, v, np.inf).min(axis=0, initial=np.inf), np.nan))
        out["max"].append(np.where(cnt > 0, np.where(fin, v, -np.inf).max(axis=0, initial=-np.inf), np.nan))
        out["n_nonfinite"].append((~fin).sum(axis=0))
        out["n_zero"].append((v == 0).sum(axis=0))
    return {k: np.moveaxis(np.array(v), 0, axis) for k, v in out.items()}


def _check(gpu, ref, m2_rtol=1e-10):
    host = gpu.to_numpy()
    for f in ("count", "n_nonfinite", "n_zero"):
        np.testing.assert_array_equal(getattr(host, f), ref[f], err_msg=f)
    for f in ("min", "max"):
        np.testing.assert_array_equal(getattr(host, f), ref[f], err_msg=f)
    np.testing.assert_allclose(host.mean, ref["mean"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host.m2, ref["m2"], rtol=m2_rtol, atol=1e-9)


CASES = [
    ((20_000,), 0, 7),
    ((3000, 5), 0, 40),
    ((4, 2500), 1, 3),
    ((30, 200, 3), 1, 9),
]


@pytest.mark.parametrize("shape,axis,G", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_against_numpy_and_the_cpu_wing(shape, axis, G, dtype):
    rng = np.random.default_rng(sum(shape) + G)
    x = (rng.standard_normal(shape) * 3 + 1e3).astype(dtype)
    if dtype != np.int32:
        x.reshape(-1)[::97] = np.nan
        x.reshape(-1)[5::131] = -np.inf
    x.reshape(-1)[3::53] = 0
    lab = rng.integers(-1, G, shape[axis])  # -1: left out
    lab[lab == G - 2] = -1  # one empty group
    gpu = fm.group_summarize(cupy.asarray(x), cupy.asarray(lab), axis=axis, ngroups=G)
    assert isinstance(gpu.count, cupy.ndarray)
    expect = list(shape)
    expect[axis] = G
    assert gpu.count.shape == tuple(expect)
    _check(gpu, _reference(x, lab, axis, G))
    cpu = fm.group_summarize(x, lab, axis=axis, ngroups=G)
    host = gpu.to_numpy()
    np.testing.assert_array_equal(host.count, cpu.count)
    np.testing.assert_allclose(host.var(), cpu.var(), rtol=1e-10)
    again = fm.group_summarize(cupy.asarray(x), cupy.asarray(lab), axis=axis, ngroups=G).to_numpy()
    for f in host._fields:  # the same order every time: bit-identical
        np.testing.assert_array_equal(getattr(again, f), getattr(host, f), err_msg=f)


def test_axis_none_float16_and_offset():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((50, 60)) + 1e9)
    lab = rng.integers(0, 5, x.shape)
    gpu = fm.group_summarize(cupy.asarray(x), cupy.asarray(lab), axis=None)
    # Means relative to each run's origin: M2 keeps the digits of a two-pass
    # method at an offset of 1e9 (without the origin: ~8e-9 relative error).
    _check(gpu, _reference(x.reshape(-1), lab.reshape(-1), 0, 5), m2_rtol=1e-10)
    h = rng.standard_normal(5000).astype(np.float16)
    lab = rng.integers(0, 4, 5000)
    _check(fm.group_summarize(cupy.asarray(h), cupy.asarray(lab)), _reference(h, lab, 0, 4))


def test_empty_inputs_and_bad_labels():
    x = cupy.arange(6.0)
    none = fm.group_summarize(x, cupy.full(6, -1), ngroups=3).to_numpy()
    np.testing.assert_array_equal(none.count, 0)
    assert np.isnan(none.mean).all() and np.isnan(none.min).all()
    assert fm.group_summarize(x, cupy.full(6, -1), ngroups=0).count.shape == (0,)
    assert fm.group_summarize(cupy.zeros((0, 3)), cupy.zeros(0, np.int64), ngroups=2).count.shape == (2, 3)
    with pytest.raises(ValueError, match="label"):
        fm.group_summarize(x, cupy.asarray([0, 1, 2, 3, 9, 0]), ngroups=4)
