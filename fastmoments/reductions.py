"""Public one-pass reductions: ``moments``, ``summarize``, ``summarize_each``, ``merge``."""

from __future__ import annotations

import numpy as np

from ._dispatch import backend_for
from ._inputs import check_not_masked, check_weights_dtype, normalize_axes
from .covariance import CoMoments
from .state import Moments, Summary, _check_order

__all__ = ["moments", "summarize", "summarize_each", "merge"]


def _keep_dims(fields, shape, axes):
    kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(f.reshape(kept) for f in fields)


def moments(x, axis=None, *, keepdims=False, skipna=False, weights=None, order=2) -> Moments:
    """Count, mean and central moments of ``x`` along ``axis`` in one pass.

    Args:
        x: array-like of bool, integer or real float values (NumPy or CuPy).
            float16/32 data is accumulated in float64.
        axis: None (all axes), an int or a tuple of ints; negative allowed.
        keepdims: keep the reduced axes with length 1, as NumPy does.
        skipna: leave NaN out of count, mean and the moments. When False, a
            NaN makes the mean and moments of its slice NaN, as in NumPy.
        weights: None, or non-negative finite real weights of ``x``'s shape
            or, when one axis is reduced, 1-D with that axis' length (as
            ``np.average``). A value of weight 0 is left out as if absent
            (NaN and Inf too). The state's M-fields are then weighted sums,
            and it also holds the sums of the weights and squared weights;
            see :meth:`Moments.var` for frequency and reliability weights.
        order: 2, 3 or 4: the highest central moment kept (3 and 4 give
            :meth:`Moments.skew` and :meth:`Moments.kurtosis`).

    Returns:
        A :class:`Moments` with the shape of ``x`` without ``axis``.
    """
    order = _check_order(order)
    if weights is None and order == 2:
        be = backend_for(x)
        arr = be.asarray(x)
        axes = normalize_axes(axis, arr.ndim)
        fields = be.moments(arr, axes, bool(skipna))
    else:
        be = backend_for(x, weights)
        arr = be.asarray(x)
        axes = normalize_axes(axis, arr.ndim)
        w = None if weights is None else _weights_like(be, weights, arr, axes)
        fields = be.weighted_moments(arr, w, axes, bool(skipna), order)
    if keepdims:
        fields = _keep_dims(fields, arr.shape, axes)
    return Moments._wrap(fields)


def _weights_like(be, weights, x, axes):
    """``weights`` as a backend array of ``x``'s shape (a view where they are
    1-D along the one reduced axis); TypeError/ValueError naming the problem."""
    check_not_masked(weights, "weights")
    w = be.xp.asarray(weights)
    check_weights_dtype(w.dtype)
    if w.shape == x.shape:
        return w
    if w.ndim == 1 and len(axes) == 1 and x.ndim > 1 and w.shape[0] == x.shape[axes[0]]:
        shape = [1] * x.ndim
        shape[axes[0]] = w.shape[0]
        return be.xp.broadcast_to(w.reshape(shape), x.shape)
    hint = f" or 1-D of length {x.shape[axes[0]]} along the reduced axis" if len(axes) == 1 and x.ndim > 1 else ""
    raise ValueError(f"weights of shape {w.shape} do not fit x of shape {x.shape}: give weights of x's shape{hint}")


def _check_histogram(histogram):
    if not isinstance(histogram, (bool, np.bool_)):
        raise TypeError(f"histogram must be True or False, got {histogram!r}")
    return bool(histogram)


def summarize(x, axis=None, *, keepdims=False, histogram=False) -> Summary:
    """Count, mean, M2, min, max, non-finite and zero counts of ``x`` in one pass.

    NaN and +-Inf are counted in ``n_nonfinite`` and left out of everything
    else.

    Args:
        x: array-like of bool, integer or real float values (NumPy or CuPy).
        axis: None (all axes), an int or a tuple of ints; negative allowed.
        keepdims: keep the reduced axes with length 1.
        histogram: also count the finite non-zero values per binary exponent
            of ``|v|`` (``Summary.histogram``, bins in
            ``Summary.histogram_edges``; ``v`` taken as float64, so an
            integer beyond 2**53 is binned as it rounds). The GPU counts in
            the same pass; the CPU does for a full reduction of C-contiguous
            float32/float64 data, and reads ``x`` a second time for the
            others (partial reductions, other dtypes, strided views).
    """
    histogram = _check_histogram(histogram)
    be = backend_for(x)
    arr = be.asarray(x)
    axes = normalize_axes(axis, arr.ndim)
    fields = be.summarize(arr, axes, histogram) if histogram else be.summarize(arr, axes)
    if keepdims:
        kept = _keep_dims(fields[:7], arr.shape, axes)
        if histogram:
            h = fields[7]
            kept += (h.reshape(kept[0].shape + h.shape[-1:]),)
        fields = kept
    return Summary._wrap(fields)


def summarize_each(arrays, *, histogram=False) -> Summary:
    """One :class:`Summary` per array, stacked along a leading axis.

    The arrays may have any shapes and real dtypes; they are read in place,
    never concatenated. On the GPU all of them go through one fused launch.

    Args:
        arrays: a sequence of arrays, all NumPy or all CuPy.
        histogram: also count each array's finite non-zero values per binary
            exponent of ``|v|`` (``Summary.histogram``, of shape
            ``(len(arrays), N_BINS)``), in the same pass.

    Returns:
        A Summary of shape ``(len(arrays),)``.
    """
    histogram = _check_histogram(histogram)
    if isinstance(arrays, (str, bytes)) or not hasattr(arrays, "__len__"):
        raise TypeError("summarize_each takes a sequence of arrays")
    arrays = list(arrays)
    be = backend_for(*arrays)
    arrays = [be.asarray(a) for a in arrays]
    return Summary._wrap(be.summarize_each(arrays, True) if histogram else be.summarize_each(arrays))


def merge(a, b):
    """Merge two states of the same type (elementwise, broadcasting).

    Args:
        a, b: :class:`Moments` or :class:`Summary` states, or two
            :class:`~fastmoments.CoMoments` (of the same number of variables).
    """
    if not isinstance(a, (Moments, Summary, CoMoments)):
        raise TypeError(f"merge takes Moments or Summary states, or CoMoments, got {type(a).__name__}")
    return a.merge(b)
