"""reduce_table: summaries of many 1-D arrays, read in place by address.

The kernel behind ``summarize_each``: each array is split exactly as one row
of :func:`.rows.reduce_rows`, so that its state is bit-identical to reducing
it alone; the tasks of all arrays share one parallel region, in an order that
balances the threads.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, prange

from ._llvm import _as_voidptr
from .base import BLOCK, CHUNK, N_FLOAT, N_INT, _opts, _serial_twin, set_empty
from .histogram import N_BINS, count_into
from .merges import FOLD_PARALLEL_MIN, _fold_chunks
from .origins import _from_origin, _row_origin
from .rows import SMALL_ROW, _n_chunks, _row_chunk, _small_rows


@njit(**_opts)
def address(a):
    """The address of ``a``'s first element."""
    return a.ctypes.data


@njit(**_opts)
def _table_chunk(kind, address, size, code, b0, b1, si, sf, o, origin, hist):
    # Each array takes the same path as a row of reduce_rows, so results match it bit for bit.
    if size <= SMALL_ROW:
        if code == 1:
            y64 = carray(_as_voidptr(address), (1, size), np.float64)
            _small_rows(kind, y64, 0, 1, si, sf, o)
            if hist.shape[0] > 0:
                count_into(y64[0], hist, o)
        else:
            y32 = carray(_as_voidptr(address), (1, size), np.float32)
            _small_rows(kind, y32, 0, 1, si, sf, o)
            if hist.shape[0] > 0:
                count_into(y32[0], hist, o)
        return
    if code == 1:
        _row_chunk(kind, carray(_as_voidptr(address), size, np.float64), b0, b1, si, sf, o, origin, hist)
    else:
        _row_chunk(kind, carray(_as_voidptr(address), size, np.float32), b0, b1, si, sf, o, origin, hist)


@njit(**_opts)
def _table_origin(address, size, code):
    """_row_origin of the array at ``address``, as _table_chunk reads it."""
    if size <= SMALL_ROW:
        return 0.0
    if code == 1:
        return _row_origin(carray(_as_voidptr(address), size, np.float64))
    return _row_origin(carray(_as_voidptr(address), size, np.float32))


@njit(**_opts)
def _balanced_order(owner, first, sizes, n_threads):
    """A visiting order of the tasks that gives each thread's contiguous share
    of a static schedule about equal work: largest first, dealt round-robin.
    Each task writes its own slot, so the order never changes a result."""
    total = owner.size
    work = np.empty(total, np.int64)
    for t in range(total):
        a = owner[t]
        work[t] = min(CHUNK * BLOCK, sizes[a] - (t - first[a]) * CHUNK * BLOCK) + 64
    by_size = np.argsort(-work, kind="mergesort")
    perm = np.empty(total, np.int64)
    j = 0
    for lane in range(n_threads):
        for r in range(lane, total, n_threads):
            perm[j] = by_size[r]
            j += 1
    return perm


@njit(parallel=True, **_opts)
def reduce_table(kind, addresses, sizes, codes, n_threads, hist_out, si_out, sf_out):
    """States of many 1-D contiguous float32/float64 arrays given by address.

    Each array is split exactly as one row of :func:`reduce_rows`, so its state
    is bit-identical to reducing it alone. Where ``hist_out`` has rows (one per
    array, zeroed), each array's magnitude histogram is added there: each task
    counts its blocks from cache into a row of its own, and the rows of an
    array are summed (exact integers: the same for any thread count).
    """
    n = addresses.size
    first = np.empty(n + 1, np.int64)
    first[0] = 0
    for a in range(n):
        first[a + 1] = first[a] + _n_chunks(sizes[a])
    total = first[n]
    owner = np.empty(total, np.int64)
    for a in range(n):
        for t in range(first[a], first[a + 1]):
            owner[t] = a
    si_c = np.empty((N_INT, total), np.int64)
    sf_c = np.empty((N_FLOAT, total), np.float64)
    perm = _balanced_order(owner, first, sizes, n_threads)
    hist_c = np.zeros((total if hist_out.shape[0] > 0 else 0, N_BINS), np.int64)
    origins = np.empty(n)
    for a in range(n):
        origins[a] = _table_origin(addresses[a], sizes[a], codes[a])
    for j in prange(total):
        t = perm[j]
        a = owner[t]
        size = sizes[a]
        if size == 0:
            set_empty(kind, si_c, sf_c, t)
            continue
        nb = (size + BLOCK - 1) // BLOCK
        c = t - first[a]
        _table_chunk(kind, addresses[a], size, codes[a], c * CHUNK,
                     min(nb, (c + 1) * CHUNK), si_c, sf_c, t, origins[a], hist_c)
    if hist_out.shape[0] > 0:
        for a in range(n):
            for t in range(first[a], first[a + 1]):
                for k in range(N_BINS):
                    hist_out[a, k] += hist_c[t, k]
    if total < FOLD_PARALLEL_MIN:
        for a in range(n):
            _fold_chunks(kind, si_c, sf_c, first[a], first[a + 1] - first[a], si_out, sf_out, a)
            _from_origin(sf_out, a, origins[a])
        return si_out, sf_out
    for a in prange(n):
        _fold_chunks(kind, si_c, sf_c, first[a], first[a + 1] - first[a], si_out, sf_out, a)
        _from_origin(sf_out, a, origins[a])
    return si_out, sf_out


reduce_table_serial = _serial_twin(reduce_table)
