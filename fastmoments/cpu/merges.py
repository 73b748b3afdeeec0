"""Merging states: pairwise, on a carry stack, and elementwise.

``merge_moments`` is Chan, Golub & LeVeque's pairwise formula; ``merge_into``
merges two state slots of any kind; the carry stack (``carry_push``,
``carry_finish``, ``_fold_chunks``) merges a sequence of states in a fixed
binary tree. The parallel kernels at the end merge whole state arrays for the
wing's merge() and reduce().
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .base import _MAXF, N_FLOAT, N_INT, STACK, SUMMARY, copy_slot, n_fields, _opts, _serial_twin, set_empty


# -- merging states ----------------------------------------------------------------
@njit(**_opts)
def merge_moments(na, ma, qa, nb, mb, qb):
    """Chan, Golub & LeVeque: the (count, mean, m2) of the union of two batches."""
    if nb == 0:
        return na, ma, qa
    if na == 0:
        return nb, mb, qb
    n = na + nb
    if not (abs(ma) <= _MAXF and abs(mb) <= _MAXF):
        # Infinite or NaN means: follow the sum's IEEE rules, spread undefined.
        return n, ma + mb, np.nan
    d = mb - ma
    fb = nb / n
    if not (abs(d) <= _MAXF):
        # Finite means of opposite signs near the range's end: their difference
        # overflows, their weighted sum does not; the spread does (inf).
        return n, ma * (na / n) + mb * fb, np.inf
    return n, ma + d * fb, qa + qb + d * d * (na * fb)


@njit(**_opts)
def _fmin(a, b):
    # NaN marks "no finite value" and must not win.
    return b if a != a else (a if b != b else min(a, b))


@njit(**_opts)
def _fmax(a, b):
    return b if a != a else (a if b != b else max(a, b))


@njit(**_opts)
def merge_into(kind, si_a, sf_a, a, si_b, sf_b, b, si_out, sf_out, o):
    """Merge slot ``a`` of one state array with slot ``b`` of another into slot ``o``."""
    n, m, q = merge_moments(si_a[0, a], sf_a[0, a], sf_a[1, a], si_b[0, b], sf_b[0, b], sf_b[1, b])
    if kind == SUMMARY:
        nnf = si_a[1, a] + si_b[1, b]
        nz = si_a[2, a] + si_b[2, b]
        lo = _fmin(sf_a[2, a], sf_b[2, b])
        hi = _fmax(sf_a[3, a], sf_b[3, b])
        si_out[1, o] = nnf
        si_out[2, o] = nz
        sf_out[2, o] = lo
        sf_out[3, o] = hi
    si_out[0, o] = n
    sf_out[0, o] = m
    sf_out[1, o] = q


@njit(**_opts)
def carry_push(kind, si, sf, top, index):
    """The state just written at slot ``top`` is item ``index`` of a sequence:
    merge it pairwise (binary carries of index+1) and return the new top."""
    top += 1
    k = index + 1
    while k & 1 == 0:
        merge_into(kind, si, sf, top - 2, si, sf, top - 1, si, sf, top - 2)
        top -= 1
        k >>= 1
    return top


@njit(**_opts)
def carry_finish(kind, si, sf, top):
    """Fold what is left on the stack, right to left, into slot 0."""
    if top == 0:
        set_empty(kind, si, sf, 0)
        return
    while top > 1:
        merge_into(kind, si, sf, top - 2, si, sf, top - 1, si, sf, top - 2)
        top -= 1


@njit(**_opts)
def _fold_chunks(kind, si_c, sf_c, c0, nc, si_out, sf_out, o):
    """Carry-merge the ``nc`` chunk states starting at slot ``c0`` into slot ``o``."""
    if nc == 1:
        copy_slot(si_c, sf_c, c0, si_out, sf_out, o)
        return
    si = np.empty((N_INT, STACK), np.int64)
    sf = np.empty((N_FLOAT, STACK), np.float64)
    top = 0
    for c in range(nc):
        copy_slot(si_c, sf_c, c0 + c, si, sf, top)
        top = carry_push(kind, si, sf, top, c)
    carry_finish(kind, si, sf, top)
    copy_slot(si, sf, 0, si_out, sf_out, o)


# Below this many chunk states, folding them in a second parallel region costs
# more than folding them on one thread.
FOLD_PARALLEL_MIN = 4096


# -- elementwise merge and pairwise reduction of existing states ------------------
@njit(**_opts)
def merge_state_arrays(kind, si_a, sf_a, si_b, sf_b):
    """Elementwise merge of two (field, n) state arrays."""
    n = si_a.shape[1]
    si = np.empty_like(si_a)
    sf = np.empty_like(sf_a)
    for i in range(n):
        merge_into(kind, si_a, sf_a, i, si_b, sf_b, i, si, sf, i)
    return si, sf


# Outputs are allocated by NumPy and passed in: NumPy's allocator asks for
# huge pages, Numba's does not, and page faults on fresh output memory cost as
# much as the merge itself (measured: 416 ms against 86 ms for 10M elements).


@njit(parallel=True, **_opts)
def merge_moment_arrays(na, ma, qa, nb, mb, qb, nn, mm, qq):
    """Elementwise merge of two equally shaped, flat (count, mean, m2) arrays;
    returns how many counts passed int64's range (a sum of two counts below
    2**63 that does wraps to a negative number)."""
    wrapped = 0
    for i in prange(na.size):
        nn[i], mm[i], qq[i] = merge_moments(na[i], ma[i], qa[i], nb[i], mb[i], qb[i])
        wrapped += 1 if nn[i] < 0 else 0
    return wrapped


@njit(parallel=True, **_opts)
def merge_extremes_arrays(lo_a, hi_a, lo_b, hi_b, lo, hi):
    """Elementwise merge of the min and max fields of summaries."""
    for i in prange(lo_a.size):
        lo[i] = _fmin(lo_a[i], lo_b[i])
        hi[i] = _fmax(hi_a[i], hi_b[i])


@njit(parallel=True, **_opts)
def reduce_state_rows(kind, si_in, sf_in, si_out, sf_out):
    """Pairwise-merge each row of (field, m, k) state arrays along k."""
    m = si_in.shape[1]
    k = si_in.shape[2]
    ni, nf = n_fields(kind)
    for i in prange(m):
        si = np.empty((N_INT, STACK), np.int64)
        sf = np.empty((N_FLOAT, STACK), np.float64)
        top = 0
        for j in range(k):
            for f in range(ni):
                si[f, top] = si_in[f, i, j]
            for f in range(nf):
                sf[f, top] = sf_in[f, i, j]
            top = carry_push(kind, si, sf, top, j)
        carry_finish(kind, si, sf, top)
        copy_slot(si, sf, 0, si_out, sf_out, i)
    return si_out, sf_out


@njit(**_opts)
def fold_state_rows(kind, si_in, sf_in, k, si_out, sf_out):
    """Merge the ``k`` states of each of m columns one at a time, left to
    right: slot ``j * m + i`` of the (field, k * m) inputs is state j of
    column i. Bit for bit what merging them in that order with
    merge_moment_arrays and merge_extremes_arrays gives (the same
    merge_moments, _fmin and _fmax). Returns how many counts wrapped."""
    m = si_out.shape[1]
    wrapped = 0
    for i in range(m):
        copy_slot(si_in, sf_in, i, si_out, sf_out, i)
        for j in range(1, k):
            merge_into(kind, si_out, sf_out, i, si_in, sf_in, j * m + i, si_out, sf_out, i)
            # After each merge, as merging one at a time checks: a sum that
            # wrapped may come back positive after further merges.
            wrapped += 1 if si_out[0, i] < 0 else 0
            if kind == SUMMARY:
                wrapped += 1 if si_out[1, i] < 0 or si_out[2, i] < 0 else 0
    return wrapped


merge_moment_arrays_serial = _serial_twin(merge_moment_arrays)
merge_extremes_arrays_serial = _serial_twin(merge_extremes_arrays)
reduce_state_rows_serial = _serial_twin(reduce_state_rows)
