"""``group_summarize`` on CuPy arrays: per-label summaries from the
``summarize_each`` kernel.

The rows of ``x`` (the slices along the grouped axis) are put in label order
by a sort on unique keys (label, row), so the order, and with it every
result, is the same on every run and device. Each (column, group) is then
one contiguous run of the gathered array, read by pointer from a table built
on the device: the kernel pair of ``summarize_each``, with its exact merges,
over ``columns x groups`` runs. Launches: the sort, a gather, a few array
operations to build the table, the summarize_each pair; one synchronization
reads the largest label (the bound check) and one the table's size.
"""

from __future__ import annotations

import numpy as np

from .._inputs import label_error
from . import _sources as src
from ._layout import EACH_CHUNK

__all__ = ["group_summarize"]


def group_summarize(x, labels, axis, ngroups):
    import cupy

    from . import _alloc, _empty_states, _finalize, _kernels, _ptrs, THREADS, _NULL

    G = int(ngroups)
    x2 = cupy.moveaxis(x, axis, 0)
    rest = x2.shape[1:]
    n = x2.shape[0]
    m = int(np.prod(rest, dtype=np.int64))
    x2 = x2.reshape(n, m)
    lab = labels.astype(np.int64, copy=False)
    if lab.size:
        top = int(lab.max())
        if top >= G:
            raise ValueError(label_error(top, G))
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
