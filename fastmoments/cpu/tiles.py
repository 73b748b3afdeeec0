"""Column tiles: the per-column states of a block of rows of a (k, m) array.

A tile is up to TILE_BYTES of rows by up to TILE_COLS columns, reduced column
by column in vector-wide loops over its rows: two passes (the corrected
two-pass algorithm), or one pass of sums shifted by the previous tile's
means where that keeps the digits. Also reused by :mod:`.rows` for short
rows, transposed into a cached scratch tile. :mod:`.columns` merges tiles.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._llvm import _f64, _maxnum, _minnum
from .base import _FAST, _INF, _MAXF, MOMENTS, _opts
from .blocks import _center, _corrected_m2


@njit(fastmath=_FAST, **_opts)
def _tile_finish(s, cnt, c, q, w, si, sf, top, org):
    """Turn per-column sums of a tile into states, means relative to ``org``
    (see column_origins). ``s`` holds the first-pass means on entry.
    Branch-free, so the loop over columns vectorizes."""
    n_out = si[0, top]
    mean_out = sf[0, top]
    m2_out = sf[1, top]
    for j in range(w):
        n = cnt[j]
        inv = 1.0 / n  # inf for empty columns, whose results are replaced below
        mean = s[j]
        finite = abs(mean) <= _MAXF
        n_out[j] = np.int64(n)
        mean_out[j] = (mean - org[j]) + c[j] * inv if finite else mean
        m2_out[j] = _corrected_m2(q[j], c[j], inv) if n > 0.0 else 0.0


@njit(fastmath=_FAST, **_opts)
def _tile_moments(kind, x, r0, r1, c0, w, ws, si, sf, top, org):
    """Per-column states of rows r0..r1, columns c0..c0+w of ``x`` into ``top``.

    ``ws`` is a (5, >= w) float64 workspace. The second pass centers on the
    column's origin, one of its values (see column_origins), where the mean is
    that close (see _center): a column of equal values has m2 exactly 0.
    """
    s = ws[0]
    cnt = ws[1]
    c = ws[2]
    q = ws[3]
    for j in range(w):
        s[j] = 0.0
        cnt[j] = 0.0
        c[j] = 0.0
        q[j] = 0.0
    for r in range(r0, r1):
        row = x[r, c0 : c0 + w]
        if kind == MOMENTS:
            for j in range(w):
                s[j] += _f64(row[j])
        else:
            for j in range(w):
                v = _f64(row[j])
                ok = v == v
                s[j] += v if ok else 0.0
                cnt[j] += 1.0 if ok else 0.0
    if kind == MOMENTS:
        for j in range(w):
            cnt[j] = r1 - r0
    for j in range(w):
        s[j] = _center(s[j] / cnt[j], org[j])  # NaN for empty columns
    for r in range(r0, r1):
        row = x[r, c0 : c0 + w]
        if kind == MOMENTS:
            for j in range(w):
                d = _f64(row[j]) - s[j]
                c[j] += d
                q[j] += d * d
        else:
            for j in range(w):
                v = _f64(row[j])
                d = v - s[j] if v == v else 0.0
                c[j] += d
                q[j] += d * d
    _tile_finish(s, cnt, c, q, w, si, sf, top, org)


@njit(fastmath=_FAST, **_opts)
def _tile_moments_dense(x, r0, r1, c0, w, s, c, q, mean_out, m2_out, org):
    """Per-column (mean - org, m2) of rows r0..r1 (r1 > r0), columns c0..c0+w,
    no NaN skipping.

    Four rows per step: the per-column accumulators are loaded and stored once
    per four rows instead of once per row (measured in cache: 0.55 -> 0.32 ns
    per value). The four are a quarter of the tile apart, so that the tile is
    read as four streams (see GROUP). ``s``, ``c`` and ``q`` are workspaces of
    at least ``w`` values. The first pass sums deviations from the origins,
    one of each column's values (see column_origins): a column of equal values
    gets its mean exactly, and with it the shift of every later tile of the
    chunk (see _shifted_tile_state), so m2 exactly 0 (a mean off by an ulp
    would leave m2 the rounding of the squares of that ulp's deviations,
    nonzero, or inf beyond 1e154). It costs a subtraction per value, on one
    tile in CHUNK.
    """
    for j in range(w):
        s[j] = 0.0
    h = (r1 - r0) // 4
    for r in range(r0, r0 + h):
        a, b, e, f = x[r, c0 : c0 + w], x[r + h, c0 : c0 + w], x[r + 2 * h, c0 : c0 + w], x[r + 3 * h, c0 : c0 + w]
        for j in range(w):
            o = org[j]
            s[j] += ((_f64(a[j]) - o) + (_f64(b[j]) - o)) + ((_f64(e[j]) - o) + (_f64(f[j]) - o))
    for rr in range(r0 + 4 * h, r1):
        a = x[rr, c0 : c0 + w]
        for j in range(w):
            s[j] += _f64(a[j]) - org[j]
    inv = 1.0 / (r1 - r0)
    for j in range(w):
        s[j] = org[j] + s[j] * inv
    # Second pass: deviations from the first pass's means (its rounding error
    # is what c corrects).
    _tile_moments_shifted(x, r0, r1, c0, w, s, c, q)
    for j in range(w):
        mean = s[j]
        finite = abs(mean) <= _MAXF
        mean_out[j] = (mean - org[j]) + c[j] * inv if finite else mean
        m2_out[j] = _corrected_m2(q[j], c[j], inv) if finite else np.nan


@njit(fastmath=_FAST, **_opts)
def _tile_moments_shifted(x, r0, r1, c0, w, shift, s, q):
    """Sums of ``d = x - shift[j]`` and ``d * d`` per column over rows r0..r1:
    one pass over the tile instead of two.

    The shifted-data algorithm: m2 = q - s*s/n loses digits when the shift is
    far from the mean, by the factor q / m2 = 1 + n (mean - shift)^2 / m2.
    The caller shifts by the previous tile's mean and checks that factor.
    """
    for j in range(w):
        s[j] = 0.0
        q[j] = 0.0
    h = (r1 - r0) // 4
    for r in range(r0, r0 + h):
        a, b, e, f = x[r, c0 : c0 + w], x[r + h, c0 : c0 + w], x[r + 2 * h, c0 : c0 + w], x[r + 3 * h, c0 : c0 + w]
        for j in range(w):
            k = shift[j]
            d0 = _f64(a[j]) - k
            d1 = _f64(b[j]) - k
            d2 = _f64(e[j]) - k
            d3 = _f64(f[j]) - k
            s[j] += (d0 + d1) + (d2 + d3)
            q[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
    for rr in range(r0 + 4 * h, r1):
        a = x[rr, c0 : c0 + w]
        for j in range(w):
            d = _f64(a[j]) - shift[j]
            s[j] += d
            q[j] += d * d


@njit(**_opts)
def _shifted_tile_state(x, r0, r1, c0, w, shift, ws, mean_out, m2_out, org):
    """(mean - org, m2) per column of a tile in one pass, shifted by ``shift``;
    where the shift was too far from a column's mean for m2 to keep its digits
    (more than half of q cancels), the whole tile is redone with the two-pass
    kernel. Leaves the new means in ``shift``, for the next tile."""
    s = ws[0]
    q = ws[1]
    _tile_moments_shifted(x, r0, r1, c0, w, shift, s, q)
    n = r1 - r0
    inv = 1.0 / n
    far = False
    for j in range(w):
        # Also where the squares overflowed (q inf), which about the true
        # mean they may not, and where s*s does (inf > inf is false).
        ss = s[j] * s[j]
        far |= (ss > 0.5 * n * q[j]) | (q[j] > _MAXF) | (ss > _MAXF)
    if far:
        _tile_moments_dense(x, r0, r1, c0, w, ws[0], ws[1], ws[2], mean_out, m2_out, org)
    else:
        for j in range(w):
            mean_out[j] = (shift[j] - org[j]) + s[j] * inv
            m2_out[j] = q[j] - s[j] * s[j] * inv  # inf - inf = NaN for infinite columns
    for j in range(w):
        m = org[j] + mean_out[j]
        shift[j] = m if abs(m) <= _MAXF else 0.0


@njit(fastmath=_FAST, **_opts)
def _tile_summary(x, r0, r1, c0, w, ws, si, sf, top, org):
    s = ws[0]
    cnt = ws[1]
    c = ws[2]
    q = ws[3]
    nz = ws[4]
    lo = sf[2, top]
    hi = sf[3, top]
    for j in range(w):
        s[j] = 0.0
        cnt[j] = 0.0
        c[j] = 0.0
        q[j] = 0.0
        nz[j] = 0.0
        lo[j] = _INF
        hi[j] = -_INF
    for r in range(r0, r1):
        row = x[r, c0 : c0 + w]
        for j in range(w):
            v = _f64(row[j])
            ok = abs(v) <= _MAXF
            s[j] += v if ok else 0.0
            cnt[j] += 1.0 if ok else 0.0
            nz[j] += 1.0 if v == 0.0 else 0.0
        for j in range(w):
            v = _f64(row[j])
            lo[j] = _minnum(lo[j], v if abs(v) <= _MAXF else _INF)
        for j in range(w):
            v = _f64(row[j])
            hi[j] = _maxnum(hi[j], v if abs(v) <= _MAXF else -_INF)
    for j in range(w):
        s[j] = _center(s[j] / cnt[j], org[j])  # see _tile_moments
    for r in range(r0, r1):
        row = x[r, c0 : c0 + w]
        for j in range(w):
            v = _f64(row[j])
            d = v - s[j] if abs(v) <= _MAXF else 0.0
            c[j] += d
            q[j] += d * d
    _tile_finish(s, cnt, c, q, w, si, sf, top, org)
    nnf = si[1, top]
    n_zero = si[2, top]
    for j in range(w):
        nnf[j] = np.int64((r1 - r0) - cnt[j])
        n_zero[j] = np.int64(nz[j])
        empty = cnt[j] == 0.0
        lo[j] = np.nan if empty else lo[j]
        hi[j] = np.nan if empty else hi[j]


@njit(inline="always", **_opts)
def _lt_min(a, b):
    """min of two values that are never NaN (non-finite ones are masked to
    +-inf before): one compare and select, x86's minpd, where llvm.minnum
    adds the NaN fix-ups."""
    return a if a < b else b


@njit(inline="always", **_opts)
def _gt_max(a, b):
    """max of two values that are never NaN (see _lt_min)."""
    return a if a > b else b


@njit(fastmath=_FAST, **_opts)
def _tile_summary_sums(x, r0, r1, c0, w, shift, s, q, cnt, nz, lo, hi):
    """Per column of rows r0..r1, columns c0..c0+w, over the finite values:
    the sums of ``d = v - shift[j]`` and ``d * d``, the count, the zeros, min
    and max, in one pass. Four rows per step, a quarter of the tile apart, as
    in _tile_moments_dense: the accumulators are loaded and stored once per
    four rows (one row per step, with min and max in loops of their own, ran
    at 4-5 GB/s, a quarter of the moments' pace)."""
    for j in range(w):
        s[j] = 0.0
        q[j] = 0.0
        cnt[j] = 0.0
        nz[j] = 0.0
        lo[j] = _INF
        hi[j] = -_INF
    h = (r1 - r0) // 4
    for r in range(r0, r0 + h):
        a, b, e, f = x[r, c0 : c0 + w], x[r + h, c0 : c0 + w], x[r + 2 * h, c0 : c0 + w], x[r + 3 * h, c0 : c0 + w]
        for j in range(w):
            k = shift[j]
            v0 = _f64(a[j])
            v1 = _f64(b[j])
            v2 = _f64(e[j])
            v3 = _f64(f[j])
            ok0 = abs(v0) <= _MAXF
            ok1 = abs(v1) <= _MAXF
            ok2 = abs(v2) <= _MAXF
            ok3 = abs(v3) <= _MAXF
            d0 = v0 - k if ok0 else 0.0
            d1 = v1 - k if ok1 else 0.0
            d2 = v2 - k if ok2 else 0.0
            d3 = v3 - k if ok3 else 0.0
            s[j] += (d0 + d1) + (d2 + d3)
            q[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
            cnt[j] += ((1.0 if ok0 else 0.0) + (1.0 if ok1 else 0.0)) + ((1.0 if ok2 else 0.0) + (1.0 if ok3 else 0.0))
            nz[j] += ((1.0 if v0 == 0.0 else 0.0) + (1.0 if v1 == 0.0 else 0.0)) + (
                (1.0 if v2 == 0.0 else 0.0) + (1.0 if v3 == 0.0 else 0.0))
            lo[j] = _lt_min(lo[j], _lt_min(_lt_min(v0 if ok0 else _INF, v1 if ok1 else _INF),
                                           _lt_min(v2 if ok2 else _INF, v3 if ok3 else _INF)))
            hi[j] = _gt_max(hi[j], _gt_max(_gt_max(v0 if ok0 else -_INF, v1 if ok1 else -_INF),
                                           _gt_max(v2 if ok2 else -_INF, v3 if ok3 else -_INF)))
    for rr in range(r0 + 4 * h, r1):
        a = x[rr, c0 : c0 + w]
        for j in range(w):
            v = _f64(a[j])
            ok = abs(v) <= _MAXF
            d = v - shift[j] if ok else 0.0
            s[j] += d
            q[j] += d * d
            cnt[j] += 1.0 if ok else 0.0
            nz[j] += 1.0 if v == 0.0 else 0.0
            lo[j] = _lt_min(lo[j], v if ok else _INF)
            hi[j] = _gt_max(hi[j], v if ok else -_INF)


@njit(**_opts)
def _shifted_tile_summary(x, r0, r1, c0, w, shift, ws, si, sf, top, org):
    """_tile_summary in one pass, shifted by ``shift`` (the previous tile's
    means), as _shifted_tile_state does for moments: where a shift was too
    far from its column's mean for m2 to keep its digits, the tile is redone
    with the two-pass _tile_summary. Leaves the new means in ``shift``."""
    s = ws[0]
    q = ws[1]
    cnt = ws[2]
    nz = ws[3]
    lo = sf[2, top]
    hi = sf[3, top]
    _tile_summary_sums(x, r0, r1, c0, w, shift, s, q, cnt, nz, lo, hi)
    far = False
    for j in range(w):
        ss = s[j] * s[j]  # as in _shifted_tile_state
        far |= (ss > 0.5 * cnt[j] * q[j]) | (q[j] > _MAXF) | (ss > _MAXF)
    if far:
        _tile_summary(x, r0, r1, c0, w, ws, si, sf, top, org)
    else:
        for j in range(w):
            n = cnt[j]
            si[0, top, j] = np.int64(n)
            si[1, top, j] = np.int64((r1 - r0) - n)
            si[2, top, j] = np.int64(nz[j])
            if n > 0.0:
                sf[0, top, j] = (shift[j] - org[j]) + s[j] / n
                sf[1, top, j] = q[j] - s[j] * s[j] / n
            else:  # as _tile_summary leaves an empty column
                sf[0, top, j] = np.nan
                sf[1, top, j] = 0.0
                lo[j] = np.nan
                hi[j] = np.nan
    next_shift(shift, sf[0, top], org, w)


@njit(**_opts)
def next_shift(shift, mean, org, w):
    """The shift of a column's next tile: its mean (``org + mean``) where finite, else 0."""
    for j in range(w):
        m = org[j] + mean[j]
        shift[j] = m if abs(m) <= _MAXF else 0.0
