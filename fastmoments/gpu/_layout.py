"""How a reduction over some axes of a strided array maps onto the kernels.

Pure Python, so it is tested without a GPU. The kernels of fm_reduce.cu see
an input as ``M = A * B`` outputs, each reducing ``K`` values: element ``k`` of
output ``o`` sits at ``(o // B) * sA + (o % B) * sB + k * sK`` (in elements).
Any layout whose kept axes coalesce into at most two strided dimensions and
whose reduced axes coalesce into one fits; that covers every C- or
F-contiguous array reduced over any run of adjacent axes, and most views.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Plan", "plan", "plan_joint", "Geometry", "geometry", "each_table"]

THREADS = 256  # FM_THREADS in fm_reduce.cu
# Values per block of the segment kernel: 256 threads x 8 groups of FM_GROUP
# = 8 values, long enough that the block's own merges are negligible.
SEGMENT_CHUNK = THREADS * 64
# A reduced run shorter than this goes to the lane kernel (one thread per
# output) instead of a whole block per output.
SEGMENT_MIN = 1024
# Blocks the lane kernel aims for when it splits the reduced axis.
LANE_TARGET_BLOCKS = 2048
LANE_MIN_CHUNK = 64
MAX_GRID_Y = 65535
# Values per block in summarize_each: smaller, so ~25M values spread over
# thousands of blocks and small arrays waste little.
EACH_CHUNK = THREADS * 32


class Plan(NamedTuple):
    A: int
    B: int
    sA: int
    sB: int
    K: int
    sK: int

    @property
    def M(self) -> int:
        return self.A * self.B


def plan(shape, strides, axes) -> Plan | None:
    """The (A, B, K) view of reducing ``axes`` of an array, or None if there is none.

    Args:
        shape: the array's shape.
        strides: its strides in elements (not bytes).
        axes: the sorted axes to reduce.
    """
    plans = plan_joint(shape, (strides,), axes)
    return None if plans is None else plans[0]


def _coalesce_joint(dims):
    """Merge neighbours (n1, s1), (n2, s2) that step like one axis, s1 == n2 *
    s2, in every array: dims are (n, (stride in array 1, in array 2, ...))."""
    out: list[list] = []
    for n, ss in dims:
        if out and all(s1 == n * s2 for s1, s2 in zip(out[-1][1], ss)):
            out[-1][0] *= n
            out[-1][1] = ss
        else:
            out.append([n, ss])
    return [(n, tuple(ss)) for n, ss in out]


def plan_joint(shape, strides_list, axes) -> tuple[Plan, ...] | None:
    """One plan per stride tuple in ``strides_list`` (arrays of one shape,
    e.g. data and its weights, possibly broadcast with zero strides), all with
    the same A, B and K, so that one thread reads element k of output o in
    every array; None where no such common view exists. The reduced axes are
    ordered by the first array's strides."""
    red = set(axes)
    dims = [(n, tuple(st[i] for st in strides_list)) for i, n in enumerate(shape)]
    kept = [d for i, d in enumerate(dims) if i not in red and d[0] != 1]
    # Reduction order does not matter, so reduced axes go from the largest
    # stride to the smallest, which lets more of them coalesce.
    reduced = sorted((d for i, d in enumerate(dims) if i in red and d[0] != 1), key=lambda d: -abs(d[1][0]))
    kept = _coalesce_joint(kept)
    reduced = _coalesce_joint(reduced)
    if len(kept) > 2 or len(reduced) > 1:
        return None
    zero = (0,) * len(strides_list)
    K, sK = reduced[0] if reduced else (1, zero)
    if len(kept) == 2:
        (A, sA), (B, sB) = kept
    elif len(kept) == 1:
        (A, sA), (B, sB) = (1, zero), kept[0]
    else:
        A, sA, B, sB = 1, zero, 1, zero
    return tuple(Plan(A, B, sA[j], sB[j], K, sK[j]) for j in range(len(strides_list)))


class Geometry(NamedTuple):
    segment: bool  # fm_segment_partial (else fm_lane_partial)
    C: int  # chunks per output; C > 1 needs fm_finalize after
    chunk: int  # values of the reduced axis per chunk


def geometry(p: Plan) -> Geometry:
    """Which partial kernel reduces ``p`` and how its reduced axis is chunked."""
    if p.K >= SEGMENT_MIN and (p.sK == 1 or p.M < 32):
        C = -(-p.K // SEGMENT_CHUNK)
        return Geometry(True, C, -(-p.K // C))
    blocks_x = -(-p.M // 32)
    C = max(1, min(-(-LANE_TARGET_BLOCKS // blocks_x), -(-p.K // LANE_MIN_CHUNK), MAX_GRID_Y))
    chunk = -(-p.K // C)
    return Geometry(False, -(-p.K // chunk), chunk)


def each_table(rows, chunk: int = EACH_CHUNK):
    """The summarize_each table for ``rows`` of (ptr, size, dtype code).

    Returns (table, total chunks, most chunks of one array): table is int64 of
    shape (len(rows) + 1, 4), rows (ptr, size, chunk0, code), the last row's
    chunk0 the total (fm_entry in fm_reduce.cu).
    """
    n = len(rows)
    table = np.zeros((n + 1, 4), np.int64)
    chunk0 = 0
    for t, (ptr, size, code) in enumerate(rows):
        table[t] = (ptr, size, chunk0, code)
        chunk0 += -(-size // chunk)
    table[n, 2] = chunk0
    max_chunks = int(np.max(np.diff(table[:, 2]))) if n else 0
    return table, chunk0, max_chunks
