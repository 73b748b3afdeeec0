"""reduce_cols: the states of each column of a C-contiguous (k, m) array.

Tiles (see :mod:`.tiles`) of up to TILE_BYTES are merged column by column on
a carry stack, CHUNK tiles per parallel task, then the tasks' states are
folded per column. Means stay relative to the columns' origins until the
caller adds them back (``means_from_origins``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .base import (
    CHUNK,
    _MAXF,
    MOMENTS,
    N_FLOAT,
    N_INT,
    STACK,
    SUMMARY,
    n_fields,
    _opts,
    _serial_twin,
    set_empty,
)
from .merges import _fmax, _fmin, _fold_chunks, merge_moments
from .tiles import _shifted_tile_state, _shifted_tile_summary, _tile_moments, _tile_moments_dense, _tile_summary, next_shift


# -- columns: reduce the first axis of a C-contiguous (k, m) array ----------------
TILE_COLS = 1024  # columns per tile
TILE_BYTES = 1 << 20  # bytes per tile: four quarters read as four streams (see GROUP); 1 MiB
# beat 256 and 512 KiB and 2 MiB at 400 MB, 2 threads: (N, 1000) float64 0.56-0.64 -> 0.76-0.90 of
# the read bound, (N, 3) float32 0.66 -> 0.87-0.89; it amortizes the per-column work and merges.


@njit(**_opts)
def _merge_dense(mean, m2, a, b, na, nb, w):
    """Merge tile-stack slot ``b`` into slot ``a`` for all ``w`` columns, whose
    counts are all ``na`` and ``nb`` (> 0): merge_moments, branch-free so
    that the loop vectorizes."""
    fb = nb / (na + nb)
    fa = na / (na + nb)
    g = na * fb
    for j in range(w):
        ma = mean[a, j]
        mb = mean[b, j]
        d = mb - ma
        finite = (abs(ma) <= _MAXF) & (abs(mb) <= _MAXF)
        near = abs(d) <= _MAXF  # see merge_moments
        mean[a, j] = (ma + d * fb if near else ma * fa + mb * fb) if finite else ma + mb
        m2[a, j] = (m2[a, j] + m2[b, j] + d * d * g if near else np.inf) if finite else np.nan


@njit(**_opts)
def _col_chunk_dense(x, t0, t1, rows_per_tile, c0, w, si_out, sf_out, o, org):
    """_col_chunk for kind MOMENTS: every column of a tile has the same count,
    so the counts are scalars and the tile merges vectorize."""
    k = x.shape[0]
    mean = np.empty((STACK, w))
    m2 = np.empty((STACK, w))
    cnt = np.empty(STACK, np.int64)
    ws = np.empty((3, w))
    shift = np.empty(w)
    top = 0
    for t in range(t0, t1):
        r0 = t * rows_per_tile
        r1 = min(k, r0 + rows_per_tile)
        if t == t0:  # two passes give the first shift
            _tile_moments_dense(x, r0, r1, c0, w, ws[0], ws[1], ws[2], mean[top], m2[top], org)
            for j in range(w):
                m = org[j] + mean[top, j]
                shift[j] = m if abs(m) <= _MAXF else 0.0
        else:
            _shifted_tile_state(x, r0, r1, c0, w, shift, ws, mean[top], m2[top], org)
        cnt[top] = r1 - r0
        top += 1
        kk = t - t0 + 1
        while kk & 1 == 0:
            _merge_dense(mean, m2, top - 2, top - 1, cnt[top - 2], cnt[top - 1], w)
            cnt[top - 2] += cnt[top - 1]
            top -= 1
            kk >>= 1
    while top > 1:
        _merge_dense(mean, m2, top - 2, top - 1, cnt[top - 2], cnt[top - 1], w)
        cnt[top - 2] += cnt[top - 1]
        top -= 1
    for j in range(w):
        si_out[0, o, c0 + j] = cnt[0]
        sf_out[0, o, c0 + j] = mean[0, j]
        sf_out[1, o, c0 + j] = m2[0, j]


@njit(**_opts)
def _merge_cols(kind, si, sf, a, b, o):
    """merge_into for every column of the tile stacks (axis 1 is the slot)."""
    for j in range(si.shape[2]):
        n, m, q = merge_moments(si[0, a, j], sf[0, a, j], sf[1, a, j],
                                si[0, b, j], sf[0, b, j], sf[1, b, j])
        si[0, o, j] = n
        sf[0, o, j] = m
        sf[1, o, j] = q
    if kind == SUMMARY:
        for j in range(si.shape[2]):
            si[1, o, j] = si[1, a, j] + si[1, b, j]
            si[2, o, j] = si[2, a, j] + si[2, b, j]
            sf[2, o, j] = _fmin(sf[2, a, j], sf[2, b, j])
            sf[3, o, j] = _fmax(sf[3, a, j], sf[3, b, j])


@njit(**_opts)
def _col_chunk(kind, x, t0, t1, rows_per_tile, c0, w, si_out, sf_out, o, org):
    """Per-column states of tiles t0..t1 (rows) at columns c0..c0+w, into chunk
    ``o``, means relative to ``org`` (that block of columns' origins)."""
    if kind == MOMENTS:
        _col_chunk_dense(x, t0, t1, rows_per_tile, c0, w, si_out, sf_out, o, org)
        return
    k = x.shape[0]
    si = np.empty((N_INT, STACK, w), np.int64)
    sf = np.empty((N_FLOAT, STACK, w), np.float64)
    ws = np.empty((5, w))
    shift = np.empty(w)
    top = 0
    for t in range(t0, t1):
        r0 = t * rows_per_tile
        r1 = min(k, r0 + rows_per_tile)
        if kind == SUMMARY:
            # As for moments (_col_chunk_dense): two passes give the first
            # tile's means, which shift the one pass over each later tile.
            if t == t0:
                _tile_summary(x, r0, r1, c0, w, ws, si, sf, top, org)
                next_shift(shift, sf[0, top], org, w)
            else:
                _shifted_tile_summary(x, r0, r1, c0, w, shift, ws, si, sf, top, org)
        else:
            _tile_moments(kind, x, r0, r1, c0, w, ws, si, sf, top, org)
        top += 1
        kk = t - t0 + 1
        while kk & 1 == 0:
            _merge_cols(kind, si, sf, top - 2, top - 1, top - 2)
            top -= 1
            kk >>= 1
    while top > 1:
        _merge_cols(kind, si, sf, top - 2, top - 1, top - 2)
        top -= 1
    for f in range(si_out.shape[0]):
        for j in range(w):
            si_out[f, o, c0 + j] = si[f, 0, j]
    for f in range(sf_out.shape[0]):
        for j in range(w):
            sf_out[f, o, c0 + j] = sf[f, 0, j]


@njit(parallel=True, **_opts)
def reduce_cols(kind, x, org, si_out, sf_out):
    """States of each column of the C-contiguous 2-D array ``x`` (shape (k, m)),
    means relative to the columns' origins ``org`` (see column_origins)."""
    k, m = x.shape
    ni, nf = n_fields(kind)
    if k == 0 or m == 0:
        for j in range(m):
            set_empty(kind, si_out, sf_out, j)
        return si_out, sf_out
    w_max = min(m, TILE_COLS)
    rows_per_tile = max(1, TILE_BYTES // (w_max * x.itemsize))
    n_tiles = (k + rows_per_tile - 1) // rows_per_tile
    n_chunks = (n_tiles + CHUNK - 1) // CHUNK
    n_colblocks = (m + w_max - 1) // w_max
    si_c = np.empty((ni, n_chunks, m), np.int64)
    sf_c = np.empty((nf, n_chunks, m), np.float64)
    for task in prange(n_chunks * n_colblocks):
        ch = task // n_colblocks
        cb = task - ch * n_colblocks
        c0 = cb * w_max
        w = min(m, c0 + w_max) - c0
        _col_chunk(kind, x, ch * CHUNK, min(n_tiles, (ch + 1) * CHUNK), rows_per_tile,
                   c0, w, si_c, sf_c, ch, org[c0 : c0 + w])
    for j in prange(m):
        _fold_chunks(kind, si_c[:, :, j], sf_c[:, :, j], 0, n_chunks, si_out, sf_out, j)
    return si_out, sf_out


reduce_cols_serial = _serial_twin(reduce_cols)
