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

__all__ = ["Plan", "plan", "Geometry", "geometry", "each_table"]

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


def _coalesce(dims):
    """Merge neighbours (n1, s1), (n2, s2) that step like one axis: s1 == n2 * s2."""
    out: list[list[int]] = []
    for n, s in dims:
        if out and out[-1][1] == n * s:
            out[-1][0] *= n
            out[-1][1] = s
        else:
            out.append([n, s])
    return [tuple(d) for d in out]


def plan(shape, strides, axes) -> Plan | None:
    """The (A, B, K) view of reducing ``axes`` of an array, or None if there is none.

    Args:
        shape: the array's shape.
        strides: its strides in elements (not bytes).
        axes: the sorted axes to reduce.
    """
    red = set(axes)
    kept = [(n, s) for i, (n, s) in enumerate(zip(shape, strides)) if i not in red and n != 1]
    # Reduction order does not matter, so reduced axes go from the largest
    # stride to the smallest, which lets more of them coalesce.
    reduced = sorted(
        ((n, s) for i, (n, s) in enumerate(zip(shape, strides)) if i in red and n != 1),
        key=lambda d: -abs(d[1]),
    )
    kept = _coalesce(kept)
    reduced = _coalesce(reduced)
    if len(kept) > 2 or len(reduced) > 1:
        return None
    K, sK = reduced[0] if reduced else (1, 0)
    if len(kept) == 2:
        (A, sA), (B, sB) = kept
    elif len(kept) == 1:
        (A, sA), (B, sB) = (1, 0), kept[0]
    else:
        A, sA, B, sB = 1, 0, 1, 0
    return Plan(A, B, sA, sB, K, sK)


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
