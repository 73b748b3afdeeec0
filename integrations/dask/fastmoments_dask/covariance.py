"""Mean vector and covariance of a Dask array: one :class:`fastmoments.CoMoments` per chunk, tree-merged.

:func:`comoments` builds a graph of one task per chunk of observations
(``fastmoments.comoments`` on that chunk, all variables at once, with its
block of the weights) and a fixed tree of exact merges (Chan/Pebay), fan-in
``split_every``. The result is a ``dask.delayed.Delayed`` that computes to
a :class:`fastmoments.CoMoments`; its methods stay lazy::

    import dask.array as da, fastmoments_dask as fmd
    x = da.random.normal(size=(4_000_000, 32), chunks=(500_000, 32))
    state = fmd.comoments(x).compute()     # a fastmoments.CoMoments
    cov = fmd.comoments(x).cov()           # a Delayed of the (32, 32) matrix

Chunks may be NumPy or CuPy arrays (the state's fields follow them).
"""

from __future__ import annotations

from numbers import Integral

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

import fastmoments
from fastmoments._dispatch import backend_for
from fastmoments._inputs import weights_error

from ._checks import as_dask, fan_in, unknown, weights_array

__all__ = ["comoments"]

_FAN_IN = 8


def _chunk(x, w, skipna):
    return fastmoments.comoments(x, weights=w, skipna=skipna)


def _merge(*states):
    out = states[0]
    for s in states[1:]:
        out = out.merge(s)
    return out


def _weights(weights, darr):
    """``weights`` as a 1-D Dask array chunked as ``darr``'s observations."""
    n = darr.shape[0]
    w = weights_array(weights, darr)
    known = not unknown(darr.chunks[0]) and not (isinstance(w, da.Array) and unknown(w.chunks[0]))
    if w.ndim != 1 or (known and w.shape[0] != n):
        raise ValueError(f"weights of shape {w.shape} do not fit x of {n} observations: give 1-D weights, "
                         "one per observation")
    if not isinstance(w, da.Array):
        msg = weights_error(w, backend_for(w).xp)  # in memory: cheap to check now
        if msg is not None:
            raise ValueError(msg)
        if not known:
            raise ValueError("x has unknown chunk sizes: give the weights as a Dask array of the same "
                             "chunks, or call x.compute_chunk_sizes() first")
        return da.from_array(w, chunks=(darr.chunks[0],), asarray=False)
    if not known:
        if len(w.chunks[0]) == len(darr.chunks[0]):
            return w  # aligned chunk by chunk (e.g. indexed by the same mask); checked per chunk
        raise ValueError(f"weights with chunks {w.chunks} cannot be aligned with x's {darr.chunks[0]} "
                         "of unknown sizes: call compute_chunk_sizes() on both")
    return w if w.chunks[0] == darr.chunks[0] else w.rechunk((darr.chunks[0],))


def comoments(darr, axis=0, weights=None, *, skipna=False, split_every=None):
    """Lazy :class:`fastmoments.CoMoments` of a 2-D Dask array.

    Args:
        darr: a 2-D Dask array (or array-like) of bool, integer or real float
            values, NumPy or CuPy chunks; observations along ``axis``. Its
            variables are gathered into one chunk (a rechunk where they span
            several), so each task reduces whole observations.
        axis: 0 (rows are observations, as ``np.cov(x, rowvar=False)``) or 1.
        weights: None, or 1-D non-negative finite weights, one per
            observation: a Dask array (rechunked to match) or an in-memory
            array (checked now). Dask weights with negative, NaN or infinite
            values are a ValueError when computed.
        skipna: leave observations with any NaN out (complete cases).
        split_every: fan-in of the merge tree (int >= 2); default 8.

    Returns:
        A ``dask.delayed.Delayed`` computing to a :class:`fastmoments.CoMoments`.
    """
    darr = as_dask(darr)
    if darr.ndim != 2:
        raise ValueError(f"comoments needs a 2-D x (observations along axis, variables along the other), "
                         f"got shape {darr.shape}")
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, Integral):
        raise TypeError(f"axis must be 0 or 1 (the axis of observations), got {axis!r}")
    if not -2 <= axis <= 1:
        raise np.exceptions.AxisError(int(axis), 2, "axis of observations")
    fan = _FAN_IN if split_every is None else fan_in(split_every)
    if axis % 2 == 1:
        darr = darr.T
    if len(darr.chunks[1]) > 1:
        darr = darr.rechunk({1: -1})
    w = None if weights is None else _weights(weights, darr)
    skipna = bool(skipna)
    xblocks = darr.to_delayed().ravel()
    wblocks = [None] * len(xblocks) if w is None else list(w.to_delayed().ravel())
    token = tokenize(darr, w, skipna)
    level = [
        dask.delayed(_chunk, pure=True)(xb, wb, skipna, dask_key_name=f"fastmoments-comoments-chunk-{token}-{i}")
        for i, (xb, wb) in enumerate(zip(xblocks, wblocks))
    ]
    depth = 0
    while len(level) > 1:
        level = [
            dask.delayed(_merge, pure=True)(*level[i:i + fan],
                                            dask_key_name=f"fastmoments-comoments-merge-{token}-{depth}-{i}")
            for i in range(0, len(level), fan)
        ]
        depth += 1
    return level[0]
