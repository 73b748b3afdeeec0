"""Grouped moments of a Dask array: one ``(ngroups, ...)`` state per chunk, tree-merged.

:func:`group_moments` and :func:`group_summarize` build a graph of one task
per block of ``x`` (the core's :func:`fastmoments.group_moments` /
:func:`fastmoments.group_summarize` on that block, with its slice of the
labels and of the weights), then a fixed tree of exact merges along the
reduced axis (fan-in ``split_every``, default 8) for each block of the
other axes. Blocks of the other axes are kept: each holds the states of its
columns, and the result is assembled from them (as
:func:`fastmoments_dask.moments` does). The tree's shape depends only on the
number of chunks, so the result is the same for any scheduler and number of
workers.

The result is lazy, a :class:`~fastmoments_dask.LazyMoments` /
:class:`~fastmoments_dask.LazySummary` as returned by
:func:`fastmoments_dask.moments` / :func:`~fastmoments_dask.summarize`, of
the shape of ``x`` with ``axis`` replaced by a group axis of length
``ngroups``::

    import dask.array as da, numpy as np, fastmoments_dask as fmd
    x = da.random.normal(size=(1_000_000, 8), chunks=(100_000, 8))
    by = np.random.randint(0, 10, 1_000_000)
    g = fmd.group_moments(x, by, ngroups=10).compute()   # Moments of shape (10, 8)
    v = fmd.group_moments(x, by, ngroups=10).var(ddof=1)  # a lazy (10, 8) dask array

Chunks may be NumPy or CuPy arrays (the labels of a block are moved to the
block's array type).
"""

from __future__ import annotations

from numbers import Integral

import dask.array as da
import numpy as np
from dask.array.utils import meta_from_array
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

import fastmoments
from fastmoments import Moments
from fastmoments._dispatch import backend_for, is_gpu_array
from fastmoments._inputs import check_labels_dtype, check_ngroups, check_not_masked
from fastmoments.state import _check_order

from ._checks import as_dask, fan_in, unknown
from .lazy import LazyMoments, LazySummary

__all__ = ["group_moments", "group_summarize"]

_FAN_IN = 8


# -- tasks ------------------------------------------------------------------------------

def _labels_like(by, x):
    """The block's labels in the block's array type (NumPy or CuPy)."""
    if is_gpu_array(x) and not is_gpu_array(by):
        return backend_for(x).xp.asarray(by)
    if is_gpu_array(by) and not is_gpu_array(x):
        return by.get()
    return by


def _chunk(x, by, w, axis, ngroups, kind, skipna, order):
    """The grouped state of one block: the core's function on it.

    A block of length 0 along ``axis`` is given to the core as one slice
    labelled -1 (no group), which yields empty states of the right layout:
    the core cannot reshape a zero-length axis (a core bug, worked around here).
    """
    by = _labels_like(by, x)
    if x.shape[axis] == 0:
        xp = backend_for(x).xp
        shape = list(x.shape)
        shape[axis] = 1
        x = xp.zeros(tuple(shape), dtype=x.dtype)
        by = xp.full((1,), -1, dtype=np.int64)
        if w is not None:
            wshape = (1,) if w.ndim == 1 else tuple(shape)
            w = xp.ones(wshape, dtype=np.float64)
    if kind == "summarize":
        return fastmoments.group_summarize(x, by, axis=axis, ngroups=ngroups)
    if w is None and order == 2:  # the core's one-pass kernel
        return fastmoments.group_moments(x, by, axis=axis, ngroups=ngroups, skipna=skipna)
    return fastmoments.group_moments(x, by, axis=axis, ngroups=ngroups, skipna=skipna, weights=w, order=order)


def _merge(axis, *states):
    """One state from neighbouring chunks' states (an inner node of the tree):
    stacked on a new axis and merged by the core's pairwise ``reduce``."""
    if len(states) == 1:
        return states[0]
    first = states[0]
    if first.size == 0:  # nothing to merge (no columns in this block)
        return first
    cls = type(first)
    # np.stack dispatches to CuPy for CuPy fields (NEP 18); the states are small.
    stacked = cls._wrap(tuple(np.stack(group) for group in zip(*(s.fields for s in states))))
    return stacked.reduce(axis=0)


# -- checks -----------------------------------------------------------------------------

def _ngroups(ngroups):
    if ngroups is None:
        raise TypeError(
            "ngroups is required for Dask arrays (an int: the number of groups); a lazy graph "
            "cannot know it without a pass over by, e.g. ngroups=int(by.max().compute()) + 1"
        )
    return check_ngroups(ngroups)


def _axis(axis, ndim):
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, Integral):
        raise TypeError(f"axis must be an int (the axis reduced per group), got {axis!r}")
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(int(axis), ndim, "axis")
    return int(axis) % ndim


def _labels(by, darr, axis):
    """``by`` as a 1-D Dask integer array chunked as ``darr`` along ``axis``:
    TypeError for masked, bool and non-integer labels, ValueError naming both
    shapes for another length."""
    n = darr.shape[axis]
    target = darr.chunks[axis]
    if isinstance(by, da.Array):
        if isinstance(by._meta, np.ma.MaskedArray):
            raise TypeError("by: masked arrays are not supported: their mask would be ignored")
    else:
        check_not_masked(by, "by")
        if not (isinstance(by, np.ndarray) or is_gpu_array(by)):
            by = np.asarray(by)
    check_labels_dtype(by.dtype)
    known = not unknown(target) and not (isinstance(by, da.Array) and unknown(by.chunks[0]))
    if by.ndim != 1 or (known and by.shape[0] != n):
        raise ValueError(
            f"by of shape {by.shape} does not fit x of shape {darr.shape} along axis {axis}: "
            f"give 1-D labels of length {n}"
        )
    if not isinstance(by, da.Array):
        if unknown(target):
            raise ValueError(
                "x has unknown chunk sizes: give by as a Dask array of the same chunks "
                "(e.g. indexed by the same mask), or call x.compute_chunk_sizes() first"
            )
        return da.from_array(by, chunks=(target,), asarray=False)
    if not known:
        if len(by.chunks[0]) == len(target):
            return by  # aligned chunk by chunk (e.g. indexed by the same mask)
        raise ValueError(
            f"by with chunks {by.chunks} cannot be aligned with x's {target} of unknown "
            "sizes: call compute_chunk_sizes() on both"
        )
    return by if by.chunks[0] == target else by.rechunk((target,))


# -- the graph --------------------------------------------------------------------------

def _build(darr, by, axis, ngroups, kind, skipna, order, weights, split_every, name):
    axis = _axis(axis, darr.ndim)
    G = _ngroups(ngroups)
    fan = _FAN_IN if split_every is None else fan_in(split_every)
    labels = _labels(by, darr, axis)
    inds = tuple(range(darr.ndim))
    args = [darr, inds, labels, (axis,)]
    w = None
    if weights is not None:
        from . import _align_weights  # the weights' checks and alignment of fmd.moments

        w, w_ind = _align_weights(weights, darr, (axis,))
        args += [w, w_ind]
    else:
        args += [None, None]
    meta = meta_from_array(darr._meta, ndim=darr.ndim, dtype=np.float64)
    # One state per block of (x, by, w); its group axis has length ngroups.
    states = da.blockwise(
        _chunk,
        inds,
        *args,
        axis=axis,
        ngroups=G,
        kind=kind,
        skipna=bool(skipna),
        order=order,
        adjust_chunks={axis: G},
        dtype=np.float64,
        meta=meta,
        align_arrays=False,
        token=f"{name}-chunk",
    )
    token = tokenize(states, fan)
    out = f"{name}-{token}"
    nblocks = states.numblocks
    dsk = {}
    other = [range(nb) for i, nb in enumerate(nblocks) if i != axis]
    for rest in np.ndindex(*[len(r) for r in other]) if other else [()]:
        def key(i, rest=rest):
            idx = list(rest)
            idx.insert(axis, i)
            return tuple(idx)

        level = [(states.name,) + key(i) for i in range(nblocks[axis])]
        depth = 0
        while len(level) > fan:
            nxt = []
            for j in range(0, len(level), fan):
                k = (f"{name}-merge-{token}-{depth}",) + key(j // fan)
                dsk[k] = (_merge, axis, *level[j:j + fan])
                nxt.append(k)
            level = nxt
            depth += 1
        dsk[(out,) + key(0)] = (_merge, axis, *level)
    graph = HighLevelGraph.from_collections(out, dsk, dependencies=[states])
    chunks = tuple((G,) if i == axis else c for i, c in enumerate(darr.chunks))
    return da.Array(graph, out, chunks, meta=meta)


def group_moments(darr, by, *, axis=0, ngroups=None, skipna=False, weights=None, order=2,
                  split_every=None) -> LazyMoments:
    """Lazy count, mean and central moments of a Dask array per group of ``by``.

    Args:
        darr: a Dask array (or array-like) of bool, integer or real float
            values; NumPy or CuPy chunks.
        by: integer group labels, 1-D of length ``darr.shape[axis]``: a NumPy
            array (sliced per chunk) or a Dask array (rechunked to ``darr``'s
            chunks along ``axis``). Negative labels mean "no group".
        axis: the axis reduced per group (an int, negative allowed).
        ngroups: the number of groups, required (an int): a lazy graph cannot
            know it without a pass over ``by``. A label >= ``ngroups`` is the
            core's ValueError when the graph is computed.
        skipna: leave NaN out, as in :func:`fastmoments.group_moments`.
        weights: None, or non-negative finite weights of ``darr``'s shape or
            1-D along ``axis`` (a Dask array, rechunked to ``darr``'s chunks,
            or an in-memory array, checked now), as in
            :func:`fastmoments_dask.moments`.
        order: 2, 3 or 4.
        split_every: fan-in of the merge tree along ``axis`` (int >= 2); default 8.

    Returns:
        A :class:`LazyMoments` computing to a :class:`fastmoments.Moments`
        whose shape is ``darr``'s with ``axis`` replaced by a group axis of
        length ``ngroups``; groups without values are empty (count 0).
    """
    order = _check_order(order)
    darr = as_dask(darr)
    arr = _build(darr, by, axis, ngroups, "moments", skipna, order, weights, split_every,
                 "fastmoments-group-moments")
    # The layout of the states: Moments for unweighted order 2, the core's
    # weighted layout of the order otherwise (as fmd.moments).
    n_fields = 3 if order == 2 and weights is None else 3 + order
    layout = type(Moments._wrap(tuple(np.zeros(0) for _ in range(n_fields))))
    return LazyMoments(arr, layout)


def group_summarize(darr, by, *, axis=0, ngroups=None, split_every=None) -> LazySummary:
    """Lazy count, mean, M2, min, max, non-finite and zero counts of a Dask array per group.

    As :func:`fastmoments.group_summarize` per group (NaN and +-Inf counted in
    ``n_nonfinite`` and left out of everything else); ``by``, ``axis``,
    ``ngroups`` and ``split_every`` as in :func:`group_moments`.

    Returns:
        A :class:`LazySummary` computing to a :class:`fastmoments.Summary`
        whose shape is ``darr``'s with ``axis`` replaced by a group axis of
        length ``ngroups``.
    """
    darr = as_dask(darr)
    arr = _build(darr, by, axis, ngroups, "summarize", False, 2, None, split_every,
                 "fastmoments-group-summarize")
    return LazySummary(arr)
