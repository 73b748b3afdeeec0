"""Magnitude histograms on the GPU wing (histogram=True) against NumPy's frexp and the CPU wing.

Runs on a CUDA device, or in CI on the CPU emulator (FASTMOMENTS_GPU_EMULATOR=1).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmoments as fm
from fastmoments import _histogram as H

from gpu_skip import REASON, cupy, pytestmark  # noqa: F401 (the module's marks)
from test_histogram import bfloat16_like, frexp_histogram, specials

pytestmark = pytestmark + [pytest.mark.filterwarnings("ignore:invalid value encountered in cast")]


def _same_fields(gpu, cpu):
    host = gpu.to_numpy()
    for f in ("count", "n_nonfinite", "n_zero", "histogram"):
        np.testing.assert_array_equal(getattr(host, f), getattr(cpu, f), err_msg=f)
    for f in ("min", "max"):
        np.testing.assert_array_equal(getattr(host, f), getattr(cpu, f), err_msg=f)
    np.testing.assert_allclose(host.mean, cpu.mean, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_specials_each_and_whole(dtype):
    x = specials(dtype)
    g = cupy.asarray(x)
    s = fm.summarize(g, histogram=True)
    assert isinstance(s.histogram, cupy.ndarray) and s.histogram.dtype == np.int64
    np.testing.assert_array_equal(s.histogram.get(), frexp_histogram(x))
    each = fm.summarize_each([g, g[::-1], g[:0]], histogram=True)
    assert each.histogram.shape == (3, H.N_BINS)
    h = each.histogram.get()
    np.testing.assert_array_equal(h[0], frexp_histogram(x))
    np.testing.assert_array_equal(h[1], frexp_histogram(x))
    np.testing.assert_array_equal(h[2], 0)


def test_summarize_each_ragged_vs_frexp_and_cpu():
    rng = np.random.default_rng(5)
    arrays = [
        (rng.standard_normal(3000) * 10.0 ** rng.uniform(-40, 5, 3000)).astype(np.float32),
        bfloat16_like(rng, 2500),
        rng.standard_normal((40, 30)),
        np.array([2.0**-150, 2.0**128, 0.0, np.nan, -np.inf, 1.0]),
        rng.integers(-1000, 1000, 777).astype(np.int32),
    ]
    garrays = [cupy.asarray(a) for a in arrays]
    gpu = fm.summarize_each(garrays, histogram=True)
    h = gpu.histogram.get()
    for a, row in zip(arrays, h):
        np.testing.assert_array_equal(row, frexp_histogram(a))
    _same_fields(gpu, fm.summarize_each(arrays, histogram=True))
    plain = fm.summarize_each(garrays).to_numpy()
    host = gpu.to_numpy()
    for f in plain._fields:  # histogram=False unchanged
        np.testing.assert_array_equal(getattr(host, f), getattr(plain, f), err_msg=f)


@pytest.mark.parametrize("shape,axis", [((5000,), None), ((300, 7), 0), ((7, 300), 1), ((6, 5, 4), (0, 2)),
                                        ((3, 4), ())])
def test_summarize_axes_vs_frexp(shape, axis):
    """Long (segment kernel, shared histograms) and strided (lane kernel, global atomics) layouts."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-20, 20, shape)
    gpu = fm.summarize(cupy.asarray(x), axis=axis, histogram=True)
    cpu = fm.summarize(x, axis=axis, histogram=True)
    assert gpu.histogram.shape == cpu.histogram.shape
    np.testing.assert_array_equal(gpu.histogram.get(), cpu.histogram)
    if axis is None:
        np.testing.assert_array_equal(gpu.histogram.get(), frexp_histogram(x))


def test_merge_and_reduce_on_device():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(2000), rng.standard_normal(1000) * 1e-30
    ga, gb = fm.summarize(cupy.asarray(a), histogram=True), fm.summarize(cupy.asarray(b), histogram=True)
    whole = frexp_histogram(np.concatenate([a, b]))
    np.testing.assert_array_equal(ga.merge(gb).histogram.get(), whole)
    each = fm.summarize_each([cupy.asarray(a), cupy.asarray(b)], histogram=True)
    np.testing.assert_array_equal(each.reduce().histogram.get(), whole)
