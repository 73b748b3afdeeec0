import pathlib
from fractions import Fraction

import numpy as np
import pytest

DATA = pathlib.Path(__file__).parent / "data"
_EMULATOR_LINE = ""


def _load_activate():
    import importlib.util

    path = pathlib.Path(__file__).parent / "gpu_emu" / "activate.py"
    spec = importlib.util.spec_from_file_location("fastmoments_gpu_emu_activate", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pytest_configure(config):
    # Before any test module imports cupy: the GPU tests run on the CUDA
    # emulator when asked (CI=true, FASTMOMENTS_GPU_EMULATOR=1) and no GPU is here.
    global _EMULATOR_LINE
    _EMULATOR_LINE = _load_activate().activate()


def pytest_report_header(config):
    return _EMULATOR_LINE


def exact_mean_var(values):
    """Exact mean and population variance (ddof=0) of float values, as Fractions."""
    fr = [Fraction(float(v)) for v in np.asarray(values, dtype=np.float64).ravel()]
    n = len(fr)
    mean = sum(fr) / n
    return mean, sum((v - mean) ** 2 for v in fr) / n


def fsum_mean_var(values):
    """Mean and population variance from correctly rounded sums (math.fsum).

    Accurate to a few ulps for any data; fast enough for millions of values.
    """
    import math

    x = np.asarray(values, dtype=np.float64).ravel()
    n = x.size
    mean = math.fsum(x) / n
    d = x - mean  # exact to one rounding each
    corr = math.fsum(d) / n
    return mean + corr, math.fsum(d * d) / n - corr * corr


def ref_moments(x, axis=None):
    """NumPy float64 reference: (count, mean, m2)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=axis)
    count = x.size if axis is None else np.prod([x.shape[a] for a in np.atleast_1d(axis)])
    m2 = ((x - x.mean(axis=axis, keepdims=True)) ** 2).sum(axis=axis)
    return count, mean, m2


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
