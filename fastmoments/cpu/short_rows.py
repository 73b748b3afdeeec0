"""short_row_moments: (mean, m2) of rows of at most SMALL_ROW values.

Reducing (m, k) rows with k a handful of values writes a state per row, so
this path is as much a write as a read. Each row is reduced in registers, by
the corrected two-pass algorithm, with one specialisation per length (loops
unrolled, or four rows per vector step for 16, 32 and 64 values); the
count, k for every row, is not written at all (see cpu.moments). Summaries
and skipna of short rows go through :func:`.rows.reduce_rows` instead.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._llvm import _I32, _V4, _add_all, _f64, _lane_sums, _prefetch, _shuffle
from .base import _FAST, _MAXF, MOMENTS, _opts, _serial_twin
from .blocks import _SNAP, _center, _corrected_m2, scaled_redo


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


short_row_moments_serial = _serial_twin(short_row_moments)
