"""Grouped moments and summaries: the rows of an (n, m) array reduced per
integer label (``group_moments``, ``group_summarize``).

The rows are split into fixed tasks of consecutive rows (``task_rows``: a
function of the shape and the number of groups alone). A task accumulates a
private state per slot (group x column) in one pass: the count, a shift (the
slot's first finite value in the task) and the shifted sums ``s = sum(v -
shift)`` and ``q = sum((v - shift)**2)``; summaries also min, max and the
zeros. Where the shifted sums would cancel digits (``s*s > 0.5*n*q``, the
test of the block kernels), the task is read again for those slots around
their first-pass means: the corrected two-pass algorithm. Non-finite values
are left out of the sums; a task that met any is read again to count them
per slot, and its states then follow the rules of the ungrouped kernels (a
NaN makes mean and m2 NaN, an Inf the mean Inf and m2 NaN; summaries count
them in n_nonfinite). The task states are merged per slot in a fixed binary
tree (merge_tasks), so results are bit-identical for any number
of threads.

Labels outside [0, G) are left out; those >= G are reported (the largest)
for the caller to raise.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .base import _MAXF, MOMENTS, MOMENTS_SKIPNA, SUMMARY, _opts, _serial_twin
from .merges import _fmax, _fmin, merge_moments

# Rows per task with few slots: 2**16 values of one column, 512 KiB of
# float64, so that a task with cancelling slots is read again from L2/L3.
TASK_ROWS = 1 << 16
# Slots per task up to which tasks have TASK_ROWS rows; with more, a task
# holds at least 2 rows per slot, so that the task states (3 to 7 fields per
# slot and task) stay within about 2.5 times the data.
FEW_SLOTS = 4096

# Accumulator columns (one row of ``acc`` per slot).
_C, _K, _S, _Q, _LO, _HI, _NZ = 0, 1, 2, 3, 4, 5, 6


def task_rows(n, m, G):
    """Rows per task for ``n`` rows of ``m`` columns in ``G`` groups."""
    slots = G * m
    per = max(TASK_ROWS // max(m, 1), 1)
    if slots > FEW_SLOTS:
        per = max(per, 2 * G)
    return max(min(per, n), 1)


@njit(inline="always", **_opts)
def _acc_one(kind, acc, j, v):
    """Take the finite value ``v`` into slot ``j``'s sums."""
    c = acc[j, _C]
    k = v if c == 0.0 else acc[j, _K]
    d = v - k
    acc[j, _C] = c + 1.0
    acc[j, _K] = k
    acc[j, _S] += d
    acc[j, _Q] += d * d
    if kind == SUMMARY:
        if c == 0.0:
            acc[j, _LO] = v
            acc[j, _HI] = v
        else:
            acc[j, _LO] = min(acc[j, _LO], v)
            acc[j, _HI] = max(acc[j, _HI], v)
        acc[j, _NZ] += 1.0 if v == 0.0 else 0.0


@njit(**_opts)
def _first_pass(kind, x, lab, r0, r1, G, acc):
    """Shifted sums of rows r0..r1; returns (non-finite values met, largest label >= G or -1)."""
    m = x.shape[1]
    nonfinite = 0
    bad = -1
    if m == 1:
        for i in range(r0, r1):
            g = lab[i]
            if g < 0 or g >= G:
                if g >= G:
                    bad = max(bad, np.int64(g))
                continue
            v = np.float64(x[i, 0])
            if abs(v) <= _MAXF:
                _acc_one(kind, acc, g, v)
            else:
                nonfinite += 1
        return nonfinite, bad
    for i in range(r0, r1):
        g = lab[i]
        if g < 0 or g >= G:
            if g >= G:
                bad = max(bad, np.int64(g))
            continue
        base = g * m
        for c in range(m):
            v = np.float64(x[i, c])
            if abs(v) <= _MAXF:
                _acc_one(kind, acc, base + c, v)
            else:
                nonfinite += 1
    return nonfinite, bad


@njit(**_opts)
def _second_pass(x, lab, r0, r1, G, acc):
    """Sums around the first-pass means of the slots marked by a negative count."""
    m = x.shape[1]
    for i in range(r0, r1):
        g = lab[i]
        if g < 0 or g >= G:
            continue
        base = g * m
        for c in range(m):
            j = base + c
            if acc[j, _C] < 0.0:
                v = np.float64(x[i, c])
                if abs(v) <= _MAXF:
                    d = v - acc[j, _K]
                    acc[j, _S] += d
                    acc[j, _Q] += d * d


@njit(**_opts)
def _count_nonfinite(x, lab, r0, r1, G, nf):
    """Per slot: NaN, +Inf and -Inf values of rows r0..r1."""
    m = x.shape[1]
    for i in range(r0, r1):
        g = lab[i]
        if g < 0 or g >= G:
            continue
        base = g * m
        for c in range(m):
            v = np.float64(x[i, c])
            if not (abs(v) <= _MAXF):
                if v != v:
                    nf[base + c, 0] += 1
                elif v > 0:
                    nf[base + c, 1] += 1
                else:
                    nf[base + c, 2] += 1


@njit(**_opts)
def _task(kind, x, lab, r0, r1, G, si, sf, sh, t):
    """The states of rows r0..r1 into row ``t`` of (field, task, slot)
    ``si``/``sf``, each mean relative to the slot's shift, written to
    ``sh[t, slot]`` (see merge_tasks); returns (largest label >= G or -1, slots
    whose sums overflowed)."""
    slots = G * x.shape[1]
    width = 7 if kind == SUMMARY else 4
    acc = np.zeros((slots, width))
    nonfinite, bad = _first_pass(kind, x, lab, r0, r1, G, acc)
    redo = False
    for j in range(slots):
        c = acc[j, _C]
        s = acc[j, _S]
        q = acc[j, _Q]
        if c > 1.0 and not (q <= _MAXF and s * s <= 0.5 * c * q):
            if q <= _MAXF:  # else the sums overflowed: left for the caller
                acc[j, _K] += s / c
                acc[j, _S] = 0.0
                acc[j, _Q] = 0.0
                acc[j, _C] = -c
                redo = True
    if redo:
        _second_pass(x, lab, r0, r1, G, acc)
        for j in range(slots):
            if acc[j, _C] < 0.0:
                acc[j, _C] = -acc[j, _C]
    nf = np.zeros((slots if nonfinite else 0, 3), np.int64)
    if nonfinite:
        _count_nonfinite(x, lab, r0, r1, G, nf)
    overflowed = 0
    for j in range(slots):
        c = acc[j, _C]
        n = np.int64(c)
        mean = np.nan
        m2 = 0.0
        k = 0.0
        if n > 0:
            s = acc[j, _S]
            k = acc[j, _K]
            mean = s / c
            m2 = acc[j, _Q] - s * (s / c)
            if m2 < 0.0:
                m2 = 0.0
            if not (abs(k + mean) <= _MAXF and m2 <= _MAXF):
                overflowed += 1
        sh[t, j] = k
        if kind == SUMMARY:
            nnf = 0
            if nonfinite:
                nnf = nf[j, 0] + nf[j, 1] + nf[j, 2]
            si[0, t, j] = n
            si[1, t, j] = nnf
            si[2, t, j] = np.int64(acc[j, _NZ])
            sf[0, t, j] = mean
            sf[1, t, j] = m2
            sf[2, t, j] = acc[j, _LO] if n > 0 else np.nan
            sf[3, t, j] = acc[j, _HI] if n > 0 else np.nan
            continue
        if nonfinite:
            nnan = nf[j, 0] if kind == MOMENTS else 0
            pinf = nf[j, 1]
            ninf = nf[j, 2]
            if nnan + pinf + ninf > 0:
                n += nnan + pinf + ninf
                m2 = np.nan
                if nnan > 0 or (pinf > 0 and ninf > 0):
                    mean = np.nan
                elif pinf > 0:
                    mean = np.inf
                else:
                    mean = -np.inf
        si[0, t, j] = n
        sf[0, t, j] = mean
        sf[1, t, j] = m2
    return bad, overflowed


@njit(parallel=True, **_opts)
def group_tasks(kind, x, lab, G, rows, si, sf, sh):
    """Task states of the (n, m) array ``x`` by the labels ``lab``: task t
    holds rows [t*rows, (t+1)*rows) and writes row t of (field, tasks, G*m)
    ``si``/``sf``, means relative to ``sh`` (see _task). Returns (largest
    label >= G or -1, overflowed slot-tasks)."""
    n = x.shape[0]
    ntask = si.shape[1]
    bads = np.empty(ntask, np.int64)
    overs = np.empty(ntask, np.int64)
    for t in prange(ntask):
        r0 = t * rows
        r1 = min(n, r0 + rows)
        bads[t], overs[t] = _task(kind, x, lab, r0, r1, G, si, sf, sh, t)
    bad = -1
    over = 0
    for t in range(ntask):
        bad = max(bad, bads[t])
        over += overs[t]
    return bad, over


@njit(parallel=True, **_opts)
def merge_tasks(kind, si, sf, sh, si_out, sf_out):
    """Merge the task states of each slot into ``si_out``/``sf_out`` (field, slot).

    The task means are first made relative to one origin per slot, the shift
    of its first task with values: the merges then keep the digits of the
    spread (an absolute mean near 1e9 has ulps of 1e-7), and the origin is
    added back once at the end. A difference of two values of a slot is
    exact where they are within a factor 2 of each other, and otherwise
    rounded relative to the spread. The tasks merge in a fixed binary tree
    (in place), so the result depends on the shape alone."""
    ntask = si.shape[1]
    slots = si.shape[2]
    for j in prange(slots):
        o = 0.0
        for t in range(ntask):
            if si[0, t, j] > 0:
                o = sh[t, j]
                break
        for t in range(ntask):
            sf[0, t, j] += sh[t, j] - o
        step = 1
        while step < ntask:
            for a in range(0, ntask - step, 2 * step):
                b = a + step
                n, m, q = merge_moments(si[0, a, j], sf[0, a, j], sf[1, a, j], si[0, b, j], sf[0, b, j], sf[1, b, j])
                si[0, a, j] = n
                sf[0, a, j] = m
                sf[1, a, j] = q
                if kind == SUMMARY:
                    si[1, a, j] += si[1, b, j]
                    si[2, a, j] += si[2, b, j]
                    sf[2, a, j] = _fmin(sf[2, a, j], sf[2, b, j])
                    sf[3, a, j] = _fmax(sf[3, a, j], sf[3, b, j])
            step *= 2
        for f in range(si.shape[0]):
            si_out[f, j] = si[f, 0, j]
        for f in range(sf.shape[0]):
            sf_out[f, j] = sf[f, 0, j]
        sf_out[0, j] += o


group_tasks_serial = _serial_twin(group_tasks)
merge_tasks_serial = _serial_twin(merge_tasks)

__all__ = ["MOMENTS", "MOMENTS_SKIPNA", "SUMMARY", "task_rows", "group_tasks", "group_tasks_serial", "merge_tasks", "merge_tasks_serial"]
