"""Weighted kernels, part 3: rows, the last axis of a C-contiguous (m, k)
array, cut into fixed blocks (see :mod:`fastmoments.cpu.weighted`)."""

from __future__ import annotations

import numpy as np
from numba import prange

from ._llvm import _f64
from .base import BLOCK, CHUNK, STACK
from .weighted_base import _MAXF, _ORIGIN_MAX, NF, ORIGIN_SAMPLES, ORIGIN_SEARCH, WEIGHTED, _weight
from .weighted_blocks import _one_block, _set_empty
from .weighted_merges import _copy_slot, _finish, _fold, _from_origin, _push


# -- rows: reduce the last axis of a C-contiguous (m, k) array ---------------------


def _wrow(wx, i):
    """Row i of the weights (a dummy's row 0 for unweighted data, never read)."""
    return wx[i] if WEIGHTED else wx[0]


def _origin(y, wy):
    """The origin of a row's block means: 0.0 for a row of one block, else the
    (lower) median of finite values of positive weight found at or just
    after ORIGIN_SAMPLES evenly spaced positions (0.0 if none). One of the
    values taken, it lies within sqrt(n) standard deviations of their mean."""
    if y.size <= BLOCK:
        return 0.0
    v = np.empty(ORIGIN_SAMPLES)
    k = 0
    last = y.size - 1
    for s in range(ORIGIN_SAMPLES):
        i0 = s * last // (ORIGIN_SAMPLES - 1)
        for i in range(i0, min(y.size, i0 + ORIGIN_SEARCH)):
            a = _f64(y[i])
            w = _weight(wy, i)
            if abs(a) <= _MAXF and w > 0.0:
                v[k] = a
                k += 1
                break
    if k == 0:
        return 0.0
    v = np.sort(v[:k])
    o = v[(k - 1) // 2]
    return o if abs(o) <= _ORIGIN_MAX else 0.0


def _row_chunk(y, wy, b0, b1, si_out, sf_out, o, origin):
    """State of blocks b0..b1 of the row ``y`` into slot ``o`` (mean relative
    to ``origin``); returns the tally of invalid weights."""
    if b1 - b0 == 1:
        lo = b0 * BLOCK
        hi = min(y.size, b1 * BLOCK)
        return _one_block(y[lo:hi], wy[lo:hi], origin, np.nan, si_out, sf_out, o)[0]
    si = np.empty((1, STACK), np.int64)
    sf = np.empty((NF, STACK), np.float64)
    top = 0
    bad = 0.0
    K = np.nan
    for b in range(b0, b1):
        lo = b * BLOCK
        hi = min(y.size, lo + BLOCK)
        r = _one_block(y[lo:hi], wy[lo:hi], origin, K, si, sf, top)
        bad += r[0]
        K = r[1]
        top = _push(si, sf, top, b - b0)
    _finish(si, sf, top)
    _copy_slot(si, sf, 0, si_out, sf_out, o)
    return bad


def _row_run(x, wx, i0, i1, si_out, sf_out):
    """States of the rows i0..i1, of one block each."""
    bad = 0.0
    K = np.nan
    for i in range(i0, i1):
        r = _one_block(x[i], _wrow(wx, i), 0.0, K, si_out, sf_out, i)
        bad += r[0]
        K = r[1]  # the shift of the next row
    return bad


ROWS_TASK = 64  # rows of one block per parallel task


def reduce_rows(x, wx, si_out, sf_out):
    """States of each row of the C-contiguous (m, k) ``x`` (weights ``wx``
    of the same layout, or a dummy (1, 1) array for unweighted data) into
    ``si_out`` (1, m) and ``sf_out`` (NF, m); returns the tally of invalid
    weights."""
    m, k = x.shape
    if k == 0:
        for i in range(m):
            _set_empty(si_out, sf_out, i)
        return 0.0
    nb = (k + BLOCK - 1) // BLOCK
    # Blocks per task: CHUNK, or fewer for a single row of under 1024 blocks
    # so that it still splits into 16 tasks or more. Any power of two gives
    # the same merge tree, so results do not change with it.
    chunk = CHUNK
    while m == 1 and chunk > 4 and nb < 16 * chunk:
        chunk //= 2
    nc = (nb + chunk - 1) // chunk
    if nb == 1:  # rows of one block: tasks of ROWS_TASK rows, fused row after row
        n_tasks = (m + ROWS_TASK - 1) // ROWS_TASK
        bad = np.zeros(n_tasks)
        for t in prange(n_tasks):
            bad[t] = _row_run(x, wx, t * ROWS_TASK, min(m, (t + 1) * ROWS_TASK), si_out, sf_out)
        return bad.sum()
    bad = np.zeros(m * nc)
    if nc == 1:
        for i in prange(m):
            y = x[i]
            wy = _wrow(wx, i)
            origin = _origin(y, wy)
            bad[i] = _row_chunk(y, wy, 0, nb, si_out, sf_out, i, origin)
            _from_origin(sf_out, i, origin)
        return bad.sum()
    si_c = np.empty((1, m * nc), np.int64)
    sf_c = np.empty((NF, m * nc), np.float64)
    origins = np.empty(m)
    for i in range(m):
        origins[i] = _origin(x[i], _wrow(wx, i))
    for t in prange(m * nc):
        i = t // nc
        c = t - i * nc
        bad[t] = _row_chunk(x[i], _wrow(wx, i), c * chunk, min(nb, (c + 1) * chunk), si_c, sf_c, t, origins[i])
    for i in prange(m):
        _fold(si_c, sf_c, i * nc, nc, si_out, sf_out, i)
        _from_origin(sf_out, i, origins[i])
    return bad.sum()
