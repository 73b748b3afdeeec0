"""Weighted kernels, part 2: merging states (Pebay's pairwise formulas with
sums of weights for counts), one pair, a carry stack, whole arrays (see
:mod:`fastmoments.cpu.weighted`)."""

from __future__ import annotations

import numpy as np
from numba import prange

from .base import STACK
from .weighted_base import _MAXF, NF, ORDER
from .weighted_blocks import _put, _set_empty


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
        t4 = d2 * d2 * war * (ra * ra - ra * rb + rb * rb)
        m4 = M4a + M4b + t4 + 6.0 * d2 * (ra * ra * M2b + rb * rb * M2a) + 4.0 * d * (ra * M3b - rb * M3a)
        # M4 >= 0: inf - inf from the M3 term beside an overflowed M4 or spread term is inf (as _pebay)
        over = (M4a == np.inf) | (M4b == np.inf) | (t4 == np.inf)
        m4 = np.inf if (m4 != m4) & over else m4
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
        for k in range(hi - lo):
            i = np.uint64(lo + k)  # unsigned: no negative-index wraparound on the 21 accesses
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
