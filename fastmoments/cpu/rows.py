"""reduce_rows: the states of each row of a C-contiguous (m, k) array.

Rows are split into blocks (see :mod:`.groups`) merged on a carry stack,
CHUNK blocks per parallel task; rows of one block are read four at a time;
rows of at most SMALL_ROW values are transposed into a scratch tile and
reduced as its columns (see :mod:`.tiles`). Moments of short rows have their
own kernel in :mod:`.short_rows`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._llvm import _f64
from .base import (
    BLOCK,
    CHUNK,
    _MAXF,
    MOMENTS_SKIPNA,
    N_FLOAT,
    N_INT,
    STACK,
    SUMMARY,
    copy_slot,
    _opts,
    _serial_twin,
    set_empty,
)
from .blocks import scaled_redo
from .histogram import N_BINS, count_block, fold_scratch, new_scratch
from .groups import GROUP, block_state, group_states, states4
from .merges import FOLD_PARALLEL_MIN, carry_finish, carry_push, _fold_chunks
from .origins import _from_origin, _row_origin
from .tiles import _tile_moments, _tile_summary


# -- rows: reduce the last axis of a C-contiguous (m, k) array --------------------


@njit(**_opts)
def _row_chunk(kind, y, b0, b1, si_out, sf_out, o, origin, hist):
    """State of blocks b0..b1 of the row ``y``, written to slot ``o``, its
    mean relative to ``origin``. Where ``hist`` has rows (summaries with a
    histogram), the blocks' magnitude histogram is added to its row ``o``,
    each block counted right after its summary, from cache."""
    counting = hist.shape[0] > 0
    c = new_scratch(counting)
    if b1 - b0 == 1:
        block = y[b0 * BLOCK : min(y.size, b1 * BLOCK)]
        block_state(kind, block, si_out, sf_out, o, origin)
        if counting:
            count_block(block, c)
            fold_scratch(c, hist, o, block, si_out[0, o] - si_out[2, o])
        return
    si = np.empty((N_INT, STACK), np.int64)
    sf = np.empty((N_FLOAT, STACK), np.float64)
    gi = np.empty((N_INT, GROUP), np.int64)
    gf = np.empty((N_FLOAT, GROUP), np.float64)
    full = y.size // BLOCK
    top = 0
    b = b0
    while b < b1:
        if kind != MOMENTS_SKIPNA and b % GROUP == 0 and b + GROUP <= min(b1, full):
            group_states(kind, y, b, gi, gf, origin)
            if counting:
                count_block(y[b * BLOCK : (b + GROUP) * BLOCK], c)
            for i in range(GROUP):
                copy_slot(gi, gf, i, si, sf, top)
                top = carry_push(kind, si, sf, top, b + i - b0)
            b += GROUP
        else:
            block = y[b * BLOCK : min(y.size, (b + 1) * BLOCK)]
            block_state(kind, block, si, sf, top, origin)
            if counting:
                count_block(block, c)
            top = carry_push(kind, si, sf, top, b - b0)
            b += 1
    carry_finish(kind, si, sf, top)
    copy_slot(si, sf, 0, si_out, sf_out, o)
    if counting:  # the summary's finite count less its zeros: what the histogram must hold
        fold_scratch(c, hist, o, y[b0 * BLOCK : min(y.size, b1 * BLOCK)], si_out[0, o] - si_out[2, o])


@njit(**_opts)
def _n_chunks(k):
    nb = (k + BLOCK - 1) // BLOCK
    return max(1, (nb + CHUNK - 1) // CHUNK)


SMALL_ROW = 64  # rows at most this long skip the block machinery
ROWS_PER_TASK = 512  # rows per transposed scratch tile: 64 x 512 float64 fit in L2


@njit(**_opts)
def _small_rows(kind, x, i0, i1, si_out, sf_out, o0):
    """States of the short rows i0..i1 of ``x`` into slots o0...

    Row-wise loops over a handful of values cannot use vector lanes, so the
    rows are transposed into a cached scratch tile and reduced as its columns,
    many rows per vector instruction.
    """
    k = x.shape[1]
    rows = i1 - i0
    # Padded rows: a 4 KiB stride would map every transposed store to one cache set.
    scratch = np.empty((k, ROWS_PER_TASK + 8))
    ws = np.empty((5, ROWS_PER_TASK))
    si = np.empty((N_INT, 1, ROWS_PER_TASK), np.int64)
    sf = np.empty((N_FLOAT, 1, ROWS_PER_TASK), np.float64)
    # Each row's origin: its first finite value, the shift of its sums (see
    # _tile_moments), so that a row of equal values has m2 exactly 0.
    org = np.empty(ROWS_PER_TASK)
    for t0 in range(0, rows, ROWS_PER_TASK):
        w = min(ROWS_PER_TASK, rows - t0)
        for r in range(w):
            row = x[i0 + t0 + r]
            for j in range(k):
                scratch[j, r] = _f64(row[j])
        for r in range(w):
            org[r] = 0.0
            for j in range(k):
                if abs(scratch[j, r]) <= _MAXF:
                    org[r] = scratch[j, r]
                    break
        if kind == SUMMARY:
            _tile_summary(scratch, 0, k, 0, w, ws, si, sf, 0, org)
        else:
            _tile_moments(kind, scratch, 0, k, 0, w, ws, si, sf, 0, org)
        for r in range(w):
            _from_origin(sf[:, 0], r, org[r])
        for r in range(w):
            if si[0, 0, r] > 0 and not (abs(sf[0, 0, r] + sf[1, 0, r]) <= _MAXF):
                ok, mean, m2 = scaled_redo(kind, x[i0 + t0 + r])
                if ok:
                    sf[0, 0, r], sf[1, 0, r] = mean, m2
        for f in range(si_out.shape[0]):
            for r in range(w):
                si_out[f, o0 + t0 + r] = si[f, 0, r]
        for f in range(sf_out.shape[0]):
            for r in range(w):
                sf_out[f, o0 + t0 + r] = sf[f, 0, r]


@njit(parallel=True, **_opts)
def reduce_rows(kind, x, si_out, sf_out):
    """States of each row of the C-contiguous 2-D array ``x`` (shape (m, k))
    into ``si_out``/``sf_out`` (shapes (n_fields(kind)[i], m))."""
    m, k = x.shape
    if k == 0:
        for i in range(m):
            set_empty(kind, si_out, sf_out, i)
        return si_out, sf_out
    if k <= SMALL_ROW:
        task = 16 * ROWS_PER_TASK
        for t in prange((m + task - 1) // task):
            i0 = t * task
            _small_rows(kind, x, i0, min(m, i0 + task), si_out, sf_out, i0)
        return si_out, sf_out
    nb = (k + BLOCK - 1) // BLOCK
    # Blocks per task: CHUNK, or fewer for a single row of under 1024 blocks
    # so that it still splits into 16 tasks or more (balance on a busy
    # machine). Any power of two gives the same merge tree, so the results
    # do not change with it.
    chunk = CHUNK
    while m == 1 and chunk > GROUP and nb < 16 * chunk:
        chunk //= 2
    nc = (nb + chunk - 1) // chunk
    no_hist = np.zeros((0, N_BINS), np.int64)  # histograms: see reduce_table
    if nb == 1 and kind != MOMENTS_SKIPNA:
        # Rows of one block each: a task's rows are read in quartets a quarter
        # of the task apart, four streams (see GROUP), the quarter at least
        # 64 KiB; rows past the last whole task one by one.
        quarter = max(1, (1 << 16) // (k * x.itemsize) + 1)
        task = GROUP * quarter
        n_tasks = m // task
        for t in prange(n_tasks + 1):
            i0 = t * task
            if t < n_tasks:
                for i in range(i0, i0 + quarter):
                    states4(kind, x[i], x[i + quarter], x[i + 2 * quarter], x[i + 3 * quarter],
                            si_out, sf_out, i, i + quarter, i + 2 * quarter, i + 3 * quarter, 0.0)
            else:
                for i in range(i0, m):
                    block_state(kind, x[i], si_out, sf_out, i, 0.0)
        return si_out, sf_out
    if nc == 1:
        for i in prange(m):
            origin = _row_origin(x[i])
            _row_chunk(kind, x[i], 0, nb, si_out, sf_out, i, origin, no_hist)
            _from_origin(sf_out, i, origin)
        return si_out, sf_out
    # Long rows: parallel over (row, chunk) tasks, then fold each row's chunks.
    si_c = np.empty((N_INT, m * nc), np.int64)
    sf_c = np.empty((N_FLOAT, m * nc), np.float64)
    origins = np.empty(m)
    for i in range(m):
        origins[i] = _row_origin(x[i])
    for t in prange(m * nc):
        i = t // nc
        c = t - i * nc
        _row_chunk(kind, x[i], c * chunk, min(nb, (c + 1) * chunk), si_c, sf_c, t, origins[i], no_hist)
    if m * nc < FOLD_PARALLEL_MIN:
        for i in range(m):
            _fold_chunks(kind, si_c, sf_c, i * nc, nc, si_out, sf_out, i)
            _from_origin(sf_out, i, origins[i])
        return si_out, sf_out
    for i in prange(m):
        _fold_chunks(kind, si_c, sf_c, i * nc, nc, si_out, sf_out, i)
        _from_origin(sf_out, i, origins[i])
    return si_out, sf_out


reduce_rows_serial = _serial_twin(reduce_rows)
