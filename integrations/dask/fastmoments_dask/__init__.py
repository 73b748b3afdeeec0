"""fastmoments inside Dask: one-pass count/mean/M2 (and M3, M4, weights) of Dask arrays.

:func:`moments` and :func:`summarize` build a ``dask.array.reduction``:
fastmoments' kernel on each chunk, exact merges (Chan et al.; Pebay for
weighted and higher-order states) in Dask's tree combine, the final state at
the root. The result is lazy: a :class:`LazyMoments` / :class:`LazySummary`,
a Dask collection that computes to a :class:`fastmoments.Moments` /
:class:`fastmoments.Summary`::

    import dask, dask.array as da, fastmoments_dask as fmd
    x = da.random.random((1_000_000, 8), chunks=(100_000, 8))
    lazy = fmd.moments(x, axis=0)
    m = lazy.compute()            # a fastmoments.Moments of shape (8,)
    (m,) = dask.compute(lazy)     # the same, alongside other collections
    v = lazy.var(ddof=1)          # a lazy dask array

    w = da.random.random(1_000_000, chunks=250_000)   # weights along axis 0
    lw = fmd.moments(x, axis=0, weights=w, order=4)
    k = lw.kurtosis()             # lazy; lw.compute() is a Moments of order 4

Chunks may be NumPy or CuPy arrays (the kernels follow the chunk type).
"""

from __future__ import annotations

from functools import partial
from numbers import Integral

import numpy as np
import dask.array as da
from dask.array.utils import meta_from_array, validate_axis

from fastmoments import Moments
from fastmoments._dispatch import backend_for
from fastmoments._inputs import weights_error
from fastmoments.state import _check_order

from ._checks import as_dask, fan_in, unknown, weights_array
from ._tree import (
    aggregate_states,
    chunk_moments,
    chunk_summary,
    chunk_weighted_moments,
    combine_states,
    take_state,
)
from .covariance import comoments
from .groups import group_moments, group_summarize
from .lazy import LazyMoments, LazySummary

__all__ = [
    "moments", "summarize", "comoments", "group_moments", "group_summarize", "LazyMoments", "LazySummary",
]

__version__ = "0.1.0"


def _prepare(darr, axis):
    darr = as_dask(darr)
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
        for axis, fan in split_every.items():
            if isinstance(axis, bool) or not isinstance(axis, Integral):
                raise TypeError(f"split_every's keys must be axes (ints), got {axis!r}")
            if not -ndim <= axis < ndim:
                raise np.exceptions.AxisError(int(axis), ndim, "split_every")
            a = int(axis) % ndim
            if a in out:
                raise ValueError(f"split_every names axis {a} twice")
            out[a] = fan_in(fan, per_axis=True)
        return out
    return fan_in(split_every, per_axis=True)


def _axes(axis, ndim):
    """``axis`` as a sorted tuple of non-negative axes (None: all)."""
    axes = tuple(range(ndim)) if axis is None else axis
    axes = (axes,) if isinstance(axes, Integral) else tuple(axes)
    # dask validates and normalizes the axes (AxisError for bad ones)
    axes = tuple(sorted(validate_axis(a, ndim) for a in axes))
    if len(set(axes)) != len(axes):
        raise ValueError(f"repeated axis in {axis!r}")
    return axes


def _reduce(darr, chunk, axis, split_every, name, keepdims=False):
    axes = _axes(axis, darr.ndim)
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


def _same(a, b):
    """Equal shapes or chunks, where NaN (an unknown size) matches NaN."""
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_same(p, q) for p, q in zip(a, b))
    return a == b or (a != a and b != b)


def _align_weights(weights, darr, axes):
    """``weights`` as a Dask array with ``darr``'s chunks, and its index for
    ``da.blockwise``: all of ``darr``'s axes, or the one reduced axis for 1-D
    weights along it (the chunk function broadcasts those). TypeError for
    weights that are masked, not real numbers or of the other array type
    (NumPy against CuPy), ValueError for another shape; weights given as
    in-memory arrays are also checked for negative, NaN and infinite values
    here (Dask arrays of weights are, chunk by chunk, when computed)."""
    inds = tuple(range(darr.ndim))
    w = weights_array(weights, darr)
    along = len(axes) == 1 and darr.ndim > 1 and w.ndim == 1
    if along:
        target, ind = (darr.chunks[axes[0]],), (axes[0],)
        fits = _same(w.shape, (darr.shape[axes[0]],))
    else:
        target, ind = darr.chunks, inds
        fits = _same(w.shape, darr.shape)
    if not fits and unknown(sum(target, ())):
        raise ValueError(
            f"x has unknown chunk sizes (shape {darr.shape}): give the weights as a Dask "
            "array of the same chunks (e.g. indexed by the same mask), or call "
            "x.compute_chunk_sizes() first"
        )
    if not fits:
        hint = (
            f" or 1-D of length {darr.shape[axes[0]]} along the reduced axis"
            if len(axes) == 1 and darr.ndim > 1 else ""
        )
        raise ValueError(
            f"weights of shape {w.shape} do not fit x of shape {darr.shape}: give weights "
            f"of x's shape{hint}"
        )
    if not isinstance(w, da.Array):
        msg = weights_error(w, backend_for(w).xp)  # in memory already: cheap to check now
        if msg is not None:
            raise ValueError(msg)
        if unknown(sum(target, ())):
            raise ValueError(
                "x has unknown chunk sizes: give the weights as a Dask array of the "
                "same chunks, or call x.compute_chunk_sizes() first"
            )
        return da.from_array(w, chunks=target, asarray=False), ind
    if _same(w.chunks, target):
        return w, ind
    if unknown(sum(target, ())) or unknown(sum(w.chunks, ())):
        raise ValueError(
            f"weights with chunks {w.chunks} do not match x's chunks {target} and "
            "unknown chunk sizes cannot be aligned: call compute_chunk_sizes() on both"
        )
    return w.rechunk(target), ind


def _layout_of(order, weighted):
    """The state class (layout) the reduction's states have: ``Moments`` for
    unweighted order 2, the core's weighted layout of ``order`` otherwise."""
    n_fields = 3 if order == 2 and not weighted else 3 + order
    return type(Moments._wrap(tuple(np.zeros(0) for _ in range(n_fields))))


def moments(
    darr, axis=None, *, keepdims=False, skipna=False, weights=None, order=2, split_every=None
) -> LazyMoments:
    """Lazy count, mean and central moments (M2, M3, M4) of a Dask array along ``axis``.

    Args:
        darr: a Dask array (or array-like, wrapped with ``da.asarray``) of
            bool, integer or real float values; NumPy or CuPy chunks.
        axis: None (all axes), an int or a tuple of ints; negative allowed.
        keepdims: keep the reduced axes with length 1, as NumPy does.
        skipna: leave NaN out of count, mean and the moments (otherwise NaN
            propagates to its slice, as in NumPy).
        weights: None, or non-negative finite real weights: a Dask array
            (or array-like) of ``darr``'s shape or, when one axis is reduced,
            1-D along it (as ``np.average``); other chunks than ``darr``'s
            are rechunked to match. Each chunk's kernel reads its block of
            the weights, in the same pass as the data. A value of weight 0 is
            left out as if absent. Weights of another shape are a ValueError
            and complex or object ones a TypeError, when the graph is built;
            negative, NaN or infinite weights a ValueError when it is
            computed (already when it is built for in-memory weights).
        order: 2, 3 or 4: the highest central moment kept (3 and 4 give
            ``skew`` and ``kurtosis``); another value is a ValueError.
        split_every: fan-in of Dask's tree combine (int >= 2 or a dict
            axis -> int); None uses Dask's default.

    Returns:
        A :class:`LazyMoments` of the state's layout (``order``,
        ``weighted``); ``.compute()`` gives a :class:`fastmoments.Moments` of
        that order with the shape of ``darr`` without ``axis``.
    """
    order = _check_order(order)
    darr = _prepare(darr, axis)
    layout = _layout_of(order, weights is not None)
    if weights is None:
        chunk = partial(chunk_moments, skipna=bool(skipna))
        if order != 2:
            chunk = partial(chunk, order=order)
        arr = _reduce(darr, chunk, axis, split_every, "fastmoments-moments", keepdims)
        return LazyMoments(arr, layout)
    axes = _axes(axis, darr.ndim)
    w, w_ind = _align_weights(weights, darr, axes)
    inds = tuple(range(darr.ndim))
    # One state per block of (x, w), reduced axes at length 1; the reduction
    # below passes them through (take_state) into Dask's tree combine, and
    # blockwise fusion makes each block's state and pass-through one task.
    states = da.blockwise(
        chunk_weighted_moments,
        inds,
        darr,
        inds,
        w,
        w_ind,
        axis=axes,
        skipna=bool(skipna),
        order=order,
        adjust_chunks={a: 1 for a in axes},
        dtype=np.float64,
        meta=meta_from_array(darr._meta, ndim=darr.ndim, dtype=np.float64),
        align_arrays=False,
        token="fastmoments-weighted-chunk",
    )
    arr = _reduce(states, take_state, axes, split_every, "fastmoments-moments", keepdims)
    return LazyMoments(arr, layout)


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
