"""Weighted kernels, part 4: columns, the first axis of a C-contiguous (k, m)
array, a tile of rows at a time, vectorized across columns (see
:mod:`fastmoments.cpu.weighted`)."""

from __future__ import annotations

import numpy as np
from numba import prange

from ._llvm import _f64, _minnum_finite
from .base import CHUNK, STACK
from .weighted_base import _MAXF, _ORIGIN_MAX, NF, ORDER, SKIPNA, TILE_BYTES, TILE_COLS, WEIGHTED, _takes, _weight
from .weighted_blocks import SHIFT_NEAR, _corrected, _set_empty
from .weighted_merges import _copy_slot, _finish, _from_origin, _merge_values, _push


# -- columns: reduce the first axis of a C-contiguous (k, m) array -----------------
# A column tile's stack holds per column, in float64 (counts are exact: a
# chunk has at most CHUNK * TILE_BYTES values): 0 count, 1 W, 2 W2, 3 mean,
# 4.. M2, M3, M4.


def _tile(x, wx, r0, r1, c0, w, org, acc, stk, top):
    """Per-column states of rows r0..r1, columns c0..c0+w into ``stk[:, top]``
    (means relative to ``org``); ``acc`` is a (9, >= w) workspace. Returns the
    tally of invalid weights."""
    s = acc[0]
    sw = acc[1]
    sw2 = acc[2]
    cnt = acc[3]
    bad = acc[4]
    c = acc[5]
    q2 = acc[6]
    q3 = acc[7]
    q4 = acc[8]
    for j in range(w):
        s[j] = 0.0
        sw[j] = 0.0
        sw2[j] = 0.0
        cnt[j] = 0.0
        bad[j] = 0.0
        c[j] = 0.0
        q2[j] = 0.0
        q3[j] = 0.0
        q4[j] = 0.0
    for r in range(r0, r1):
        row = x[r, c0 : c0 + w]
        wrow = wx[r if WEIGHTED else 0, c0 : c0 + w]
        for j in range(w):
            v = _f64(row[j]) - org[j]
            wt = _weight(wrow, j)
            t = _takes(v, wt)
            s[j] += wt * v if t else 0.0
            if WEIGHTED:
                sw[j] += wt if t else 0.0
                sw2[j] += wt * wt if t else 0.0
                bad[j] += 0.0 if (wt >= 0.0) & (wt <= _MAXF) else 1.0
            cnt[j] += 1.0 if t else 0.0
    if not WEIGHTED:
        for j in range(w):
            sw[j] = cnt[j]
            sw2[j] = cnt[j]
    for j in range(w):
        s[j] = s[j] / sw[j]  # the first mean; NaN for empty columns
    for r in range(r0, r1):
        row = x[r, c0 : c0 + w]
        wrow = wx[r if WEIGHTED else 0, c0 : c0 + w]
        for j in range(w):
            v = _f64(row[j]) - org[j]
            wt = _weight(wrow, j)
            d = v - s[j] if _takes(v, wt) else 0.0
            wd = wt * d
            wd2 = wd * d
            c[j] += wd
            q2[j] += wd2
            if ORDER >= 3:
                q3[j] += wd2 * d
            if ORDER >= 4:
                q4[j] += wd2 * (d * d)
    tally = 0.0
    for j in range(w):
        tally += bad[j]
        W = sw[j]
        mean = s[j]
        finite = abs(mean) <= _MAXF
        delta, m2, m3, m4 = _corrected(c[j], q2[j], q3[j], q4[j], W)
        mean2 = mean + delta
        empty = cnt[j] == 0.0
        stk[0, top, j] = cnt[j]
        stk[1, top, j] = W
        stk[2, top, j] = sw2[j]
        stk[3, top, j] = mean2 if finite else mean
        stk[4, top, j] = (m2 if finite else np.nan) if not empty else 0.0
        if ORDER >= 3:
            stk[5, top, j] = (m3 if finite else np.nan) if not empty else 0.0
        if ORDER >= 4:
            stk[6, top, j] = (m4 if finite else np.nan) if not empty else 0.0
    return tally


def _terms(v, w, k):
    """One value's terms of the shifted sums: (w*d, w*d**2, w*d**3, w*d**4,
    its weight, squared, 1) where taken, zeros where not (d = v - k)."""
    t = _takes(v, w)
    d = v - k if t else 0.0
    wd = w * d
    wd2 = wd * d
    wt = ((w if t else 0.0) if SKIPNA else w) if WEIGHTED else 0.0
    return wd, wd2, wd2 * d, wd2 * (d * d), wt, wt * wt, 1.0 if t else 0.0


def _terms4(a, b, e, f, wa, wb, we, wf, j, k):
    """Column j's terms of four rows, summed pairwise: (s, q2, q3, q4, sw,
    sw2, count, smallest weight, sum of weights)."""
    ua = _weight(wa, j)
    ub = _weight(wb, j)
    ue = _weight(we, j)
    uf = _weight(wf, j)
    ta = _terms(_f64(a[j]), ua, k)
    tb = _terms(_f64(b[j]), ub, k)
    te = _terms(_f64(e[j]), ue, k)
    tf = _terms(_f64(f[j]), uf, k)
    return ((ta[0] + tb[0]) + (te[0] + tf[0]), (ta[1] + tb[1]) + (te[1] + tf[1]),
            (ta[2] + tb[2]) + (te[2] + tf[2]), (ta[3] + tb[3]) + (te[3] + tf[3]),
            (ta[4] + tb[4]) + (te[4] + tf[4]), (ta[5] + tb[5]) + (te[5] + tf[5]),
            (ta[6] + tb[6]) + (te[6] + tf[6]),
            _minnum_finite(_minnum_finite(ua, ub), _minnum_finite(ue, uf)), (ua + ub) + (ue + uf))


TILE_STREAMS = 8  # rows summed per step of _tile_shifted, an eighth of the tile apart


def _tile_shifted(x, wx, r0, r1, c0, w, org, K, acc, stk, top):
    """Per-column states of rows r0..r1 in one pass, from the sums of the
    powers of ``v - K[j]`` (K: the previous tile's means), into
    ``stk[:, top]``; False, with nothing written, where a column's shift is
    not near enough to its mean (see SHIFT_NEAR), a value or a sum is not
    finite, or a weight is invalid: the caller then takes two passes (_tile).

    Eight rows an eighth of the tile apart per step: the per-column sums (which
    do not fit in L1 with the rows streaming through) are loaded and stored once
    per eight values, and the tile is read as eight streams. Measured, order 4
    of (1e5, 1000) float32 on one thread of the 2-core EPYC VM, 2026-12-05:
    reduce_cols 24.8 ms with 4 rows per step, 20.7 ms with 8 (a bare loop of
    the same sums: 21.4 -> 16.1 ms; float64 (5e4, 1000): 17.8 -> 14.3)."""
    s = acc[0]
    sw = acc[1]
    sw2 = acc[2]
    cnt = acc[3]
    wmin = acc[4]
    wsum = acc[5]
    q2 = acc[6]
    q3 = acc[7]
    q4 = acc[8]
    for j in range(w):
        s[j] = 0.0
        sw[j] = 0.0
        sw2[j] = 0.0
        cnt[j] = 0.0
        wmin[j] = np.inf
        wsum[j] = 0.0
        q2[j] = 0.0
        q3[j] = 0.0
        q4[j] = 0.0
    h = (r1 - r0) // TILE_STREAMS
    for r in range(r0, r0 + h):
        a, b, e, f = x[r, c0 : c0 + w], x[r + h, c0 : c0 + w], x[r + 2 * h, c0 : c0 + w], x[r + 3 * h, c0 : c0 + w]
        a2, b2 = x[r + 4 * h, c0 : c0 + w], x[r + 5 * h, c0 : c0 + w]
        e2, f2 = x[r + 6 * h, c0 : c0 + w], x[r + 7 * h, c0 : c0 + w]
        if WEIGHTED:
            wa, wb, we, wf = wx[r, c0 : c0 + w], wx[r + h, c0 : c0 + w], wx[r + 2 * h, c0 : c0 + w], wx[r + 3 * h, c0 : c0 + w]
            wa2, wb2 = wx[r + 4 * h, c0 : c0 + w], wx[r + 5 * h, c0 : c0 + w]
            we2, wf2 = wx[r + 6 * h, c0 : c0 + w], wx[r + 7 * h, c0 : c0 + w]
        else:
            wa = wb = we = wf = wa2 = wb2 = we2 = wf2 = wx[0, c0 : c0 + w]
        for j in range(w):
            k = K[j]
            t = _terms4(a, b, e, f, wa, wb, we, wf, j, k)
            u = _terms4(a2, b2, e2, f2, wa2, wb2, we2, wf2, j, k)
            s[j] += t[0] + u[0]
            q2[j] += t[1] + u[1]
            if ORDER >= 3:
                q3[j] += t[2] + u[2]
            if ORDER >= 4:
                q4[j] += t[3] + u[3]
            if WEIGHTED:
                sw[j] += t[4] + u[4]
                sw2[j] += t[5] + u[5]
                wmin[j] = _minnum_finite(wmin[j], _minnum_finite(t[7], u[7]))
                if SKIPNA:
                    wsum[j] += t[8] + u[8]
            if SKIPNA or WEIGHTED:
                cnt[j] += t[6] + u[6]
    for r in range(r0 + TILE_STREAMS * h, r1):
        a = x[r, c0 : c0 + w]
        wa = wx[r if WEIGHTED else 0, c0 : c0 + w]
        for j in range(w):
            ua = _weight(wa, j)
            ta = _terms(_f64(a[j]), ua, K[j])
            s[j] += ta[0]
            q2[j] += ta[1]
            if ORDER >= 3:
                q3[j] += ta[2]
            if ORDER >= 4:
                q4[j] += ta[3]
            if WEIGHTED:
                sw[j] += ta[4]
                sw2[j] += ta[5]
                wmin[j] = _minnum_finite(wmin[j], ua)
                if SKIPNA:
                    wsum[j] += ua
            if SKIPNA or WEIGHTED:
                cnt[j] += ta[6]
    n = float(r1 - r0)
    ok = True
    for j in range(w):
        if not (SKIPNA or WEIGHTED):
            cnt[j] = n
        if not WEIGHTED:
            sw[j] = cnt[j]
            sw2[j] = cnt[j]
            wmin[j] = 1.0
        if not SKIPNA:
            wsum[j] = sw[j]
        W = sw[j]
        ej = s[j] / W
        near = (s[j] * ej <= SHIFT_NEAR * q2[j]) & (q2[j] <= _MAXF) & (abs(K[j]) <= _MAXF)
        ok &= ((cnt[j] == 0.0) | near) & (wsum[j] <= _MAXF) & (wmin[j] >= 0.0)
    if not ok:
        return False
    for j in range(w):
        W = sw[j]
        empty = cnt[j] == 0.0
        ej = s[j] / W
        _, m2, m3, m4 = _corrected(s[j], q2[j], q3[j], q4[j], W)
        stk[0, top, j] = cnt[j]
        stk[1, top, j] = W
        stk[2, top, j] = sw2[j]
        stk[3, top, j] = np.nan if empty else (K[j] - org[j]) + ej
        stk[4, top, j] = 0.0 if empty else m2
        if ORDER >= 3:
            stk[5, top, j] = 0.0 if empty else m3
        if ORDER >= 4:
            stk[6, top, j] = 0.0 if empty else m4
    return True


def _merge_tiles(stk, a, b, w):
    """Merge stack slot ``b`` into slot ``a`` for every column."""
    for j in range(w):
        n, W, W2, mean, m2, m3, m4 = _merge_values(
            stk[0, a, j], stk[1, a, j], stk[2, a, j], stk[3, a, j], stk[4, a, j],
            stk[5, a, j] if ORDER >= 3 else 0.0, stk[6, a, j] if ORDER >= 4 else 0.0,
            stk[0, b, j], stk[1, b, j], stk[2, b, j], stk[3, b, j], stk[4, b, j],
            stk[5, b, j] if ORDER >= 3 else 0.0, stk[6, b, j] if ORDER >= 4 else 0.0)
        stk[0, a, j] = n
        stk[1, a, j] = W
        stk[2, a, j] = W2
        stk[3, a, j] = mean
        stk[4, a, j] = m2
        if ORDER >= 3:
            stk[5, a, j] = m3
        if ORDER >= 4:
            stk[6, a, j] = m4


def _col_chunk(x, wx, t0, t1, rows_per_tile, c0, w, org, si_c, sf_c, o):
    """Per-column states of tiles t0..t1 at columns c0..c0+w into chunk ``o``."""
    k = x.shape[0]
    depth = 2  # the carry stack of t1 - t0 tiles holds at most log2 of it + 1
    while (1 << (depth - 2)) < t1 - t0:
        depth += 1
    stk = np.empty((NF + 1, depth, w))  # not STACK: short tasks would allocate (and fault) MiBs
    acc = np.empty((9, w))
    K = np.empty(w)  # shifts: the previous tile's means
    top = 0
    bad = 0.0
    for t in range(t0, t1):
        r0 = t * rows_per_tile
        r1 = min(k, r0 + rows_per_tile)
        if t == t0 or not _tile_shifted(x, wx, r0, r1, c0, w, org, K, acc, stk, top):
            bad += _tile(x, wx, r0, r1, c0, w, org, acc, stk, top)
        for j in range(w):
            m = org[j] + stk[3, top, j]
            K[j] = m if stk[0, top, j] > 0.0 else K[j]
        top += 1
        kk = t - t0 + 1
        while kk & 1 == 0:
            _merge_tiles(stk, top - 2, top - 1, w)
            top -= 1
            kk >>= 1
    while top > 1:
        _merge_tiles(stk, top - 2, top - 1, w)
        top -= 1
    for j in range(w):
        si_c[0, o, c0 + j] = np.int64(stk[0, 0, j])
    for f in range(NF):
        for j in range(w):
            sf_c[f, o, c0 + j] = stk[f + 1, 0, j]
    return bad


def column_origins(x, wx):
    """Per column: the median of its first, middle and last values where
    all three are finite and of positive weight, else the first of them
    that is (0.0 if none is)."""
    k, m = x.shape
    org = np.zeros(m)
    if k == 0:
        return org
    for j in range(m):
        a = _f64(x[0, j])
        b = _f64(x[k // 2, j])
        c = _f64(x[k - 1, j])
        fa = (abs(a) <= _MAXF) & (_f64(wx[0, j]) > 0.0 if WEIGHTED else True)
        fb = (abs(b) <= _MAXF) & (_f64(wx[k // 2, j]) > 0.0 if WEIGHTED else True)
        fc = (abs(c) <= _MAXF) & (_f64(wx[k - 1, j]) > 0.0 if WEIGHTED else True)
        if fa and fb and fc:
            o = max(min(a, b), min(max(a, b), c))
        elif fa:
            o = a
        elif fb:
            o = b
        elif fc:
            o = c
        else:
            o = 0.0
        org[j] = o if abs(o) <= _ORIGIN_MAX else 0.0
    return org


def reduce_cols(x, wx, org, si_out, sf_out):
    """States of each column of the C-contiguous (k, m) ``x`` (weights ``wx``
    alike, or a dummy), means relative to ``org``; returns the tally of
    invalid weights."""
    k, m = x.shape
    if k == 0 or m == 0:
        for j in range(m):
            _set_empty(si_out, sf_out, j)
        return 0.0
    w_max = min(m, TILE_COLS)
    rows_per_tile = max(1, TILE_BYTES // (w_max * x.itemsize))
    n_tiles = (k + rows_per_tile - 1) // rows_per_tile
    n_chunks = (n_tiles + CHUNK - 1) // CHUNK
    n_colblocks = (m + w_max - 1) // w_max
    if n_chunks == 1:  # into the outputs (NumPy's memory: fresh Numba memory faults page by page)
        si_c = si_out.reshape((1, 1, m))
        sf_c = sf_out.reshape((NF, 1, m))
    else:
        si_c = np.empty((1, n_chunks, m), np.int64)
        sf_c = np.empty((NF, n_chunks, m), np.float64)
    bad = np.zeros(n_chunks * n_colblocks)
    for task in prange(n_chunks * n_colblocks):
        ch = task // n_colblocks
        cb = task - ch * n_colblocks
        c0 = cb * w_max
        w = min(m, c0 + w_max) - c0
        bad[task] = _col_chunk(x, wx, ch * CHUNK, min(n_tiles, (ch + 1) * CHUNK), rows_per_tile,
                               c0, w, org[c0 : c0 + w], si_c, sf_c, ch)
    if n_chunks == 1:
        return bad.sum()
    for cb in prange(n_colblocks):
        _fold_columns(si_c, sf_c, cb * w_max, min(m, (cb + 1) * w_max), n_chunks, si_out, sf_out)
    return bad.sum()


def _fold_columns(si_c, sf_c, j0, j1, nc, si_out, sf_out):
    """_fold of columns j0..j1's chunk states (axis 1 of (field, chunk,
    column) arrays), read in place (C-contiguous arguments only: one
    compiled signature for the helpers), with one stack for all."""
    if nc == 1:
        for j in range(j0, j1):
            si_out[0, j] = si_c[0, 0, j]
            for f in range(NF):
                sf_out[f, j] = sf_c[f, 0, j]
        return
    si = np.empty((1, STACK), np.int64)
    sf = np.empty((NF, STACK), np.float64)
    for j in range(j0, j1):
        top = 0
        for c in range(nc):
            si[0, top] = si_c[0, c, j]
            for f in range(NF):
                sf[f, top] = sf_c[f, c, j]
            top = _push(si, sf, top, c)
        _finish(si, sf, top)
        _copy_slot(si, sf, 0, si_out, sf_out, j)


def means_from_origins(sf, org):
    for j in range(org.size):
        _from_origin(sf, j, org[j])
