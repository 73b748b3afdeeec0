"""``cupy.testing`` of the stand-in: NumPy's assertions on host copies."""

from __future__ import annotations

import numpy as np


def _host(x):
    from . import ndarray

    return x.get() if isinstance(x, ndarray) else x


def assert_array_equal(x, y, err_msg="", verbose=True, strides_check=False, **kwargs):
    np.testing.assert_array_equal(_host(x), _host(y), err_msg=err_msg, verbose=verbose, **kwargs)


def assert_allclose(actual, desired, rtol=1e-7, atol=0, err_msg="", verbose=True):
    np.testing.assert_allclose(_host(actual), _host(desired), rtol=rtol, atol=atol, err_msg=err_msg, verbose=verbose)
