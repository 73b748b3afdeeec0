"""Numba kernels for the CPU wing. Plain loops that read like the math.

A *state* is (count, mean, m2) and, for summaries, also min, max, n_nonfinite
and n_zero. Integer fields live in ``si[field]`` (int64), float fields in
``sf[field]`` (float64):

    si: 0 count, 1 n_nonfinite, 2 n_zero
    sf: 0 mean,  1 m2,          2 min,   3 max

Work is split into fixed blocks of ``BLOCK`` contiguous values. Each block is
summed in one pass around a shift near its mean, or, where that would cancel
digits (checked), with the corrected two-pass algorithm while it sits in
cache: the data is read from memory once. Block states are merged with the pairwise
formula of Chan, Golub & LeVeque in a fixed binary tree (a carry stack). The
partition and the tree depend only on the input's shape, never on the thread
count, so results are bit-identical for any number of threads.

``kind`` selects what a block computes: 0 moments, 1 moments skipping NaN,
2 summary (finite values only).
"""

from __future__ import annotations

import types as pytypes

import numpy as np
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

BLOCK = 8192  # values per block: 64 KiB of float64, resident in L2 during its two passes
CHUNK = 64  # blocks (or tiles) per parallel task; a power of two keeps the tree unchanged
STACK = 64  # carry-stack depth: enough for 2**64 blocks

MOMENTS, MOMENTS_SKIPNA, SUMMARY = 0, 1, 2
N_INT, N_FLOAT = 3, 4

_INF = np.inf
_MAXF = np.finfo(np.float64).max
# Reassociation lets LLVM vectorize the block sums; it is confined to the
# functions below that loop over one block, never the merges.
_FAST = {"reassoc", "contract"}
# error_model="numpy": division by zero gives inf/nan instead of a Python
# exception check, which would also keep loops with a division from vectorizing.
_opts = dict(cache=True, nogil=True, error_model="numpy")


def _llvm_binary(name, flags=()):
    """A same-typed (a, b) -> a LLVM float intrinsic as a Numba function,
    called with the fast-math ``flags`` given (Numba's own apply only to its
    instructions, never to an intrinsic's call)."""

    @intrinsic
    def call(typingctx, a, b):
        if a not in (types.float32, types.float64) or b != a:
            return None
        sig = a(a, a)
        lltype = ir.FloatType() if a == types.float32 else ir.DoubleType()
        suffix = "f32" if a == types.float32 else "f64"

        def codegen(context, builder, signature, args):
            fnty = ir.FunctionType(lltype, [lltype, lltype])
            fn = cgutils.get_or_insert_function(builder.module, fnty, f"{name}.{suffix}")
            return builder.call(fn, args, fastmath=flags)

        return sig, codegen

    return call


# LLVM vectorizes min/max reductions written with these intrinsics, never the
# compare-and-select that Python's min() becomes (measured: 10x per block).
_minnum = _llvm_binary("llvm.minnum")
_maxnum = _llvm_binary("llvm.maxnum")
# For values known to be finite: without NaN to propagate, and free to return
# either zero of min(-0.0, +0.0), a reduction is one vminps/vmaxps per vector
# (measured in cache: 3x faster than the above for float32 and float64).
_minnum_finite = _llvm_binary("llvm.minnum", ("nnan", "nsz"))
_maxnum_finite = _llvm_binary("llvm.maxnum", ("nnan", "nsz"))


@intrinsic
def _prefetch(typingctx, arr, index):
    """Ask for the cache line holding ``arr[index]`` (a hint: never faults, any index)."""
    if not isinstance(arr, types.Array):
        return None
    sig = types.void(arr, index)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        idx = context.cast(builder, args[1], signature.args[1], types.intp)
        _prefetch_ir(builder, builder.gep(ary.data, [idx]))
        return context.get_dummy_value()

    return sig, codegen


def _prefetch_ir(b, ptr):
    """IR asking for the cache line at ``ptr``: a read, kept in all cache levels."""
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fn = cgutils.get_or_insert_function(
        b.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
    b.call(fn, [b.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])


# -- LLVM vector IR shared by the hand-vectorized loops below ---------------------

_F64 = ir.DoubleType()
_I32 = ir.IntType(32)
_V4 = ir.VectorType(_F64, 4)


def _shuffle(b, u, v, mask):
    return b.shuffle_vector(u, v, ir.Constant(ir.VectorType(_I32, len(mask)), mask))


def _add_all(b, vs):
    """Sum of a list of vectors, as a balanced tree."""
    while len(vs) > 1:
        vs = [b.fadd(vs[i], vs[i + 1]) for i in range(0, len(vs), 2)]
    return vs[0]


def _lane_sums(b, p):
    """[sum(p[0]), sum(p[1]), sum(p[2]), sum(p[3])] for four <4 x double>: a
    transpose-and-add, so that four rows' totals come out of one vector."""
    lo = b.fadd(_shuffle(b, p[0], p[1], [0, 4, 2, 6]), _shuffle(b, p[0], p[1], [1, 5, 3, 7]))
    hi = b.fadd(_shuffle(b, p[2], p[3], [0, 4, 2, 6]), _shuffle(b, p[2], p[3], [1, 5, 3, 7]))
    return b.fadd(_shuffle(b, lo, hi, [0, 1, 4, 5]), _shuffle(b, lo, hi, [2, 3, 6, 7]))


@intrinsic
def _f64(typingctx, v):
    """A value of the data as the float64 the kernels sum: ``np.float64(v)``,
    except that a bool is 1.0 or 0.0 whatever its byte.

    A NumPy bool is True for any nonzero byte (a view of other bytes, or a
    buffer, can hold 2 or 255); Numba loads it as (byte != 0), which this
    selects on. Measured in cache on a 2-core AMD EPYC KVM VM, sums of an
    8192-value block: 0.55 us, against 0.85 for Numba's cast of a bool and
    0.69 for the bytes as uint8. An intrinsic, so that it is part of the
    caller's loops: an @overload here was a call that kept LLVM from
    vectorizing short-row loops (20% slower, integers too)."""
    if not isinstance(v, (types.Boolean, types.Integer, types.Float)):
        return None

    def codegen(context, b, signature, args):
        ty = signature.args[0]
        if isinstance(ty, types.Boolean):
            f64 = ir.DoubleType()
            return b.select(args[0], ir.Constant(f64, 1.0), ir.Constant(f64, 0.0))
        return context.cast(b, args[0], ty, types.float64)

    return types.float64(v), codegen


# -- one block, in cache ---------------------------------------------------------


@njit(**_opts)
def _shift(y):
    """The mean of the first 8 values of ``y``: the shift of its one-pass sums.

    Taken as y[0] plus the mean of the others' deviations from it: exactly
    y[0] where they are all equal (a constant block then sums zeros and has
    m2 0, not the rounding of a shift off by an ulp, whose squares pass the
    range beyond 1e154), and no sum of 8 values to overflow. Not fast-math,
    so that no reassociation turns it back into a plain sum."""
    h = min(y.size, 8)
    y0 = _f64(y[0])
    d = 0.0
    for i in range(1, h):
        d += _f64(y[i]) - y0
    return y0 + d / h


@njit(fastmath=_FAST, **_opts)
def _block_moments(y, origin):
    """(count, mean - origin, m2) of a block in one pass over it, where that
    is as accurate as two: the sums are of ``d = v - shift`` with the mean of
    the first 8 values as the shift, and m2 = q - s*s/n stands when less than
    half of q cancels (then its error is that of the two-pass algorithm). Far
    shifts, NaN and infinities take the corrected two-pass algorithm. The mean
    is returned relative to ``origin`` (see _row_origin)."""
    shift = _shift(y)
    s, q = _shifted_sums(y, shift)
    return _moments_from_sums(y, shift, s, q, origin)


@njit(fastmath=_FAST, **_opts)
def _moments_from_sums(y, shift, s, q, origin):
    n = y.size
    if q <= _MAXF and s * s <= 0.5 * n * q:  # False for NaN and Inf
        return n, (shift - origin) + s / n, q - s * s / n
    return _block_moments_two_pass(y, origin)


@njit(fastmath=_FAST, inline="always", **_opts)
def _corrected_m2(q, c, inv):
    """m2 = q - c*c/n of the corrected two-pass algorithm, ``inv`` = 1/n.

    Where q, the sum of squared deviations, overflowed, so did m2: it is inf,
    not the NaN of inf - inf that c*c would give once c passes 1e154. Where q
    is finite, c*(c/n) <= q (Cauchy-Schwarz) cannot overflow."""
    return q - c * (c * inv) if q <= _MAXF else q


# How close (relative) a first pass's mean must be to a value of the data for
# the second pass to center on that value instead (see _center): 32 times the
# rounding error of a mean of 2**17 equal values (a column tile's most), and
# small enough that centering there costs no digits: m2's error grows by
# (_SNAP * kappa)**2 ulps at most, kappa = |mean| / std (under 1 to 1e9).
_SNAP = 2.0**-32


@njit(fastmath=_FAST, inline="always", **_opts)
def _center(mean, v):
    """The center of a second pass of the corrected two-pass algorithm: ``v``,
    one of the values, where the first pass's ``mean`` is within _SNAP of it,
    else ``mean``. Any center near the mean gives the same digits (the
    correction c/n takes up its offset), but a mean of equal values off by an
    ulp would leave m2 the rounding of the squares of that ulp's deviations
    (nonzero, or inf beyond 1e154): centered on one of them, a run of equal
    values has deviations 0, its mean exact and m2 exactly 0."""
    return v if abs(mean - v) <= _SNAP * abs(v) else mean


@njit(fastmath=_FAST, **_opts)
def _block_moments_two_pass(y, origin):
    n = y.size
    s = 0.0
    for i in range(n):
        s += _f64(y[i]) - origin
    mean = s / n
    if not (abs(mean) <= _MAXF):
        if _all_finite(y):  # values in range, their sum not
            return _scaled_moments(y, origin)
        return n, mean, np.nan  # NaN or Inf in the block: as NumPy, m2 is NaN
    m2 = 0.0
    c = 0.0
    for i in range(n):
        d = (_f64(y[i]) - origin) - mean
        c += d
        m2 += d * d
    if not (abs(c) <= _MAXF):  # deviations beyond the range
        return _scaled_moments(y, origin)
    # Corrected two-pass: removes the error of the first pass's rounded mean.
    return n, mean + c / n, _corrected_m2(m2, c, 1.0 / n)


# Values near float64's limit (|v| > MAX / n) have sums beyond it though their
# mean is within. Such blocks are summed again scaled down by 2**64 (exact:
# a power of two), so that no sum of up to 2**63 values can overflow, and the
# results scaled back: the mean exactly, m2 to inf where it passes the range.
_DOWN = 2.0**-64
_UP = 2.0**64


@njit(fastmath=_FAST, **_opts)
def _all_finite(y):
    ok = True
    for i in range(y.size):
        ok &= abs(_f64(y[i])) <= _MAXF
    return ok


@njit(fastmath=_FAST, **_opts)
def _scaled_moments(y, origin):
    """(count, mean - origin, m2) of the finite values of ``y``, summed at
    2**-64 of their scale (callers send blocks whose every value counts
    but NaN, skipped by skipna, or every finite one, for summaries)."""
    k0 = _first_finite(y) * _DOWN  # the shift of the sums (see _first_finite)
    s = 0.0
    k = 0.0
    for i in range(y.size):
        v = _f64(y[i])
        ok = abs(v) <= _MAXF
        s += v * _DOWN - k0 if ok else 0.0
        k += 1.0 if ok else 0.0
    if k == 0.0:
        return 0, np.nan, 0.0
    mean = s / k
    m2 = 0.0
    c = 0.0
    for i in range(y.size):
        v = _f64(y[i])
        d = (v * _DOWN - k0) - mean if abs(v) <= _MAXF else 0.0
        c += d
        m2 += d * d
    # m2 * 2**128 overflows to inf exactly where the true m2 passes the range
    return int(k), ((k0 - origin * _DOWN) + (mean + c / k)) * _UP, _corrected_m2(m2, c, 1.0 / k) * _UP * _UP


@njit(**_opts)
def _first_finite(y):
    """The first finite value of ``y`` (0.0 if none): the shift of the sums of
    the masked two-pass loops. Being one of the values, it makes a block of
    equal values (NaN and infinities aside) sum zeros: its mean exact and its
    m2 exactly 0."""
    for i in range(y.size):
        v = _f64(y[i])
        if abs(v) <= _MAXF:
            return v
    return 0.0


# Counters below are float64: exact for a block's 8192 values, and the same
# lane width as the sums, which lets LLVM vectorize the loops.


@njit(fastmath=_FAST, **_opts)
def _block_moments_skipna(y, origin):
    k0 = _first_finite(y)  # the shift of the sums
    s = 0.0
    k = 0.0
    for i in range(y.size):
        v = _f64(y[i]) - k0
        ok = v == v
        s += v if ok else 0.0
        k += 1.0 if ok else 0.0
    if k == 0.0:
        return 0, np.nan, 0.0
    mean = s / k
    if not (abs(mean) <= _MAXF):
        if not _has_inf(y):  # values in range, their sum not
            return _scaled_moments(y, origin)
        return int(k), mean, np.nan
    m2 = 0.0
    c = 0.0
    for i in range(y.size):
        v = _f64(y[i]) - k0
        d = v - mean if v == v else 0.0
        c += d
        m2 += d * d
    if not (abs(c) <= _MAXF):
        return _scaled_moments(y, origin)
    return int(k), (k0 - origin) + (mean + c / k), _corrected_m2(m2, c, 1.0 / k)


@njit(fastmath=_FAST, **_opts)
def _has_inf(y):
    found = False
    for i in range(y.size):
        found |= abs(_f64(y[i])) == _INF
    return found


def _lane(y, v):
    """``v`` in the type min/max work in for ``y``: float32 for float32 data
    (exact, twice the vector lanes), float64 for everything else."""


@overload(_lane)
def _lane_impl(y, v):
    if y.dtype == types.float32:
        return lambda y, v: np.float32(v)
    return lambda y, v: _f64(v)


def _lane_max(y):
    """The largest finite value of ``y``'s lane type."""


@overload(_lane_max)
def _lane_max_impl(y):
    big = np.float32(np.finfo(np.float32).max) if y.dtype == types.float32 else _MAXF
    return lambda y: big


@njit(fastmath=_FAST, **_opts)
def _finite_min(y):
    inf = _lane(y, _INF)
    big = _lane_max(y)
    lo = inf
    for i in range(y.size):
        v = _lane(y, y[i])
        lo = _minnum(lo, v if abs(v) <= big else inf)
    return np.float64(lo)


@njit(fastmath=_FAST, **_opts)
def _finite_max(y):
    inf = _lane(y, _INF)
    big = _lane_max(y)
    hi = -inf
    for i in range(y.size):
        v = _lane(y, y[i])
        hi = _maxnum(hi, v if abs(v) <= big else -inf)
    return np.float64(hi)


@njit(fastmath=_FAST, **_opts)
def _finite_min_max(y):
    """Min and max of a block proven finite (see _block_summary). Which zero
    stands for a minimum or maximum of 0 is unspecified, as in NumPy's SIMD
    loops."""
    lo = _lane(y, _INF)
    hi = _lane(y, -_INF)
    for i in range(y.size):
        v = _lane(y, y[i])
        lo = _minnum_finite(lo, v)
        hi = _maxnum_finite(hi, v)
    return np.float64(lo), np.float64(hi)


def _tally(y, k):
    """``k`` in the type zeros of ``y`` are counted in, per vector lane:
    float32 for float32 data (eight lanes, exact up to 2**24), int32 otherwise
    (measured fastest for float64 data)."""


@overload(_tally)
def _tally_impl(y, k):
    if y.dtype == types.float32:
        return lambda y, k: np.float32(k)
    return lambda y, k: np.int32(k)


@njit(fastmath=_FAST, **_opts)
def _count_zeros(y):
    # Beside the min/max LLVM does not vectorize this loop at all.
    z = _lane(y, 0.0)
    zero = _tally(y, 0)
    one = _tally(y, 1)
    nz = zero
    for i in range(y.size):
        nz += one if _lane(y, y[i]) == z else zero
    return int(nz)


@njit(fastmath=_FAST, **_opts)
def _shifted_sums(y, shift):
    s = 0.0
    q = 0.0
    for i in range(y.size):
        d = _f64(y[i]) - shift
        s += d
        q += d * d
    return s, q


@njit(fastmath=_FAST, **_opts)
def _shifted_sums_zeros(y, shift):
    s = 0.0
    q = 0.0
    nz = 0
    for i in range(y.size):
        v = _f64(y[i])
        d = v - shift
        s += d
        q += d * d
        nz += 1 if v == 0.0 else 0
    return s, q, nz


# -- a summary in one loop: sums, min, max and zeros together -------------------------

SUMMARY_STEP = 8  # values per block per iteration of the _summary_sums loop
# How far ahead the _summary_sums loop asks for its blocks' data. Measured with
# summarize_each on ResNet-50's parameters (2 threads of a 2-core AMD EPYC
# KVM VM, fraction of the read bound, 2-4 runs each, 2026-11-28): none
# 0.59-0.65, 512 B 0.70-0.72, 1 KiB 0.68-0.74, 2 KiB 0.58-0.71, 4 KiB
# 0.68-0.69; a 1-D float64 summary did best at 1 KiB (0.86-0.87, none 0.78-0.82).
SUMMARY_PREFETCH_BYTES = 1024
_CONTRACT = ("contract",)


def _fence(b, v):
    """``v`` behind llvm.arithmetic.fence: fast-math reassociation, which Numba
    applies to every instruction of a fastmath function, intrinsics' included,
    may not move operations across it. Without it, ``q + (d0*d0 + d1*d1)``
    became ``fma(d1, d1, fma(d0, d0, q))``: one chain of fused multiply-adds
    through the whole block, 4 cycles each. Measured in cache on a 2-core AMD
    EPYC KVM VM, 2026-11-28: the one-block loop took 0.33 ns per float32
    value, 0.20 with the fence; a float32 row of 3 blocks (each summarized
    alone) 0.51 -> 0.29-0.41 ns per value. The two-block loop kept its tree."""
    fn = cgutils.get_or_insert_function(
        b.module, ir.FunctionType(v.type, [v.type]), f"llvm.arithmetic.fence.v{v.type.count}f64")
    return b.call(fn, [v])


def _fusable(aty):
    """Whether _summary_sums reads arrays of Numba type ``aty``."""
    return (isinstance(aty, types.Array) and aty.ndim == 1 and aty.layout == "C"
            and aty.dtype in (types.float32, types.float64))


def _min_select(b, a, v):
    # v < a ? v : a is one vminps/vminpd. A NaN leaves ``a``: the sums turn
    # NaN too and send the block to _block_summary_masked, which discards this.
    return b.select(b.fcmp_ordered("<", v, a), v, a)


def _max_select(b, a, v):
    return b.select(b.fcmp_ordered(">", v, a), v, a)


def _fold_lanes(b, vec, op):
    """``op`` over the lanes of ``vec``, halving it each time: a fixed order."""
    n = vec.type.count
    while n > 1:
        n //= 2
        vec = op(b, _shuffle(b, vec, vec, list(range(n))), _shuffle(b, vec, vec, list(range(n, 2 * n))))
    return b.extract_element(vec, ir.Constant(_I32, 0))


def _summary_sums(ns):
    """An intrinsic ``(ys, shifts) -> (s, q, lo, hi, nz)`` for a tuple of ``ns``
    equally long contiguous float32 or float64 blocks: over the first
    size//SUMMARY_STEP*SUMMARY_STEP values of each, in one loop, the sums of
    ``d = v - shift`` and of ``d * d`` (float64), the min and the max (in the
    input's type: exact) and the number of zeros, each as an ``ns``-tuple.

    LLVM vectorizes the sums, the min/max and the zero count each alone but
    not together, and three loops over a block (the later two from cache, with
    no memory reads in flight meanwhile) made summaries compute-bound. Here one
    loop does it all, 8 values per block per step; float32 min, max and zeros
    take 8 lanes. Two blocks per loop (four needed more accumulators than the
    16 vector registers and spilled), each asking for its data
    SUMMARY_PREFETCH_BYTES ahead. Every sum's order is fixed by this code, so
    results are deterministic.
    """
    tup = types.UniTuple(types.float64, ns)

    @intrinsic
    def sums(typingctx, ys, shifts):
        if not (isinstance(ys, types.UniTuple) and ys.count == ns and _fusable(ys.dtype) and shifts == tup):
            return None
        return types.Tuple((tup, tup, tup, tup, types.UniTuple(types.int64, ns)))(ys, shifts), _codegen

    def _codegen(context, b, signature, args):
        aty = signature.args[0].dtype
        arys = [context.make_array(aty)(context, b, b.extract_value(args[0], j)) for j in range(ns)]
        n = b.extract_value(arys[0].shape, 0)
        steps = b.udiv(n, ir.Constant(n.type, SUMMARY_STEP))
        narrow = aty.dtype == types.float32
        lanes = 8 if narrow else 4  # of the min, max and zero-count accumulators
        ev = ir.VectorType(context.get_data_type(aty.dtype), lanes)
        cv = ir.VectorType(ir.IntType(32 if narrow else 64), lanes)
        shifts = []
        for j in range(ns):
            one = b.insert_element(ir.Constant(_V4, ir.Undefined), b.extract_value(args[1], j), ir.Constant(_I32, 0))
            shifts.append(_shuffle(b, one, one, [0] * 4))
        init = dict(s=ir.Constant(_V4, [0.0] * 4), q=ir.Constant(_V4, [0.0] * 4),
                    lo=ir.Constant(ev, [float("inf")] * lanes), hi=ir.Constant(ev, [float("-inf")] * lanes),
                    nz=ir.Constant(cv, [0] * lanes))
        zeros = ir.Constant(ev, [0.0] * lanes)

        entry = b.basic_block
        loop = b.append_basic_block("summary.loop")
        done = b.append_basic_block("summary.done")
        b.cbranch(b.icmp_unsigned(">", steps, ir.Constant(n.type, 0)), loop, done)
        b.position_at_end(loop)
        i = b.phi(n.type)
        i.add_incoming(ir.Constant(n.type, 0), entry)
        acc = []
        for _ in range(ns):
            acc.append({k: b.phi(v.type) for k, v in init.items()})
            for k, phi in acc[-1].items():
                phi.add_incoming(init[k], entry)
        at = b.mul(i, ir.Constant(n.type, SUMMARY_STEP))
        new = []
        for j in range(ns):
            ptr = b.gep(arys[j].data, [at])
            _prefetch_ir(b, b.gep(ptr, [ir.Constant(n.type, SUMMARY_PREFETCH_BYTES * 8 // aty.dtype.bitwidth)]))
            if narrow:
                v = b.load(b.bitcast(ptr, ev.as_pointer()), align=4)
                vs = [v]
                w = b.fpext(v, ir.VectorType(_F64, 8))
                halves = [_shuffle(b, w, w, [0, 1, 2, 3]), _shuffle(b, w, w, [4, 5, 6, 7])]
            else:
                vs = [b.load(b.bitcast(b.gep(ptr, [ir.Constant(n.type, h)]), ev.as_pointer()), align=8)
                      for h in (0, 4)]
                halves = vs
            a = acc[j]
            lo, hi, nz = a["lo"], a["hi"], a["nz"]
            for v in vs:
                lo = _min_select(b, lo, v)
                hi = _max_select(b, hi, v)
                nz = b.sub(nz, b.sext(b.fcmp_ordered("==", v, zeros), cv))  # true is -1
            d0, d1 = (b.fsub(h, shifts[j]) for h in halves)
            s = b.fadd(a["s"], _fence(b, b.fadd(d0, d1)))
            sq = b.fadd(b.fmul(d0, d0, flags=_CONTRACT), b.fmul(d1, d1, flags=_CONTRACT), flags=_CONTRACT)
            new.append(dict(s=s, q=b.fadd(a["q"], _fence(b, sq)), lo=lo, hi=hi, nz=nz))
        nxt = b.add(i, ir.Constant(n.type, 1))
        last = b.basic_block
        i.add_incoming(nxt, last)
        for a, nw in zip(acc, new):
            for k, phi in a.items():
                phi.add_incoming(nw[k], last)
        b.cbranch(b.icmp_unsigned("<", nxt, steps), loop, done)

        b.position_at_end(done)
        out = {k: [] for k in init}
        for a, nw in zip(acc, new):
            for k in init:
                phi = b.phi(init[k].type)
                phi.add_incoming(init[k], entry)
                phi.add_incoming(nw[k], last)
                out[k].append(phi)
        widen = (lambda x: b.fpext(x, _F64)) if narrow else (lambda x: x)
        count = (lambda x: b.sext(x, ir.IntType(64))) if narrow else (lambda x: x)
        fields = [
            [_fold_lanes(b, x, lambda b, u, v: b.fadd(u, v)) for x in out["s"]],
            [_fold_lanes(b, x, lambda b, u, v: b.fadd(u, v)) for x in out["q"]],
            [widen(_fold_lanes(b, x, _min_select)) for x in out["lo"]],
            [widen(_fold_lanes(b, x, _max_select)) for x in out["hi"]],
            [count(_fold_lanes(b, x, lambda b, u, v: b.add(u, v))) for x in out["nz"]],
        ]
        rt = signature.return_type
        return context.make_tuple(b, rt, [context.make_tuple(b, rt[f], fields[f]) for f in range(5)])

    return sums


_summary_sums_1 = _summary_sums(1)
_summary_sums_2 = _summary_sums(2)


@njit(fastmath=_FAST, **_opts)
def _summary_after_steps(y, shift, s, q, lo, hi, nz, origin):
    """A block's summary from _summary_sums's results for it: adds the values
    after its last step, then as _summary_from_parts."""
    for i in range(y.size - y.size % SUMMARY_STEP, y.size):
        v = _f64(y[i])
        d = v - shift
        s += d
        q += d * d
        lo = v if v < lo else lo
        hi = v if v > hi else hi
        nz += 1 if v == 0.0 else 0
    return _summary_from_parts(y, shift, s, q, lo, hi, nz, origin)


def _block_summary(y, origin):
    """Summary of a block (at most 2**24 values): (n, mean, m2, min, max,
    n_nonfinite, n_zero), reading the block once while it sits in cache.

    The sums are taken of ``d = v - shift``, with the mean of the block's
    first 8 values as the shift: m2 = q - s*s/n then keeps the digits of the
    two-pass algorithm as long as less than half of q cancels, which is
    checked; otherwise a second pass around the mean found redoes m2. A finite
    q proves every value finite; otherwise _block_summary_masked starts over.
    Contiguous float32/float64 blocks take the one loop of _summary_sums;
    integers take a loop of sums and zeros, then one of min and max. The
    mean is returned relative to ``origin`` (see _row_origin).
    """


@overload(_block_summary, jit_options=dict(fastmath=_FAST, error_model="numpy"))
def _block_summary_impl(y, origin):
    if _fusable(y):
        def one_loop(y, origin):
            shift = _shift(y)
            s, q, lo, hi, nz = _summary_sums_1((y,), (shift,))
            return _summary_after_steps(y, shift, s[0], q[0], lo[0], hi[0], nz[0], origin)
        return one_loop

    def loops(y, origin):
        shift = _shift(y)
        s, q, nz = _shifted_sums_zeros(y, shift)
        return _summary_from_sums(y, shift, s, q, nz, origin)
    return loops


@njit(fastmath=_FAST, **_opts)
def _summary_from_parts(y, shift, s, q, lo, hi, nz, origin):
    """A block's summary from its shifted sums, min, max and zero count."""
    n = y.size
    if not (q <= _MAXF):  # a NaN or an infinity, or squares beyond the range
        return _block_summary_masked(y, origin)
    mean = (shift - origin) + s / n
    if s * s <= 0.5 * n * q:
        return n, mean, q - s * s / n, lo, hi, 0, nz
    c = 0.0
    m2 = 0.0
    for i in range(n):
        d = (_f64(y[i]) - origin) - mean
        c += d
        m2 += d * d
    if not (abs(c) <= _MAXF):  # deviations beyond the range
        n, mean, m2 = _scaled_moments(y, origin)
    else:
        mean, m2 = mean + c / n, _corrected_m2(m2, c, 1.0 / n)
    return n, mean, m2, lo, hi, 0, nz


@njit(fastmath=_FAST, **_opts)
def _summary_from_sums(y, shift, s, q, nz, origin):
    """A block's summary from its shifted sums; ``nz`` < 0: zeros not counted yet."""
    if not (q <= _MAXF):
        return _block_summary_masked(y, origin)
    lo, hi = _finite_min_max(y)
    if nz < 0:
        nz = _count_zeros(y) if lo <= 0.0 <= hi else 0
    return _summary_from_parts(y, shift, s, q, lo, hi, nz, origin)


@njit(fastmath=_FAST, **_opts)
def _block_summary_masked(y, origin):
    # Sums, the minimum and the maximum each get their own loop over the
    # cached block: LLVM vectorizes each alone but none of them together.
    k0 = _first_finite(y)  # the shift of the sums
    s = 0.0
    k = 0.0
    nz = 0.0
    for i in range(y.size):
        v = _f64(y[i])
        ok = abs(v) <= _MAXF  # False for NaN and +-Inf
        s += v - k0 if ok else 0.0
        k += 1.0 if ok else 0.0
        nz += 1.0 if v == 0.0 else 0.0
    if k == 0.0:
        return 0, np.nan, 0.0, np.nan, np.nan, y.size, 0
    lo = _finite_min(y)
    hi = _finite_max(y)
    n = int(k)
    mean = s / k
    if not (abs(mean) <= _MAXF):  # finite values, their sum beyond the range
        n, mean, m2 = _scaled_moments(y, origin)
        return n, mean, m2, lo, hi, y.size - n, int(nz)
    m2 = 0.0
    c = 0.0
    for i in range(y.size):
        v = _f64(y[i])
        d = (v - k0) - mean if abs(v) <= _MAXF else 0.0
        c += d
        m2 += d * d
    if not (abs(c) <= _MAXF):
        n, mean, m2 = _scaled_moments(y, origin)
        return n, mean, m2, lo, hi, y.size - n, int(nz)
    return n, (k0 - origin) + (mean + c / k), _corrected_m2(m2, c, 1.0 / k), lo, hi, y.size - n, int(nz)


@njit(**_opts)
def _put(si, sf, j, n, mean, m2):
    si[0, j] = n
    sf[0, j] = mean
    sf[1, j] = m2


@njit(**_opts)
def _put_summary(si, sf, j, n, mean, m2, lo, hi, nnf, nz):
    _put(si, sf, j, n, mean, m2)
    si[1, j] = nnf
    si[2, j] = nz
    sf[2, j] = lo
    sf[3, j] = hi


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

# Below this many chunk states, folding them in a second parallel region costs
# more than folding them on one thread.
FOLD_PARALLEL_MIN = 4096


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


# -- merging states ----------------------------------------------------------------


@njit(**_opts)
def merge_moments(na, ma, qa, nb, mb, qb):
    """Chan, Golub & LeVeque: the (count, mean, m2) of the union of two batches."""
    if nb == 0:
        return na, ma, qa
    if na == 0:
        return nb, mb, qb
    n = na + nb
    if not (abs(ma) <= _MAXF and abs(mb) <= _MAXF):
        # Infinite or NaN means: follow the sum's IEEE rules, spread undefined.
        return n, ma + mb, np.nan
    d = mb - ma
    fb = nb / n
    if not (abs(d) <= _MAXF):
        # Finite means of opposite signs near the range's end: their difference
        # overflows, their weighted sum does not; the spread does (inf).
        return n, ma * (na / n) + mb * fb, np.inf
    return n, ma + d * fb, qa + qb + d * d * (na * fb)


@njit(**_opts)
def _fmin(a, b):
    # NaN marks "no finite value" and must not win.
    return b if a != a else (a if b != b else min(a, b))


@njit(**_opts)
def _fmax(a, b):
    return b if a != a else (a if b != b else max(a, b))


@njit(**_opts)
def merge_into(kind, si_a, sf_a, a, si_b, sf_b, b, si_out, sf_out, o):
    """Merge slot ``a`` of one state array with slot ``b`` of another into slot ``o``."""
    n, m, q = merge_moments(si_a[0, a], sf_a[0, a], sf_a[1, a], si_b[0, b], sf_b[0, b], sf_b[1, b])
    if kind == SUMMARY:
        nnf = si_a[1, a] + si_b[1, b]
        nz = si_a[2, a] + si_b[2, b]
        lo = _fmin(sf_a[2, a], sf_b[2, b])
        hi = _fmax(sf_a[3, a], sf_b[3, b])
        si_out[1, o] = nnf
        si_out[2, o] = nz
        sf_out[2, o] = lo
        sf_out[3, o] = hi
    si_out[0, o] = n
    sf_out[0, o] = m
    sf_out[1, o] = q


@njit(**_opts)
def n_fields(kind):
    """(int fields, float fields) of an output state array of this kind."""
    return (N_INT, N_FLOAT) if kind == SUMMARY else (1, 2)


@njit(**_opts)
def set_empty(kind, si, sf, j):
    si[0, j] = 0
    sf[0, j] = np.nan
    sf[1, j] = 0.0
    if si.shape[0] > 1:
        si[1, j] = 0
        si[2, j] = 0
        sf[2, j] = np.nan
        sf[3, j] = np.nan


@njit(**_opts)
def copy_slot(si, sf, a, si_out, sf_out, o):
    for f in range(min(si.shape[0], si_out.shape[0])):
        si_out[f, o] = si[f, a]
    for f in range(min(sf.shape[0], sf_out.shape[0])):
        sf_out[f, o] = sf[f, a]


@njit(**_opts)
def carry_push(kind, si, sf, top, index):
    """The state just written at slot ``top`` is item ``index`` of a sequence:
    merge it pairwise (binary carries of index+1) and return the new top."""
    top += 1
    k = index + 1
    while k & 1 == 0:
        merge_into(kind, si, sf, top - 2, si, sf, top - 1, si, sf, top - 2)
        top -= 1
        k >>= 1
    return top


@njit(**_opts)
def carry_finish(kind, si, sf, top):
    """Fold what is left on the stack, right to left, into slot 0."""
    if top == 0:
        set_empty(kind, si, sf, 0)
        return
    while top > 1:
        merge_into(kind, si, sf, top - 2, si, sf, top - 1, si, sf, top - 2)
        top -= 1


# -- rows: reduce the last axis of a C-contiguous (m, k) array --------------------
# A row of several blocks keeps its block means relative to an origin near its
# values while they merge, and adds the origin back once, at the end. A block
# mean stored as a plain float64 is rounded at the scale of the mean itself:
# for data far from zero against its spread (kappa = |mean| / std), merging
# such means costs about 2*eps*kappa/sqrt(n) of the variance (1e10 + N(0, 1),
# 3e5 values: 2.3e-9). Relative to the origin they are rounded at the scale
# of the spread instead.

ORIGIN_SAMPLES = 9
ORIGIN_SCAN = 64  # rows column_origins looks through where its samples are not finite
_ORIGIN_MAX = 2.0**1000


@njit(**_opts)
def _row_origin(y):
    """The origin of a row's block means: 0.0 for rows of one block (no
    merges), otherwise the (lower) median of the finite values among
    ORIGIN_SAMPLES evenly spaced samples (0.0 if none is finite).

    A few outliers cannot pull a median away from the bulk of the values.
    And being one of the values, it lies within sqrt(n) standard deviations
    of their mean, whatever the data: the merges then lose at most about
    2*eps of the variance (see above)."""
    if y.size <= BLOCK:
        return 0.0
    v = np.empty(ORIGIN_SAMPLES)
    k = 0
    last = y.size - 1
    for i in range(ORIGIN_SAMPLES):
        a = _f64(y[i * last // (ORIGIN_SAMPLES - 1)])
        if abs(a) <= _MAXF:
            v[k] = a
            k += 1
    if k == 0:
        return 0.0
    v = np.sort(v[:k])
    o = v[(k - 1) // 2]
    # Near the range's end a mean relative to the origin could overflow.
    return o if abs(o) <= _ORIGIN_MAX else 0.0


@njit(**_opts)
def _from_origin(sf, j, origin):
    """Turn slot ``j``'s mean, relative to ``origin``, back into the mean."""
    if origin != 0.0:  # and a mean of -0.0 stays -0.0
        sf[0, j] = origin + sf[0, j]



@njit(**_opts)
def _row_chunk(kind, y, b0, b1, si_out, sf_out, o, origin):
    """State of blocks b0..b1 of the row ``y``, written to slot ``o``, its
    mean relative to ``origin``."""
    if b1 - b0 == 1:
        block_state(kind, y[b0 * BLOCK : min(y.size, b1 * BLOCK)], si_out, sf_out, o, origin)
        return
    si = np.empty((N_INT, STACK), np.int64)
    sf = np.empty((N_FLOAT, STACK), np.float64)
    gi = np.empty((N_INT, GROUP), np.int64)
    gf = np.empty((N_FLOAT, GROUP), np.float64)
    full = y.size // BLOCK
    top = 0
    b = b0
    while b < b1:
        if kind != MOMENTS_SKIPNA and b % GROUP == 0 and b + GROUP <= min(b1, full):
            group_states(kind, y, b, gi, gf, origin)
            for i in range(GROUP):
                copy_slot(gi, gf, i, si, sf, top)
                top = carry_push(kind, si, sf, top, b + i - b0)
            b += GROUP
        else:
            block_state(kind, y[b * BLOCK : min(y.size, (b + 1) * BLOCK)], si, sf, top, origin)
            top = carry_push(kind, si, sf, top, b - b0)
            b += 1
    carry_finish(kind, si, sf, top)
    copy_slot(si, sf, 0, si_out, sf_out, o)


@njit(**_opts)
def _fold_chunks(kind, si_c, sf_c, c0, nc, si_out, sf_out, o):
    """Carry-merge the ``nc`` chunk states starting at slot ``c0`` into slot ``o``."""
    if nc == 1:
        copy_slot(si_c, sf_c, c0, si_out, sf_out, o)
        return
    si = np.empty((N_INT, STACK), np.int64)
    sf = np.empty((N_FLOAT, STACK), np.float64)
    top = 0
    for c in range(nc):
        copy_slot(si_c, sf_c, c0 + c, si, sf, top)
        top = carry_push(kind, si, sf, top, c)
    carry_finish(kind, si, sf, top)
    copy_slot(si, sf, 0, si_out, sf_out, o)


@njit(**_opts)
def _n_chunks(k):
    nb = (k + BLOCK - 1) // BLOCK
    return max(1, (nb + CHUNK - 1) // CHUNK)


SMALL_ROW = 64  # rows at most this long skip the block machinery
ROWS_PER_TASK = 512  # rows per transposed scratch tile: 64 x 512 float64 fit in L2


@njit(**_opts)
def _small_rows(kind, x, i0, i1, si_out, sf_out, o0):
    """States of the short rows i0..i1 of ``x`` into slots o0...

    Row-wise loops over a handful of values cannot use vector lanes, so the
    rows are transposed into a cached scratch tile and reduced as its columns,
    many rows per vector instruction.
    """
    k = x.shape[1]
    rows = i1 - i0
    # Padded rows: a 4 KiB stride would map every transposed store to one cache set.
    scratch = np.empty((k, ROWS_PER_TASK + 8))
    ws = np.empty((5, ROWS_PER_TASK))
    si = np.empty((N_INT, 1, ROWS_PER_TASK), np.int64)
    sf = np.empty((N_FLOAT, 1, ROWS_PER_TASK), np.float64)
    # Each row's origin: its first finite value, the shift of its sums (see
    # _tile_moments), so that a row of equal values has m2 exactly 0.
    org = np.empty(ROWS_PER_TASK)
    for t0 in range(0, rows, ROWS_PER_TASK):
        w = min(ROWS_PER_TASK, rows - t0)
        for r in range(w):
            row = x[i0 + t0 + r]
            for j in range(k):
                scratch[j, r] = _f64(row[j])
        for r in range(w):
            org[r] = 0.0
            for j in range(k):
                if abs(scratch[j, r]) <= _MAXF:
                    org[r] = scratch[j, r]
                    break
        if kind == SUMMARY:
            _tile_summary(scratch, 0, k, 0, w, ws, si, sf, 0, org)
        else:
            _tile_moments(kind, scratch, 0, k, 0, w, ws, si, sf, 0, org)
        for r in range(w):
            _from_origin(sf[:, 0], r, org[r])
        for r in range(w):
            if si[0, 0, r] > 0 and not (abs(sf[0, 0, r] + sf[1, 0, r]) <= _MAXF):
                ok, mean, m2 = scaled_redo(kind, x[i0 + t0 + r])
                if ok:
                    sf[0, 0, r], sf[1, 0, r] = mean, m2
        for f in range(si_out.shape[0]):
            for r in range(w):
                si_out[f, o0 + t0 + r] = si[f, 0, r]
        for f in range(sf_out.shape[0]):
            for r in range(w):
                sf_out[f, o0 + t0 + r] = sf[f, 0, r]


@njit(**_opts)
def scaled_redo(kind, row):
    """(True, mean, m2) of ``row``, summed scaled (see _scaled_moments),
    where the non-finite mean that ``kind`` gave it came from sums past the
    range rather than from its values; (False, nan, nan) where it came from
    its values (an inf, or a NaN that ``kind`` counts)."""
    if kind == SUMMARY or (not _has_inf(row) if kind == MOMENTS_SKIPNA else _all_finite(row)):
        _, mean, m2 = _scaled_moments(row, 0.0)
        return True, mean, m2
    return False, np.nan, np.nan


@njit(parallel=True, **_opts)
def reduce_rows(kind, x, si_out, sf_out):
    """States of each row of the C-contiguous 2-D array ``x`` (shape (m, k))
    into ``si_out``/``sf_out`` (shapes (n_fields(kind)[i], m))."""
    m, k = x.shape
    if k == 0:
        for i in range(m):
            set_empty(kind, si_out, sf_out, i)
        return si_out, sf_out
    if k <= SMALL_ROW:
        task = 16 * ROWS_PER_TASK
        for t in prange((m + task - 1) // task):
            i0 = t * task
            _small_rows(kind, x, i0, min(m, i0 + task), si_out, sf_out, i0)
        return si_out, sf_out
    nb = (k + BLOCK - 1) // BLOCK
    # Blocks per task: CHUNK, or fewer for a single row of under 1024 blocks
    # so that it still splits into 16 tasks or more (balance on a busy
    # machine). Any power of two gives the same merge tree, so the results
    # do not change with it.
    chunk = CHUNK
    while m == 1 and chunk > GROUP and nb < 16 * chunk:
        chunk //= 2
    nc = (nb + chunk - 1) // chunk
    if nb == 1 and kind != MOMENTS_SKIPNA:
        # Rows of one block each: a task's rows are read in quartets a quarter
        # of the task apart, four streams (see GROUP), the quarter at least
        # 64 KiB; rows past the last whole task one by one.
        quarter = max(1, (1 << 16) // (k * x.itemsize) + 1)
        task = GROUP * quarter
        n_tasks = m // task
        for t in prange(n_tasks + 1):
            i0 = t * task
            if t < n_tasks:
                for i in range(i0, i0 + quarter):
                    states4(kind, x[i], x[i + quarter], x[i + 2 * quarter], x[i + 3 * quarter],
                            si_out, sf_out, i, i + quarter, i + 2 * quarter, i + 3 * quarter, 0.0)
            else:
                for i in range(i0, m):
                    block_state(kind, x[i], si_out, sf_out, i, 0.0)
        return si_out, sf_out
    if nc == 1:
        for i in prange(m):
            origin = _row_origin(x[i])
            _row_chunk(kind, x[i], 0, nb, si_out, sf_out, i, origin)
            _from_origin(sf_out, i, origin)
        return si_out, sf_out
    # Long rows: parallel over (row, chunk) tasks, then fold each row's chunks.
    si_c = np.empty((N_INT, m * nc), np.int64)
    sf_c = np.empty((N_FLOAT, m * nc), np.float64)
    origins = np.empty(m)
    for i in range(m):
        origins[i] = _row_origin(x[i])
    for t in prange(m * nc):
        i = t // nc
        c = t - i * nc
        _row_chunk(kind, x[i], c * chunk, min(nb, (c + 1) * chunk), si_c, sf_c, t, origins[i])
    if m * nc < FOLD_PARALLEL_MIN:
        for i in range(m):
            _fold_chunks(kind, si_c, sf_c, i * nc, nc, si_out, sf_out, i)
            _from_origin(sf_out, i, origins[i])
        return si_out, sf_out
    for i in prange(m):
        _fold_chunks(kind, si_c, sf_c, i * nc, nc, si_out, sf_out, i)
        _from_origin(sf_out, i, origins[i])
    return si_out, sf_out


# -- short rows, moments only: the output is as large as the input ---------------
# Reducing (m, k) rows with k a handful of values writes a state per row, so
# this path is as much a write as a read. Each row is reduced in registers; the
# count, k for every row, is not written at all (see cpu.moments).

SHORT_ROWS_TASK = 1 << 14  # rows per parallel task


@njit(fastmath=_FAST, **_opts)
def _redo_overflowed_rows(x, mean_out, m2_out, k):
    """Rows whose mean came out inf or NaN though their values are finite
    (sums or deviations beyond the range, see _scaled_moments), again,
    scaled. A scan of the task's outputs while they are in cache, rather
    than a branch in the row loops, where it cost a third of their speed."""
    bad = False
    for i in range(mean_out.size):
        bad |= not (abs(mean_out[i]) <= _MAXF)
    if not bad:
        return
    for i in range(mean_out.size):
        if not (abs(mean_out[i]) <= _MAXF):
            ok, mean, m2 = scaled_redo(MOMENTS, x[i * k : (i + 1) * k])
            if ok:
                mean_out[i], m2_out[i] = mean, m2


@njit(fastmath=_FAST, inline="always", **_opts)
def _rows_of(x, mean_out, m2_out, k):
    """(mean, m2) of the consecutive ``k``-value rows of the flat ``x``.

    Called with a literal ``k``, LLVM unrolls the row loops. The unsigned
    index tells it the index is never negative, without which nothing unrolls.
    """
    uk = np.uint64(k)
    inv = 1.0 / k
    for i in range(mean_out.size):
        base = np.uint64(i) * uk
        s = 0.0
        for j in range(k):
            s += _f64(x[base + np.uint64(j)])
        mean = s * inv
        if not (abs(mean) <= _MAXF):
            mean_out[i] = mean
            m2_out[i] = np.nan
            continue
        mean = _center(mean, _f64(x[base]))
        c = 0.0
        q = 0.0
        for j in range(k):
            d = _f64(x[base + np.uint64(j)]) - mean
            c += d
            q += d * d
        mean_out[i] = mean + c * inv
        m2_out[i] = _corrected_m2(q, c, inv)


@njit(fastmath=_FAST, inline="always", **_opts)
def _rows_in_lanes(x, mean_out, m2_out, k):
    """As _rows_of for a literal ``k`` that is a multiple of 4 and too long to
    unroll well: four partial sums per row, which LLVM packs into one vector."""
    uk = np.uint64(k)
    inv = 1.0 / k
    one, two, three = np.uint64(1), np.uint64(2), np.uint64(3)
    for i in range(mean_out.size):
        base = np.uint64(i) * uk
        s0 = s1 = s2 = s3 = 0.0
        for j in range(0, k, 4):
            u = base + np.uint64(j)
            s0 += _f64(x[u])
            s1 += _f64(x[u + one])
            s2 += _f64(x[u + two])
            s3 += _f64(x[u + three])
        mean = ((s0 + s1) + (s2 + s3)) * inv
        if not (abs(mean) <= _MAXF):
            mean_out[i] = mean
            m2_out[i] = np.nan
            continue
        mean = _center(mean, _f64(x[base]))
        c0 = c1 = c2 = c3 = 0.0
        q0 = q1 = q2 = q3 = 0.0
        for j in range(0, k, 4):
            u = base + np.uint64(j)
            d0 = _f64(x[u]) - mean
            d1 = _f64(x[u + one]) - mean
            d2 = _f64(x[u + two]) - mean
            d3 = _f64(x[u + three]) - mean
            c0 += d0
            c1 += d1
            c2 += d2
            c3 += d3
            q0 += d0 * d0
            q1 += d1 * d1
            q2 += d2 * d2
            q3 += d3 * d3
        c = (c0 + c1) + (c2 + c3)
        mean_out[i] = mean + c * inv
        m2_out[i] = _corrected_m2((q0 + q1) + (q2 + q3), c, inv)


@njit(fastmath=_FAST, **_opts)
def _rows_any(x, mean_out, m2_out, k):
    """As _rows_of for a run-time ``k``: a slice per row keeps the loops vectorizable."""
    inv = 1.0 / k
    for i in range(mean_out.size):
        y = x[i * k : (i + 1) * k]
        s = 0.0
        for j in range(y.size):
            s += _f64(y[j])
        mean = s * inv
        if not (abs(mean) <= _MAXF):
            mean_out[i] = mean
            m2_out[i] = np.nan
            continue
        mean = _center(mean, _f64(y[0]))
        c = 0.0
        q = 0.0
        for j in range(y.size):
            d = _f64(y[j]) - mean
            c += d
            q += d * d
        mean_out[i] = mean + c * inv
        m2_out[i] = _corrected_m2(q, c, inv)


def _four_row_sums(k):
    """An intrinsic ``(x, start) -> (means, c, q)``, each a 4-tuple of float64:
    for the four consecutive ``k``-value rows of the flat real array ``x``
    from ``start``, the centers of the second pass (the first pass's means, or
    the row's first value where that close, see _center), then the sums of
    ``d = v - center``
    and of ``d * d`` (the corrected two-pass algorithm of _rows_of).

    LLVM leaves such short rows in scalar code; here each row is k/4 vectors of
    four float64, and the four rows' totals come out of one transpose-and-add.
    The order of every sum is fixed by this code, so results are deterministic.
    """
    assert k % 4 == 0 and k & (k - 1) == 0

    @intrinsic
    def sums(typingctx, x, start):
        if not isinstance(x, types.Array) or not isinstance(x.dtype, (types.Float, types.Integer, types.Boolean)):
            return None
        quad = types.UniTuple(types.float64, 4)
        sig = types.Tuple((quad, quad, quad))(x, start)

        def codegen(context, b, signature, args):
            ary = context.make_array(signature.args[0])(context, b, args[0])
            i0 = context.cast(b, args[1], signature.args[1], types.intp)
            dtype = signature.args[0].dtype
            fabs = cgutils.get_or_insert_function(b.module, ir.FunctionType(_V4, [_V4]), "llvm.fabs.v4f64")
            elt = context.get_data_type(dtype)
            vptr = ir.VectorType(elt, 4).as_pointer()
            align = 1 if isinstance(dtype, types.Boolean) else dtype.bitwidth // 8
            if dtype == types.float64:
                widen = lambda v: v  # noqa: E731
            elif isinstance(dtype, types.Float):
                widen = lambda v: b.fpext(v, _V4)  # noqa: E731
            elif isinstance(dtype, types.Boolean):  # any nonzero byte is 1.0, as in _f64
                zero, one = ir.Constant(ir.VectorType(elt, 4), None), ir.Constant(_V4, [1.0] * 4)
                widen = lambda v: b.select(b.icmp_unsigned("!=", v, zero), one, ir.Constant(_V4, None))  # noqa: E731
            else:  # integers as np.float64(v) converts them: exact up to 2**53
                widen = (lambda v: b.sitofp(v, _V4)) if dtype.signed else (lambda v: b.uitofp(v, _V4))
            rows = []
            for r in range(4):
                chunks = []
                for j in range(0, k, 4):
                    at = b.gep(ary.data, [b.add(i0, ir.Constant(i0.type, r * k + j))])
                    chunks.append(widen(b.load(b.bitcast(at, vptr), align=align)))
                rows.append(chunks)
            means = b.fmul(_lane_sums(b, [_add_all(b, list(c)) for c in rows]), ir.Constant(_V4, [1.0 / k] * 4))
            # The second pass's centers: each row's first value where the mean
            # is that close to it (see _center).
            firsts = ir.Constant(_V4, ir.Undefined)
            for r in range(4):
                x0 = b.extract_element(rows[r][0], ir.Constant(_I32, 0))
                firsts = b.insert_element(firsts, x0, ir.Constant(_I32, r))
            near = b.fcmp_ordered("<=", b.call(fabs, [b.fsub(means, firsts)]),
                                  b.fmul(b.call(fabs, [firsts]), ir.Constant(_V4, [_SNAP] * 4)))
            centers = b.select(near, firsts, means)
            cs, qs = [], []
            for r in range(4):
                mean = _shuffle(b, centers, ir.Constant(_V4, ir.Undefined), [r] * 4)
                ds = [b.fsub(v, mean) for v in rows[r]]
                cs.append(_add_all(b, list(ds)))
                qs.append(_add_all(b, [b.fmul(d, d) for d in ds]))
            out = []
            for vec in (centers, _lane_sums(b, cs), _lane_sums(b, qs)):
                lanes = [b.extract_element(vec, ir.Constant(_I32, i)) for i in range(4)]
                out.append(context.make_tuple(b, quad, lanes))
            return context.make_tuple(b, signature.return_type, out)

        return sig, codegen

    return sums


_sums_of_16 = _four_row_sums(16)
_sums_of_32 = _four_row_sums(32)
_sums_of_64 = _four_row_sums(64)
PREFETCH_BYTES = 2048  # how far ahead _rows_in_vectors asks for its rows


@njit(inline="always", **_opts)
def _rows_in_vectors(x, mean_out, m2_out, k):
    """As _rows_of for a literal ``k`` of 16, 32 or 64: four rows per step (see
    _four_row_sums), and the rows PREFETCH_BYTES ahead asked for in advance.

    Measured at 400 MB into preallocated outputs, 2 threads of a 2-core AMD
    EPYC (Zen 3) KVM VM, as fractions of the read bound, two runs (2026-11-28): k = 16 float64 0.70/0.50 -> 0.83/0.66
    (before -> after, scalar _rows_in_lanes before), float32 0.37/0.54 ->
    0.44/0.60; k = 32 float64 0.48/0.64 -> 0.67/0.81, float32 0.46/0.48 ->
    0.71/0.72; k = 64 float64 0.67/0.57 -> 0.67/0.60, float32 0.52/0.59 ->
    0.60/0.62. So much arithmetic per byte keeps too few misses in flight;
    the prefetches add them (prefetching from the scalar row loops made those
    slower).
    """
    m = mean_out.size
    inv = 1.0 / k
    line = 64 // x.itemsize
    ahead = max(4, PREFETCH_BYTES // (k * x.itemsize)) * k
    for g in range(m // 4):
        i = 4 * g
        for j in range(0, 4 * k, line):
            _prefetch(x, i * k + ahead + j)
        if k == 16:
            means, cs, qs = _sums_of_16(x, i * k)
        elif k == 32:
            means, cs, qs = _sums_of_32(x, i * k)
        else:
            means, cs, qs = _sums_of_64(x, i * k)
        for r in range(4):
            mean = means[r]
            c = cs[r]
            ok = abs(mean) <= _MAXF
            mean_out[i + r] = mean + c * inv if ok else mean
            m2_out[i + r] = _corrected_m2(qs[r], c, inv) if ok else np.nan
    done = 4 * (m // 4)
    _rows_in_lanes(x[done * k :], mean_out[done:], m2_out[done:], k)


@njit(**_opts)
def _short_rows(x, mean_out, m2_out, k):
    # One specialisation per literal k (measured, in cache: 2x faster than _rows_any).
    if k == 1:
        _rows_of(x, mean_out, m2_out, 1)
    elif k == 2:
        _rows_of(x, mean_out, m2_out, 2)
    elif k == 3:
        _rows_of(x, mean_out, m2_out, 3)
    elif k == 4:
        _rows_of(x, mean_out, m2_out, 4)
    elif k == 5:
        _rows_of(x, mean_out, m2_out, 5)
    elif k == 6:
        _rows_of(x, mean_out, m2_out, 6)
    elif k == 7:
        _rows_of(x, mean_out, m2_out, 7)
    elif k == 8:
        _rows_of(x, mean_out, m2_out, 8)
    elif k == 16:
        _rows_in_vectors(x, mean_out, m2_out, 16)
    elif k == 32:
        _rows_in_vectors(x, mean_out, m2_out, 32)
    elif k == 64:
        _rows_in_vectors(x, mean_out, m2_out, 64)
    else:
        _rows_any(x, mean_out, m2_out, k)
    _redo_overflowed_rows(x, mean_out, m2_out, k)


@njit(parallel=True, **_opts)
def short_row_moments(x, mean_out, m2_out):
    """(mean, m2) of each row of the C-contiguous (m, k) array ``x``, 1 <= k <= SMALL_ROW."""
    m, k = x.shape
    flat = x.reshape(m * k)
    n_tasks = (m + SHORT_ROWS_TASK - 1) // SHORT_ROWS_TASK
    for t in prange(n_tasks):
        i0 = t * SHORT_ROWS_TASK
        i1 = min(m, i0 + SHORT_ROWS_TASK)
        _short_rows(flat[i0 * k : i1 * k], mean_out[i0:i1], m2_out[i0:i1], k)


# -- columns: reduce the first axis of a C-contiguous (k, m) array ----------------

TILE_COLS = 1024  # columns per tile
TILE_BYTES = 1 << 20  # bytes per tile: four quarters read as four streams (see GROUP); 1 MiB
# beat 256 and 512 KiB and 2 MiB at 400 MB, 2 threads: (N, 1000) float64 0.56-0.64 -> 0.76-0.90 of
# the read bound, (N, 3) float32 0.66 -> 0.87-0.89; it amortizes the per-column work and merges.


@njit(fastmath=_FAST, **_opts)
def _tile_finish(s, cnt, c, q, w, si, sf, top, org):
    """Turn per-column sums of a tile into states, means relative to ``org``
    (see column_origins). ``s`` holds the first-pass means on entry.
    Branch-free, so the loop over columns vectorizes."""
    n_out = si[0, top]
    mean_out = sf[0, top]
    m2_out = sf[1, top]
    for j in range(w):
        n = cnt[j]
        inv = 1.0 / n  # inf for empty columns, whose results are replaced below
        mean = s[j]
        finite = abs(mean) <= _MAXF
        n_out[j] = np.int64(n)
        mean_out[j] = (mean - org[j]) + c[j] * inv if finite else mean
        m2_out[j] = _corrected_m2(q[j], c[j], inv) if n > 0.0 else 0.0


@njit(fastmath=_FAST, **_opts)
def _tile_moments(kind, x, r0, r1, c0, w, ws, si, sf, top, org):
    """Per-column states of rows r0..r1, columns c0..c0+w of ``x`` into ``top``.

    ``ws`` is a (5, >= w) float64 workspace. The second pass centers on the
    column's origin, one of its values (see column_origins), where the mean is
    that close (see _center): a column of equal values has m2 exactly 0.
    """
    s = ws[0]
    cnt = ws[1]
    c = ws[2]
    q = ws[3]
    for j in range(w):
        s[j] = 0.0
        cnt[j] = 0.0
        c[j] = 0.0
        q[j] = 0.0
    for r in range(r0, r1):
        row = x[r, c0 : c0 + w]
        if kind == MOMENTS:
            for j in range(w):
                s[j] += _f64(row[j])
        else:
            for j in range(w):
                v = _f64(row[j])
                ok = v == v
                s[j] += v if ok else 0.0
                cnt[j] += 1.0 if ok else 0.0
    if kind == MOMENTS:
        for j in range(w):
            cnt[j] = r1 - r0
    for j in range(w):
        s[j] = _center(s[j] / cnt[j], org[j])  # NaN for empty columns
    for r in range(r0, r1):
        row = x[r, c0 : c0 + w]
        if kind == MOMENTS:
            for j in range(w):
                d = _f64(row[j]) - s[j]
                c[j] += d
                q[j] += d * d
        else:
            for j in range(w):
                v = _f64(row[j])
                d = v - s[j] if v == v else 0.0
                c[j] += d
                q[j] += d * d
    _tile_finish(s, cnt, c, q, w, si, sf, top, org)


@njit(fastmath=_FAST, **_opts)
def _tile_moments_dense(x, r0, r1, c0, w, s, c, q, mean_out, m2_out, org):
    """Per-column (mean - org, m2) of rows r0..r1 (r1 > r0), columns c0..c0+w,
    no NaN skipping.

    Four rows per step: the per-column accumulators are loaded and stored once
    per four rows instead of once per row (measured in cache: 0.55 -> 0.32 ns
    per value). The four are a quarter of the tile apart, so that the tile is
    read as four streams (see GROUP). ``s``, ``c`` and ``q`` are workspaces of
    at least ``w`` values. The first pass sums deviations from the origins,
    one of each column's values (see column_origins): a column of equal values
    gets its mean exactly, and with it the shift of every later tile of the
    chunk (see _shifted_tile_state), so m2 exactly 0 (a mean off by an ulp
    would leave m2 the rounding of the squares of that ulp's deviations,
    nonzero, or inf beyond 1e154). It costs a subtraction per value, on one
    tile in CHUNK.
    """
    for j in range(w):
        s[j] = 0.0
    h = (r1 - r0) // 4
    for r in range(r0, r0 + h):
        a, b, e, f = x[r, c0 : c0 + w], x[r + h, c0 : c0 + w], x[r + 2 * h, c0 : c0 + w], x[r + 3 * h, c0 : c0 + w]
        for j in range(w):
            o = org[j]
            s[j] += ((_f64(a[j]) - o) + (_f64(b[j]) - o)) + ((_f64(e[j]) - o) + (_f64(f[j]) - o))
    for rr in range(r0 + 4 * h, r1):
        a = x[rr, c0 : c0 + w]
        for j in range(w):
            s[j] += _f64(a[j]) - org[j]
    inv = 1.0 / (r1 - r0)
    for j in range(w):
        s[j] = org[j] + s[j] * inv
    # Second pass: deviations from the first pass's means (its rounding error
    # is what c corrects).
    _tile_moments_shifted(x, r0, r1, c0, w, s, c, q)
    for j in range(w):
        mean = s[j]
        finite = abs(mean) <= _MAXF
        mean_out[j] = (mean - org[j]) + c[j] * inv if finite else mean
        m2_out[j] = _corrected_m2(q[j], c[j], inv) if finite else np.nan


@njit(fastmath=_FAST, **_opts)
def _tile_moments_shifted(x, r0, r1, c0, w, shift, s, q):
    """Sums of ``d = x - shift[j]`` and ``d * d`` per column over rows r0..r1:
    one pass over the tile instead of two.

    The shifted-data algorithm: m2 = q - s*s/n loses digits when the shift is
    far from the mean, by the factor q / m2 = 1 + n (mean - shift)^2 / m2.
    The caller shifts by the previous tile's mean and checks that factor.
    """
    for j in range(w):
        s[j] = 0.0
        q[j] = 0.0
    h = (r1 - r0) // 4
    for r in range(r0, r0 + h):
        a, b, e, f = x[r, c0 : c0 + w], x[r + h, c0 : c0 + w], x[r + 2 * h, c0 : c0 + w], x[r + 3 * h, c0 : c0 + w]
        for j in range(w):
            k = shift[j]
            d0 = _f64(a[j]) - k
            d1 = _f64(b[j]) - k
            d2 = _f64(e[j]) - k
            d3 = _f64(f[j]) - k
            s[j] += (d0 + d1) + (d2 + d3)
            q[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
    for rr in range(r0 + 4 * h, r1):
        a = x[rr, c0 : c0 + w]
        for j in range(w):
            d = _f64(a[j]) - shift[j]
            s[j] += d
            q[j] += d * d


@njit(**_opts)
def _shifted_tile_state(x, r0, r1, c0, w, shift, ws, mean_out, m2_out, org):
    """(mean - org, m2) per column of a tile in one pass, shifted by ``shift``;
    where the shift was too far from a column's mean for m2 to keep its digits
    (more than half of q cancels), the whole tile is redone with the two-pass
    kernel. Leaves the new means in ``shift``, for the next tile."""
    s = ws[0]
    q = ws[1]
    _tile_moments_shifted(x, r0, r1, c0, w, shift, s, q)
    n = r1 - r0
    inv = 1.0 / n
    far = False
    for j in range(w):
        # Also where the squares overflowed (q inf), which about the true
        # mean they may not.
        far |= (s[j] * s[j] > 0.5 * n * q[j]) | (q[j] > _MAXF)
    if far:
        _tile_moments_dense(x, r0, r1, c0, w, ws[0], ws[1], ws[2], mean_out, m2_out, org)
    else:
        for j in range(w):
            mean_out[j] = (shift[j] - org[j]) + s[j] * inv
            m2_out[j] = q[j] - s[j] * s[j] * inv  # inf - inf = NaN for infinite columns
    for j in range(w):
        m = org[j] + mean_out[j]
        shift[j] = m if abs(m) <= _MAXF else 0.0


@njit(**_opts)
def _merge_dense(mean, m2, a, b, na, nb, w):
    """Merge tile-stack slot ``b`` into slot ``a`` for all ``w`` columns, whose
    counts are all ``na`` and ``nb`` (> 0): merge_moments, branch-free so
    that the loop vectorizes."""
    fb = nb / (na + nb)
    fa = na / (na + nb)
    g = na * fb
    for j in range(w):
        ma = mean[a, j]
        mb = mean[b, j]
        d = mb - ma
        finite = (abs(ma) <= _MAXF) & (abs(mb) <= _MAXF)
        near = abs(d) <= _MAXF  # see merge_moments
        mean[a, j] = (ma + d * fb if near else ma * fa + mb * fb) if finite else ma + mb
        m2[a, j] = (m2[a, j] + m2[b, j] + d * d * g if near else np.inf) if finite else np.nan


@njit(**_opts)
def _col_chunk_dense(x, t0, t1, rows_per_tile, c0, w, si_out, sf_out, o, org):
    """_col_chunk for kind MOMENTS: every column of a tile has the same count,
    so the counts are scalars and the tile merges vectorize."""
    k = x.shape[0]
    mean = np.empty((STACK, w))
    m2 = np.empty((STACK, w))
    cnt = np.empty(STACK, np.int64)
    ws = np.empty((3, w))
    shift = np.empty(w)
    top = 0
    for t in range(t0, t1):
        r0 = t * rows_per_tile
        r1 = min(k, r0 + rows_per_tile)
        if t == t0:  # two passes give the first shift
            _tile_moments_dense(x, r0, r1, c0, w, ws[0], ws[1], ws[2], mean[top], m2[top], org)
            for j in range(w):
                m = org[j] + mean[top, j]
                shift[j] = m if abs(m) <= _MAXF else 0.0
        else:
            _shifted_tile_state(x, r0, r1, c0, w, shift, ws, mean[top], m2[top], org)
        cnt[top] = r1 - r0
        top += 1
        kk = t - t0 + 1
        while kk & 1 == 0:
            _merge_dense(mean, m2, top - 2, top - 1, cnt[top - 2], cnt[top - 1], w)
            cnt[top - 2] += cnt[top - 1]
            top -= 1
            kk >>= 1
    while top > 1:
        _merge_dense(mean, m2, top - 2, top - 1, cnt[top - 2], cnt[top - 1], w)
        cnt[top - 2] += cnt[top - 1]
        top -= 1
    for j in range(w):
        si_out[0, o, c0 + j] = cnt[0]
        sf_out[0, o, c0 + j] = mean[0, j]
        sf_out[1, o, c0 + j] = m2[0, j]


@njit(fastmath=_FAST, **_opts)
def _tile_summary(x, r0, r1, c0, w, ws, si, sf, top, org):
    s = ws[0]
    cnt = ws[1]
    c = ws[2]
    q = ws[3]
    nz = ws[4]
    lo = sf[2, top]
    hi = sf[3, top]
    for j in range(w):
        s[j] = 0.0
        cnt[j] = 0.0
        c[j] = 0.0
        q[j] = 0.0
        nz[j] = 0.0
        lo[j] = _INF
        hi[j] = -_INF
    for r in range(r0, r1):
        row = x[r, c0 : c0 + w]
        for j in range(w):
            v = _f64(row[j])
            ok = abs(v) <= _MAXF
            s[j] += v if ok else 0.0
            cnt[j] += 1.0 if ok else 0.0
            nz[j] += 1.0 if v == 0.0 else 0.0
        for j in range(w):
            v = _f64(row[j])
            lo[j] = _minnum(lo[j], v if abs(v) <= _MAXF else _INF)
        for j in range(w):
            v = _f64(row[j])
            hi[j] = _maxnum(hi[j], v if abs(v) <= _MAXF else -_INF)
    for j in range(w):
        s[j] = _center(s[j] / cnt[j], org[j])  # see _tile_moments
    for r in range(r0, r1):
        row = x[r, c0 : c0 + w]
        for j in range(w):
            v = _f64(row[j])
            d = v - s[j] if abs(v) <= _MAXF else 0.0
            c[j] += d
            q[j] += d * d
    _tile_finish(s, cnt, c, q, w, si, sf, top, org)
    nnf = si[1, top]
    n_zero = si[2, top]
    for j in range(w):
        nnf[j] = np.int64((r1 - r0) - cnt[j])
        n_zero[j] = np.int64(nz[j])
        empty = cnt[j] == 0.0
        lo[j] = np.nan if empty else lo[j]
        hi[j] = np.nan if empty else hi[j]


@njit(**_opts)
def _merge_cols(kind, si, sf, a, b, o):
    """merge_into for every column of the tile stacks (axis 1 is the slot)."""
    for j in range(si.shape[2]):
        n, m, q = merge_moments(si[0, a, j], sf[0, a, j], sf[1, a, j],
                                si[0, b, j], sf[0, b, j], sf[1, b, j])
        si[0, o, j] = n
        sf[0, o, j] = m
        sf[1, o, j] = q
    if kind == SUMMARY:
        for j in range(si.shape[2]):
            si[1, o, j] = si[1, a, j] + si[1, b, j]
            si[2, o, j] = si[2, a, j] + si[2, b, j]
            sf[2, o, j] = _fmin(sf[2, a, j], sf[2, b, j])
            sf[3, o, j] = _fmax(sf[3, a, j], sf[3, b, j])


@njit(**_opts)
def _col_chunk(kind, x, t0, t1, rows_per_tile, c0, w, si_out, sf_out, o, org):
    """Per-column states of tiles t0..t1 (rows) at columns c0..c0+w, into chunk
    ``o``, means relative to ``org`` (that block of columns' origins)."""
    if kind == MOMENTS:
        _col_chunk_dense(x, t0, t1, rows_per_tile, c0, w, si_out, sf_out, o, org)
        return
    k = x.shape[0]
    si = np.empty((N_INT, STACK, w), np.int64)
    sf = np.empty((N_FLOAT, STACK, w), np.float64)
    ws = np.empty((5, w))
    top = 0
    for t in range(t0, t1):
        r0 = t * rows_per_tile
        r1 = min(k, r0 + rows_per_tile)
        if kind == SUMMARY:
            _tile_summary(x, r0, r1, c0, w, ws, si, sf, top, org)
        else:
            _tile_moments(kind, x, r0, r1, c0, w, ws, si, sf, top, org)
        top += 1
        kk = t - t0 + 1
        while kk & 1 == 0:
            _merge_cols(kind, si, sf, top - 2, top - 1, top - 2)
            top -= 1
            kk >>= 1
    while top > 1:
        _merge_cols(kind, si, sf, top - 2, top - 1, top - 2)
        top -= 1
    for f in range(si_out.shape[0]):
        for j in range(w):
            si_out[f, o, c0 + j] = si[f, 0, j]
    for f in range(sf_out.shape[0]):
        for j in range(w):
            sf_out[f, o, c0 + j] = sf[f, 0, j]


@njit(**_opts)
def column_origins(x):
    """The origin of each column's means (see _row_origin) of the (k, m) array
    ``x``: the median of its first, middle and last values, or the first of
    them that is finite; else the first finite value among the first
    ORIGIN_SCAN rows (0.0 if none is): one of the values, as for rows, which
    the tiles center on where a column's mean is that close (see _center).
    Three samples, since every call pays for them; one outlier among them
    cannot pull the origin away."""
    k, m = x.shape
    org = np.zeros(m)
    if k == 0:
        return org
    for j in range(m):
        a = _f64(x[0, j])
        b = _f64(x[k // 2, j])
        c = _f64(x[k - 1, j])
        fa, fb, fc = abs(a) <= _MAXF, abs(b) <= _MAXF, abs(c) <= _MAXF
        if fa and fb and fc:
            org[j] = max(min(a, b), min(max(a, b), c))
        elif fa:
            org[j] = a
        elif fb:
            org[j] = b
        elif fc:
            org[j] = c
        else:
            for i in range(1, min(k, ORIGIN_SCAN)):
                v = _f64(x[i, j])
                if abs(v) <= _MAXF:
                    org[j] = v
                    break
    return org


@njit(**_opts)
def means_from_origins(sf, org):
    """_from_origin for every slot of (field, m) state arrays, in place."""
    for j in range(org.size):
        _from_origin(sf, j, org[j])


@njit(parallel=True, **_opts)
def reduce_cols(kind, x, org, si_out, sf_out):
    """States of each column of the C-contiguous 2-D array ``x`` (shape (k, m)),
    means relative to the columns' origins ``org`` (see column_origins)."""
    k, m = x.shape
    ni, nf = n_fields(kind)
    if k == 0 or m == 0:
        for j in range(m):
            set_empty(kind, si_out, sf_out, j)
        return si_out, sf_out
    w_max = min(m, TILE_COLS)
    rows_per_tile = max(1, TILE_BYTES // (w_max * x.itemsize))
    n_tiles = (k + rows_per_tile - 1) // rows_per_tile
    n_chunks = (n_tiles + CHUNK - 1) // CHUNK
    n_colblocks = (m + w_max - 1) // w_max
    si_c = np.empty((ni, n_chunks, m), np.int64)
    sf_c = np.empty((nf, n_chunks, m), np.float64)
    for task in prange(n_chunks * n_colblocks):
        ch = task // n_colblocks
        cb = task - ch * n_colblocks
        c0 = cb * w_max
        w = min(m, c0 + w_max) - c0
        _col_chunk(kind, x, ch * CHUNK, min(n_tiles, (ch + 1) * CHUNK), rows_per_tile,
                   c0, w, si_c, sf_c, ch, org[c0 : c0 + w])
    for j in prange(m):
        _fold_chunks(kind, si_c[:, :, j], sf_c[:, :, j], 0, n_chunks, si_out, sf_out, j)
    return si_out, sf_out


# -- many arrays at once, from a table of addresses --------------------------------


@intrinsic
def _as_voidptr(typingctx, address):
    """An integer address as a void pointer, so carray can view foreign memory."""
    sig = types.voidptr(types.intp)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen


@njit(**_opts)
def address(a):
    """The address of ``a``'s first element."""
    return a.ctypes.data


@njit(**_opts)
def _table_chunk(kind, address, size, code, b0, b1, si, sf, o, origin):
    # Each array takes the same path as a row of reduce_rows, so results match it bit for bit.
    if size <= SMALL_ROW:
        if code == 1:
            y64 = carray(_as_voidptr(address), (1, size), np.float64)
            _small_rows(kind, y64, 0, 1, si, sf, o)
        else:
            y32 = carray(_as_voidptr(address), (1, size), np.float32)
            _small_rows(kind, y32, 0, 1, si, sf, o)
        return
    if code == 1:
        _row_chunk(kind, carray(_as_voidptr(address), size, np.float64), b0, b1, si, sf, o, origin)
    else:
        _row_chunk(kind, carray(_as_voidptr(address), size, np.float32), b0, b1, si, sf, o, origin)


@njit(**_opts)
def _table_origin(address, size, code):
    """_row_origin of the array at ``address``, as _table_chunk reads it."""
    if size <= SMALL_ROW:
        return 0.0
    if code == 1:
        return _row_origin(carray(_as_voidptr(address), size, np.float64))
    return _row_origin(carray(_as_voidptr(address), size, np.float32))


@njit(**_opts)
def _balanced_order(owner, first, sizes, n_threads):
    """A visiting order of the tasks that gives each thread's contiguous share
    of a static schedule about equal work: largest first, dealt round-robin.
    Each task writes its own slot, so the order never changes a result."""
    total = owner.size
    work = np.empty(total, np.int64)
    for t in range(total):
        a = owner[t]
        work[t] = min(CHUNK * BLOCK, sizes[a] - (t - first[a]) * CHUNK * BLOCK) + 64
    by_size = np.argsort(-work, kind="mergesort")
    perm = np.empty(total, np.int64)
    j = 0
    for lane in range(n_threads):
        for r in range(lane, total, n_threads):
            perm[j] = by_size[r]
            j += 1
    return perm


@njit(parallel=True, **_opts)
def reduce_table(kind, addresses, sizes, codes, n_threads, si_out, sf_out):
    """States of many 1-D contiguous float32/float64 arrays given by address.

    Each array is split exactly as one row of :func:`reduce_rows`, so its state
    is bit-identical to reducing it alone.
    """
    n = addresses.size
    first = np.empty(n + 1, np.int64)
    first[0] = 0
    for a in range(n):
        first[a + 1] = first[a] + _n_chunks(sizes[a])
    total = first[n]
    owner = np.empty(total, np.int64)
    for a in range(n):
        for t in range(first[a], first[a + 1]):
            owner[t] = a
    si_c = np.empty((N_INT, total), np.int64)
    sf_c = np.empty((N_FLOAT, total), np.float64)
    perm = _balanced_order(owner, first, sizes, n_threads)
    origins = np.empty(n)
    for a in range(n):
        origins[a] = _table_origin(addresses[a], sizes[a], codes[a])
    for j in prange(total):
        t = perm[j]
        a = owner[t]
        size = sizes[a]
        if size == 0:
            set_empty(kind, si_c, sf_c, t)
            continue
        nb = (size + BLOCK - 1) // BLOCK
        c = t - first[a]
        _table_chunk(kind, addresses[a], size, codes[a], c * CHUNK,
                     min(nb, (c + 1) * CHUNK), si_c, sf_c, t, origins[a])
    if total < FOLD_PARALLEL_MIN:
        for a in range(n):
            _fold_chunks(kind, si_c, sf_c, first[a], first[a + 1] - first[a], si_out, sf_out, a)
            _from_origin(sf_out, a, origins[a])
        return si_out, sf_out
    for a in prange(n):
        _fold_chunks(kind, si_c, sf_c, first[a], first[a + 1] - first[a], si_out, sf_out, a)
        _from_origin(sf_out, a, origins[a])
    return si_out, sf_out


# -- elementwise merge and pairwise reduction of existing states ------------------


@njit(**_opts)
def merge_state_arrays(kind, si_a, sf_a, si_b, sf_b):
    """Elementwise merge of two (field, n) state arrays."""
    n = si_a.shape[1]
    si = np.empty_like(si_a)
    sf = np.empty_like(sf_a)
    for i in range(n):
        merge_into(kind, si_a, sf_a, i, si_b, sf_b, i, si, sf, i)
    return si, sf


# Outputs are allocated by NumPy and passed in: NumPy's allocator asks for
# huge pages, Numba's does not, and page faults on fresh output memory cost as
# much as the merge itself (measured: 416 ms against 86 ms for 10M elements).


@njit(parallel=True, **_opts)
def merge_moment_arrays(na, ma, qa, nb, mb, qb, nn, mm, qq):
    """Elementwise merge of two equally shaped, flat (count, mean, m2) arrays;
    returns how many counts passed int64's range (a sum of two counts below
    2**63 that does wraps to a negative number)."""
    wrapped = 0
    for i in prange(na.size):
        nn[i], mm[i], qq[i] = merge_moments(na[i], ma[i], qa[i], nb[i], mb[i], qb[i])
        wrapped += 1 if nn[i] < 0 else 0
    return wrapped


@njit(parallel=True, **_opts)
def merge_extremes_arrays(lo_a, hi_a, lo_b, hi_b, lo, hi):
    """Elementwise merge of the min and max fields of summaries."""
    for i in prange(lo_a.size):
        lo[i] = _fmin(lo_a[i], lo_b[i])
        hi[i] = _fmax(hi_a[i], hi_b[i])


@njit(parallel=True, **_opts)
def reduce_state_rows(kind, si_in, sf_in, si_out, sf_out):
    """Pairwise-merge each row of (field, m, k) state arrays along k."""
    m = si_in.shape[1]
    k = si_in.shape[2]
    ni, nf = n_fields(kind)
    for i in prange(m):
        si = np.empty((N_INT, STACK), np.int64)
        sf = np.empty((N_FLOAT, STACK), np.float64)
        top = 0
        for j in range(k):
            for f in range(ni):
                si[f, top] = si_in[f, i, j]
            for f in range(nf):
                sf[f, top] = sf_in[f, i, j]
            top = carry_push(kind, si, sf, top, j)
        carry_finish(kind, si, sf, top)
        copy_slot(si, sf, 0, si_out, sf_out, i)
    return si_out, sf_out


# -- serial twins -----------------------------------------------------------------
# A parallel region costs tens of microseconds to start, and far more when
# another library's threads (OpenBLAS after a matmul) are spinning on the same
# cores, so small inputs take these single-threaded twins. They run the same
# code with prange as range, so results are bit-identical.


def _serial_twin(dispatcher):
    f = dispatcher.py_func
    g = pytypes.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial",
                             f.__defaults__, f.__closure__)
    g.__qualname__ = f.__qualname__ + "_serial"  # its own on-disk cache entry
    g.__doc__ = f.__doc__
    return njit(**_opts)(g)


reduce_rows_serial = _serial_twin(reduce_rows)
short_row_moments_serial = _serial_twin(short_row_moments)
reduce_cols_serial = _serial_twin(reduce_cols)
reduce_table_serial = _serial_twin(reduce_table)
merge_moment_arrays_serial = _serial_twin(merge_moment_arrays)
merge_extremes_arrays_serial = _serial_twin(merge_extremes_arrays)
reduce_state_rows_serial = _serial_twin(reduce_state_rows)
