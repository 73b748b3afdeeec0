"""Numba kernels of weighted and higher-order moments (kinds ``weighted2/3/4``).

State layout
------------
A state of order p is ``(count, W, W2, mean, M2[, M3[, M4]])``: the number of
values taken (positive weight; with skipna also not NaN), the sums of their
weights and squared weights, their weighted mean and ``Mq = sum(w * (v -
mean)**q)``. In the kernels the count lives in ``si[0, slot]`` (int64) and the
rest in ``sf[field, slot]`` (float64)::

    sf: 0 W, 1 W2, 2 mean, 3 M2, 4 M3, 5 M4        (NF = order + 2 fields)

Unweighted data is weighted data whose every weight is 1 (W = W2 = count).

Algorithm
---------
As the order-2 kernels (``blocks.py``, ``rows.py``, ``columns.py``): a row is cut into fixed blocks of
``BLOCK`` values, each reduced while in cache in two passes. Pass 1 sums
``w * (v - origin)``, the weights, their squares and the count, and tallies
invalid weights (negative, NaN or infinite: the Python side diagnoses them
only when the tally is nonzero). Pass 2 sums ``w*d``, ``w*d**2``, ``w*d**3``
and ``w*d**4`` with ``d = v - mean1`` (mean1 the first pass's mean); the sum of
``w*d`` (zero but for mean1's rounding) then corrects the mean and every
moment (the corrected two-pass algorithm, generalized). Zero-weight values
are selected away (``d = v - mean if w > 0 else 0``), so a NaN or Inf of
weight 0 contributes nothing.

Block states merge with Pebay's pairwise formulas (sums of weights in place
of counts, :mod:`fastmoments._pebay`) in a fixed binary tree (a carry stack),
and tasks are fixed chunks of blocks, so results depend on the shape alone,
never on the thread count. While merging, means are relative to an origin
near the data (a median of sampled values of positive weight), added back at
the end. Columns (reducing the first axis of a (k, m) array) are reduced a
tile of rows at a time, vectorized across columns, the tiles merged by the
same formulas in a loop over columns that vectorizes too.

Values in range whose sums are not (``|w*v|`` near 1.8e308) make a block's
mean non-finite from finite data: that block is summed again with the
values scaled by 2**-64 and the weights by a power of two that brings the
largest to at most 1, and the results scaled back exactly (``ldexp``).

One source, every variant
-------------------------
The kernels are plain Python functions written once against the constants
``ORDER``, ``WEIGHTED`` and ``SKIPNA`` of :mod:`.weighted_base`, in four parts:

- ``weighted_blocks.py``: one block of a row, in cache (passes, shifted sums, scaling);
- ``weighted_merges.py``: merging states (a pair, a carry stack, whole arrays);
- ``weighted_rows.py``: rows, the last axis, a block at a time;
- ``weighted_columns.py``: columns, the first axis, a tile of rows at a time.

:func:`kernels_for` compiles a copy of them per (order, weighted, skipna)
with those constants bound, in one namespace as if the parts were one module
(the order-2 wing's ``_serial_twin`` device: a function object with its own
globals and qualified name, hence its own on-disk cache entry). LLVM folds
the constant branches away, so an unweighted order-2 block loop carries no
weight code. Where an order or a weight is handled: ``ORDER >= 3`` /
``WEIGHTED`` branches in those parts, one code path for every variant.
"""

from __future__ import annotations

import functools

from . import weighted_base, weighted_blocks, weighted_columns, weighted_merges, weighted_rows
from .base import compile_variant
from .weighted_base import TILE_BYTES, TILE_COLS

__all__ = ["kernels_for", "n_float_fields", "TILE_BYTES", "TILE_COLS"]

_PARTS = (weighted_base, weighted_blocks, weighted_merges, weighted_rows, weighted_columns)


def n_float_fields(order):
    return order + 2


# -- compiling a variant ------------------------------------------------------------

# name: (fastmath, inline, parallel). fastmath only on the loops over one
# block or tile; never on merges.
_SPEC = {
    "_weight": (False, True, False),
    "_takes": (False, True, False),
    "_pass1": (True, False, False),
    "_pass2": (True, False, False),
    "_count_bad": (True, False, False),
    "_shifted": (True, False, False),
    "_one_block": (False, False, False),
    "_row_run": (False, False, False),
    "_corrected": (False, True, False),  # inlined: called per column in the tile loops
    "_taken_all_finite": (True, False, False),
    "_scaled": (False, False, False),
    "_put": (False, False, False),
    "_set_empty": (False, False, False),
    "_block_state": (False, False, False),
    "_merge_values": (False, True, False),
    "_field": (False, True, False),
    "_merge_slots": (False, False, False),
    "_copy_slot": (False, False, False),
    "_push": (False, False, False),
    "_finish": (False, False, False),
    "_from_origin": (False, False, False),
    "_wrow": (False, True, False),
    "_origin": (False, False, False),
    "_row_chunk": (False, False, False),
    "_fold": (False, False, False),
    "reduce_rows": (False, False, True),
    "_tile": (True, False, False),
    "_merge_tiles": (False, False, False),
    "_terms": (False, True, False),
    "_terms4": (False, True, False),
    "_tile_shifted": (True, False, False),
    "_col_chunk": (False, False, False),
    "column_origins": (False, False, False),
    "_fold_columns": (False, False, False),
    "reduce_cols": (False, False, True),
    "means_from_origins": (False, False, False),
    "merge_arrays": (False, False, True),
    "reduce_state_rows": (False, False, True),
}


@functools.cache
def kernels_for(order, weighted, skipna):
    """The kernels of one variant, compiled lazily (on first call) with
    ``ORDER``, ``WEIGHTED`` and ``SKIPNA`` bound: a namespace of dispatchers,
    the parallel ones with a ``<name>_serial`` twin (prange run as range,
    bit-identical results)."""
    order, weighted, skipna = int(order), bool(weighted), bool(skipna)
    # One namespace for all the parts, as if they were one module: every
    # function sees the variant's constants and the other parts' functions,
    # which the loop below replaces with their compiled variants.
    g = {}
    for part in _PARTS:
        g.update(vars(part))
    g["__name__"] = __name__
    g.update(ORDER=order, WEIGHTED=weighted, SKIPNA=skipna, NF=order + 2)
    tag = f"o{order}{'w' if weighted else 'u'}{'n' if skipna else ''}"
    return compile_variant(g, _SPEC, tag, order=order, weighted=weighted, skipna=skipna)
