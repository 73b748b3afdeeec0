"""Streaming reduction of an array source to one Summary, one piece at a time.

Only the current piece is in memory: its Summary over the reduced axes is
merged into an accumulator the size of the output. The result does not depend
on how the array was cut (states merge exactly), so pieces follow the file's
own layout: contiguous byte runs for ``.npy``/raw, whole chunks along the
first axis for Zarr and HDF5.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..reductions import summarize
from ..state import Summary
from ._base import ArraySource, InputError


def _block_plan(shape, itemsize, chunk):
    """Blocks in memory order (C), each one contiguous run of at most ``chunk`` bytes.

    Yields (lead, start, stop, nbytes): the block is ``x[lead + (slice(start, stop),)]``.
    """
    ndim = len(shape)
    if ndim == 0:
        yield (), None, None, itemsize
        return
    d = 0
    while d < ndim - 1 and math.prod(shape[d + 1 :]) * itemsize > chunk:
        d += 1
    row = math.prod(shape[d + 1 :]) * itemsize
    k = max(1, chunk // max(row, 1))
    for lead in itertools.product(*(range(n) for n in shape[:d])):
        for a in range(0, shape[d], k):
            b = min(a + k, shape[d])
            yield lead, a, b, (b - a) * row


def reduce_bytes(arr: ArraySource, axes, chunk, bar) -> Summary:
    """Summary of ``arr`` over ``axes`` (normalized), reading one chunk at a time."""
    shape, ndim = arr.shape, len(arr.shape)
    # A Fortran-ordered array is the C-ordered array of the reversed shape, transposed.
    cshape = shape[::-1] if arr.fortran else shape
    caxes = tuple(sorted(ndim - 1 - a for a in axes)) if arr.fortran else axes
    keep = tuple(1 if i in caxes else n for i, n in enumerate(cshape))
    empty = summarize(np.empty((0,) + keep), axis=0)
    acc = [np.array(f) for f in empty.fields]
    reader = arr.opener()
    try:
        for lead, a, b, nbytes in _block_plan(cshape, arr.dtype.itemsize, chunk):
            raw = reader.next(nbytes)
            if a is None:
                block = raw.view(arr.dtype).reshape(())
            else:
                bshape = (1,) * len(lead) + (b - a,) + cshape[len(lead) + 1 :]
                block = raw.view(arr.dtype).reshape(bshape)
            state = summarize(block, axis=caxes, keepdims=True)
            del raw, block  # unmaps the chunk (mapped reader) before the next one
            region = tuple(
                slice(0, 1) if i in caxes else (slice(lead[i], lead[i] + 1) if i < len(lead) else (slice(a, b) if i == len(lead) and a is not None else slice(None)))
                for i in range(ndim)
            )
            old = Summary._wrap(tuple(f[region] for f in acc))
            for f, new in zip(acc, old.merge(state).fields):
                f[region] = new
            if bar is not None:
                bar.update(nbytes)
    finally:
        reader.close()
    if arr.fortran:
        acc = [f.transpose() for f in acc]
    out_shape = tuple(n for i, n in enumerate(shape) if i not in axes)
    return Summary._wrap(tuple(np.ascontiguousarray(f).reshape(out_shape) for f in acc))


def normalize_axes(axis, ndim, where):
    if axis is None:
        return tuple(range(ndim))
    out = []
    for a in axis:
        if not -ndim <= a < ndim:
            raise InputError(f"--axis {a} is out of range for {where}, which has {ndim} dimension{'s' * (ndim != 1)}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise InputError(f"--axis repeats an axis: {axis}")
    return tuple(sorted(out))




def reduce_rows(arr: ArraySource, axes, chunk, bar) -> Summary:
    """Summary of a Zarr/HDF5 array over ``axes`` (normalized), read in slices of the first axis.

    A slice holds as many rows as fit in ``chunk`` bytes, rounded down to whole
    chunks of the store (``row_step``) so each stored chunk is decoded once;
    a stored chunk larger than ``chunk`` is read alone (its library decodes it
    whole anyway, so memory follows the store's chunk there).
    """
    shape, ndim = arr.shape, len(arr.shape)
    if ndim == 0:
        return summarize(np.asarray(arr.read_rows(None, None)), axis=None)
    row = math.prod(shape[1:]) * arr.dtype.itemsize
    k = max(1, chunk // max(row, 1))
    k = max(k - k % arr.row_step, arr.row_step)
    if shape[0] == 0:
        state = summarize(np.empty(shape, arr.dtype), axis=axes, keepdims=True)
        acc = list(state.fields)
    elif 0 in axes:
        acc = None
    else:
        keep = tuple(1 if i in axes else n for i, n in enumerate(shape))
        acc = [np.array(f) for f in summarize(np.empty((0,) + keep[1:], arr.dtype), axis=0).fields]
        acc = [np.empty(shape[:1] + f.shape, f.dtype) for f in acc]
    for a in range(0, shape[0], k):
        b = min(a + k, shape[0])
        block = arr.read_rows(a, b)
        state = summarize(block, axis=axes, keepdims=True)
        del block
        if 0 in axes:
            acc = state if acc is None else acc.merge(state)
        else:
            for f, new in zip(acc, state.fields):
                f[a:b] = new.reshape(f[a:b].shape)
        if bar is not None:
            bar.update((b - a) * row)
    fields = acc.fields if isinstance(acc, Summary) else acc
    out_shape = tuple(n for i, n in enumerate(shape) if i not in axes)
    return Summary._wrap(tuple(np.ascontiguousarray(f).reshape(out_shape) for f in fields))
