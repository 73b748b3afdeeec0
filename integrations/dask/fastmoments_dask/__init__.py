"""fastmoments inside Dask: one-pass count/mean/M2 of Dask arrays.

:func:`moments` and :func:`summarize` build a ``dask.array.reduction``:
fastmoments' kernel on each chunk, exact merges (Chan et al.) in Dask's tree
combine, the final state at the root. The result is lazy: a
:class:`LazyMoments` / :class:`LazySummary`, a Dask collection that computes to
a :class:`fastmoments.Moments` / :class:`fastmoments.Summary`::

    import dask, dask.array as da, fastmoments_dask as fmd
    x = da.random.random((1_000_000, 8), chunks=(100_000, 8))
    lazy = fmd.moments(x, axis=0)
    m = lazy.compute()            # a fastmoments.Moments of shape (8,)
    (m,) = dask.compute(lazy)     # the same, alongside other collections
    v = lazy.var(ddof=1)          # a lazy dask array

Chunks may be NumPy or CuPy arrays (the kernels follow the chunk type).
"""

from __future__ import annotations

from functools import partial
from numbers import Integral

import numpy as np
import dask.array as da
from dask.array.utils import meta_from_array, validate_axis

from fastmoments._inputs import check_dtype

from ._tree import aggregate_states, chunk_moments, chunk_summary, combine_states
from .lazy import LazyMoments, LazySummary

__all__ = ["moments", "summarize", "LazyMoments", "LazySummary"]

__version__ = "0.1.0"


def _prepare(darr, axis):
    if not isinstance(darr, da.Array):
        darr = da.asarray(darr)
    check_dtype(darr.dtype)
    if isinstance(darr._meta, np.ma.MaskedArray):
        # Found at graph construction; the chunks would fail at compute time.
        raise TypeError(
            "masked dask arrays are not supported: their mask would be ignored. "
            "Use darr.map_blocks(np.ma.filled, np.nan) with skipna=True (moments) "
            "to leave the masked values out"
        )
    if isinstance(axis, bool) or not (axis is None or isinstance(axis, (Integral, tuple, list))):
        raise TypeError(f"axis must be None, an int or a tuple of ints, got {axis!r}")
    return darr


def _split_every(split_every, ndim):
    """``split_every`` checked: None, an int >= 2, or a dict axis -> int >= 2
    with its axes made non-negative (Dask would ignore negative ones)."""
    if split_every is None:
        return None
    if isinstance(split_every, dict):
        out = {}
        for axis, fan_in in split_every.items():
            if isinstance(axis, bool) or not isinstance(axis, Integral):
                raise TypeError(f"split_every's keys must be axes (ints), got {axis!r}")
            if not -ndim <= axis < ndim:
                raise np.exceptions.AxisError(int(axis), ndim, "split_every")
            a = int(axis) % ndim
            if a in out:
                raise ValueError(f"split_every names axis {a} twice")
            out[a] = _fan_in(fan_in)
        return out
    return _fan_in(split_every)


def _fan_in(v):
    if isinstance(v, bool) or not isinstance(v, Integral):
        raise TypeError(f"split_every must be an int >= 2 or a dict of them, got {v!r}")
    if v < 2:
        raise ValueError(f"split_every must be at least 2, got {v}")
    return int(v)


def _reduce(darr, chunk, axis, split_every, name, keepdims=False):
    axes = tuple(range(darr.ndim)) if axis is None else axis
    axes = (axes,) if isinstance(axes, Integral) else tuple(axes)
    # dask validates and normalizes the axes (AxisError for bad ones)
    axes = tuple(sorted(validate_axis(a, darr.ndim) for a in axes))
    if len(set(axes)) != len(axes):
        raise ValueError(f"repeated axis in {axis!r}")
    out_ndim = darr.ndim if keepdims else darr.ndim - len(axes)
    # The blocks hold states, not arrays; the meta only records the array
    # type (NumPy or CuPy) of the chunks for what is derived from the result.
    meta = meta_from_array(darr._meta, ndim=out_ndim, dtype=np.float64)
    return da.reduction(
        darr,
        chunk,
        aggregate_states,
        combine=combine_states,
        axis=axes,
        keepdims=bool(keepdims),
        dtype=np.float64,
        split_every=_split_every(split_every, darr.ndim),
        concatenate=False,
        meta=meta,
        name=name,
    )


def moments(darr, axis=None, *, keepdims=False, skipna=False, split_every=None) -> LazyMoments:
    """Lazy count, mean and M2 of a Dask array along ``axis``.

    Args:
        darr: a Dask array (or array-like, wrapped with ``da.asarray``) of
            bool, integer or real float values; NumPy or CuPy chunks.
        axis: None (all axes), an int or a tuple of ints; negative allowed.
        keepdims: keep the reduced axes with length 1, as NumPy does.
        skipna: leave NaN out of count, mean and m2 (otherwise NaN propagates
            to its slice, as in NumPy).
        split_every: fan-in of Dask's tree combine (int >= 2 or a dict
            axis -> int); None uses Dask's default.

    Returns:
        A :class:`LazyMoments`; ``.compute()`` gives a :class:`fastmoments.Moments`
        with the shape of ``darr`` without ``axis``.
    """
    darr = _prepare(darr, axis)
    chunk = partial(chunk_moments, skipna=bool(skipna))
    arr = _reduce(darr, chunk, axis, split_every, "fastmoments-moments", keepdims)
    return LazyMoments(arr)


def summarize(darr, axis=None, split_every=None, *, keepdims=False) -> LazySummary:
    """Lazy count, mean, M2, min, max, non-finite and zero counts of a Dask array.

    NaN and +-Inf are counted in ``n_nonfinite`` and left out of everything else.

    Args:
        darr: a Dask array (or array-like) of bool, integer or real float values.
        axis: None (all axes), an int or a tuple of ints; negative allowed.
        keepdims: keep the reduced axes with length 1.
        split_every: fan-in of Dask's tree combine; None uses Dask's default.

    Returns:
        A :class:`LazySummary`; ``.compute()`` gives a :class:`fastmoments.Summary`.
    """
    darr = _prepare(darr, axis)
    arr = _reduce(darr, chunk_summary, axis, split_every, "fastmoments-summarize", keepdims)
    return LazySummary(arr)
