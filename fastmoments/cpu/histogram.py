"""Magnitude histograms of blocks: finite non-zero values counted per binary
exponent of |v| (the layout of :mod:`fastmoments._histogram`).

A block's values are counted right after its summary, while the block is
still in cache (it is at most GROUP * BLOCK values, 256 KiB of float64), so
the data is read from memory once. The bin is the float64 exponent field of
the value, clamped to the under- and overflow bins; zeros and non-finite
values go to a trash bin that is never folded out. Counts gather in a scratch
of eight int32 sub-histograms, one per position modulo 8, so that neighbouring
values of the same binade (the common case) do not wait on each other's
increments; a task folds its scratch into its int64 row once. Integer sums,
so the counts are exact and independent of the order or the thread count.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ._llvm import _f64
from .base import _opts, _serial_twin

# The layout of fastmoments._histogram, repeated here so that an edit of it
# recompiles these kernels (the cache stamps this folder only); the wing
# checks that both agree when it loads.
MIN_EXPONENT = -149
MAX_EXPONENT = 127
N_BINS = MAX_EXPONENT - MIN_EXPONENT + 3
_FIELD_OFFSET = 1023 + MIN_EXPONENT - 1
SUBS = 8  # sub-histograms of the scratch
PIECE = 4096  # values whose bins are computed together (16 KiB of int32)
# Values per scratch before its int32 counts are folded out (well below 2**31).
FOLD_EVERY = 1 << 28


@intrinsic
def _bits(typingctx, v):
    """The IEEE bits of a float64 as an int64."""
    if v != types.float64:
        return None

    def codegen(context, b, signature, args):
        return b.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@njit(**_opts)
def bin_of(v):
    """The bin of the float64 ``v``; N_BINS (the trash bin) for 0, NaN, +-Inf."""
    bits = _bits(v)
    field = (bits >> 52) & 0x7FF
    k = min(max(field - _FIELD_OFFSET, 0), N_BINS - 1)
    skip = field == 0x7FF or (bits & 0x7FFFFFFFFFFFFFFF) == 0
    return N_BINS if skip else k


@njit(**_opts)
def new_scratch(on):
    """A zeroed scratch (none when ``on`` is False): SUBS sub-histograms of
    int32 counts, and a buffer for the bins of PIECE values."""
    return np.zeros((SUBS if on else 0, N_BINS + 1), np.int32), np.empty(PIECE if on else 0, np.int32)


@njit(**_opts)
def _bins(y, buf):
    # One vectorized loop: the exponent field, clamped; zeros and non-finite
    # values to the trash bin (bitwise ors: branches would stop LLVM).
    for i in range(y.size):
        bits = _bits(_f64(y[i]))
        field = (bits >> 52) & 0x7FF
        k = min(max(field - _FIELD_OFFSET, 0), N_BINS - 1)
        skip = (field == 0x7FF) | ((bits << 1) == 0)
        buf[i] = N_BINS if skip else k


@njit(**_opts)
def count_block(y, scratch):
    """Count the values of the 1-D block ``y`` into the scratch."""
    c, buf = scratch
    for p0 in range(0, y.size, PIECE):
        n = min(PIECE, y.size - p0)
        _bins(y[p0 : p0 + n], buf)
        body = n - n % SUBS
        for i in range(0, body, SUBS):
            c[0, buf[i]] += 1
            c[1, buf[i + 1]] += 1
            c[2, buf[i + 2]] += 1
            c[3, buf[i + 3]] += 1
            c[4, buf[i + 4]] += 1
            c[5, buf[i + 5]] += 1
            c[6, buf[i + 6]] += 1
            c[7, buf[i + 7]] += 1
        for i in range(body, n):
            c[0, buf[i]] += 1


@njit(**_opts)
def fold_scratch(scratch, hist, o):
    """Add the scratch's counts into row ``o`` of the int64 ``hist`` and zero them."""
    c = scratch[0]
    for k in range(N_BINS):
        t = np.int64(0)
        for j in range(SUBS):
            t += c[j, k]
        hist[o, k] += t
    c[:, :] = 0


@njit(**_opts)
def count_into(y, hist, o):
    """Add the histogram of the 1-D array ``y`` to row ``o`` of ``hist``."""
    c = new_scratch(True)
    for s in range(0, y.size, FOLD_EVERY):
        count_block(y[s : min(y.size, s + FOLD_EVERY)], c)
        fold_scratch(c, hist, o)


@njit(**_opts)
def _count_row(y, hist, o):
    if y.size < 256:  # a scratch would cost more than it saves
        for i in range(y.size):
            k = bin_of(_f64(y[i]))
            if k < N_BINS:
                hist[o, k] += 1
        return
    count_into(y, hist, o)


@njit(parallel=True, **_opts)
def count_rows(x, hist):
    """The histogram of each row of the C-contiguous (m, k) ``x`` into ``hist`` (m, N_BINS), zeroed."""
    for i in prange(x.shape[0]):
        _count_row(x[i], hist, i)


count_rows_serial = _serial_twin(count_rows)
