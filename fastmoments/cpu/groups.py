"""A block of any kind, and groups of four blocks read together.

``block_state`` picks a block's moments (:mod:`.blocks`) or summary
(:mod:`.summaries`) by kind and writes its state slot; ``states4`` and
``group_states`` read four equally long blocks in one loop, four streams for
the prefetchers, with results bit-identical to one at a time but for the
order of the sums (fixed by the shape alone).
"""

from __future__ import annotations

from numba import njit
from numba.extending import overload

from ._llvm import _f64
from .base import BLOCK, _FAST, MOMENTS, SUMMARY, _opts, _put, _put_summary
from .blocks import _block_moments, _block_moments_skipna, _moments_from_sums, _shift
from .summaries import _block_summary, _fusable, _summary_after_steps, _summary_from_sums, _summary_sums_2


@njit(**_opts)
def block_state(kind, y, si, sf, j, origin):
    """Reduce the 1-D contiguous block ``y`` into state slot ``j``, its mean
    relative to ``origin`` (see _row_origin)."""
    if kind == SUMMARY:
        n, mean, m2, lo, hi, nnf, nz = _block_summary(y, origin)
        _put_summary(si, sf, j, n, mean, m2, lo, hi, nnf, nz)
    elif kind == MOMENTS:
        n, mean, m2 = _block_moments(y, origin)
        _put(si, sf, j, n, mean, m2)
    else:
        n, mean, m2 = _block_moments_skipna(y, origin)
        _put(si, sf, j, n, mean, m2)


# -- four blocks at once ------------------------------------------------------------
# A core reading one block at a time keeps too few cache misses in flight for
# the memory's bandwidth: four adjacent blocks read in one loop are four
# streams for the hardware prefetchers (measured, sums of 200 MB on 2 threads:
# 0.78-0.85 -> 1.04-1.11 of a one-stream parallel sum for float32, 0.95-0.98 ->
# 1.13-1.16 for float64). Summaries of float blocks read them two by two
# instead, with prefetches (see _summary_sums). Groups start at block indices
# divisible by GROUP and tasks hold a multiple of GROUP blocks, so which blocks
# form a group, and every result, depend on the shape alone.

GROUP = 4


@njit(fastmath=_FAST, **_opts)
def _shifted_sums4(y0, y1, y2, y3, k0, k1, k2, k3):
    """_shifted_sums of four equally long blocks in one loop: (s0, q0, ..., s3, q3)."""
    s0 = q0 = s1 = q1 = s2 = q2 = s3 = q3 = 0.0
    for i in range(y0.size):
        d0 = _f64(y0[i]) - k0
        d1 = _f64(y1[i]) - k1
        d2 = _f64(y2[i]) - k2
        d3 = _f64(y3[i]) - k3
        s0 += d0
        q0 += d0 * d0
        s1 += d1
        q1 += d1 * d1
        s2 += d2
        q2 += d2 * d2
        s3 += d3
        q3 += d3 * d3
    return s0, q0, s1, q1, s2, q2, s3, q3


def _summaries4(ys, shifts, si, sf, slots, origin):
    """Summaries of the four equally long blocks ``ys`` into ``slots`` (see states4)."""


@overload(_summaries4, jit_options=dict(error_model="numpy"))
def _summaries4_impl(ys, shifts, si, sf, slots, origin):
    if _fusable(ys.dtype):
        def in_pairs(ys, shifts, si, sf, slots, origin):
            _two_summaries(ys[0], ys[1], shifts[0], shifts[1], si, sf, slots[0], slots[1], origin)
            _two_summaries(ys[2], ys[3], shifts[2], shifts[3], si, sf, slots[2], slots[3], origin)
        return in_pairs

    def sums_first(ys, shifts, si, sf, slots, origin):
        sums = _shifted_sums4(ys[0], ys[1], ys[2], ys[3], shifts[0], shifts[1], shifts[2], shifts[3])
        for i in range(GROUP):
            n, mean, m2, lo, hi, nnf, nz = _summary_from_sums(ys[i], shifts[i], sums[2 * i], sums[2 * i + 1], -1,
                                                              origin)
            _put_summary(si, sf, slots[i], n, mean, m2, lo, hi, nnf, nz)
    return sums_first


@njit(**_opts)
def _two_summaries(y0, y1, k0, k1, si, sf, o0, o1, origin):
    s, q, lo, hi, nz = _summary_sums_2((y0, y1), (k0, k1))
    n, mean, m2, lo0, hi0, nnf, nz0 = _summary_after_steps(y0, k0, s[0], q[0], lo[0], hi[0], nz[0], origin)
    _put_summary(si, sf, o0, n, mean, m2, lo0, hi0, nnf, nz0)
    n, mean, m2, lo1, hi1, nnf, nz1 = _summary_after_steps(y1, k1, s[1], q[1], lo[1], hi[1], nz[1], origin)
    _put_summary(si, sf, o1, n, mean, m2, lo1, hi1, nnf, nz1)


@njit(**_opts)
def states4(kind, y0, y1, y2, y3, si, sf, o0, o1, o2, o3, origin):
    """States of four equally long arrays (kind MOMENTS or SUMMARY) into slots
    o0..o3, read together (see GROUP); each as block_state's but for the order of its sums."""
    ys = (y0, y1, y2, y3)
    slots = (o0, o1, o2, o3)
    # Tuples, not arrays: rows of one block call this every four rows, where
    # two allocations per call would cost as much as the sums.
    shifts = (_shift(y0), _shift(y1), _shift(y2), _shift(y3))
    if kind == SUMMARY:
        _summaries4(ys, shifts, si, sf, slots, origin)
        return
    sums = _shifted_sums4(y0, y1, y2, y3, shifts[0], shifts[1], shifts[2], shifts[3])
    for i in range(GROUP):
        n, mean, m2 = _moments_from_sums(ys[i], shifts[i], sums[2 * i], sums[2 * i + 1], origin)
        _put(si, sf, slots[i], n, mean, m2)


@njit(**_opts)
def group_states(kind, y, b, si, sf, origin):
    """States of the GROUP full blocks from block ``b`` of ``y`` into slots 0..GROUP-1."""
    states4(kind, y[b * BLOCK : (b + 1) * BLOCK], y[(b + 1) * BLOCK : (b + 2) * BLOCK],
            y[(b + 2) * BLOCK : (b + 3) * BLOCK], y[(b + 3) * BLOCK : (b + 4) * BLOCK],
            si, sf, 0, 1, 2, 3, origin)
