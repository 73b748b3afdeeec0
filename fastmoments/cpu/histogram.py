"""Magnitude histograms of blocks: finite non-zero values counted per binary
exponent of |v| (the layout of :mod:`fastmoments._histogram`).

A block's values are counted right after its summary, while the block is
still in cache, so the data is read from memory once. A scatter of one
increment per value cost 1.7-2.9 times the summary pass itself; instead each
value becomes a one-hot 32-bit word, bit ``top - field`` of its exponent
field, where ``top`` is fixed for a scratch's life from its first block with
a normal value (two binades above that block's largest). The words' bits are
counted in bit-sliced counters (Harley and Seal's carry-save adders, as in
positional popcounts), sixteen words to a vector: about a dozen vector
operations per sixteen values, and no memory traffic but the data.

What the window of 32 binades does not hold vanishes from the words (a shift
by 32 or more gives 0): zeros and subnormals (field 0, and ``top >= 32``),
NaN and Inf (field above ``top``), and values 32 or more binades below
``top`` or above it. So the caller passes, when folding, how many finite
non-zero values the counted data holds (known from its summary); only when
the counts fall short is the data read again and what vanished counted one
by one (rare: data spanning more than 2**32 in magnitude, or growing past
the first block's range, or subnormal). Integer counts, so the histogram is
exact and independent of the order and the thread count.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from ._llvm import _f64
from .base import _opts, _serial_twin

# The layout of fastmoments._histogram, repeated here so that an edit of it
# recompiles these kernels (the cache stamps this folder only); the wing
# checks that both agree when it loads.
MIN_EXPONENT = -149
MAX_EXPONENT = 127
N_BINS = MAX_EXPONENT - MIN_EXPONENT + 3
_FIELD_OFFSET = 1023 + MIN_EXPONENT - 1

LANES = 16  # words per vector
WINDOW = 32  # binades of a word
BATCH = 16 * LANES  # values per step of the adder tree: sixteen vectors of words
SEG = 16  # steps whose counts stay in registers (levels 0..SEG_LEVELS-1) ...
SEG_LEVELS = 9  # ... 256 words a lane at most: below 2**9
LEVELS = 28  # levels kept in memory: a lane's bit counts up to 2**28 - 1 words
RESCAN_PIECE = 4096  # values whose bins are computed together when counting what a window left out
# Values per scratch before it is folded out (a lane sees 1/16 of them).
FOLD_EVERY = 1 << 31

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_V32 = ir.VectorType(_I32, LANES)


@intrinsic
def _bits(typingctx, v):
    """The IEEE bits of a float64 as an int64."""
    if v != types.float64:
        return None

    def codegen(context, b, signature, args):
        return b.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _field(typingctx, v):
    """The exponent field of a float32 or float64 as stored (biased), as int32."""
    if v not in (types.float32, types.float64):
        return None
    wide = v == types.float64

    def codegen(context, b, signature, args):
        ity = _I64 if wide else _I32
        f = b.lshr(b.shl(b.bitcast(args[0], ity), ir.Constant(ity, 1)), ir.Constant(ity, 53 if wide else 24))
        return b.trunc(f, _I32) if wide else f

    return types.int32(v), codegen


@njit(**_opts)
def bin_of(v):
    """The bin of the float64 ``v``; N_BINS (the trash bin) for 0, NaN, +-Inf."""
    bits = _bits(v)
    field = (bits >> 52) & 0x7FF
    k = min(max(field - _FIELD_OFFSET, 0), N_BINS - 1)
    skip = field == 0x7FF or (bits & 0x7FFFFFFFFFFFFFFF) == 0
    return N_BINS if skip else k


# -- the vector loop ---------------------------------------------------------------


def _splat(b, v, ty):
    u = b.insert_element(ir.Constant(ty, ir.Undefined), v, ir.Constant(_I32, 0))
    return b.shuffle_vector(u, ir.Constant(ty, ir.Undefined), ir.Constant(ir.VectorType(_I32, ty.count), [0] * ty.count))


def _full(ty, v):
    return ir.Constant(ty, [v] * ty.count)


def _csa(b, a, x, y):
    """A carry-save adder of bit vectors: (sum, carry) of a + x + y. Written
    without a shared term, so that LLVM makes each half one vpternlogd
    (measured: 15% faster than sharing a ^ x)."""
    return b.xor(a, b.xor(x, y)), b.or_(b.and_(a, b.or_(x, y)), b.and_(x, y))


@intrinsic
def _count_words(typingctx, y, levels, top):
    """Add the one-hot words of the first ``len(y) // BATCH * BATCH`` values of
    the contiguous float array ``y`` to the bit-sliced counters ``levels``
    (int32, LEVELS * LANES: level k holds bit k of each lane's count of each
    word bit). Bit ``top - field(v)`` of value v's word is set when it lies
    in [0, 32); otherwise the word is 0 (see the module docstring)."""
    if not (isinstance(y, types.Array) and y.ndim == 1 and y.layout == "C"
            and y.dtype in (types.float32, types.float64)):
        return None
    if not (isinstance(levels, types.Array) and levels.dtype == types.int32 and levels.layout == "C"):
        return None
    wide = y.dtype == types.float64
    sig = types.void(y, levels, types.int64)

    def codegen(context, b, signature, args):
        ya = context.make_array(signature.args[0])(context, b, args[0])
        la = context.make_array(signature.args[1])(context, b, args[1])
        steps = b.sdiv(b.extract_value(ya.shape, 0), ir.Constant(_I64, BATCH))
        lp = b.bitcast(la.data, _V32.as_pointer())
        vw = ir.VectorType(_I64, 8) if wide else _V32
        vin = b.bitcast(ya.data, vw.as_pointer())
        t_s = _splat(b, args[2] if wide else b.trunc(args[2], _I32), vw)
        half = ir.VectorType(_I32, 8)

        def word(p, align):
            v = b.load(p, align=align)
            d = b.sub(t_s, b.lshr(b.shl(v, _full(vw, 1)), _full(vw, 53 if wide else 24)))
            inside = b.icmp_unsigned("<", d, _full(vw, WINDOW))
            if wide:  # (a select LLVM folds into vpsllvd, whose shifts past 31 give 0)
                return b.select(inside, b.shl(_full(half, 1), b.trunc(d, half)), _full(half, 0))
            return b.select(inside, b.shl(_full(_V32, 1), d), _full(_V32, 0))

        def words(j):
            if not wide:
                return word(b.gep(vin, [j]), 4)
            j2 = b.mul(j, ir.Constant(_I64, 2))
            lo = word(b.gep(vin, [j2]), 8)
            hi = word(b.gep(vin, [b.add(j2, ir.Constant(_I64, 1))]), 8)
            return b.shuffle_vector(lo, hi, ir.Constant(_V32, list(range(LANES))))

        entry = b.block
        seg_head = b.append_basic_block("hist.seg")
        head = b.append_basic_block("hist.head")
        body = b.append_basic_block("hist.body")
        seg_end = b.append_basic_block("hist.seg_end")
        done = b.append_basic_block("hist.done")
        b.branch(seg_head)
        # Segments of SEG steps, their counts in registers ...
        b.position_at_end(seg_head)
        s0 = b.phi(_I64)
        s0.add_incoming(ir.Constant(_I64, 0), entry)
        b.cbranch(b.icmp_signed("<", s0, steps), head, done)
        b.position_at_end(head)
        i = b.phi(_I64)
        regs = [b.phi(_V32) for _ in range(SEG_LEVELS)]
        i.add_incoming(s0, seg_head)
        for r in regs:
            r.add_incoming(_full(_V32, 0), seg_head)
        s_end = b.add(s0, ir.Constant(_I64, SEG))
        s1 = b.select(b.icmp_signed("<", s_end, steps), s_end, steps)
        b.cbranch(b.icmp_signed("<", i, s1), body, seg_end)
        b.position_at_end(body)
        base = b.mul(i, ir.Constant(_I64, 16))
        x = [words(b.add(base, ir.Constant(_I64, j))) for j in range(16)]
        lv = list(regs)
        eights = []
        for q in range(2):  # the adder tree: 16 words into ones, twos, fours, eights, sixteens
            fours = []
            for p in range(2):
                twos = []
                for r in range(2):
                    k = 8 * q + 4 * p + 2 * r
                    lv[0], c = _csa(b, lv[0], x[k], x[k + 1])
                    twos.append(c)
                lv[1], c = _csa(b, lv[1], *twos)
                fours.append(c)
            lv[2], c = _csa(b, lv[2], *fours)
            eights.append(c)
        lv[3], carry = _csa(b, lv[3], *eights)
        for k in range(4, SEG_LEVELS):  # the sixteens rippled up, without branches
            lv[k], carry = b.xor(lv[k], carry), b.and_(lv[k], carry)
        i.add_incoming(b.add(i, ir.Constant(_I64, 1)), b.block)
        for r, v in zip(regs, lv):
            r.add_incoming(v, b.block)
        b.branch(head)
        # ... then added to the levels in memory (a bit-sliced adder).
        b.position_at_end(seg_end)
        carry = _full(_V32, 0)
        for k in range(LEVELS):
            p = b.gep(lp, [ir.Constant(_I64, k)])
            m = b.load(p, align=4)
            if k < SEG_LEVELS:
                s, carry = _csa(b, m, regs[k], carry)
            else:
                s, carry = b.xor(m, carry), b.and_(m, carry)
            b.store(s, p, align=4)
        s0.add_incoming(s1, seg_end)
        b.branch(seg_head)
        b.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


# -- scratches: a window, its counters, and what fell outside ------------------------


@njit(**_opts)
def _top(y):
    """The largest exponent field of the finite values of ``y`` (0: none is normal)."""
    nonfinite = np.int32(0x7FF if y.itemsize == 8 else 0xFF)
    t = np.int32(0)
    for i in range(y.size):
        f = _field(y[i])
        t = max(t, f if f != nonfinite else np.int32(0))
    return t


@njit(**_opts)
def new_scratch(on):
    """A scratch (empty when ``on`` is False): the counts (N_BINS + 1, the
    last a trash bin), the bit-sliced counters, and [top (-1: not yet
    chosen), words per lane counted]."""
    return (np.zeros(N_BINS + 1 if on else 0, np.int64), np.zeros(LEVELS * LANES if on else 0, np.int32),
            np.array([-1, 0], np.int64))


@njit(**_opts)
def _bin_of_field(f, wide):
    if wide:
        return min(max(f - _FIELD_OFFSET, 0), N_BINS - 1)
    return f + 23  # a normal float32's field: bin 1 + (f - 127) - MIN_EXPONENT


@njit(**_opts)
def _drain(scratch, wide):
    """Move the bit-sliced counts into the scratch's bins, zeroing them."""
    cnt, lv, meta = scratch
    if meta[1] == 0:
        return
    top = meta[0]
    for k in range(LEVELS):
        row = lv[k * LANES : (k + 1) * LANES]
        seen = np.int32(0)
        for lane in range(LANES):
            seen |= row[lane]
        if seen == 0:
            continue
        for bit in range(WINDOW):
            if (seen >> bit) & 1:
                c = np.int64(0)
                for lane in range(LANES):
                    c += (row[lane] >> bit) & 1
                cnt[_bin_of_field(top - bit, wide)] += c << k
        row[:] = 0
    meta[1] = 0


@njit(**_opts)
def _outside_bins(y, top, buf):
    # One vectorized loop: the bin of each value outside the window (the
    # trash bin for the rest, and for zeros, NaN and Inf); top < 0: no window.
    for i in range(y.size):
        d = np.int32(top) - _field(y[i])
        k = bin_of(_f64(y[i]))
        buf[i] = k if (d < 0) | (d >= WINDOW) | (top < 0) else N_BINS


@njit(**_opts)
def _count_outside(y, top, cnt):
    """Add to ``cnt`` the values of ``y`` that the window ``top`` left out:
    bins computed a piece at a time, then counted into 8 sub-histograms, so
    that neighbouring values of one bin do not wait on each other's
    increments. (Data spanning more than 32 binades takes this on every
    chunk: one more read, at about the cost of the scatter it replaced.)"""
    sub = np.zeros((8, N_BINS + 1), np.int64)
    buf = np.empty(RESCAN_PIECE, np.int32)
    for p0 in range(0, y.size, RESCAN_PIECE):
        n = min(RESCAN_PIECE, y.size - p0)
        _outside_bins(y[p0 : p0 + n], top, buf)
        body = n - n % 8
        for i in range(0, body, 8):
            sub[0, buf[i]] += 1
            sub[1, buf[i + 1]] += 1
            sub[2, buf[i + 2]] += 1
            sub[3, buf[i + 3]] += 1
            sub[4, buf[i + 4]] += 1
            sub[5, buf[i + 5]] += 1
            sub[6, buf[i + 6]] += 1
            sub[7, buf[i + 7]] += 1
        for i in range(body, n):
            sub[0, buf[i]] += 1
    for k in range(N_BINS):
        for j in range(8):
            cnt[k] += sub[j, k]


@njit(**_opts)
def _count_block_float(y, scratch):
    """Count the values of the contiguous 1-D float block ``y`` into the scratch
    (those inside its window; see fold_scratch)."""
    cnt, lv, meta = scratch
    wide = y.itemsize == 8
    if meta[0] < 0:
        t = _top(y)
        if t == 0:  # no normal value: nothing to place a window on yet
            return
        # Two binades of headroom; at most the largest finite field, so that
        # NaN and Inf always fall above the window.
        meta[0] = min(max(t + 2, WINDOW), 0x7FE if wide else 0xFE)
    top = meta[0]
    n = y.size // BATCH * BATCH
    if n:
        if meta[1] + n // LANES >= (1 << LEVELS):
            _drain(scratch, wide)
        meta[1] += n // LANES
        _count_words(y[:n], lv, top)
    for i in range(n, y.size):
        d = top - _field(y[i])
        if 0 <= d < WINDOW:
            cnt[_bin_of_field(top - d, wide)] += 1


@njit(**_opts)
def _fold_scratch_float(scratch, hist, o, y, expected):
    """Add the scratch's counts into row ``o`` of the int64 ``hist`` and reset it.
    ``y`` is all the data counted into it since it was new (or last folded)
    and ``expected`` the number of its finite non-zero values: when the counts
    fall short, the values outside the window are counted from ``y`` again."""
    cnt, lv, meta = scratch
    wide = y.itemsize == 8
    _drain(scratch, wide)
    total = np.int64(0)
    for k in range(N_BINS):
        total += cnt[k]
    if total != expected:
        _count_outside(y, meta[0], cnt)
    for k in range(N_BINS):
        hist[o, k] += cnt[k]
    cnt[:] = 0
    meta[0] = -1


@njit(**_opts)
def _count_block_any(y, scratch):
    # Other data (the kernels are typed for every dtype, but count only floats
    # in practice: the wing converts the rest): one bin per value.
    cnt = scratch[0]
    for i in range(y.size):
        cnt[bin_of(_f64(y[i]))] += 1


@njit(**_opts)
def _fold_scratch_any(scratch, hist, o, y, expected):
    cnt = scratch[0]
    for k in range(N_BINS):
        hist[o, k] += cnt[k]
    cnt[:] = 0


def _floats(y):
    return isinstance(y, types.Array) and y.layout == "C" and y.dtype in (types.float32, types.float64)


def count_block(y, scratch):
    """Count the values of the 1-D block ``y`` into the scratch (those inside
    its window; see fold_scratch)."""


def fold_scratch(scratch, hist, o, y, expected):
    """Add the scratch's counts into row ``o`` of the int64 ``hist`` and reset it.
    ``y`` is all the data counted into it since it was new (or last folded)
    and ``expected`` the number of its finite non-zero values: when the counts
    fall short, the values outside the window are counted from ``y`` again."""


@overload(count_block, jit_options=_opts)
def _count_block(y, scratch):
    f = _count_block_float if _floats(y) else _count_block_any
    return lambda y, scratch: f(y, scratch)


@overload(fold_scratch, jit_options=_opts)
def _fold_scratch(scratch, hist, o, y, expected):
    f = _fold_scratch_float if _floats(y) else _fold_scratch_any
    return lambda scratch, hist, o, y, expected: f(scratch, hist, o, y, expected)


@njit(**_opts)
def _finite_nonzero(y):
    n = 0
    for i in range(y.size):
        v = _f64(y[i])
        n += (v != 0) & (v - v == 0)
    return n


@njit(**_opts)
def count_into(y, hist, o):
    """Add the histogram of the contiguous 1-D float array ``y`` to row ``o`` of ``hist``."""
    if y.size < 4 * BATCH:  # a scratch would cost more than it saves
        for i in range(y.size):
            k = bin_of(_f64(y[i]))
            if k < N_BINS:
                hist[o, k] += 1
        return
    c = new_scratch(True)
    for s in range(0, y.size, FOLD_EVERY):
        part = y[s : min(y.size, s + FOLD_EVERY)]
        expected = 0
        for b in range(0, part.size, 8192):  # counted from cache, block by block
            block = part[b : min(part.size, b + 8192)]
            count_block(block, c)
            expected += _finite_nonzero(block)
        fold_scratch(c, hist, o, part, expected)


@njit(parallel=True, **_opts)
def count_rows(x, hist):
    """The histogram of each row of the C-contiguous float (m, k) ``x`` into ``hist`` (m, N_BINS), zeroed."""
    for i in prange(x.shape[0]):
        count_into(x[i], hist, i)


count_rows_serial = _serial_twin(count_rows)
