"""Pairwise merge of weighted, higher-order moment states, in array code.

A state of kind ``weighted<p>`` (p = 2, 3, 4) is ``(n, W, W2, mean, M2[, M3[,
M4]])``: n values taken, W and W2 the sums of their weights and squared
weights, and ``M<q> = sum(w * (v - mean)**q)``. For the union of states a and
b, with ``d = mean_b - mean_a``, ``ra = Wa / W`` and ``rb = Wb / W``
(Pebay 2008, eq. 3.1, the counts replaced by sums of weights):

    mean = mean_a + d * rb
    M2 = M2a + M2b + d**2 * Wa * rb
    M3 = M3a + M3b + d**3 * Wa * rb * (ra - rb) + 3 * d * (ra * M2b - rb * M2a)
    M4 = M4a + M4b + d**4 * Wa * rb * (ra**2 - ra * rb + rb**2)
         + 6 * d**2 * (ra**2 * M2b + rb**2 * M2a) + 4 * d * (ra * M3b - rb * M3a)

Written with NumPy/CuPy operations on whole arrays (``xp``), this is the
reference the kernels are tested against and the merge of states where no
kernel is faster (the elementwise ``merge``; the wings' reductions use their
own kernels).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ORDERS", "kind_of", "order_of", "n_fields", "merge_weighted", "empty_weighted"]

ORDERS = (2, 3, 4)
_MAXF = np.finfo(np.float64).max


def kind_of(order: int) -> str:
    return f"weighted{order}"


def order_of(kind: str) -> int:
    return int(kind[len("weighted"):])


def n_fields(order: int) -> int:
    return 3 + order  # n, W, W2, mean, M2..M<order>


def empty_weighted(xp, shape, order):
    z = lambda: xp.zeros(shape, np.float64)  # noqa: E731
    return (xp.zeros(shape, np.int64), z(), z(), xp.full(shape, np.nan)) + tuple(z() for _ in range(order - 1))


def merge_weighted(xp, order, a, b):
    """The merged fields of the states ``a`` and ``b`` (tuples of arrays
    that broadcast together), elementwise."""
    na, Wa, W2a, ma = a[:4]
    nb, Wb, W2b, mb = b[:4]
    Ma, Mb = a[4:], b[4:]
    n = na + nb
    W = Wa + Wb
    W2 = W2a + W2b
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        safe = xp.where(W > 0, W, 1.0)
        ra = Wa / safe
        rb = Wb / safe
        finite = (xp.abs(ma) <= _MAXF) & (xp.abs(mb) <= _MAXF)
        d = xp.where(finite, mb - ma, 0.0)
        wide = finite & ~(xp.abs(d) <= _MAXF)  # opposite means near the range's end
        d = xp.where(wide, 0.0, d)
        mean = xp.where(finite, ma + d * rb, ma + mb)
        mean = xp.where(wide, ma * ra + mb * rb, mean)
        d2 = d * d
        war = Wa * rb
        out = [mean, Ma[0] + Mb[0] + d * (d * war)]
        if order >= 3:
            out.append(Ma[1] + Mb[1] + d2 * d * war * (ra - rb) + 3.0 * d * (ra * Mb[0] - rb * Ma[0]))
        if order >= 4:
            t4 = d2 * d2 * war * (ra * ra - ra * rb + rb * rb)
            m4 = Ma[2] + Mb[2] + t4 + 6.0 * d2 * (ra * ra * Mb[0] + rb * rb * Ma[0]) + 4.0 * d * (ra * Mb[1] - rb * Ma[1])
            # M4 >= 0: where a side's M4 or the spread term overflowed, inf - inf
            # from the M3 term is no reason for NaN (the kernels sum to inf there).
            over = (Ma[2] == xp.inf) | (Mb[2] == xp.inf) | (t4 == xp.inf)
            out.append(xp.where(xp.isnan(m4) & over, xp.inf, m4))
        spread_over = [xp.inf, xp.nan, xp.inf]
        for q in range(len(out) - 1):
            out[q + 1] = xp.where(finite, xp.where(wide, spread_over[q], out[q + 1]), xp.nan)
    # An empty side is the identity, whatever its (unused) fields hold.
    a_empty = na == 0
    b_empty = nb == 0
    fields = [mean] + out[1:]
    merged = []
    for f, fa, fb in zip(fields, (ma,) + tuple(Ma), (mb,) + tuple(Mb)):
        merged.append(xp.where(b_empty, fa, xp.where(a_empty, fb, f)))
    return (n, W, W2) + tuple(merged)
