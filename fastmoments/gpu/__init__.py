"""The GPU wing: the backend protocol of ``fastmoments._dispatch`` on CuPy arrays.

Loaded by the dispatch point only when a CuPy array is given, so importing
``fastmoments`` never imports CuPy. Nothing here copies data to the host or
synchronizes: results are CuPy arrays on the current device and stream.

Launches per call: ``moments``/``summarize``/``weighted_moments`` one
kernel, or two when a reduced slice is long enough to be split across blocks
(partial states, then a merge); ``summarize_each`` two whatever the number of
arrays; ``merge`` one ElementwiseKernel; ``reduce`` one kernel;
``group_moments``/``group_summarize``/``group_weighted_moments`` for few
groups x columns one kernel and a finalize (reading the largest label: one
synchronization; with float or signed weights, a second reads the kernel's
flag of bad weights); for more,
``group_summarize`` a sort and a gather of the rows into label order, then
the pair of ``summarize_each`` (reading the largest label and the table's
size: two synchronizations), and ``group_moments`` None (the caller's array
code serves).
``weighted_moments`` with float or signed integer weights also reads back one
flag (one synchronization) that its kernel sets for negative, NaN or
infinite weights. Layouts that do not fit the
kernels' three strided dimensions (see ``_layout``), and ``summarize_each``
inputs that are neither C- nor F-contiguous, are first copied to contiguous
memory (one more launch).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from .._histogram import N_BINS
from .._inputs import COUNT_OVERFLOW, check_dtype, weights_error
from .._pebay import empty_weighted, n_fields, order_of
from . import _sources as src
from ._layout import EACH_CHUNK, each_table, geometry, plan_joint
from ._layout import plan as _plan

try:
    import cupy
except ImportError:  # only reachable by importing fastmoments.gpu directly
    cupy = None

__all__ = ["xp", "asarray", "moments", "summarize", "summarize_each", "weighted_moments", "merge", "reduce",
           "group_moments", "group_weighted_moments", "group_summarize"]

xp = cupy

THREADS = src.THREADS
_NULL = np.uint64(0)


def _require():
    if cupy is None:
        raise ImportError(
            "fastmoments.gpu needs CuPy: pip install 'fastmoments[cuda13]' (or [cuda12])"
        )


def asarray(x):
    """``x`` as a CuPy array of an accepted dtype (a no-op for CuPy arrays)."""
    _require()
    a = cupy.asarray(x)
    check_dtype(a.dtype)
    return a


# -- field arrays ------------------------------------------------------------------

_INT_FIELDS = {
    src.MOMENTS: (True, False, False),
    src.SUMMARY: (True, False, False, False, False, True, True),
}


def _alloc(kind, shape):
    ints = _INT_FIELDS[src.SUMMARY if kind == src.SUMMARY else src.MOMENTS]
    return tuple(cupy.empty(shape, np.int64 if i else np.float64) for i in ints)


def _empty_states(kind, shape):
    """States with count 0: mean, min and max NaN, the rest 0."""
    nan_fields = (1, 3, 4)
    ints = _INT_FIELDS[src.SUMMARY if kind == src.SUMMARY else src.MOMENTS]
    return tuple(
        cupy.full(shape, np.nan) if j in nan_fields else cupy.zeros(shape, np.int64 if i else np.float64)
        for j, i in enumerate(ints)
    )


def _ptrs(fields):
    """The seven pointer arguments of a state (null for fields a kind lacks)."""
    return tuple(fields) + (_NULL,) * (7 - len(fields))


def _finalize_tpo(c):
    if c <= 2:
        return 1
    if c <= 512:
        return 32
    return THREADS


def _finalize(kind, M, C, offs, offs_stride, parts, outs, origin=_NULL, shift=_NULL):
    tpo = _finalize_tpo(C)
    from . import _kernels

    kern = _kernels.finalize_kernel(kind, tpo)
    grid = (M * tpo + THREADS - 1) // THREADS
    kern(
        (grid,),
        (THREADS,),
        (np.int64(M), np.int64(C), offs, np.int64(offs_stride), origin, shift, *_ptrs(parts), *_ptrs(outs)),
    )


# -- moments and summaries of data -------------------------------------------------


def _reduce_data(x, axes, kind, hist=None):
    """The states of ``x`` over ``axes``; with ``hist`` (zeroed int64 of
    shape ``(M, N_BINS)``), the kernels also count the magnitude histograms
    into it, in the same pass."""
    from . import _kernels

    out_shape = tuple(n for i, n in enumerate(x.shape) if i not in axes)
    M = math.prod(out_shape)
    K = math.prod(x.shape[i] for i in axes)
    if M == 0 or K == 0:
        return _empty_states(kind, out_shape)
    strides = tuple(s // x.itemsize for s in x.strides)
    p = _plan(x.shape, strides, axes)
    if p is None:
        # Reduced axes that are not one strided run: make them the contiguous tail.
        kept = [i for i in range(x.ndim) if i not in axes]
        x = cupy.ascontiguousarray(x.transpose(kept + list(axes)))
        p = _plan((M, K), (K, 1), (1,))
    outs = _alloc(kind, out_shape)
    segment, lane = _kernels.partial_kernels(x.dtype, kind)
    use_segment, C, chunk = geometry(p)
    parts = outs if C == 1 else _alloc(kind, (M * C,))
    # Split reductions: the partial means relative to each output's origin, which fm_finalize adds back.
    origin = None if C == 1 else cupy.zeros(M)
    common = (np.int64(C), np.int64(chunk), _NULL if origin is None else origin, *_ptrs(parts),
              _NULL if hist is None else hist)
    if use_segment:
        segment(
            (M * C,),
            (THREADS,),
            (x, np.int64(M), np.int64(p.B), np.int64(p.sA), np.int64(p.sB), np.int64(p.K), np.int64(p.sK))
            + common,
        )
    else:
        lane(
            (-(-M // 32), C),
            (32, THREADS // 32),
            (x, np.int64(M), np.int64(p.B), np.int64(p.sA), np.int64(p.sB), np.int64(p.K), np.int64(p.sK))
            + common,
        )
    if C > 1:
        _finalize(kind, M, C, _NULL, 0, parts, outs, origin)
    return outs


def moments(x, axes, skipna):
    """(count, mean, m2) of ``x`` over ``axes`` in one pass; see the protocol."""
    _require()
    with x.device:
        return _reduce_data(x, tuple(axes), src.MOMENTS_SKIPNA if skipna else src.MOMENTS)


def summarize(x, axes, histogram=False):
    """(count, mean, m2, min, max, n_nonfinite, n_zero) of the finite values of
    ``x`` (and, with ``histogram``, their magnitude histogram, counted by the
    same kernels)."""
    _require()
    axes = tuple(axes)
    with x.device:
        if not histogram:
            return _reduce_data(x, axes, src.SUMMARY)
        out_shape = tuple(n for i, n in enumerate(x.shape) if i not in axes)
        hist = cupy.zeros((math.prod(out_shape), N_BINS), np.int64)
        fields = _reduce_data(x, axes, src.SUMMARY, hist)
        return tuple(fields) + (hist.reshape(out_shape + (N_BINS,)),)


# -- many arrays, one launch ---------------------------------------------------------

_TABLES: OrderedDict = OrderedDict()
_TABLES_MAX = 32


def _table(rows):
    """The device table for ``rows`` of (ptr, size, code), cached by its content.

    A training loop passes the same parameter buffers every step, so after the
    first step no host-to-device copy (and no possible wait on it) is needed.
    """
    key = (cupy.cuda.runtime.getDevice(), rows)
    hit = _TABLES.get(key)
    if hit is not None:
        _TABLES.move_to_end(key)
        return hit
    host, total, max_chunks = each_table(rows, EACH_CHUNK)
    hit = (cupy.asarray(host), total, max_chunks)
    _TABLES[key] = hit
    if len(_TABLES) > _TABLES_MAX:
        _TABLES.popitem(last=False)
    return hit


def summarize_each(arrays, histogram=False):
    """The 7 summary fields of each array, each of shape ``(len(arrays),)``.

    Two launches whatever the number of arrays: per-chunk partial states of all
    arrays from one table of pointers, sizes and dtype codes, then one merge.
    """
    _require()
    n = len(arrays)
    if n == 0:
        empty = _empty_states(src.SUMMARY, (0,))
        return empty + (cupy.zeros((0, N_BINS), np.int64),) if histogram else empty
    devices = {a.device.id for a in arrays}
    if len(devices) > 1:
        raise ValueError(f"summarize_each takes arrays on one device, got devices {sorted(devices)}")
    with arrays[0].device:
        if not histogram:
            return _summarize_each(arrays)
        hist = cupy.zeros((n, N_BINS), np.int64)
        return tuple(_summarize_each(arrays, hist)) + (hist,)


def _summarize_each(arrays, hist=None):
    from . import _kernels

    n = len(arrays)
    keep = []  # contiguous copies, alive until their launch is queued
    rows = []
    for a in arrays:
        if not (a.flags.c_contiguous or a.flags.f_contiguous):
            a = cupy.ascontiguousarray(a)
            keep.append(a)
        rows.append((int(a.data.ptr), int(a.size), src.dtype_code(a.dtype)))
    table, total, max_chunks = _table(tuple(rows))
    if total == 0:
        return _empty_states(src.SUMMARY, (n,))
    parts = _alloc(src.SUMMARY, (total,))
    origin = cupy.zeros(n)  # each array's origin, written by its first chunk's block
    _kernels.each_kernel()(
        (total,),
        (THREADS,),
        (table, np.int64(n), np.int64(EACH_CHUNK), origin, *_ptrs(parts), _NULL if hist is None else hist),
    )
    outs = _alloc(src.SUMMARY, (n,))
    chunk0 = np.uint64(table.data.ptr + 2 * table.itemsize)  # column 2 of the table
    _finalize(src.SUMMARY, n, max_chunks, chunk0, 4, parts, outs, origin)
    del keep
    return outs


def group_moments(x, labels, axis, ngroups, skipna):
    """(count, mean, m2) per group of ``labels`` along ``axis`` in one pass, or
    None where the groups x columns are too many for it (see .grouped)."""
    _require()
    from .grouped import group_moments as run

    with x.device:
        return run(x, labels, axis, ngroups, skipna)


def group_weighted_moments(x, w, labels, axis, ngroups, skipna, order):
    """The fields of kind ``weighted<order>`` per group in one pass (``w``
    None or weights of ``x``'s shape, possibly a broadcast view), or None
    where the groups x columns are too many for it (see .grouped)."""
    _require()
    from .grouped import group_weighted_moments as run

    with x.device:
        return run(x, w, labels, axis, ngroups, bool(skipna), int(order))


def group_summarize(x, labels, axis, ngroups):
    """The 7 summary fields per group of ``labels`` along ``axis`` (see .grouped)."""
    _require()
    from .grouped import group_summarize as run

    with x.device:
        return run(x, labels, axis, ngroups)


# -- merging states ----------------------------------------------------------------


def merge(kind, a, b, checked=True):
    """Elementwise merge of two field tuples of ``kind``, with broadcasting.

    With ``checked``, counts whose sums pass int64 are a ValueError, at the
    cost of one synchronization (valid counts are non-negative, so a sum that
    passed the range wrapped to a negative number).
    """
    _require()
    from . import _kernels

    if kind not in src.MERGE_KERNELS:
        raise ValueError(f"unknown state kind {kind!r}")
    out = tuple(_kernels.merge_kernel(kind)(*a, *b))
    if checked and out[0].size:
        wrapped = out[0] < 0
        if kind == "summary":
            wrapped |= (out[5] < 0) | (out[6] < 0)
        if bool(wrapped.any()):
            raise ValueError(COUNT_OVERFLOW)
    return out


def reduce(kind, fields, axes, checked=True):
    """Merge the states of ``fields`` along ``axes``: sequential within a thread, then trees.

    With ``checked``, counts whose sums along ``axes`` pass int64 are a
    ValueError (one synchronization; exact only where a float64 sum comes
    near the range).
    """
    _require()
    fields = tuple(cupy.asarray(f) for f in fields)
    with fields[0].device:
        if checked and axes and fields[0].size:
            _check_count_sums([f for f in fields if f.dtype == np.int64], tuple(axes))
        return _reduce_states(kind, fields, tuple(axes))


def _check_count_sums(ints, axes):
    peak = max(float(f.sum(axis=axes, dtype=np.float64).max()) for f in ints)
    if peak >= 2.0**62:
        for f in ints:
            exact = np.asarray(f.get(), dtype=object).sum(axis=axes)
            if np.max(exact) >= 2**63:
                raise ValueError(COUNT_OVERFLOW)


def _reduce_states(kind, fields, axes):
    if kind.startswith("weighted"):
        return _reduce_weighted_states(order_of(kind), fields, axes)
    if kind not in ("moments", "summary"):
        raise ValueError(f"unknown state kind {kind!r}")
    k = src.SUMMARY if kind == "summary" else src.MOMENTS
    shape = fields[0].shape
    if not axes:
        return tuple(f.copy() for f in fields)
    kept = [i for i in range(len(shape)) if i not in axes]
    out_shape = tuple(shape[i] for i in kept)
    M = math.prod(out_shape)
    K = math.prod(shape[i] for i in axes)
    if M == 0 or K == 0:
        return _empty_states(k, out_shape)
    perm = kept + list(axes)
    parts = tuple(cupy.ascontiguousarray(f.transpose(perm)) for f in fields)
    outs = _alloc(k, out_shape)
    _finalize(k, M, K, _NULL, 0, parts, outs)
    return outs


# -- weighted and higher-order moments (fm_weighted.cu) ----------------------------------


def _walloc(order, shape):
    return (cupy.empty(shape, np.int64),) + tuple(cupy.empty(shape, np.float64) for _ in range(n_fields(order) - 1))


def _wptrs(fields):
    """The seven pointer arguments of a weighted state (null beyond its order)."""
    return tuple(fields) + (_NULL,) * (7 - len(fields))


def _wfinalize(order, M, C, origin, parts, outs, shift=_NULL):
    from . import _kernels

    tpo = _finalize_tpo(C)
    kern = _kernels.weighted_finalize_kernel(order, tpo)
    grid = (M * tpo + THREADS - 1) // THREADS
    kern((grid,), (THREADS,), (np.int64(M), np.int64(C), origin, shift, *_wptrs(parts), *_wptrs(outs)))


def weighted_moments(x, w, axes, skipna, order):
    """(count, sum_weights, sum_weights2, mean, m2[, m3[, m4]]) of ``x`` over
    ``axes`` in one pass, weighted by ``w`` (None: every value weighs 1); see
    the protocol in ``fastmoments._dispatch``.

    Weights are checked inside the kernel, which reads each of them anyway:
    for float and signed integer weights it sets a device flag on a negative,
    NaN or infinite weight, read back once after the launches (the one
    synchronization); only when it is set are the weights scanned again, by
    ``_inputs.weights_error``, for the message. Bool and unsigned weights
    cannot be bad and are not checked, so those calls, and unweighted ones,
    never synchronize.
    """
    _require()
    if w is not None and w.shape != x.shape:
        raise ValueError(f"weights of shape {w.shape} do not fit x of shape {x.shape}")
    with x.device:
        # The kernels read native byte order only (a rare copy otherwise).
        if not x.dtype.isnative:
            x = x.astype(x.dtype.newbyteorder("="))
        if w is not None and not w.dtype.isnative:
            w = w.astype(w.dtype.newbyteorder("="))
        return _weighted_data(x, w, tuple(axes), bool(skipna), int(order))


def _weighted_data(x, w, axes, skipna, order):
    from . import _kernels

    out_shape = tuple(n for i, n in enumerate(x.shape) if i not in axes)
    M = math.prod(out_shape)
    K = math.prod(x.shape[i] for i in axes)
    if M == 0 or K == 0:
        return empty_weighted(cupy, out_shape, order)
    strides = [tuple(s // x.itemsize for s in x.strides)]
    if w is not None:
        strides.append(tuple(s // w.itemsize for s in w.strides))
    plans = plan_joint(x.shape, strides, axes)
    if plans is None:
        # Reduced axes that are not one strided run (in x and w alike): make
        # them the contiguous tail of both.
        kept = [i for i in range(x.ndim) if i not in axes]
        perm = kept + list(axes)
        x = cupy.ascontiguousarray(x.transpose(perm))
        if w is not None:
            w = cupy.ascontiguousarray(w.transpose(perm))
        plans = plan_joint((M, K), [(K, 1)] * len(strides), (1,))
    p = plans[0]
    pw = plans[1] if w is not None else p._replace(sA=0, sB=0, sK=0)
    outs = _walloc(order, out_shape)
    segment, lane = _kernels.weighted_partial_kernels(x.dtype, None if w is None else w.dtype, order)
    use_segment, C, chunk = geometry(p)
    parts = outs if C == 1 else _walloc(order, (M * C,))
    origin = _NULL if C == 1 else cupy.empty(M, np.float64)
    checked = w is not None and w.dtype.kind not in "bu"
    bad = cupy.zeros((), np.int32) if checked else None
    args = (
        x, _NULL if w is None else w,
        np.int64(M), np.int64(p.B), np.int64(p.sA), np.int64(p.sB), np.int64(p.K), np.int64(p.sK),
        np.int64(pw.sA), np.int64(pw.sB), np.int64(pw.sK), np.int32(skipna), np.int64(C), np.int64(chunk),
        _NULL if bad is None else bad, origin, *_wptrs(parts),
    )
    if use_segment:
        segment((M * C,), (THREADS,), args)
    else:
        lane((-(-M // 32), C), (32, THREADS // 32), args)
    if C > 1:
        _wfinalize(order, M, C, origin, parts, outs)
    if bad is not None and bool(bad):
        raise ValueError(weights_error(w, cupy) or "weights must be non-negative and finite")
    return outs


def _reduce_weighted_states(order, fields, axes):
    shape = fields[0].shape
    if not axes:
        return tuple(f.copy() for f in fields)
    kept = [i for i in range(len(shape)) if i not in axes]
    out_shape = tuple(shape[i] for i in kept)
    M = math.prod(out_shape)
    K = math.prod(shape[i] for i in axes)
    if M == 0 or K == 0:
        return empty_weighted(cupy, out_shape, order)
    perm = kept + list(axes)
    parts = tuple(cupy.ascontiguousarray(f.transpose(perm)) for f in fields)
    outs = _walloc(order, out_shape)
    _wfinalize(order, M, K, _NULL, parts, outs)
    return outs
