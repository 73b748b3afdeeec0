"""Origins: the values that block, chunk and tile means are kept relative to.

A row's origin is the median of a few sampled values, a column's that of its
first, middle and last; each is one of the values. Means relative to it keep
their digits through the merges, and are turned back into means once, at the
end (``_from_origin``, ``means_from_origins``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._llvm import _f64
from .base import BLOCK, _MAXF, _opts


# A row of several blocks keeps its block means relative to an origin near its
# values while they merge, and adds the origin back once, at the end. A block
# mean stored as a plain float64 is rounded at the scale of the mean itself:
# for data far from zero against its spread (kappa = |mean| / std), merging
# such means costs about 2*eps*kappa/sqrt(n) of the variance (1e10 + N(0, 1),
# 3e5 values: 2.3e-9). Relative to the origin they are rounded at the scale
# of the spread instead.
ORIGIN_SAMPLES = 9
ORIGIN_SCAN = 64  # rows column_origins looks through where its samples are not finite
_ORIGIN_MAX = 2.0**1000


@njit(**_opts)
def _row_origin(y):
    """The origin of a row's block means: 0.0 for rows of one block (no
    merges), otherwise the (lower) median of the finite values among
    ORIGIN_SAMPLES evenly spaced samples (0.0 if none is finite).

    A few outliers cannot pull a median away from the bulk of the values.
    And being one of the values, it lies within sqrt(n) standard deviations
    of their mean, whatever the data: the merges then lose at most about
    2*eps of the variance (see above)."""
    if y.size <= BLOCK:
        return 0.0
    v = np.empty(ORIGIN_SAMPLES)
    k = 0
    last = y.size - 1
    for i in range(ORIGIN_SAMPLES):
        a = _f64(y[i * last // (ORIGIN_SAMPLES - 1)])
        if abs(a) <= _MAXF:
            v[k] = a
            k += 1
    if k == 0:
        return 0.0
    v = np.sort(v[:k])
    o = v[(k - 1) // 2]
    # Near the range's end a mean relative to the origin could overflow.
    return o if abs(o) <= _ORIGIN_MAX else 0.0


@njit(**_opts)
def _from_origin(sf, j, origin):
    """Turn slot ``j``'s mean, relative to ``origin``, back into the mean."""
    if origin != 0.0:  # and a mean of -0.0 stays -0.0
        sf[0, j] = origin + sf[0, j]


@njit(**_opts)
def column_origins(x):
    """The origin of each column's means (see _row_origin) of the (k, m) array
    ``x``: the median of its first, middle and last values, or the first of
    them that is finite; else the first finite value among the first
    ORIGIN_SCAN rows (0.0 if none is): one of the values, as for rows, which
    the tiles center on where a column's mean is that close (see _center).
    Three samples, since every call pays for them; one outlier among them
    cannot pull the origin away."""
    k, m = x.shape
    org = np.zeros(m)
    if k == 0:
        return org
    for j in range(m):
        a = _f64(x[0, j])
        b = _f64(x[k // 2, j])
        c = _f64(x[k - 1, j])
        fa, fb, fc = abs(a) <= _MAXF, abs(b) <= _MAXF, abs(c) <= _MAXF
        if fa and fb and fc:
            org[j] = max(min(a, b), min(max(a, b), c))
        elif fa:
            org[j] = a
        elif fb:
            org[j] = b
        elif fc:
            org[j] = c
        else:
            for i in range(1, min(k, ORIGIN_SCAN)):
                v = _f64(x[i, j])
                if abs(v) <= _MAXF:
                    org[j] = v
                    break
    return org


@njit(**_opts)
def means_from_origins(sf, org):
    """_from_origin for every slot of (field, m) state arrays, in place."""
    for j in range(org.size):
        _from_origin(sf, j, org[j])
