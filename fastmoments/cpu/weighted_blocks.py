"""Weighted kernels, part 1: one block of a row, reduced while in cache
(two passes, or one about a shift), and its state (see
:mod:`fastmoments.cpu.weighted`)."""

from __future__ import annotations

import math

import numpy as np

from ._llvm import _f64, _minnum_finite
from .weighted_base import _DOWN, _MAXF, ORDER, SKIPNA, WEIGHTED, _takes, _weight


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
