"""Grouped moments and summaries: the rows of an (n, m) array reduced per
integer label (``group_moments``, ``group_summarize``).

The rows are split into fixed tasks of consecutive rows (``task_rows``: a
function of the shape and the number of groups alone). A task accumulates a
private state per slot (group x column) in one pass: the count, a shift
(near the slot's first values in the task, see below) and the shifted sums
``s = sum(v - shift)`` and ``q = sum((v - shift)**2)``; summaries also min,
max and the zeros. The fields of a slot lie side by side in one row of
``acc``, so that a value costs one read and one write of that row.

One column with few groups and labels in short runs (``lanes_for``): each
group has LANES slots, value ``i`` going to lane ``i % LANES``. A slot's
sums are a chain of dependent reads and writes through memory; where the
next value usually hits the same group before the last write has landed,
the loop would run at that chain's latency instead of the read's speed. The
lanes of a group are merged (Chan et al., in lane order) before the task's
states are written. Labels in long runs (``long_runs``, sorted labels) go
in blocks of RUN values instead: a block of one label is summed at once.

The shift of a slot is its first value, and moves to the mean of its first
RECENTER values once it has that many. One column of random labels in up to
FAST_GROUPS groups instead takes, before its pass, per slot the value nearest
the mean of its first values in the task (_preshift), which saves each
value the test of its slot's first value and count (_acc_fast); a block of
one label takes the mean of its first 8 values (_acc_run). Up to RECENTER
values the sums cancel at most a few bits (the shift lies within the
values). Past it, where they would cancel more than two bits (CANCEL), the
task is read again for those slots around their first-pass means: the
corrected two-pass algorithm.

Non-finite values are left out of the sums; a task that met any is read
again to count them per slot, and its states then follow the rules of the
ungrouped kernels (a NaN makes mean and m2 NaN, an Inf the mean Inf and m2
NaN; summaries count them in n_nonfinite). The task states are merged per
slot in a fixed binary tree (merge_tasks), so results are bit-identical for
any number of threads.

Labels outside [0, G) are left out; those >= G are reported (the largest)
for the caller to raise.

The kind (MOMENTS, MOMENTS_SKIPNA, SUMMARY) is a constant of each compiled
variant (``kernels_for``), not an argument: the per-value loops then carry
no test of it.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import prange

from .base import _MAXF, MOMENTS, MOMENTS_SKIPNA, SUMMARY, compile_variant, nonfinite_mean
from .merges import _fmax, _fmin, merge_moments

# Rows per task with few slots: 2**16 values of one column, 512 KiB of
# float64, so that a task with cancelling slots is read again from L2/L3.
TASK_ROWS = 1 << 16
# Slots per task up to which tasks have TASK_ROWS rows; with more, a task
# holds at least 2 rows per slot, so that the task states (3 to 7 fields per
# slot and task) stay within about 2.5 times the data.
FEW_SLOTS = 4096
# Lanes per group for one column in at most LANE_GROUPS groups (then
# LANES * LANE_GROUPS accumulator rows of 32 or 64 bytes stay in L2), and
# the values per lane slot a task holds at least, so that merging the lanes
# costs little beside reading the values.
LANES = 8
LANE_GROUPS = 2048
LANE_ROWS = 16
# Values per block summed at once where a block's labels are all one
# (_scan_runs); labels whose runs average at least LONG_RUNS values take
# these blocks instead of lanes.
RUN = 64
LONG_RUNS = 2 * RUN

# One column in more than PART_GROUPS groups: the values are first
# partitioned by label into buckets of 2**PART_BITS groups (chunks of
# PART_CHUNK values counted, then scattered, both in parallel), and each
# bucket reduced alone, its accumulators within L2 (see partitioned).
PART_BITS = 14
PART_GROUPS = 1 << PART_BITS
PART_CHUNK = 1 << 18

# The count of a slot at which its shift moves to its running mean (_acc_one).
RECENTER = 16.0
# A task's shifted sums of a slot of more than RECENTER values are kept
# where q - s*s/c cancels at most two bits: s*s <= CANCEL * c * q.
# Otherwise the task is read again (_second_pass). One bit (0.5, the test
# of the block kernels) sent a task of 1,000 random groups to a second read
# nearly every time (a slot's shift from 8 values lies over one standard
# deviation from its mean for ~0.5% of the slots; two threads, 28 ms
# against 22 for the kernel before preset shifts). Four bits
# (16/17) cost 5-20x the error in ulps for steps and trends within a task
# (review, 12-07).
CANCEL = 0.75
# One column's random labels: the shift of a slot is the value nearest the
# mean of its first PRESHIFT values among the task's first PRESHIFT * G (at
# most PRESCAN) values (_preshift), or its first value where it has none
# there.
PRESHIFT = 16
PRESCAN = 1 << 13
# Groups up to which random labels take the preset shifts: their first
# PRESCAN values give each slot ~PRESHIFT. With fewer (1,000 groups, ~8 a
# slot), some slot's shift lay over two standard deviations from its mean
# in most tasks, each then read again: 43 -> 47 ms on one thread, where
# 10 groups went 51 -> 29.
FAST_GROUPS = PRESCAN // PRESHIFT

# Accumulator columns (one row of ``acc`` per slot); summaries pad to 8.
_C, _K, _S, _Q, _LO, _HI, _NZ = 0, 1, 2, 3, 4, 5, 6
KIND = MOMENTS  # bound per variant by kernels_for


def _sampled_pairs(lab):
    """(equal neighbouring labels, pairs) in a sample of 8 windows of 512."""
    n = lab.shape[0]
    w = min(n, 512)
    same = 0
    for start in np.linspace(0, n - w, 8).astype(np.int64):
        win = lab[start:start + w]
        same += int(np.count_nonzero(win[1:] == win[:-1]))
    return same, 8 * (w - 1)


# How one column's values are scanned (scan_mode): a value at a time with
# the shift tests of _acc_one (PLAIN), around shifts set beforehand
# (FAST), or in blocks of one label (RUNS). Lanes are apart (lanes_for).
PLAIN, FAST, RUNS = 0, 1, 2


def long_runs(lab, m, G):
    """Whether one column's labels ``lab`` come in runs of LONG_RUNS values
    or more on average (sorted labels): then summed a block at a time (see
    _scan_runs)."""
    if m != 1 or G > PART_GROUPS or lab.shape[0] < 2:
        return False
    same, pairs = _sampled_pairs(lab)
    return (pairs - same) * LONG_RUNS <= pairs


def scan_mode(lab, m, G):
    """RUNS for long runs; FAST for one column of labels that look random
    (neighbours rarely equal: the first values of a task then hold nearly
    every group, see _preshift) in up to FAST_GROUPS groups; else PLAIN."""
    if long_runs(lab, m, G):
        return RUNS
    if m != 1 or G > FAST_GROUPS or lab.shape[0] < 2:
        return PLAIN
    same, pairs = _sampled_pairs(lab)
    return FAST if same <= pairs // 4 else PLAIN


def lanes_for(lab, m, G):
    """Lanes per group (1 or LANES) for ``m`` columns in ``G`` groups by the
    labels ``lab``: LANES for one column in few groups where neighbouring
    labels are often equal but their runs are short (a sample of 8 windows
    tells), where one slot's chain of sums would set the pace. Random
    labels do not need them (the lanes would only spread the sums over more
    cache), nor do long runs (see long_runs), nor rows of several columns
    (a row's columns are independent slots)."""
    if m != 1 or G > LANE_GROUPS or lab.shape[0] < 2 or long_runs(lab, m, G):
        return 1
    same, pairs = _sampled_pairs(lab)
    return LANES if same > pairs // 4 else 1


def partitioned(m, G):
    """Whether ``m`` columns in ``G`` groups are first partitioned by label:
    one column in so many groups that a task's accumulators would spill
    from L2 and every value would miss the cache (and TLB)."""
    return m == 1 and G > PART_GROUPS


def task_rows(n, m, G, lanes=1):
    """Rows per task for ``n`` rows of ``m`` columns in ``G`` groups with
    ``lanes`` lanes per group."""
    slots = G * m
    per = max(TASK_ROWS // max(m, 1), 1)
    if lanes > 1:
        per = max(per, LANE_ROWS * lanes * G)
    elif slots > FEW_SLOTS:
        per = max(per, 2 * G)
    return max(min(per, n), 1)


def _recenter(c, k, s, q):
    """The sums of a slot of ``c`` values moved to the shift ``k`` plus their
    mean (see _acc_one); returns (k, s, q)."""
    # The shift moves to the mean of the slot's first values, so that the
    # sums rarely cancel and the task is seldom read again; what this
    # subtraction rounds off is at most ~c ulps of the final m2 (a first
    # value lies within the m2 of the values it was one of). The new shift
    # is rounded (to ulps of the data's offset): the sums stay those around
    # it, s = c * (mu - dk) and q = m2 + s*s/c, else that rounding would
    # enter m2 times the later values' offset.
    mu = s / c
    kn = k + mu
    dk = kn - k
    q = max(q - s * mu, 0.0)
    s -= c * dk
    q += s * (s / c)
    return kn, s, q


def _acc_one(acc, j, v):
    """Take the finite value ``v`` into slot ``j``'s sums. Every field is
    written back, selected rather than branched on, so that the row is read
    and written whole (one vector each)."""
    c = acc[j, _C]
    k = acc[j, _K]
    s = acc[j, _S]
    q = acc[j, _Q]
    first = c == 0.0
    k = v if first else k
    d = v - k
    c += 1.0
    s += d
    q += d * d
    if c == RECENTER:
        k, s, q = _recenter(c, k, s, q)
    acc[j, _C] = c
    acc[j, _K] = k
    acc[j, _S] = s
    acc[j, _Q] = q
    if KIND == SUMMARY:
        lo = acc[j, _LO]
        hi = acc[j, _HI]
        acc[j, _LO] = v if first else min(lo, v)
        acc[j, _HI] = v if first else max(hi, v)
        acc[j, _NZ] += 1.0 if v == 0.0 else 0.0


def _acc_fast(acc, j, v):
    """Take the finite value ``v`` into slot ``j``'s sums around its shift,
    which is set beforehand (_preshift), or NaN until the slot's first
    value, which then becomes it: no test of a first value or of the count
    to recenter at. ``acc`` is the accumulators as one flat array, row j at
    j * width, a shift: the 2-D index took a multiply by the row length and
    left the loop short of a register for the labels' address. A whole
    group_moments of 10**7 values in 10 random groups on one thread: 27-30
    ms against 32-36 with _acc_one (Intel VM, 12-07)."""
    r = j << np.uint64(3 if KIND == SUMMARY else 2)
    d = v - acc[r + np.uint64(_K)]
    if d != d:
        acc[r + np.uint64(_K)] = v
        d = 0.0
    acc[r + np.uint64(_C)] += 1.0
    acc[r + np.uint64(_S)] += d
    acc[r + np.uint64(_Q)] += d * d
    if KIND == SUMMARY:
        acc[r + np.uint64(_LO)] = min(acc[r + np.uint64(_LO)], v)
        acc[r + np.uint64(_HI)] = max(acc[r + np.uint64(_HI)], v)
        acc[r + np.uint64(_NZ)] += 1.0 if v == 0.0 else 0.0


def _preshift(xs, ls, G, acc):
    """The shifts of a task's slots (one column, one lane) for _acc_fast,
    from the task's first min(PRESHIFT * G, PRESCAN) values: per slot, the
    value there nearest the mean of its first PRESHIFT finite values; NaN
    for slots with none there. Counts and sums are left 0.

    A shift near the mean keeps the shifted sums from cancelling (else the
    task is read again, see CANCEL) and from drifting (the mean's rounding
    grows with the sum of the deviations). A value of the data, so that the
    deviations of integer or float32 data, and of equal values, are exact,
    as from a first value."""
    h = min(ls.size, PRESHIFT * G, PRESCAN)
    for i in range(h):
        g = ls[i]
        if np.uint64(g) >= np.uint64(G):
            continue
        j = np.uint64(g)
        v = np.float64(xs[i])
        c = acc[j, _C]
        if c < PRESHIFT and abs(v) <= _MAXF:
            if c == 0.0:
                acc[j, _K] = v
            else:
                acc[j, _S] += v - acc[j, _K]
            acc[j, _C] = c + 1.0
    for j in range(G):
        c = acc[j, _C]
        if c > 0.0:
            acc[j, _S] = acc[j, _K] + acc[j, _S] / c  # the mean: the first value plus the deviations'
        acc[j, _Q] = np.inf
    for i in range(h):
        g = ls[i]
        if np.uint64(g) >= np.uint64(G):
            continue
        j = np.uint64(g)
        v = np.float64(xs[i])
        if abs(v) <= _MAXF:
            far = abs(v - acc[j, _S])
            if far < acc[j, _Q]:
                acc[j, _Q] = far
                acc[j, _K] = v
    for j in range(G):
        if acc[j, _C] == 0.0:
            acc[j, _K] = np.nan
        acc[j, _C] = 0.0
        acc[j, _S] = 0.0
        acc[j, _Q] = 0.0


def _one_label(lb):
    """Whether the block ``lb`` holds RUN labels, all one: its ends first
    (random labels rarely pass), then one OR of XORs, which LLVM vectorizes
    (no early exit)."""
    if lb.size != RUN or lb[0] != lb[RUN - 1]:
        return False
    g = lb[0]
    a = g ^ g
    for i in range(lb.size):
        a |= lb[i] ^ g
    return a == 0


def _run_sums(xs, k):
    """The sums of ``xs - k`` and of its squares, reassociated (fast-math:
    vectorized) and without tests: a non-finite value, or a deviation past
    the range, leaves a sum non-finite, which the caller checks."""
    s = 0.0
    q = 0.0
    for i in range(xs.size):
        d = np.float64(xs[i]) - k
        s += d
        q += d * d
    return s, q


def _run_extremes(xs):
    """(min, max, zeros) of finite values ``xs``."""
    lo = np.float64(xs[0])
    hi = lo
    nz = 0.0
    for i in range(xs.size):
        v = np.float64(xs[i])
        lo = min(lo, v)
        hi = max(hi, v)
        nz += 1.0 if v == 0.0 else 0.0
    return lo, hi, nz


def _block_shift(xs):
    """The mean of the first 8 values of ``xs``: the first plus the mean of
    the others' deviations from it (see blocks._shift)."""
    y0 = np.float64(xs[0])
    d = 0.0
    for i in range(1, 8):
        d += np.float64(xs[i]) - y0
    return y0 + d / 8.0


def _acc_run(acc, j, xs):
    """Take the block ``xs``, all of slot ``j``, into its sums at once (see
    _scan_runs); returns False, with nothing taken, where the block holds a
    non-finite value or a deviation past the range (then its values go one
    by one)."""
    c = acc[j, _C]
    first = c == 0.0
    k = acc[j, _K]
    s0 = acc[j, _S]
    q0 = acc[j, _Q]
    if c < RECENTER:
        # A young slot's shift moves to the mean of the block's first 8
        # values (exactly the value where they are equal), and its few sums
        # with it (they may cancel log2(c + 1) bits, as at RECENTER): summed
        # around its first value and recentered after, a block's own m2
        # could cancel log2(RUN + 1) bits, which no later test sees.
        kn = _block_shift(xs)
        if c > 0.0:
            dk = kn - k
            q0 = max(q0 - dk * (2.0 * s0 - c * dk), 0.0)
            s0 -= c * dk
        k = kn
    s, q = _run_sums(xs, k)
    if not (abs(s) <= _MAXF and q <= _MAXF and abs(k) <= _MAXF):
        return False
    n = c + xs.size
    s += s0
    q += q0
    acc[j, _C] = n
    acc[j, _K] = k
    acc[j, _S] = s
    acc[j, _Q] = q
    if KIND == SUMMARY:
        lo, hi, nz = _run_extremes(xs)
        acc[j, _LO] = lo if first else min(acc[j, _LO], lo)
        acc[j, _HI] = hi if first else max(acc[j, _HI], hi)
        acc[j, _NZ] += nz
    return True


def _scan_runs(xs, ls, G, acc):
    """One column's values ``xs`` into their slots by the labels ``ls``, in
    long runs (one lane); returns (non-finite values met, largest label >= G
    or -1). The values go in blocks of RUN: a block of one label is summed
    at once, vectorized, where a value at a time would wait on its slot's
    previous sums; other blocks, and blocks with a non-finite value, a value
    at a time."""
    nonfinite = 0
    bad = -1
    n = ls.size
    b0 = 0
    while b0 < n:
        b1 = min(n, b0 + RUN)
        lb = ls[b0:b1]
        xb = xs[b0:b1]
        b0 = b1
        if _one_label(lb):
            g = lb[0]
            if np.uint64(g) >= np.uint64(G):
                if g >= G:
                    bad = max(bad, np.int64(g))
                continue
            if _acc_run(acc, np.uint64(g), xb):
                continue
        for i in range(lb.size):
            g = lb[i]
            if np.uint64(g) >= np.uint64(G):  # a negative label too
                if g >= G:
                    bad = max(bad, np.int64(g))
                continue
            v = np.float64(xb[i])
            if abs(v) <= _MAXF:
                _acc_one(acc, np.uint64(g), v)  # rare: recentered, as no block may follow
            else:
                nonfinite += 1
    return nonfinite, bad


def _scan_values(xs, ls, i0, G, L, fast, acc):
    """One column's values ``xs`` (rows i0, i0+1, ...) into their slots one
    at a time, lane (i0 + i) % L of group ``ls[i]``; returns (non-finite
    values met, largest label >= G or -1). Inlined with ``L`` and ``fast``
    constants: ``fast`` (one lane) sums around shifts set beforehand
    (_preshift, _acc_fast). The loop runs over slices from 0 and the slot
    index is unsigned: Numba then adds no negative-index wraparound to each
    access (a third of the time)."""
    nonfinite = 0
    bad = -1
    if fast:
        _preshift(xs, ls, G, acc)
    flat = acc.reshape(acc.size)
    for i in range(ls.size):
        g = ls[i]
        if np.uint64(g) >= np.uint64(G):  # a negative label too
            if g >= G:
                bad = max(bad, np.int64(g))
            continue
        v = np.float64(xs[i])
        if abs(v) <= _MAXF:
            if fast:
                _acc_fast(flat, np.uint64(g), v)
            elif L == 1:
                _acc_one(acc, np.uint64(g), v)
            else:
                _acc_one(acc, np.uint64(((i0 + i) & (L - 1)) * G + g), v)
        else:
            nonfinite += 1
    return nonfinite, bad


def _first_pass(x, lab, r0, r1, G, lanes, mode, acc):
    """Shifted sums of rows r0..r1; returns (non-finite values met, largest label >= G or -1)."""
    m = x.shape[1]
    ls = lab[r0:r1]
    if m == 1:
        # One column as a contiguous 1-D array: x[r0:r1, 0] is typed with
        # any layout, a stride multiply a value (random labels, _acc_fast:
        # 1.8x the time). The lanes' loop is the exception: 15-20% faster
        # with it (measured, not understood).
        xs = x[r0:r1].reshape(r1 - r0)
        if mode == RUNS:
            return _scan_runs(xs, ls, G, acc)
        if lanes != 1:
            return _scan_values(x[r0:r1, 0], ls, r0, G, LANES, False, acc)
        if mode == FAST:
            return _scan_values(xs, ls, r0, G, 1, True, acc)
        # Many slots (the partitioned buckets: most hold a few values; the
        # shifts' passes and first values cost more than they save, 10**6
        # groups 8% more time), or labels in short runs (the first values
        # miss most groups).
        return _scan_values(xs, ls, r0, G, 1, False, acc)
    xs = x[r0:r1]
    nonfinite = 0
    bad = -1
    for i in range(ls.size):
        g = ls[i]
        if np.uint64(g) >= np.uint64(G):
            if g >= G:
                bad = max(bad, np.int64(g))
            continue
        base = np.uint64(g * m)
        for c in range(m):
            v = np.float64(xs[i, c])
            if abs(v) <= _MAXF:
                _acc_one(acc, base + np.uint64(c), v)
            else:
                nonfinite += 1
    return nonfinite, bad


def _second_runs(xs, ls, G, acc):
    """_second_pass of one column in long runs: a block of one marked slot
    summed at once (as in _scan_runs: shorter chains of sums, so also
    closer ones)."""
    n = ls.size
    b0 = 0
    while b0 < n:
        b1 = min(n, b0 + RUN)
        lb = ls[b0:b1]
        xb = xs[b0:b1]
        b0 = b1
        if _one_label(lb):
            g = lb[0]
            if np.uint64(g) >= np.uint64(G):
                continue
            j = np.uint64(g)
            if acc[j, _C] >= 0.0:
                continue
            s, q = _run_sums(xb, acc[j, _K])
            if abs(s) <= _MAXF and q <= _MAXF:
                acc[j, _S] += s
                acc[j, _Q] += q
                continue
        for i in range(lb.size):
            g = lb[i]
            if np.uint64(g) >= np.uint64(G):
                continue
            j = np.uint64(g)
            if acc[j, _C] < 0.0:
                v = np.float64(xb[i])
                if abs(v) <= _MAXF:
                    d = v - acc[j, _K]
                    acc[j, _S] += d
                    acc[j, _Q] += d * d


def _second_pass(x, lab, r0, r1, G, lanes, mode, acc):
    """Sums around the first-pass means of the slots marked by a negative count."""
    m = x.shape[1]
    mask = lanes - 1
    ls = lab[r0:r1]
    if m == 1 and mode == RUNS:
        _second_runs(x[r0:r1].reshape(r1 - r0), ls, G, acc)
        return
    xs = x[r0:r1]
    for i in range(ls.size):
        g = ls[i]
        if np.uint64(g) >= np.uint64(G):
            continue
        base = (((r0 + i) & mask) * G + g) if m == 1 else g * m
        for c in range(m):
            j = np.uint64(base + c)
            if acc[j, _C] < 0.0:
                v = np.float64(xs[i, c])
                if abs(v) <= _MAXF:
                    d = v - acc[j, _K]
                    acc[j, _S] += d
                    acc[j, _Q] += d * d


def _count_nonfinite(x, lab, r0, r1, G, nf):
    """Per slot (group x column): NaN, +Inf and -Inf values of rows r0..r1."""
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


def _lane_states(acc, slots, lanes, out):
    """Per slot, its lanes' (count, mean, m2, shift, min, max, zeros) merged
    in lane order into the columns 0..6 of ``out``; the mean relative to the
    shift of the slot's first lane with values."""
    for j in range(slots):
        n = 0.0
        mean = 0.0
        m2 = 0.0
        o = 0.0
        lo = np.nan
        hi = np.nan
        nz = 0.0
        for ln in range(lanes):
            r = ln * slots + j
            c = acc[r, _C]
            if c == 0.0:
                continue
            s = acc[r, _S]
            lm = s / c
            lq = acc[r, _Q] - s * lm
            if lq < 0.0:
                lq = 0.0
            if n == 0.0:
                o = acc[r, _K]
            n, mean, m2 = merge_moments(n, mean, m2, c, lm + (acc[r, _K] - o), lq)
            if KIND == SUMMARY:
                lo = _fmin(lo, acc[r, _LO])
                hi = _fmax(hi, acc[r, _HI])
                nz += acc[r, _NZ]
        out[j, 0] = n
        out[j, 1] = mean
        out[j, 2] = m2
        out[j, 3] = o
        out[j, 4] = lo
        out[j, 5] = hi
        out[j, 6] = nz


def _task(x, lab, r0, r1, G, lanes, mode, si, sf, sh, t):
    """The states of rows r0..r1 into row ``t`` of (field, task, slot)
    ``si``/``sf``, each mean relative to the slot's shift, written to
    ``sh[t, slot]`` (see merge_tasks); returns (largest label >= G or -1, slots
    whose sums overflowed)."""
    slots = G * x.shape[1]
    width = 8 if KIND == SUMMARY else 4
    acc = np.zeros((slots * lanes, width))
    for j in range(slots * lanes):
        acc[j, _K] = np.nan  # no shift yet (_acc_fast)
        if KIND == SUMMARY:
            acc[j, _LO] = np.inf
            acc[j, _HI] = -np.inf
    nonfinite, bad = _first_pass(x, lab, r0, r1, G, lanes, mode, acc)
    redo = False
    for j in range(slots * lanes):
        c = acc[j, _C]
        s = acc[j, _S]
        q = acc[j, _Q]
        # Up to RECENTER values the shift lies within them, so q <= (c + 1) * m2
        # and q - s*s/c loses at most ~log2(RECENTER + 1) bits: no second read.
        if c > RECENTER and not (q <= _MAXF and s * s <= CANCEL * c * q):
            if q <= _MAXF:  # else the sums overflowed: left for the caller
                acc[j, _K] += s / c
                acc[j, _S] = 0.0
                acc[j, _Q] = 0.0
                acc[j, _C] = -c
                redo = True
    if redo:
        _second_pass(x, lab, r0, r1, G, lanes, mode, acc)
        for j in range(slots * lanes):
            if acc[j, _C] < 0.0:
                acc[j, _C] = -acc[j, _C]
    st = np.empty((slots, 7))
    _lane_states(acc, slots, lanes, st)
    nf = np.zeros((slots if nonfinite else 0, 3), np.int64)
    if nonfinite:
        _count_nonfinite(x, lab, r0, r1, G, nf)
    overflowed = 0
    for j in range(slots):
        n = np.int64(st[j, 0])
        mean = np.nan
        m2 = 0.0
        k = st[j, 3]
        if n > 0:
            mean = st[j, 1]
            m2 = st[j, 2]
            if not (abs(k + mean) <= _MAXF and m2 <= _MAXF):
                overflowed += 1
        sh[t, j] = k
        if KIND == SUMMARY:
            nnf = 0
            if nonfinite:
                nnf = nf[j, 0] + nf[j, 1] + nf[j, 2]
            si[0, t, j] = n
            si[1, t, j] = nnf
            si[2, t, j] = np.int64(st[j, 6])
            sf[0, t, j] = mean
            sf[1, t, j] = m2
            sf[2, t, j] = st[j, 4]
            sf[3, t, j] = st[j, 5]
            continue
        if nonfinite:
            nnan = nf[j, 0] if KIND == MOMENTS else 0
            pinf = nf[j, 1]
            ninf = nf[j, 2]
            if nnan + pinf + ninf > 0:
                n += nnan + pinf + ninf
                m2 = np.nan
                mean = nonfinite_mean(nnan, pinf, ninf)
        si[0, t, j] = n
        sf[0, t, j] = mean
        sf[1, t, j] = m2
    return bad, overflowed


def group_tasks(x, lab, G, rows, lanes, mode, si, sf, sh):
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
        bads[t], overs[t] = _task(x, lab, r0, r1, G, lanes, mode, si, sf, sh, t)
    bad = -1
    over = 0
    for t in range(ntask):
        bad = max(bad, bads[t])
        over += overs[t]
    return bad, over


def merge_tasks(si, sf, sh, si_out, sf_out):
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
                if KIND == SUMMARY:
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


def part_counts(lab, G, hist):
    """Partition, step 1: per chunk of PART_CHUNK labels, how many fall in
    each bucket of 2**PART_BITS groups (``hist[chunk, bucket]``); returns
    the largest label >= G, or -1."""
    n = lab.shape[0]
    nch = hist.shape[0]
    bads = np.full(nch, -1, np.int64)
    for ch in prange(nch):
        bad = -1
        ls = lab[ch * PART_CHUNK:min(n, (ch + 1) * PART_CHUNK)]
        for i in range(ls.size):
            g = ls[i]
            if np.uint64(g) < np.uint64(G):
                hist[ch, np.uint64(g) >> np.uint64(PART_BITS)] += 1
            elif g >= G:
                bad = max(bad, np.int64(g))
        bads[ch] = bad
    bad = -1
    for ch in range(nch):
        bad = max(bad, bads[ch])
    return bad


def part_scatter(x, lab, G, off, vals, loc):
    """Partition, step 2: each value with a label in [0, G) to its bucket,
    at the chunk's offset ``off[chunk, bucket]`` there, with its label less
    the bucket's first (``loc``). Stable: a bucket keeps the values in the
    order of ``x``."""
    n = lab.shape[0]
    mask = (1 << PART_BITS) - 1
    for ch in prange(off.shape[0]):
        at = off[ch].copy()
        r0 = ch * PART_CHUNK
        ls = lab[r0:min(n, r0 + PART_CHUNK)]
        xs = x[r0:r0 + ls.size, 0]
        for i in range(ls.size):
            g = ls[i]
            if np.uint64(g) < np.uint64(G):
                b = np.uint64(g) >> np.uint64(PART_BITS)
                k = np.uint64(at[b])
                vals[k, 0] = xs[i]
                loc[k] = g & mask
                at[b] = k + np.uint64(1)


def bucket_tasks(vals, loc, starts, G, si, sf, sh):
    """The states of the groups of each bucket from its values alone (one
    task, rows in the order of the data), into slots [b << PART_BITS, ...)
    of task row 0; returns the slots whose sums overflowed."""
    nb = starts.shape[0] - 1
    overs = np.zeros(nb, np.int64)
    for b in prange(nb):
        lo = b << PART_BITS
        hi = min(G, lo + (1 << PART_BITS))
        o0 = starts[b]
        o1 = starts[b + 1]
        _, overs[b] = _task(vals[o0:o1], loc[o0:o1], 0, o1 - o0, hi - lo, 1, PLAIN,
                            si[:, :, lo:hi], sf[:, :, lo:hi], sh[:, lo:hi], 0)
    return overs.sum()


# name: (fastmath, inlined, parallel); compiled in this order, callees first.
_SPEC = {
    "_recenter": (False, True, False),
    "_acc_one": (False, True, False),
    "_acc_fast": (False, True, False),
    "_preshift": (False, False, False),
    "_one_label": (False, True, False),
    "_run_sums": (True, True, False),
    "_run_extremes": (False, True, False),
    "_block_shift": (False, True, False),
    "_acc_run": (False, True, False),
    "_scan_runs": (False, True, False),
    "_scan_values": (False, True, False),
    "_first_pass": (False, False, False),
    "_second_runs": (False, True, False),
    "_second_pass": (False, False, False),
    "_count_nonfinite": (False, False, False),
    "_lane_states": (False, False, False),
    "_task": (False, False, False),
    "group_tasks": (False, False, True),
    "merge_tasks": (False, False, True),
    "part_counts": (False, False, True),
    "part_scatter": (False, False, True),
    "bucket_tasks": (False, False, True),
}


@functools.cache
def kernels_for(kind):
    """The kernels of one kind, compiled lazily (on first call) with ``KIND``
    bound: a namespace with ``group_tasks`` and ``merge_tasks`` and their
    ``_serial`` twins (prange run as range, bit-identical results)."""
    kind = int(kind)
    return compile_variant(dict(globals(), KIND=kind), _SPEC, f"k{kind}", kind=kind)


__all__ = ["MOMENTS", "MOMENTS_SKIPNA", "SUMMARY", "LANES", "lanes_for", "long_runs", "scan_mode", "PLAIN", "FAST", "RUNS", "task_rows", "kernels_for"]
