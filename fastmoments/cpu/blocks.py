"""Moments of one block of contiguous values, while it sits in cache.

A block's (count, mean, m2) in one pass of shifted sums where that keeps the
digits of two passes (checked), else by the corrected two-pass algorithm;
skipping NaN; and, where sums pass float64's range though the values do not,
summed again scaled by 2**-64. Means come out relative to an origin (see
:mod:`.origins`). Summaries of a block are in :mod:`.summaries`; which of
these a kind takes, and four blocks at once, in :mod:`.groups`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._llvm import _f64
from .base import _FAST, _INF, _MAXF, MOMENTS_SKIPNA, SUMMARY, _opts


# -- one block, in cache ---------------------------------------------------------
@njit(**_opts)
def _shift(y):
    """The mean of the first 8 values of ``y``: the shift of its one-pass sums.

    Taken as y[0] plus the mean of the others' deviations from it: exactly
    y[0] where they are all equal (a constant block then sums zeros and has
    m2 0, not the rounding of a shift off by an ulp, whose squares pass the
    range beyond 1e154), and no sum of 8 values to overflow. Not fast-math,
    so that no reassociation turns it back into a plain sum."""
    h = min(y.size, 8)
    y0 = _f64(y[0])
    d = 0.0
    for i in range(1, h):
        d += _f64(y[i]) - y0
    return y0 + d / h


@njit(fastmath=_FAST, **_opts)
def _block_moments(y, origin):
    """(count, mean - origin, m2) of a block in one pass over it, where that
    is as accurate as two: the sums are of ``d = v - shift`` with the mean of
    the first 8 values as the shift, and m2 = q - s*s/n stands when less than
    half of q cancels (then its error is that of the two-pass algorithm). Far
    shifts, NaN and infinities take the corrected two-pass algorithm. The mean
    is returned relative to ``origin`` (see _row_origin)."""
    shift = _shift(y)
    s, q = _shifted_sums(y, shift)
    return _moments_from_sums(y, shift, s, q, origin)


@njit(fastmath=_FAST, **_opts)
def _moments_from_sums(y, shift, s, q, origin):
    n = y.size
    if q <= _MAXF and s * s <= 0.5 * n * q:  # False for NaN and Inf
        return n, (shift - origin) + s / n, q - s * s / n
    return _block_moments_two_pass(y, origin)


@njit(fastmath=_FAST, inline="always", **_opts)
def _corrected_m2(q, c, inv):
    """m2 = q - c*c/n of the corrected two-pass algorithm, ``inv`` = 1/n.

    Where q, the sum of squared deviations, overflowed, so did m2: it is inf,
    not the NaN of inf - inf that c*c would give once c passes 1e154. Where q
    is finite, c*(c/n) <= q (Cauchy-Schwarz) cannot overflow."""
    return q - c * (c * inv) if q <= _MAXF else q


# How close (relative) a first pass's mean must be to a value of the data for
# the second pass to center on that value instead (see _center): 32 times the
# rounding error of a mean of 2**17 equal values (a column tile's most), and
# small enough that centering there costs no digits: m2's error grows by
# (_SNAP * kappa)**2 ulps at most, kappa = |mean| / std (under 1 to 1e9).
_SNAP = 2.0**-32


@njit(fastmath=_FAST, inline="always", **_opts)
def _center(mean, v):
    """The center of a second pass of the corrected two-pass algorithm: ``v``,
    one of the values, where the first pass's ``mean`` is within _SNAP of it,
    else ``mean``. Any center near the mean gives the same digits (the
    correction c/n takes up its offset), but a mean of equal values off by an
    ulp would leave m2 the rounding of the squares of that ulp's deviations
    (nonzero, or inf beyond 1e154): centered on one of them, a run of equal
    values has deviations 0, its mean exact and m2 exactly 0."""
    return v if abs(mean - v) <= _SNAP * abs(v) else mean


@njit(fastmath=_FAST, **_opts)
def _block_moments_two_pass(y, origin):
    n = y.size
    s = 0.0
    for i in range(n):
        s += _f64(y[i]) - origin
    mean = s / n
    if not (abs(mean) <= _MAXF):
        if _all_finite(y):  # values in range, their sum not
            return _scaled_moments(y, origin)
        return n, mean, np.nan  # NaN or Inf in the block: as NumPy, m2 is NaN
    m2 = 0.0
    c = 0.0
    for i in range(n):
        d = (_f64(y[i]) - origin) - mean
        c += d
        m2 += d * d
    if not (abs(c) <= _MAXF):  # deviations beyond the range
        return _scaled_moments(y, origin)
    # Corrected two-pass: removes the error of the first pass's rounded mean.
    return n, mean + c / n, _corrected_m2(m2, c, 1.0 / n)


# Values near float64's limit (|v| > MAX / n) have sums beyond it though their
# mean is within. Such blocks are summed again scaled down by 2**64 (exact:
# a power of two), so that no sum of up to 2**63 values can overflow, and the
# results scaled back: the mean exactly, m2 to inf where it passes the range.
_DOWN = 2.0**-64
_UP = 2.0**64


@njit(fastmath=_FAST, **_opts)
def _all_finite(y):
    ok = True
    for i in range(y.size):
        ok &= abs(_f64(y[i])) <= _MAXF
    return ok


@njit(fastmath=_FAST, **_opts)
def _scaled_moments(y, origin):
    """(count, mean - origin, m2) of the finite values of ``y``, summed at
    2**-64 of their scale (callers send blocks whose every value counts
    but NaN, skipped by skipna, or every finite one, for summaries)."""
    k0 = _first_finite(y) * _DOWN  # the shift of the sums (see _first_finite)
    s = 0.0
    k = 0.0
    for i in range(y.size):
        v = _f64(y[i])
        ok = abs(v) <= _MAXF
        s += v * _DOWN - k0 if ok else 0.0
        k += 1.0 if ok else 0.0
    if k == 0.0:
        return 0, np.nan, 0.0
    mean = s / k
    m2 = 0.0
    c = 0.0
    for i in range(y.size):
        v = _f64(y[i])
        d = (v * _DOWN - k0) - mean if abs(v) <= _MAXF else 0.0
        c += d
        m2 += d * d
    # m2 * 2**128 overflows to inf exactly where the true m2 passes the range
    return int(k), ((k0 - origin * _DOWN) + (mean + c / k)) * _UP, _corrected_m2(m2, c, 1.0 / k) * _UP * _UP


@njit(**_opts)
def _first_finite(y):
    """The first finite value of ``y`` (0.0 if none): the shift of the sums of
    the masked two-pass loops. Being one of the values, it makes a block of
    equal values (NaN and infinities aside) sum zeros: its mean exact and its
    m2 exactly 0."""
    for i in range(y.size):
        v = _f64(y[i])
        if abs(v) <= _MAXF:
            return v
    return 0.0


# Counters below are float64: exact for a block's 8192 values, and the same
# lane width as the sums, which lets LLVM vectorize the loops.


@njit(fastmath=_FAST, **_opts)
def _block_moments_skipna(y, origin):
    k0 = _first_finite(y)  # the shift of the sums
    s = 0.0
    k = 0.0
    for i in range(y.size):
        v = _f64(y[i]) - k0
        ok = v == v
        s += v if ok else 0.0
        k += 1.0 if ok else 0.0
    if k == 0.0:
        return 0, np.nan, 0.0
    mean = s / k
    if not (abs(mean) <= _MAXF):
        if not _has_inf(y):  # values in range, their sum not
            return _scaled_moments(y, origin)
        return int(k), mean, np.nan
    m2 = 0.0
    c = 0.0
    for i in range(y.size):
        v = _f64(y[i]) - k0
        d = v - mean if v == v else 0.0
        c += d
        m2 += d * d
    if not (abs(c) <= _MAXF):
        return _scaled_moments(y, origin)
    return int(k), (k0 - origin) + (mean + c / k), _corrected_m2(m2, c, 1.0 / k)


@njit(fastmath=_FAST, **_opts)
def _has_inf(y):
    found = False
    for i in range(y.size):
        found |= abs(_f64(y[i])) == _INF
    return found


@njit(fastmath=_FAST, **_opts)
def _shifted_sums(y, shift):
    s = 0.0
    q = 0.0
    for i in range(y.size):
        d = _f64(y[i]) - shift
        s += d
        q += d * d
    return s, q


@njit(**_opts)
def scaled_redo(kind, row):
    """(True, mean, m2) of ``row``, summed scaled (see _scaled_moments),
    where the non-finite mean that ``kind`` gave it came from sums past the
    range rather than from its values; (False, nan, nan) where it came from
    its values (an inf, or a NaN that ``kind`` counts)."""
    if kind == SUMMARY or (not _has_inf(row) if kind == MOMENTS_SKIPNA else _all_finite(row)):
        _, mean, m2 = _scaled_moments(row, 0.0)
        return True, mean, m2
    return False, np.nan, np.nan
