"""Public one-pass reductions: ``moments``, ``summarize``, ``summarize_each``, ``merge``."""

from __future__ import annotations

from ._dispatch import backend_for
from ._inputs import normalize_axes
from .state import Moments, Summary

__all__ = ["moments", "summarize", "summarize_each", "merge"]


def _keep_dims(fields, shape, axes):
    kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(f.reshape(kept) for f in fields)


def moments(x, axis=None, *, keepdims=False, skipna=False) -> Moments:
    """Count, mean and M2 of ``x`` along ``axis`` in one pass.

    Args:
        x: array-like of bool, integer or real float values (NumPy or CuPy).
            float16/32 data is accumulated in float64.
        axis: None (all axes), an int or a tuple of ints; negative allowed.
        keepdims: keep the reduced axes with length 1, as NumPy does.
        skipna: leave NaN out of count, mean and m2. When False, a NaN makes
            the mean and m2 of its slice NaN, as in NumPy.

    Returns:
        A :class:`Moments` with the shape of ``x`` without ``axis``.
    """
    be = backend_for(x)
    arr = be.asarray(x)
    axes = normalize_axes(axis, arr.ndim)
    fields = be.moments(arr, axes, bool(skipna))
    if keepdims:
        fields = _keep_dims(fields, arr.shape, axes)
    return Moments._wrap(fields)


def summarize(x, axis=None, *, keepdims=False) -> Summary:
    """Count, mean, M2, min, max, non-finite and zero counts of ``x`` in one pass.

    NaN and +-Inf are counted in ``n_nonfinite`` and left out of everything
    else.

    Args:
        x: array-like of bool, integer or real float values (NumPy or CuPy).
        axis: None (all axes), an int or a tuple of ints; negative allowed.
        keepdims: keep the reduced axes with length 1.
    """
    be = backend_for(x)
    arr = be.asarray(x)
    axes = normalize_axes(axis, arr.ndim)
    fields = be.summarize(arr, axes)
    if keepdims:
        fields = _keep_dims(fields, arr.shape, axes)
    return Summary._wrap(fields)


def summarize_each(arrays) -> Summary:
    """One :class:`Summary` per array, stacked along a leading axis.

    The arrays may have any shapes and real dtypes; they are read in place,
    never concatenated. On the GPU all of them go through one fused launch.

    Args:
        arrays: a sequence of arrays, all NumPy or all CuPy.

    Returns:
        A Summary of shape ``(len(arrays),)``.
    """
    if isinstance(arrays, (str, bytes)) or not hasattr(arrays, "__len__"):
        raise TypeError("summarize_each takes a sequence of arrays")
    arrays = list(arrays)
    be = backend_for(*arrays)
    return Summary._wrap(be.summarize_each([be.asarray(a) for a in arrays]))


def merge(a, b):
    """Merge two states of the same type (elementwise, broadcasting).

    Args:
        a, b: :class:`Moments` or :class:`Summary` states.
    """
    if not isinstance(a, (Moments, Summary)):
        raise TypeError(f"merge takes Moments or Summary states, got {type(a).__name__}")
    return a.merge(b)
