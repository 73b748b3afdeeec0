"""Grouped weighted and higher-order moments (``group_moments`` with
``weights`` or ``order`` 3/4): the rows of an (n, m) array reduced per label.

As in :mod:`.grouped`, the rows are cut into fixed tasks of consecutive rows
(``grouped.task_rows``), each with private accumulators per slot (group x
column). A task reads its rows twice, the second time from cache: first the
count, the sums of weights and squared weights and the weighted sum of the
deviations from a shift (the slot's first finite value in the task), which
give the slot's mean; then the weighted sums of powers of the deviations
from that mean, corrected by the mean deviation (the corrected two-pass
algorithm, for every order). Task states keep their means relative to their
shifts; the layer above makes them relative to one origin per slot and
merges them in a fixed tree (Pebay's formulas, the weighted kinds' ``reduce``),
so the result depends only on the data and its shape, not on the threads.

Values of weight 0 are left out whatever they are; with ``skipna`` so is
NaN. Slots of finite values whose sums overflowed (NaN or Inf fields where
no NaN or Inf was taken) are redone by the ungrouped kernels, which scale
such sums (the layer above's ``_redo_overflowed``). Non-finite values taken count (in ``count`` and the sums of weights)
and follow the order-2 rules: a NaN makes the mean and the m-fields NaN, an
Inf the mean Inf (NaN for both signs) and the m-fields NaN.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .base import _MAXF, _opts, compile_variant, nonfinite_mean

# Slots (groups x columns) up to which this kernel runs; with more, its
# accumulators (13 float64 a slot, per task) leave the caches and the layer
# above's bincount passes are faster. Measured on the 2-core AMD EPYC KVM VM,
# 2026-12-07, 10**7 float64 with random labels, medians of 2-3, noisy:
# weights / order 4, this kernel against bincount: 10 groups 107 / 53 ms
# against 605 / 720; 1,000: 67 / 83; 10**4: 274 / 232 against 431 / 1635;
# 10**5: 748 / 909 against 466 / 1498; 10**6: 1262 / 1493 against 640 / 1115.
MAX_SLOTS = 1 << 16

# Pass-one accumulator columns: count, W, W2 (every value taken), the shift,
# the weighted sum of deviations and the weight of the finite values, and
# the NaN, +Inf and -Inf values taken.
_C, _W, _W2, _K, _S, _WF, _NAN, _PINF, _NINF = range(9)


@njit(**_opts)
def _weight(w, i, c):
    return 1.0 if w is None else np.float64(w[i, c])


@njit(**_opts)
def _task(x, w, lab, r0, r1, G, order, skipna, cnt, fl, sh, nf, t):
    """States of rows r0..r1 into ``cnt[t]``, ``fl[:, t]`` (W, W2, mean
    relative to ``sh[t]``, m2[, m3[, m4]]), and into ``nf[t]`` whether the
    slot took NaN or Inf values; returns the largest label >= G or -1.
    The rows are taken as slices, so that the loops run from 0 and, with
    unsigned slot indices, carry no negative-index wraparound."""
    if w is None:
        return _task_rows(x[r0:r1], None, lab[r0:r1], G, order, skipna, cnt, fl, sh, nf, t)
    return _task_rows(x[r0:r1], w[r0:r1], lab[r0:r1], G, order, skipna, cnt, fl, sh, nf, t)


@njit(**_opts)
def _task_rows(x, w, lab, G, order, skipna, cnt, fl, sh, nf, t):
    m = x.shape[1]
    slots = G * m
    a = np.zeros((slots, 9))
    bad = -1
    for i in range(lab.size):
        g = lab[i]
        if np.uint64(g) >= np.uint64(G):  # a negative label too
            if g >= G:
                bad = max(bad, np.int64(g))
            continue
        for c in range(m):
            wi = _weight(w, i, c)
            if wi == 0.0:
                continue
            v = np.float64(x[i, c])
            j = np.uint64(g * m + c)
            if v != v:
                if skipna:
                    continue
                a[j, _NAN] += 1.0
            elif v > _MAXF:
                a[j, _PINF] += 1.0
            elif v < -_MAXF:
                a[j, _NINF] += 1.0
            else:
                if a[j, _WF] == 0.0:
                    a[j, _K] = v
                a[j, _S] += wi * (v - a[j, _K])
                a[j, _WF] += wi
            a[j, _C] += 1.0
            a[j, _W] += wi
            a[j, _W2] += wi * wi
    # Pass two: powers of the deviations from the pass-one means.
    mu = np.empty(slots)
    for j in range(slots):
        mu[j] = a[j, _S] / a[j, _WF] if a[j, _WF] > 0.0 else 0.0
    p = np.zeros((slots, 4))  # sum w*d, w*d**2, w*d**3, w*d**4
    for i in range(lab.size):
        g = lab[i]
        if np.uint64(g) >= np.uint64(G):
            continue
        for c in range(m):
            wi = _weight(w, i, c)
            if wi == 0.0:
                continue
            v = np.float64(x[i, c])
            if not (abs(v) <= _MAXF):
                continue
            j = np.uint64(g * m + c)
            d = (v - a[j, _K]) - mu[j]
            wd = wi * d
            p[j, 0] += wd
            wd *= d
            p[j, 1] += wd
            if order >= 3:
                wd *= d
                p[j, 2] += wd
                if order >= 4:
                    p[j, 3] += wd * d
    for j in range(slots):
        n = np.int64(a[j, _C])
        cnt[t, j] = n
        fl[0, t, j] = a[j, _W]
        fl[1, t, j] = a[j, _W2]
        sh[t, j] = a[j, _K]
        nf[t, j] = False
        if n == 0:
            fl[2, t, j] = np.nan
            for f in range(3, fl.shape[0]):
                fl[f, t, j] = 0.0
            continue
        wf = a[j, _WF]
        mean = np.nan
        m2 = m3 = m4 = 0.0
        if wf > 0.0:
            # The corrected two-pass: the pass-one mean moved by the mean
            # deviation dl, the sums of powers shifted to the new mean.
            dl = p[j, 0] / wf
            mean = mu[j] + dl
            s2, s3, s4 = p[j, 1], p[j, 2], p[j, 3]
            m2 = max(s2 - p[j, 0] * dl, 0.0)
            m3 = s3 - 3.0 * dl * s2 + 2.0 * wf * dl * dl * dl
            m4 = max(s4 - 4.0 * dl * s3 + 6.0 * dl * dl * s2 - 3.0 * wf * dl * dl * dl * dl, 0.0)
        nan, pinf, ninf = a[j, _NAN], a[j, _PINF], a[j, _NINF]
        nf[t, j] = nan + pinf + ninf > 0.0
        if nf[t, j]:
            m2 = m3 = m4 = np.nan
            mean = nonfinite_mean(nan, pinf, ninf)
        fl[2, t, j] = mean
        fl[3, t, j] = m2
        if order >= 3:
            fl[4, t, j] = m3
        if order >= 4:
            fl[5, t, j] = m4
    return bad


def _group_tasks(x, w, lab, G, rows, order, skipna, cnt, fl, sh, nf):
    """Task states of the (n, m) array ``x`` (weights ``w`` of its shape, or
    None) by the labels ``lab``: task t holds rows [t*rows, (t+1)*rows).
    Returns the largest label >= G, or -1."""
    n = x.shape[0]
    ntask = cnt.shape[0]
    bads = np.empty(ntask, np.int64)
    for t in prange(ntask):
        bads[t] = _task(x, w, lab, t * rows, min(n, (t + 1) * rows), G, order, skipna, cnt, fl, sh, nf, t)
    return bads.max()


_KERNELS = None


def kernels():
    """``group_tasks`` and its ``_serial`` twin (prange run as range:
    bit-identical results), compiled on first call."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = compile_variant(dict(globals()), {"_group_tasks": (False, False, True)}, "gw")
    return _KERNELS
