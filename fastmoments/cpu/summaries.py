"""The summary of one block (n, mean, m2, min, max, n_nonfinite, n_zero).

Float blocks take one hand-vectorized loop (``_summary_sums``) that gathers
the shifted sums, min, max and zeros together, reading the block once;
integers take a loop of sums and zeros, then one of min and max. Blocks with
non-finite values start over in ``_block_summary_masked``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ._llvm import (
    _F64,
    _I32,
    _V4,
    _f64,
    _fence,
    _fold_lanes,
    _max_select,
    _maxnum,
    _maxnum_finite,
    _min_select,
    _minnum,
    _minnum_finite,
    _prefetch_ir,
    _shuffle,
)
from .base import _FAST, _INF, _MAXF, _opts
from .blocks import _corrected_m2, _first_finite, _scaled_moments, _shift


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

SUMMARY_STEP = 8  # values per block per iteration of the _summary_sums loop (float64)
SUMMARY_STEP_F32 = 16  # the same for float32


def _step_of(dtype):
    return SUMMARY_STEP_F32 if dtype == types.float32 else SUMMARY_STEP


def _summary_step(y):
    """Values per step of the _summary_sums loop over ``y``."""


@overload(_summary_step)
def _summary_step_impl(y):
    k = _step_of(y.dtype)
    return lambda y: k
# How far ahead the _summary_sums loop asks for its blocks' data. Measured with
# summarize_each on ResNet-50's parameters (2 threads of a 2-core AMD EPYC
# KVM VM, fraction of the read bound, 2-4 runs each, 2026-11-28): none
# 0.59-0.65, 512 B 0.70-0.72, 1 KiB 0.68-0.74, 2 KiB 0.58-0.71, 4 KiB
# 0.68-0.69; a 1-D float64 summary did best at 1 KiB (0.86-0.87, none 0.78-0.82).
SUMMARY_PREFETCH_BYTES = 1024


def _fusable(aty):
    """Whether _summary_sums reads arrays of Numba type ``aty``."""
    return (isinstance(aty, types.Array) and aty.ndim == 1 and aty.layout == "C"
            and aty.dtype in (types.float32, types.float64))


def _summary_sums(ns):
    """An intrinsic ``(ys, shifts) -> (s, q, lo, hi, nz)`` for a tuple of ``ns``
    equally long contiguous float32 or float64 blocks: over the first
    size//step*step values of each (``_summary_step``), in one loop, the sums of
    ``d = v - shift`` and of ``d * d`` (float64), the min and the max (in the
    input's type: exact) and the number of zeros, each as an ``ns``-tuple.

    LLVM vectorizes the sums, the min/max and the zero count each alone but
    not together, and three loops over a block (the later two from cache, with
    no memory reads in flight meanwhile) made summaries compute-bound. Here one
    loop does it all, 8 float64 or 16 float32 values per block per step; float32
    min, max and zeros take 16 lanes and its sums 8 (one 512-bit register
    each under AVX-512; ``summarize_each`` of an 8x512 MLP's 1.6 M float32
    gradients, 2-core AMD EPYC Zen 4 KVM VM, 2026-12-07, one thread: 311-313
    us against 352-357 with 8 values a step). Two blocks per loop (four needed more accumulators than the
    16 vector registers and spilled), each asking for its data
    SUMMARY_PREFETCH_BYTES ahead. Every sum's order is fixed by this code, so
    results are deterministic.

    The squares go into two accumulators per block, one per half of the step,
    by fused multiply-adds: ``mul, fma, add`` per step became two ``fma``,
    taking an addition off the adder ports the conversions and the other sums
    keep busy (float32 summarize_each of an 8x512 MLP's gradients in cache,
    2-core AMD EPYC (Zen 4) KVM VM, 2026-12-06: 420-422 us against 453-504,
    in a training step 614-647 against 628-707). Each chain still waits only
    on itself, one fma per step.
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
        narrow = aty.dtype == types.float32
        step = _step_of(aty.dtype)
        steps = b.udiv(n, ir.Constant(n.type, step))
        lanes = step if narrow else 4  # of the min, max and zero-count accumulators
        sw = step // 2  # lanes of the float64 sums
        vd = ir.VectorType(_F64, sw)
        ev = ir.VectorType(context.get_data_type(aty.dtype), lanes)
        cv = ir.VectorType(ir.IntType(32 if narrow else 64), lanes)
        shifts = []
        for j in range(ns):
            one = b.insert_element(ir.Constant(vd, ir.Undefined), b.extract_value(args[1], j), ir.Constant(_I32, 0))
            shifts.append(_shuffle(b, one, one, [0] * sw))
        init = dict(s=ir.Constant(vd, [0.0] * sw), q=ir.Constant(vd, [0.0] * sw), q1=ir.Constant(vd, [0.0] * sw),
                    lo=ir.Constant(ev, [float("inf")] * lanes), hi=ir.Constant(ev, [float("-inf")] * lanes),
                    nz=ir.Constant(cv, [0] * lanes))
        zeros = ir.Constant(ev, [0.0] * lanes)
        # fmuladd: fused where the CPU has FMA, a multiply and an add elsewhere.
        fma = cgutils.get_or_insert_function(b.module, ir.FunctionType(vd, [vd] * 3), f"llvm.fmuladd.v{sw}f64")

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
        at = b.mul(i, ir.Constant(n.type, step))
        new = []
        for j in range(ns):
            ptr = b.gep(arys[j].data, [at])
            _prefetch_ir(b, b.gep(ptr, [ir.Constant(n.type, SUMMARY_PREFETCH_BYTES * 8 // aty.dtype.bitwidth)]))
            if narrow:
                v = b.load(b.bitcast(ptr, ev.as_pointer()), align=4)
                vs = [v]
                w = b.fpext(v, ir.VectorType(_F64, step))
                halves = [_shuffle(b, w, w, list(range(sw))), _shuffle(b, w, w, list(range(sw, step)))]
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
            new.append(dict(s=s, q=b.call(fma, [d0, d0, a["q"]]), q1=b.call(fma, [d1, d1, a["q1"]]),
                            lo=lo, hi=hi, nz=nz))
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
            [_fold_lanes(b, b.fadd(x, y), lambda b, u, v: b.fadd(u, v)) for x, y in zip(out["q"], out["q1"])],
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
    for i in range(y.size - y.size % _summary_step(y), y.size):
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
