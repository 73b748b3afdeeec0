"""LLVM intrinsics and vector IR helpers for the CPU kernels.

Numba functions built from LLVM IR (``@intrinsic``): the value conversion
``_f64`` every kernel reads its data through, minnum/maxnum with chosen
fast-math flags, prefetches, an address as a pointer; and the IR builders
(shuffles, lane sums, fences, lane folds) of the hand-vectorized loops in
:mod:`.summaries` and :mod:`.short_rows`. No kernel, state or constant of
the statistics lives here: this module imports nothing of the package.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


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


# -- LLVM vector IR shared by the hand-vectorized loops -----------------------------


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


# -- foreign memory ---------------------------------------------------------------


@intrinsic
def _as_voidptr(typingctx, address):
    """An integer address as a void pointer, so carray can view foreign memory."""
    sig = types.voidptr(types.intp)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen
