"""Bring any (array, axes) reduction to one of two 2-D kernels without copying.

``rows``: reduce the last axis of a C-contiguous (m, k) array.
``cols``: reduce the first axis of a C-contiguous (k, m) array.
Reduced axes are gathered with transposes and reshapes that NumPy can do as
views; only layouts that no view can express (strided slices, interleaved
axes) are copied, once.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["plan"]


def _view_2d(y, shape):
    try:
        v = y.reshape(shape, copy=False)
    except ValueError:
        return None
    return v if v.flags.c_contiguous else None


def plan(x: np.ndarray, axes: tuple[int, ...]):
    """Return ``(mode, x2d, out_shape)`` with mode "rows" or "cols"."""
    if len(axes) == x.ndim and x.flags.c_contiguous:  # the common full reduction
        return "rows", x.reshape(1, x.size), ()
    kept = [i for i in range(x.ndim) if i not in axes]
    out_shape = tuple(x.shape[i] for i in kept)
    m = math.prod(out_shape)
    k = math.prod(x.shape[i] for i in axes)
    red = list(axes)
    v = _view_2d(x.transpose(kept + red), (m, k))
    if v is not None:
        return "rows", v, out_shape
    v = _view_2d(x.transpose(red + kept), (k, m))
    if v is not None:
        return "cols", v, out_shape
    # No view works: copy once. Keep the axis that is innermost in memory
    # innermost in the copy too, so the copy itself streams.
    inner = min(range(x.ndim), key=lambda i: abs(x.strides[i]))
    if inner in axes:
        return "rows", np.ascontiguousarray(x.transpose(kept + red)).reshape(m, k), out_shape
    return "cols", np.ascontiguousarray(x.transpose(red + kept)).reshape(k, m), out_shape
