"""Fixtures of the Chainer integration tests (helpers live in fmc_testlib.py)."""

import warnings

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

import fastmoments_chainer  # noqa: E402,F401  (shims before chainer)
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng_seed():
    np.random.seed(0)  # Chainer's initializers use NumPy's global RNG
    yield
