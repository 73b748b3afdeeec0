"""Grouped moments and summaries on CuPy arrays: ``group_moments``,
``group_weighted_moments`` and ``group_summarize``.

Few slots (groups x columns, see ``plan``): one pass of ``fm_grouped.cu``
(weights and orders 3/4: ``fm_wgrouped.cu``), each block's warps keeping
private states of every slot in shared memory, then ``fm_finalize`` (or
``fm_wfinalize``) merging the blocks' states of each slot in a tree.
Launches: the partial kernel and the finalize; one synchronization reads
the largest label (the bound check, before any kernel writes by label), and
with float or signed integer weights one more the kernel's flag of bad
weights.

More slots: ``group_summarize`` puts the rows of ``x`` (the slices along the
grouped axis) in label order by a sort on unique keys (label, row), so the
order, and with it every result, is the same on every run and device. Each
(column, group) is then one contiguous run of the gathered array, read by
pointer from a table built on the device: the kernel pair of
``summarize_each``, with its exact merges, over ``columns x groups`` runs.
Launches: the sort, a gather, a few array operations to build the table,
the summarize_each pair; one synchronization reads the largest label and
one the table's size. ``group_moments`` and ``group_weighted_moments``
return None there, and the caller takes its array code (``bincount``
passes).

Which of the two is faster for which number of slots has not been measured
on a device yet (issue 20); ``plan``'s limit is that of a block's static
shared memory.
"""

from __future__ import annotations

import numpy as np

from .._inputs import label_error
from . import _sources as src
from ._layout import EACH_CHUNK

_NULL = np.uint64(0)

__all__ = ["group_moments", "group_weighted_moments", "group_summarize", "plan"]

# fm_grouped.cu: doubles of shared memory per block (FM_GSHARED) and per
# slot and warp (FM_GSTATE_FIELDS).
SHARED = 6144
FIELDS = {src.MOMENTS: 4, src.MOMENTS_SKIPNA: 4, src.SUMMARY: 8}
# Warps per block at most, and 32-value steps per warp and block at least
# (so that a block's partial states, one per slot, stay few beside its values).
WARPS = 8
STEPS = 64


def plan(slots, fields, total):
    """(warps per block, values per block, blocks) for ``total`` values in
    ``slots`` slots of ``fields`` doubles each (``FIELDS[kind]``, or
    ``order + 4`` for weighted states), or None where a warp's states of all
    slots would not fit in a block's shared memory. The values per block are
    also at least 32 per slot: a block's partial states (4 to 8 doubles a
    slot, its shift included) then take at most an eighth to a quarter of
    the bytes of its values for 8-byte data, up to twice them for 1-byte
    data. A function of the shape alone, so results are too."""
    warps = min(WARPS, SHARED // (max(slots, 1) * fields))
    if warps < 1:
        return None
    step = 32 * warps
    chunk = max(step * STEPS, 32 * slots)
    chunk = -(-chunk // step) * step
    return warps, chunk, max(-(-total // chunk), 1)


def _rows(x, labels, axis, ngroups):
    """(x as (n, m) rows along ``axis``, the labels as int64, the number of
    groups, the shape of the other axes), after the bound check of the labels."""
    import cupy

    G = int(ngroups)
    x2 = cupy.moveaxis(x, axis, 0)
    rest = tuple(x2.shape[1:])
    n = x2.shape[0]
    m = int(np.prod(rest, dtype=np.int64))
    lab = labels.astype(np.int64, copy=False)
    if lab.size:
        top = int(lab.max())
        if top >= G:
            raise ValueError(label_error(top, G))
    return x2.reshape(n, m), lab, G, rest


def _one_pass(kind, x2, lab, G, rest, axis):
    """The fields of ``kind`` per group by fm_grouped.cu, or None where its
    states do not fit (see plan)."""
    import cupy

    from . import _alloc, _empty_states, _finalize, _kernels, _ptrs

    n, m = x2.shape
    S = G * m
    out_shape = (G,) + rest

    def laid(f):  # (G * m,), slot g * m + column -> x's layout
        return cupy.moveaxis(f.reshape(out_shape), 0, axis)

    if S == 0 or n == 0:
        return tuple(laid(f) for f in _empty_states(kind, (S,)))
    p = plan(S, FIELDS[kind], n * m)
    if p is None:
        return None
    warps, chunk, C = p
    data = x2 if x2.dtype in src.DTYPE_CODES else x2.astype(np.float64)
    data = cupy.ascontiguousarray(data)
    lab = cupy.ascontiguousarray(lab)
    parts = _alloc(kind, (S * C,))
    shift = cupy.empty(S * C)
    _kernels.group_partial_kernel(data.dtype, kind)(
        (C,), (32 * warps,),
        (data, lab, np.int64(n), np.int64(m), np.int64(G), np.int64(C), np.int64(chunk), shift, *_ptrs(parts)))
    outs = _alloc(kind, (S,))
    _finalize(kind, S, C, _NULL, 0, parts, outs, shift=shift)
    return tuple(laid(f) for f in outs)


def group_moments(x, labels, axis, ngroups, skipna):
    """(count, mean, m2) per group in one pass, or None for more slots than
    fit (the caller's array code then serves)."""
    x2, lab, G, rest = _rows(x, labels, axis, ngroups)
    return _one_pass(src.MOMENTS_SKIPNA if skipna else src.MOMENTS, x2, lab, G, rest, axis)


def group_weighted_moments(x, w, labels, axis, ngroups, skipna, order):
    """The fields of kind ``weighted<order>`` per group in one pass of
    fm_wgrouped.cu, or None for more slots than fit (the caller's array code
    then serves). ``w``: None, or weights of ``x``'s shape (a broadcast view
    is read in place where moving ``axis`` first keeps it 2-D)."""
    import cupy

    from .._inputs import weights_error
    from .._pebay import empty_weighted
    from . import _kernels, _walloc, _wfinalize, _wptrs

    x2, lab, G, rest = _rows(x, labels, axis, ngroups)
    n, m = x2.shape
    S = G * m
    out_shape = (G,) + rest

    def laid(f):
        return cupy.moveaxis(f.reshape(out_shape), 0, axis)

    if S == 0 or n == 0:
        if w is not None:  # no kernel reads them: checked here, as the CPU does
            err = weights_error(w, cupy)
            if err:
                raise ValueError(err)
        return tuple(laid(f) for f in empty_weighted(cupy, (S,), order))
    p = plan(S, order + 4, n * m)
    if p is None:
        return None
    warps, chunk, C = p
    data = x2 if x2.dtype in src.DTYPE_CODES else x2.astype(np.float64)
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    data = cupy.ascontiguousarray(data)
    wr = wc = 0
    if w is not None:
        w2 = cupy.moveaxis(w, axis, 0).reshape(n, m)  # a view where the layout allows, else a copy
        if w2.dtype not in src.DTYPE_CODES:
            w2 = w2.astype(np.float64)
        if not w2.dtype.isnative:
            w2 = w2.astype(w2.dtype.newbyteorder("="))
        if any(st % w2.itemsize for st in w2.strides) or min(w2.strides) < 0:
            w2 = cupy.ascontiguousarray(w2)
        wr, wc = (st // w2.itemsize for st in w2.strides)
    lab = cupy.ascontiguousarray(lab)
    checked = w is not None and w2.dtype.kind not in "bu"
    bad = cupy.zeros((), np.int32) if checked else None
    parts = _walloc(order, (S * C,))
    shift = cupy.empty(S * C)
    _kernels.wgroup_partial_kernel(data.dtype, None if w is None else w2.dtype, order)(
        (C,), (32 * warps,),
        (data, _NULL if w is None else w2, np.int64(wr), np.int64(wc), lab, np.int64(n), np.int64(m), np.int64(G),
         np.int32(skipna), np.int64(C), np.int64(chunk), _NULL if bad is None else bad, shift, *_wptrs(parts)))
    outs = _walloc(order, (S,))
    _wfinalize(order, S, C, _NULL, parts, outs, shift=shift)
    if bad is not None and bool(bad):
        raise ValueError(weights_error(w, cupy) or "weights must be non-negative and finite")
    return tuple(laid(f) for f in outs)


def group_summarize(x, labels, axis, ngroups):
    """The 7 summary fields per group: in one pass for few slots, else by a sort."""
    x2, lab, G, rest = _rows(x, labels, axis, ngroups)
    fields = _one_pass(src.SUMMARY, x2, lab, G, rest, axis)
    return fields if fields is not None else _sorted_summaries(x2, lab, G, rest, axis)


def _sorted_summaries(x2, lab, G, rest, axis):
    import cupy

    from . import _alloc, _empty_states, _finalize, _kernels, _ptrs, THREADS

    n, m = x2.shape
    out_shape = (G,) + tuple(rest)

    def laid(f):  # (m * G,) in column-major order of (column, group) -> x's layout
        return cupy.moveaxis(f.reshape(m, G).T.reshape(out_shape), 0, axis)

    rows = cupy.flatnonzero(lab >= 0)
    if G == 0 or m == 0 or rows.size == 0:
        return tuple(laid(f) for f in _empty_states(src.SUMMARY, (m * G,)))
    kept = lab[rows]
    # Unique keys: any sort gives the one order (label, then row).
    order = rows[cupy.argsort(kept * n + rows)]
    counts = cupy.bincount(lab[order], minlength=G)[:G]
    starts = cupy.cumsum(counts) - counts
    data = x2 if x2.dtype in src.DTYPE_CODES else x2.astype(np.float64)
    xt = cupy.ascontiguousarray(data.T[:, order])  # (m, rows): run (j, g) at j * nrows + starts[g]
    nrows = int(order.size)
    size = cupy.tile(counts, m)
    first = (cupy.arange(m, dtype=np.int64)[:, None] * nrows + starts[None, :]).reshape(-1)
    chunks = -(-size // EACH_CHUNK)
    table = cupy.zeros((m * G + 1, 4), np.int64)
    table[:-1, 0] = xt.data.ptr + first * xt.itemsize
    table[:-1, 1] = size
    table[1:, 2] = cupy.cumsum(chunks)
    table[:-1, 3] = src.dtype_code(xt.dtype)
    total, max_chunks = (int(v) for v in cupy.stack([table[-1, 2], chunks.max()]).get())
    parts = _alloc(src.SUMMARY, (total,))
    origin = cupy.zeros(m * G)  # each run's origin (see fm_reduce.cu)
    _kernels.each_kernel()(
        (total,), (THREADS,), (table, np.int64(m * G), np.int64(EACH_CHUNK), origin, *_ptrs(parts), _NULL))
    outs = _alloc(src.SUMMARY, (m * G,))
    chunk0 = np.uint64(table.data.ptr + 2 * table.itemsize)
    _finalize(src.SUMMARY, m * G, max_chunks, chunk0, 4, parts, outs, origin)
    del xt  # alive until here: the kernels read it by address
    return tuple(laid(f) for f in outs)
