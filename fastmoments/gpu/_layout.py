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

__all__ = ["Plan", "plan"]


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
