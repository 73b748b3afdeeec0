"""Numba kernels of weighted and higher-order moments (kinds ``weighted2/3/4``).

State layout
------------
A state of order p is ``(count, W, W2, mean, M2[, M3[, M4]])``: the number of
values taken (positive weight; with skipna also not NaN), the sums of their
weights and squared weights, their weighted mean and ``Mq = sum(w * (v -
mean)**q)``. In the kernels the count lives in ``si[0, slot]`` (int64) and the
rest in ``sf[field, slot]`` (float64)::

    sf: 0 W, 1 W2, 2 mean, 3 M2, 4 M3, 5 M4        (NF = order + 2 fields)

Unweighted data is weighted data whose every weight is 1 (W = W2 = count).

Algorithm
---------
As the order-2 kernels (``blocks.py``, ``rows.py``, ``columns.py``): a row is cut into fixed blocks of
``BLOCK`` values, each reduced while in cache in two passes. Pass 1 sums
``w * (v - origin)``, the weights, their squares and the count, and tallies
invalid weights (negative, NaN or infinite: the Python side diagnoses them
only when the tally is nonzero). Pass 2 sums ``w*d``, ``w*d**2``, ``w*d**3``
and ``w*d**4`` with ``d = v - mean1`` (mean1 the first pass's mean); the sum of
``w*d`` (zero but for mean1's rounding) then corrects the mean and every
moment (the corrected two-pass algorithm, generalized). Zero-weight values
are selected away (``d = v - mean if w > 0 else 0``), so a NaN or Inf of
weight 0 contributes nothing.

Block states merge with Pebay's pairwise formulas (sums of weights in place
of counts, :mod:`fastmoments._pebay`) in a fixed binary tree (a carry stack),
and tasks are fixed chunks of blocks, so results depend on the shape alone,
never on the thread count. While merging, means are relative to an origin
near the data (a median of sampled values of positive weight), added back at
the end. Columns (reducing the first axis of a (k, m) array) are reduced a
tile of rows at a time, vectorized across columns, the tiles merged by the
same formulas in a loop over columns that vectorizes too.

Values in range whose sums are not (``|w*v|`` near 1.8e308) make a block's
mean non-finite from finite data: that block is summed again with the
values scaled by 2**-64 and the weights by a power of two that brings the
largest to at most 1, and the results scaled back exactly (``ldexp``).

One source, every variant
-------------------------
The functions below are written once against the module constants
``ORDER``, ``WEIGHTED`` and ``SKIPNA``; :func:`kernels_for` compiles a copy of
them per (order, weighted, skipna) with those constants bound (the order-2
wing's ``_serial_twin`` device: a function object with its own globals and
qualified name, hence its own on-disk cache entry). LLVM folds the constant
branches away, so an unweighted order-2 block loop carries no weight code.
"""

from __future__ import annotations

import functools
import math
import types as pytypes

import numpy as np
from numba import njit, prange

from ._llvm import _f64, _minnum_finite
from .base import BLOCK, CHUNK, STACK, _opts

__all__ = ["kernels_for", "n_float_fields", "TILE_BYTES", "TILE_COLS"]

_FAST = {"reassoc", "contract"}
_MAXF = np.finfo(np.float64).max
_DOWN = 2.0**-64
_ORIGIN_MAX = 2.0**1000
ORIGIN_SAMPLES = 9
ORIGIN_SEARCH = 64  # values searched from each sample position for one of positive weight

TILE_COLS = 1024  # columns per tile
TILE_BYTES = 1 << 20  # bytes of x (and as many of w) per column tile

# Bound per compiled variant by kernels_for; these values only let the module
# be read (and linted) as plain Python.
ORDER = 4
WEIGHTED = True
SKIPNA = False
NF = ORDER + 2


def n_float_fields(order):
    return order + 2


# -- one value ---------------------------------------------------------------------


def _weight(wy, i):
    """The weight of value i (1.0 for unweighted data: LLVM folds it away)."""
    return _f64(wy[i]) if WEIGHTED else 1.0


def _takes(v, w):
    """Whether a value (relative to any origin) of weight ``w`` is taken."""
    if SKIPNA:
        return (w > 0.0) & (v == v)
    return w > 0.0


# -- one block, in cache -----------------------------------------------------------
# Pass 1 of a block gives P1 = (s, W, W2, count, wmin, wsum): the sums of w*v,
# of the weights and squared weights and the count over the values taken, the
# smallest weight (a NaN-ignoring min) and a sum of every weight (NaN or +Inf
# there, or a negative minimum, send the block to _count_bad). Pass 2 gives
# P2 = (c, q2, q3, q4), the sums of w*d**p (d = v - k, k = s/W) over the values
# taken. The block loops below are one source per variant: LLVM folds
# WEIGHTED/SKIPNA/ORDER away and vectorizes what is left.
#
# Tried and dropped: pass 2 of a block fused into one loop with pass 1 of
# the next, for the memory to stream while the cached block is summed. In
# cache the fused loop was faster (1.07 us against 0.51 + 0.74 for order 4),
# but from memory slower: 4.25 ms against 2.80 for 100 MB on one thread of a
# 2-core AMD EPYC (Zen 5) VM, 2026-12-05; a lone pass 1 keeps more misses in
# flight, and pass 2 of a cached block costs little after it.


def _pass1(y, wy):
    s = 0.0
    sw = 0.0
    sw2 = 0.0
    cnt = 0.0
    wmin = np.inf
    wsum = 0.0
    for i in range(y.size):
        v = _f64(y[i])
        w = _weight(wy, i)
        t = _takes(v, w)
        s += w * (v if t else 0.0)
        if WEIGHTED:
            wt = (w if t else 0.0) if SKIPNA else w
            sw += wt
            sw2 += wt * wt
            wmin = _minnum_finite(wmin, w)
            if SKIPNA:
                wsum += w
        if SKIPNA or WEIGHTED:
            cnt += 1.0 if t else 0.0
    if not (SKIPNA or WEIGHTED):
        cnt = float(y.size)  # every value taken
    if not WEIGHTED:
        sw = cnt
        sw2 = cnt
        wmin = 1.0
    if not SKIPNA:
        wsum = sw
    return s, sw, sw2, cnt, wmin, wsum


def _pass2(y, wy, k):
    c = 0.0
    q2 = 0.0
    q3 = 0.0
    q4 = 0.0
    for i in range(y.size):
        v = _f64(y[i])
        w = _weight(wy, i)
        d = v - k if _takes(v, w) else 0.0
        wd = w * d
        wd2 = wd * d
        c += wd
        q2 += wd2
        if ORDER >= 3:
            q3 += wd2 * d
        if ORDER >= 4:
            q4 += wd2 * (d * d)
    return c, q2, q3, q4


def _shifted(y, wy, K):
    """Pass 1 and the power sums about the shift ``K`` in one loop: P1 with
    s = sum w*(v - K), then sums of w*(v - K)**p for p = 2..ORDER."""
    s = 0.0
    sw = 0.0
    sw2 = 0.0
    cnt = 0.0
    wmin = np.inf
    wsum = 0.0
    q2 = 0.0
    q3 = 0.0
    q4 = 0.0
    for i in range(y.size):
        v = _f64(y[i])
        w = _weight(wy, i)
        t = _takes(v, w)
        d = v - K if t else 0.0
        wd = w * d
        wd2 = wd * d
        s += wd
        q2 += wd2
        if ORDER >= 3:
            q3 += wd2 * d
        if ORDER >= 4:
            q4 += wd2 * (d * d)
        if WEIGHTED:
            wt = (w if t else 0.0) if SKIPNA else w
            sw += wt
            sw2 += wt * wt
            wmin = _minnum_finite(wmin, w)
            if SKIPNA:
                wsum += w
        if SKIPNA or WEIGHTED:
            cnt += 1.0 if t else 0.0
    if not (SKIPNA or WEIGHTED):
        cnt = float(y.size)  # every value taken
    if not WEIGHTED:
        sw = cnt
        sw2 = cnt
        wmin = 1.0
    if not SKIPNA:
        wsum = sw
    return (s, sw, sw2, cnt, wmin, wsum), (q2, q3, q4)


def _count_bad(wy):
    """How many weights are negative, NaN or infinite (0.0 for unweighted data)."""
    bad = 0.0
    if WEIGHTED:
        for i in range(wy.size):
            w = _f64(wy[i])
            bad += 0.0 if (w >= 0.0) & (w <= _MAXF) else 1.0
    return bad


def _corrected(c, q2, q3, q4, W):
    """(delta, M2, M3, M4) about ``k + delta`` from the sums about ``k``
    (c = sum w*d, zero but for k's rounding: delta = c/W)."""
    delta = c / W
    if not (abs(q2) <= _MAXF and abs(q3) <= _MAXF and abs(q4) <= _MAXF):
        return delta, q2, q3, q4  # past the range: the shift is immaterial
    m2 = q2 - c * delta
    m3 = q3 - delta * (3.0 * q2 - 2.0 * delta * c)
    m4 = q4 - delta * (4.0 * q3 - delta * (6.0 * q2 - 3.0 * delta * c))
    return delta, m2, m3, m4


def _taken_all_finite(y, wy):
    ok = True
    for i in range(y.size):
        v = _f64(y[i])
        w = _weight(wy, i)
        ok &= (abs(v) <= _MAXF) | ~_takes(v, w)
    return ok


def _scaled(y, wy, origin):
    """(mean - origin, M2, M3, M4) of a block of finite taken values whose
    sums pass the range, summed with values scaled by 2**-64 and weights by
    2**-e (the largest weight then at most 1), scaled back with ldexp."""
    e = 0
    if WEIGHTED:
        wmax = 0.0
        for i in range(y.size):
            v = _f64(y[i])
            w = _weight(wy, i)
            if _takes(v, w) and w > wmax:
                wmax = w
        e = math.frexp(wmax)[1]
    ws = math.ldexp(1.0, -e)
    o = origin * _DOWN
    s = 0.0
    sw = 0.0
    for i in range(y.size):
        v = _f64(y[i])
        w = _weight(wy, i)
        if _takes(v, w):
            w *= ws
            s += w * (v * _DOWN - o)
            sw += w
    mean = s / sw
    c = 0.0
    q2 = 0.0
    q3 = 0.0
    q4 = 0.0
    for i in range(y.size):
        v = _f64(y[i])
        w = _weight(wy, i)
        if _takes(v, w):
            w *= ws
            d = (v * _DOWN - o) - mean
            wd = w * d
            c += wd
            q2 += wd * d
            q3 += wd * d * d
            q4 += wd * d * d * d
    delta, m2, m3, m4 = _corrected(c, q2, q3, q4, sw)
    return (math.ldexp(mean + delta, 64), math.ldexp(m2, 128 + e), math.ldexp(m3, 192 + e),
            math.ldexp(m4, 256 + e))


def _put(si, sf, o, n, W, W2, mean, m2, m3, m4):
    si[0, o] = n
    sf[0, o] = W
    sf[1, o] = W2
    sf[2, o] = mean
    sf[3, o] = m2
    if ORDER >= 3:
        sf[4, o] = m3
    if ORDER >= 4:
        sf[5, o] = m4


def _set_empty(si, sf, o):
    _put(si, sf, o, 0, 0.0, 0.0, np.nan, 0.0, 0.0, 0.0)


def _block_state(y, wy, origin, p1, p2, si, sf, o):
    """State of the block ``y`` (weights ``wy``) from its pass sums ``p1``
    and ``p2`` (see _pass1; p2 is of no use where the mean is not finite)
    into slot ``o``, its mean relative to ``origin``; returns the tally of
    invalid weights."""
    s, W, W2, cnt, wmin, wsum = p1
    bad = 0.0
    # wmin comes from a minimum that assumes no NaN (one vminpd a vector):
    # wsum, NaN wherever a weight is, is checked first.
    if WEIGHTED and (not (wsum <= _MAXF) or not (wmin >= 0.0)):
        bad = _count_bad(wy)  # or weights whose sum passes the range
    if cnt == 0.0:
        _set_empty(si, sf, o)
        return bad
    n = np.int64(cnt)
    k = s / W
    if not (abs(k) <= _MAXF):
        if _taken_all_finite(y, wy):  # values in range, their sums not
            mean, m2, m3, m4 = _scaled(y, wy, origin)
            _put(si, sf, o, n, W, W2, mean, m2, m3, m4)
        else:  # NaN or Inf taken: the mean follows IEEE sums, the moments are undefined
            _put(si, sf, o, n, W, W2, k - origin, np.nan, np.nan, np.nan)
        return bad
    c, q2, q3, q4 = p2
    if not (abs(c) <= _MAXF):  # deviations past the range
        mean, m2, m3, m4 = _scaled(y, wy, origin)
    else:
        delta, m2, m3, m4 = _corrected(c, q2, q3, q4, W)
        mean = (k - origin) + delta
    _put(si, sf, o, n, W, W2, mean, m2, m3, m4)
    return bad


# A shift within half a standard deviation of the mean (W*e**2 <= q2/4, e =
# mean - shift): M2 = q2 - W*e**2 loses at most a quarter to cancellation,
# and the rounding errors of M3 and M4 from the sums about the shift stay of
# the two-pass algorithm's size (terms 3*e*q2 <= 1.5*W*sigma**3 against its
# sum(w*|d|**3) ~ 1.6*W*sigma**3 for normal data). The previous block's mean,
# 8192 values away, is far nearer for all but trending data.
SHIFT_NEAR = 0.25


def _one_block(y, wy, origin, K, si, sf, o):
    """State of the block ``y`` into slot ``o`` (mean relative to
    ``origin``); returns (tally of invalid weights, its mean, absolute).

    With a finite shift ``K`` (the previous block's mean), one pass over the
    block sums the powers of ``v - K``; where K proves near enough to the
    block's mean (see SHIFT_NEAR) that is the state, as the order-2 kernels'
    shifted sums, so that a block costs one pass over memory's bytes with
    little arithmetic after. Otherwise (the first block, far shifts, NaN,
    Inf, sums past the range) the corrected two-pass algorithm."""
    if abs(K) <= _MAXF:
        p1, q = _shifted(y, wy, K)
        s, W, W2, cnt, wmin, wsum = p1
        q2, q3, q4 = q
        e = s / W
        # False for NaN and Inf, for empty blocks (e NaN) and invalid weights
        if s * e <= SHIFT_NEAR * q2 and q2 <= _MAXF and wsum <= _MAXF and wmin >= 0.0:
            _, m2, m3, m4 = _corrected(s, q2, q3, q4, W)
            _put(si, sf, o, np.int64(cnt), W, W2, (K - origin) + e, m2, m3, m4)
            return 0.0, K + e
    p1 = _pass1(y, wy)
    bad = _block_state(y, wy, origin, p1, _pass2(y, wy, p1[0] / p1[1]), si, sf, o)
    return bad, origin + sf[2, o]


# -- merging states ----------------------------------------------------------------


def _merge_values(na, Wa, W2a, ma, M2a, M3a, M4a, nb, Wb, W2b, mb, M2b, M3b, M4b):
    """Pebay's merge of two states (see _pebay.merge_weighted, whose steps
    this follows), branch-free so that loops over columns vectorize."""
    n = na + nb
    W = Wa + Wb
    W2 = W2a + W2b
    safe = W if W > 0.0 else 1.0
    ra = Wa / safe
    rb = Wb / safe
    finite = (abs(ma) <= _MAXF) & (abs(mb) <= _MAXF)
    d = mb - ma if finite else 0.0
    wide = finite & ~(abs(d) <= _MAXF)  # opposite means near the range's end
    d = 0.0 if wide else d
    mean = ma + d * rb if finite else ma + mb
    mean = ma * ra + mb * rb if wide else mean
    d2 = d * d
    war = Wa * rb
    m2 = M2a + M2b + d * (d * war)
    m3 = 0.0
    m4 = 0.0
    if ORDER >= 3:
        m3 = M3a + M3b + d2 * d * war * (ra - rb) + 3.0 * d * (ra * M2b - rb * M2a)
    if ORDER >= 4:
        m4 = (M4a + M4b
              + d2 * d2 * war * (ra * ra - ra * rb + rb * rb)
              + 6.0 * d2 * (ra * ra * M2b + rb * rb * M2a)
              + 4.0 * d * (ra * M3b - rb * M3a))
    m2 = (np.inf if wide else m2) if finite else np.nan
    m3 = (np.nan if wide else m3) if finite else np.nan
    m4 = (np.inf if wide else m4) if finite else np.nan
    # An empty side is the identity, whatever its (unused) fields hold.
    ae = na == 0
    be = nb == 0
    mean = ma if be else (mb if ae else mean)
    m2 = M2a if be else (M2b if ae else m2)
    m3 = M3a if be else (M3b if ae else m3)
    m4 = M4a if be else (M4b if ae else m4)
    return n, W, W2, mean, m2, m3, m4


def _field(sf, f, j):
    return sf[f, j] if f < NF else 0.0


def _merge_slots(si_a, sf_a, a, si_b, sf_b, b, si_o, sf_o, o):
    n, W, W2, mean, m2, m3, m4 = _merge_values(
        si_a[0, a], sf_a[0, a], sf_a[1, a], sf_a[2, a], sf_a[3, a], _field(sf_a, 4, a), _field(sf_a, 5, a),
        si_b[0, b], sf_b[0, b], sf_b[1, b], sf_b[2, b], sf_b[3, b], _field(sf_b, 4, b), _field(sf_b, 5, b))
    _put(si_o, sf_o, o, n, W, W2, mean, m2, m3, m4)


def _copy_slot(si, sf, a, si_o, sf_o, o):
    si_o[0, o] = si[0, a]
    for f in range(NF):
        sf_o[f, o] = sf[f, a]


def _push(si, sf, top, index):
    """The state just written at slot ``top`` is item ``index`` of a sequence:
    merge it pairwise (binary carries of index+1); returns the new top."""
    top += 1
    k = index + 1
    while k & 1 == 0:
        _merge_slots(si, sf, top - 2, si, sf, top - 1, si, sf, top - 2)
        top -= 1
        k >>= 1
    return top


def _finish(si, sf, top):
    """Fold what is left on the stack, right to left, into slot 0."""
    if top == 0:
        _set_empty(si, sf, 0)
        return
    while top > 1:
        _merge_slots(si, sf, top - 2, si, sf, top - 1, si, sf, top - 2)
        top -= 1


def _from_origin(sf, j, origin):
    if origin != 0.0:  # a mean of -0.0 stays -0.0
        sf[2, j] = origin + sf[2, j]


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


def _fold(si_c, sf_c, c0, nc, si_out, sf_out, o):
    """Carry-merge the ``nc`` states from slot ``c0`` into slot ``o``."""
    if nc == 1:
        _copy_slot(si_c, sf_c, c0, si_out, sf_out, o)
        return
    si = np.empty((1, STACK), np.int64)
    sf = np.empty((NF, STACK), np.float64)
    top = 0
    for c in range(nc):
        _copy_slot(si_c, sf_c, c0 + c, si, sf, top)
        top = _push(si, sf, top, c)
    _finish(si, sf, top)
    _copy_slot(si, sf, 0, si_out, sf_out, o)


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
    of (1e5, 1000) float32 on one thread of the 2-core EPYC VM, 2026-12-05: 4
    rows per step 21.4 ms, 8 rows 16.1 ms (float64 (5e4, 1000): 17.8 -> 14.3)."""
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


# -- elementwise merge and pairwise reduction of states ------------------------------

MERGE_TASK = 1 << 14  # states per parallel task of merge_arrays


def merge_arrays(na, Wa, W2a, ma, M2a, M3a, M4a, nb, Wb, W2b, mb, M2b, M3b, M4b,
                 n, W, W2, mean, m2, m3, m4):
    """Elementwise merge of two flat states (field arrays of one size; M3
    and M4 arrays beyond ORDER are dummies, never read or written); returns
    how many counts wrapped past int64 (two counts below 2**63 whose sum
    passes it wrap to a negative number)."""
    size = na.size
    n_tasks = (size + MERGE_TASK - 1) // MERGE_TASK
    wrapped = np.zeros(n_tasks, np.int64)
    for t in prange(n_tasks):
        lo = t * MERGE_TASK
        hi = min(size, lo + MERGE_TASK)
        z = 0
        for i in range(lo, hi):
            r = _merge_values(
                na[i], Wa[i], W2a[i], ma[i], M2a[i], M3a[i] if ORDER >= 3 else 0.0, M4a[i] if ORDER >= 4 else 0.0,
                nb[i], Wb[i], W2b[i], mb[i], M2b[i], M3b[i] if ORDER >= 3 else 0.0, M4b[i] if ORDER >= 4 else 0.0)
            n[i] = r[0]
            z += 1 if r[0] < 0 else 0
            W[i] = r[1]
            W2[i] = r[2]
            mean[i] = r[3]
            m2[i] = r[4]
            if ORDER >= 3:
                m3[i] = r[5]
            if ORDER >= 4:
                m4[i] = r[6]
        wrapped[t] = z
    return wrapped.sum()


def reduce_state_rows(si_in, sf_in, si_out, sf_out):
    """Pairwise-merge each row of (field, m, k) state arrays along k."""
    m = si_in.shape[1]
    k = si_in.shape[2]
    for i in prange(m):
        si = np.empty((1, STACK), np.int64)
        sf = np.empty((NF, STACK), np.float64)
        top = 0
        for j in range(k):
            si[0, top] = si_in[0, i, j]
            for f in range(NF):
                sf[f, top] = sf_in[f, i, j]
            top = _push(si, sf, top, j)
        _finish(si, sf, top)
        _copy_slot(si, sf, 0, si_out, sf_out, i)


# -- compiling a variant ------------------------------------------------------------

# name: (fastmath, inline, parallel). fastmath only on the loops over one
# block or tile; never on merges.
_SPEC = {
    "_weight": (False, True, False),
    "_takes": (False, True, False),
    "_pass1": (True, False, False),
    "_pass2": (True, False, False),
    "_count_bad": (True, False, False),
    "_shifted": (True, False, False),
    "_one_block": (False, False, False),
    "_row_run": (False, False, False),
    "_corrected": (False, True, False),  # inlined: called per column in the tile loops
    "_taken_all_finite": (True, False, False),
    "_scaled": (False, False, False),
    "_put": (False, False, False),
    "_set_empty": (False, False, False),
    "_block_state": (False, False, False),
    "_merge_values": (False, True, False),
    "_field": (False, True, False),
    "_merge_slots": (False, False, False),
    "_copy_slot": (False, False, False),
    "_push": (False, False, False),
    "_finish": (False, False, False),
    "_from_origin": (False, False, False),
    "_wrow": (False, True, False),
    "_origin": (False, False, False),
    "_row_chunk": (False, False, False),
    "_fold": (False, False, False),
    "reduce_rows": (False, False, True),
    "_tile": (True, False, False),
    "_merge_tiles": (False, False, False),
    "_terms": (False, True, False),
    "_terms4": (False, True, False),
    "_tile_shifted": (True, False, False),
    "_col_chunk": (False, False, False),
    "column_origins": (False, False, False),
    "_fold_columns": (False, False, False),
    "reduce_cols": (False, False, True),
    "means_from_origins": (False, False, False),
    "merge_arrays": (False, False, True),
    "reduce_state_rows": (False, False, True),
}


@functools.cache
def kernels_for(order, weighted, skipna):
    """The kernels of one variant, compiled lazily (on first call) with
    ``ORDER``, ``WEIGHTED`` and ``SKIPNA`` bound: a namespace of dispatchers,
    the parallel ones with a ``<name>_serial`` twin (prange run as range,
    bit-identical results)."""
    order, weighted, skipna = int(order), bool(weighted), bool(skipna)
    g = dict(globals())
    g.update(ORDER=order, WEIGHTED=weighted, SKIPNA=skipna, NF=order + 2)
    tag = f"o{order}{'w' if weighted else 'u'}{'n' if skipna else ''}"
    ns = pytypes.SimpleNamespace(order=order, weighted=weighted, skipna=skipna)

    def compile_(f, name, suffix, parallel, fast, inline):
        fn = pytypes.FunctionType(f.__code__, g, name, f.__defaults__, f.__closure__)
        fn.__qualname__ = f"{name}_{tag}{suffix}"  # its own on-disk cache entry
        fn.__doc__ = f.__doc__
        opts = dict(_opts)
        if fast:
            opts["fastmath"] = _FAST
        if inline:
            opts["inline"] = "always"
        return njit(parallel=parallel, **opts)(fn)

    for name, (fast, inline, parallel) in _SPEC.items():
        f = globals()[name]
        d = compile_(f, name, "", parallel, fast, inline)
        g[name] = d
        setattr(ns, name, d)
        if parallel:
            setattr(ns, name + "_serial", compile_(f, name, "_serial", False, fast, inline))
    return ns
