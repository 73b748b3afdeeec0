"""The three functions handed to ``dask.array.reduction``: chunk, combine, aggregate.

(Weighted moments build their chunk states with ``dask.array.blockwise`` over
the data and its aligned weights, :func:`chunk_weighted_moments`; the
reduction then takes those states with :func:`take_state` as its chunk step,
which Dask's blockwise fusion merges into the same task.)

Blocks of the reduction hold fastmoments states (:class:`~fastmoments.Moments`
or :class:`~fastmoments.Summary`) rather than arrays, so the reduction runs with
``concatenate=False``: ``combine`` and ``aggregate`` receive nested lists of
states (one nesting level per reduced axis) and merge them themselves.

Each function also accepts ``computing_meta=True``, with which Dask probes it on
a zero-size stand-in for the data (a NumPy or CuPy array) to learn the array
type; it then returns that stand-in unchanged, as ``dask.array``'s own
``moment_chunk`` does, so the type of the chunks (NumPy or CuPy) carries
through without any code here naming CuPy.
"""

from __future__ import annotations

import numpy as np

import fastmoments

__all__ = [
    "chunk_moments", "chunk_weighted_moments", "take_state", "chunk_summary",
    "combine_states", "aggregate_states",
]


def chunk_moments(x, axis, keepdims, skipna=False, order=2, computing_meta=False):
    """Moments of one chunk over ``axis``, with the reduced axes kept (length 1).

    Args:
        x: one chunk (NumPy or CuPy).
        axis: tuple of axes to reduce (normalized by Dask).
        keepdims: ignored; Dask always asks chunks to keep them.
        skipna: leave NaN out, as in :func:`fastmoments.moments`.
        order: 2, 3 or 4, as in :func:`fastmoments.moments`.
        computing_meta: Dask's meta probe; returns ``x`` unchanged.
    """
    if computing_meta:
        return x
    if order == 2:  # the call of before weights and orders came, unchanged
        return fastmoments.moments(x, axis=axis, keepdims=True, skipna=skipna)
    return fastmoments.moments(x, axis=axis, keepdims=True, skipna=skipna, order=order)


def chunk_weighted_moments(x, w, axis, skipna=False, order=2):
    """Weighted moments of one chunk over ``axis``, reduced axes kept (length 1).

    Called by ``dask.array.blockwise`` on matching blocks of the data and the
    weights; the core checks the weights (a ValueError for negative, NaN or
    infinite ones, raised when the graph is computed).

    Args:
        x: one chunk (NumPy or CuPy).
        w: its weights: a block of ``x``'s shape, or 1-D along the one
            reduced axis (the core broadcasts them, without a copy).
        axis: tuple of axes to reduce (non-negative, sorted).
        skipna: leave NaN out, as in :func:`fastmoments.moments`.
        order: 2, 3 or 4.
    """
    return fastmoments.moments(x, axis=axis, keepdims=True, skipna=skipna, weights=w, order=order)


def take_state(state, axis, keepdims, computing_meta=False):
    """The chunk step of a reduction whose blocks already are states (built
    by :func:`chunk_weighted_moments`): each passes through unchanged."""
    return state


def chunk_summary(x, axis, keepdims, computing_meta=False):
    """Summary of one chunk over ``axis``, with the reduced axes kept (length 1).

    Args:
        x: one chunk (NumPy or CuPy).
        axis: tuple of axes to reduce (normalized by Dask).
        keepdims: ignored; Dask always asks chunks to keep them.
        computing_meta: Dask's meta probe; returns ``x`` unchanged.
    """
    if computing_meta:
        return x
    return fastmoments.summarize(x, axis=axis, keepdims=True)


def _flatten(nested, out):
    if isinstance(nested, (list, tuple)):
        for item in nested:
            _flatten(item, out)
    else:
        out.append(nested)
    return out


def _merge_all(states):
    """One state from many of the same shape: a pairwise tree in the kernels."""
    if len(states) == 1 or states[0].size == 0:
        # A zero-size state (an empty block along a kept axis) has nothing to
        # merge; fastmoments' reduce also refuses to reshape it (core bug).
        return states[0]
    cls = type(states[0])
    # np.stack dispatches to CuPy for CuPy fields (NEP 18), so this stays
    # array-type agnostic; the states are small (the chunk's shape without the
    # reduced axes), the data itself is never copied.
    stacked = cls._wrap(
        tuple(np.stack(group) for group in zip(*(s.fields for s in states)))
    )
    return stacked.reduce(axis=0)


def combine_states(parts, axis, keepdims, computing_meta=False):
    """Merge the states of neighbouring chunks (an inner node of Dask's tree).

    Args:
        parts: a state or nested lists of states, all of one shape (the reduced
            axes have length 1).
        axis: the reduced axes (unused: the states already have them at 1).
        keepdims: always True for inner nodes.
        computing_meta: Dask's meta probe; returns ``parts`` unchanged.
    """
    if computing_meta:
        return parts
    return _merge_all(_flatten(parts, []))


def aggregate_states(parts, axis, keepdims, computing_meta=False):
    """The root of the tree: merge, then drop the reduced axes unless ``keepdims``.

    Args:
        parts: a state or nested lists of states, all of one shape.
        axis: the reduced axes.
        keepdims: keep the reduced axes with length 1.
        computing_meta: Dask's meta probe; returns ``parts`` unchanged.
    """
    if computing_meta:
        return parts
    state = _merge_all(_flatten(parts, []))
    if keepdims:
        return state
    shape = tuple(n for i, n in enumerate(state.shape) if i not in axis)
    return type(state)._wrap(tuple(f.reshape(shape) for f in state.fields))
