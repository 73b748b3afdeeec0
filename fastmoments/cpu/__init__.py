"""The CPU wing: NumPy arrays reduced by the Numba kernels of this package.

Implements the backend protocol described in :mod:`fastmoments._dispatch`.
The kernels are modules layered bottom-up (see :mod:`.base`, which also
describes the state layout): :mod:`.columns`, :mod:`.rows`,
:mod:`.short_rows` and :mod:`.table` reduce data, :mod:`.merges` states;
:mod:`.layout` maps any axes to the row or column kernels.
"""

from __future__ import annotations

import functools
import math
import threading

import numba
import numpy as np

from .. import _histogram as _hist
from .._inputs import COUNT_OVERFLOW, check_dtype, check_not_masked, weights_error
from . import _cache

_cache.install()  # before any kernel module loads

from .base import MOMENTS, MOMENTS_SKIPNA, SUMMARY, n_fields  # noqa: E402
from .blocks import scaled_redo  # noqa: E402
from .columns import reduce_cols, reduce_cols_serial  # noqa: E402
from .layout import plan  # noqa: E402
from .merges import (  # noqa: E402
    fold_state_rows,
    merge_extremes_arrays,
    merge_extremes_arrays_serial,
    merge_moment_arrays,
    merge_moment_arrays_serial,
    merge_state_arrays,
    reduce_state_rows,
    reduce_state_rows_serial,
)
from .origins import column_origins, means_from_origins  # noqa: E402
from .rows import SMALL_ROW, reduce_rows, reduce_rows_serial  # noqa: E402
from .short_rows import short_row_moments, short_row_moments_serial  # noqa: E402
from .table import address, reduce_table, reduce_table_serial  # noqa: E402
from . import weighted as WK  # noqa: E402
from .comoments import center_rows  # noqa: E402,F401 (the backend op)
from . import histogram as HK  # noqa: E402

# The kernels' copy of the histogram layout must be the package's.
assert (HK.MIN_EXPONENT, HK.MAX_EXPONENT, HK.N_BINS) == (_hist.MIN_EXPONENT, _hist.MAX_EXPONENT, _hist.N_BINS)

__all__ = ["xp", "asarray", "moments", "summarize", "summarize_each", "weighted_moments", "merge", "reduce"]

xp = np

_KIND = {"moments": MOMENTS, "summary": SUMMARY}

# Below this many values a parallel region costs more than it saves. Long
# rows and elementwise merges split into equal parts from far fewer values
# than the column and short-row kernels, whose tasks are 1 MiB tiles and
# batches of rows. Measured on a 2-core AMD EPYC KVM VM, 2026-11-28, medians
# of 40, parallel against serial, data in cache / evicted first: float64
# moments of 131,072 values 32/39 and 105/120 us, summary 38/50 and 115/141;
# float32 moments 28/31 and 92/96; merges of 65,536 states 238/382 and
# 306/495; but (N, 16) short rows of 262,144 values 115/110 and 221/209.
PARALLEL_MIN = 1 << 19
PARALLEL_MIN_STREAM = 1 << 17
# summarize_each serves per-iteration gradient monitoring, called right after
# the framework's BLAS calls whose threads still spin on every core: a
# parallel region then waits for them (measured on an 8x512 MLP, 2 cores:
# +56% per iteration parallel, +10% serial), so it goes parallel only for
# models large enough to amortize that.
PARALLEL_MIN_EACH = 1 << 23


def _pick(parallel_kernel, serial_kernel, size, threshold=PARALLEL_MIN):
    return parallel_kernel if size >= threshold and _may_go_parallel() else serial_kernel


def _may_go_parallel():
    """Whether this thread may start a parallel region. Not where it has asked
    Numba for one thread (``numba.set_num_threads(1)``, a per-thread setting):
    the serial kernel does the same work without a region. Numba's workqueue
    layer, its fallback where neither TBB nor OpenMP is installed, aborts the
    whole process when two threads are in parallel regions at once, as under
    dask's threaded scheduler; with it, only the main thread goes parallel."""
    if numba.get_num_threads() < 2:
        return False
    return threading.current_thread() is threading.main_thread() or _threadsafe_layer()


@functools.cache
def _threadsafe_layer():
    try:
        from numba.np.ufunc import parallel

        parallel._launch_threads()  # the layer is chosen when the threads start
        return numba.threading_layer() != "workqueue"
    except Exception:  # a Numba without these: take the safe side
        return False


# n_fields of each kind, looked up without a call into Numba (~1 us per call).
_N_FIELDS = {kind: n_fields.py_func(kind) for kind in (MOMENTS, MOMENTS_SKIPNA, SUMMARY)}


def _outputs(kind, n):
    """State arrays for ``n`` results, allocated by NumPy (see merges.merge_moment_arrays)."""
    ni, nf = _N_FIELDS[kind]
    return np.empty((ni, n), np.int64), np.empty((nf, n), np.float64)


def _run(kernel, kind, n, *args):
    si, sf = _outputs(kind, n)
    kernel(kind, *args, si, sf)
    return si, sf


_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


def asarray(x) -> np.ndarray:
    """A NumPy array of a dtype the kernels read; never modifies ``x``."""
    if type(x) is np.ndarray and (x.dtype is _F32 or x.dtype is _F64):
        return x  # the common case, without the checks below (summarize_each: per array)
    check_not_masked(x)
    a = np.asarray(x)
    check_dtype(a.dtype)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype == np.float16:
        # Numba has no float16 arithmetic on the CPU: widen once, exactly.
        a = a.astype(np.float32)
    return a


def _unpack(kind, si, sf, shape):
    # Fields are views of these two arrays; freezing them freezes the views.
    si.flags.writeable = False
    sf.flags.writeable = False
    si = si.reshape(si.shape[:1] + shape)
    sf = sf.reshape(sf.shape[:1] + shape)
    # [i, ...], not [i]: a full reduction's fields stay 0-d arrays, not NumPy scalars.
    if kind == SUMMARY:
        return (si[0, ...], sf[0, ...], sf[1, ...], sf[2, ...], sf[3, ...], si[1, ...], si[2, ...])
    return (si[0, ...], sf[0, ...], sf[1, ...])


def _elementwise(kind, x):
    """States of single values (an empty tuple of axes)."""
    v = x.astype(np.float64)
    finite = np.isfinite(v)
    if kind == SUMMARY:
        one = finite.astype(np.int64)
        return (one, np.where(finite, v, np.nan), np.zeros(v.shape),
                np.where(finite, v, np.nan), np.where(finite, v, np.nan),
                1 - one, (v == 0).astype(np.int64))
    if kind == MOMENTS_SKIPNA:
        # A NaN left out is the empty state (count 0, m2 0); a kept +-Inf has
        # m2 NaN, as without skipna and as np.nanvar(np.inf).
        ok = ~np.isnan(v)
        return ok.astype(np.int64), np.where(ok, v, np.nan), np.where(finite | ~ok, 0.0, np.nan)
    return np.ones(v.shape, np.int64), v, np.where(finite, 0.0, np.nan)


# Column sets narrower than this many bytes per row are widened so the inner
# loops vectorize. Measured at 400 MB, 2 threads, (N, 3) and (N, 16): 128 B
# beat 64 and 256 B for float64 and float32 alike (0.55-0.68 of the read bound
# against 0.36-0.50).
NARROW_BYTES = 128


def _copies(m, itemsize):
    """How many interleaved copies of ``m`` columns make one widened row: at
    least NARROW_BYTES, and a whole number of 64-byte lines, so every row is
    whole vectors with no scalar remainder (e.g. float32 (N, 3): 16 copies,
    192 B, not 11 copies, 132 B). Four paired rounds at 200 MB, 2 threads
    of a 2-core AMD EPYC KVM VM, 2026-11-28, fraction of the read bound,
    old -> new: (N, 3) float32 0.28-0.51 -> 0.39-0.69, float64 0.51-0.74 ->
    0.57-0.75; (N, 5) float32 0.54-0.68 -> 0.63-0.93; (N, 7) float64
    0.63-0.88 -> 0.73-1.00."""
    row = m * itemsize
    g = 64 // math.gcd(row, 64)
    while g * row < NARROW_BYTES:
        g *= 2
    return g


def _reduce_cols(kind, x2):
    """Column states of (k, m) ``x2``. Narrow arrays are viewed as (k/g, g*m):
    the g interleaved copies of each column are reduced side by side in
    vector-wide loops, then merged pairwise; the leftover rows are merged last.
    Until the end, every mean is relative to its column's origin, so that all
    these merges keep the means' digits (see origins.column_origins)."""
    k, m = x2.shape
    cols_kernel = _pick(reduce_cols, reduce_cols_serial, x2.size)
    g = _copies(m, x2.dtype.itemsize) if 0 < m * x2.dtype.itemsize < NARROW_BYTES else 1
    org = column_origins(x2)
    if g == 1 or k < 2 * g:
        si, sf = _run(cols_kernel, kind, m, x2, org)
        means_from_origins(sf, org)
        return _redo_overflowed_columns(kind, x2, si, sf)
    body = k - k % g
    si, sf = _run(cols_kernel, kind, g * m, x2[:body].reshape(body // g, g * m), np.tile(org, g))
    si = np.ascontiguousarray(si.reshape(-1, g, m).transpose(0, 2, 1))
    sf = np.ascontiguousarray(sf.reshape(-1, g, m).transpose(0, 2, 1))
    si, sf = _run(reduce_state_rows_serial, kind, m, si, sf)
    if body < k:
        ti, tf = _run(reduce_cols_serial, kind, m, x2[body:], org)
        si, sf = merge_state_arrays(kind, si, sf, ti, tf)
    means_from_origins(sf, org)
    return _redo_overflowed_columns(kind, x2, si, sf)


def _redo_overflowed_columns(kind, x2, si, sf):
    """Columns whose values are within float64's range but whose sums are not
    (|v| > 1.8e308 / n) came out with an inf or NaN mean: each is summed
    again as the row kernels redo theirs (blocks.scaled_redo). Rare: one
    check of the output otherwise."""
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(sf[0]) <= np.finfo(np.float64).max) & (si[0] > 0)
    for j in np.flatnonzero(bad):
        ok, mean, m2 = scaled_redo(kind, np.ascontiguousarray(x2[:, j], dtype=np.float64))
        if ok:
            sf[0, j], sf[1, j] = mean, m2
    return si, sf


def _short_row_moments(x2, out_shape):
    """Moments of short rows. Their output is as big as their input, so the
    count, the row length for every row, is a broadcast view: no bytes written."""
    m, k = x2.shape
    mean, m2 = np.empty(m), np.empty(m)
    _pick(short_row_moments, short_row_moments_serial, x2.size)(x2, mean, m2)
    mean.flags.writeable = False
    m2.flags.writeable = False
    count = np.broadcast_to(np.int64(k), out_shape)
    return count, mean.reshape(out_shape), m2.reshape(out_shape)


def _zero_one_bytes(x2):
    """Bool rows of at most SMALL_ROW values as their bytes (uint8), where
    every byte is 0 or 1, else as they are. The kernels read a bool as 1.0
    for any nonzero byte (_llvm._f64), which costs the scalar transposes of
    short rows a compare per value (skipna and summary rows of 3 to 64 values
    took 10-18% longer); one read of the bytes (NumPy's max, ~1% of those
    paths) proves the plain byte conversion exact. Never a copy."""
    u = x2.view(np.uint8)
    return u if u.size and u.max() <= 1 else x2


def _reduce_data(kind, x, axes):
    if not axes:
        return _elementwise(kind, x)
    mode, x2, out_shape = plan(x, axes)
    if mode == "rows" and kind == MOMENTS and 0 < x2.shape[1] <= SMALL_ROW:
        return _short_row_moments(x2, out_shape)
    if mode == "rows":
        if x2.dtype == np.bool_ and x2.shape[1] <= SMALL_ROW:
            x2 = _zero_one_bytes(x2)
        rows_kernel = _pick(reduce_rows, reduce_rows_serial, x2.size, PARALLEL_MIN_STREAM)
        si, sf = _run(rows_kernel, kind, x2.shape[0], x2)
    else:
        si, sf = _reduce_cols(kind, x2)
    return _unpack(kind, si, sf, out_shape)


def moments(x, axes, skipna):
    return _reduce_data(MOMENTS_SKIPNA if skipna else MOMENTS, x, axes)


def summarize(x, axes, histogram=False):
    if not histogram:
        return _reduce_data(SUMMARY, x, axes)
    if 0 < len(axes) == x.ndim and x.dtype.char in "fd" and x.flags.c_contiguous:
        # A full reduction of float data is one array of summarize_each: its
        # histogram is counted in the same pass, and its fields are those of
        # the row kernel, bit for bit (reduce_table splits as reduce_rows).
        fields = summarize_each([x.reshape(-1)], True)
        return tuple(f.reshape(()) if i < 7 else f.reshape(-1) for i, f in enumerate(fields))
    fields = _reduce_data(SUMMARY, x, axes)
    return tuple(fields) + (_histograms(x, axes),)


def _histograms(x, axes):
    """The magnitude histograms of ``x`` over ``axes``: a second read of ``x``
    (transposed into a contiguous copy when the reduced axes are not its tail)."""
    out_shape = tuple(n for i, n in enumerate(x.shape) if i not in axes)
    if not axes:
        return _hist.elementwise(x)
    kept = [i for i in range(x.ndim) if i not in axes]
    m = int(np.prod(out_shape, dtype=np.int64))
    k = int(np.prod([x.shape[i] for i in axes], dtype=np.int64))  # not -1: m may be 0
    x2 = np.ascontiguousarray(x.transpose(kept + list(axes))).reshape(m, k)
    if x2.dtype == np.bool_:
        x2 = x2.view(np.uint8) != 0
    if x2.dtype.char not in "fd":  # the kernels count floats: values as float64, as the layout says
        x2 = x2.astype(np.float64)
    hist = np.zeros((m, _hist.N_BINS), np.int64)
    _pick(HK.count_rows, HK.count_rows_serial, x2.size, PARALLEL_MIN_STREAM)(x2, hist)
    hist.flags.writeable = False
    return hist.reshape(out_shape + (_hist.N_BINS,))


def _readable(a):
    """``a`` as a C-contiguous float32 or float64 array (a copy only if needed)."""
    dt = a.dtype  # native byte order already (asarray)
    if dt.char not in "fd":
        a = a.astype(np.float64 if dt.itemsize > 4 or dt.kind != "f" else np.float32)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


_NO_HIST = np.zeros((0, HK.N_BINS), np.int64)  # reduce_table without histograms


def summarize_each(arrays, histogram=False):
    # Per array this costs ~1 us of Python: address() takes 0.5 us where
    # __array_interface__ took 3.4, which was most of the call for ResNet-50.
    keep = [_readable(a) for a in arrays]  # alive while the kernel reads them by address
    n = len(keep)
    addresses = np.array([address(a) for a in keep], np.intp)
    sizes = np.array([a.size for a in keep], np.int64)
    codes = np.array([a.itemsize == 8 for a in keep], np.int8)
    hist = np.zeros((n, HK.N_BINS), np.int64) if histogram else _NO_HIST
    table_kernel = _pick(reduce_table, reduce_table_serial, int(sizes.sum()), PARALLEL_MIN_EACH)
    si, sf = _run(table_kernel, SUMMARY, n, addresses, sizes, codes, numba.get_num_threads(), hist)
    del keep
    fields = _unpack(SUMMARY, si, sf, (n,))
    if histogram:
        hist.flags.writeable = False
        fields += (hist,)
    return fields


def _flat_broadcast(a_fields, b_fields):
    shape = np.broadcast_shapes(a_fields[0].shape, b_fields[0].shape)

    def flat(f):
        if f.shape != shape:
            f = np.broadcast_to(f, shape)
        return np.ascontiguousarray(f).reshape(-1)

    return shape, [flat(f) for f in a_fields], [flat(f) for f in b_fields]


def merge(kind, a, b, checked=True):
    # The count check costs nothing here (the kernel flags wrapped sums), so
    # it is always done, whatever `checked` says.
    if kind.startswith("weighted"):
        return _merge_weighted(kind, a, b)
    shape, a, b = _flat_broadcast(a, b)
    size = a[0].size
    merge_moments = _pick(merge_moment_arrays, merge_moment_arrays_serial, size, PARALLEL_MIN_STREAM)
    n, m, q = np.empty(size, np.int64), np.empty(size), np.empty(size)
    if merge_moments(a[0], a[1], a[2], b[0], b[1], b[2], n, m, q):
        raise ValueError(COUNT_OVERFLOW)
    if kind == "moments":
        return n.reshape(shape), m.reshape(shape), q.reshape(shape)
    merge_extremes = _pick(merge_extremes_arrays, merge_extremes_arrays_serial, size, PARALLEL_MIN_STREAM)
    lo, hi = np.empty(size), np.empty(size)
    merge_extremes(a[3], a[4], b[3], b[4], lo, hi)
    tallies = a[5] + b[5], a[6] + b[6]
    if any(t.size and t.min() < 0 for t in tallies):
        raise ValueError(COUNT_OVERFLOW)
    return tuple(f.reshape(shape) for f in (n, m, q, lo, hi) + tallies)




def _check_count_sums(ints, axes):
    """ValueError where the counts merged along ``axes`` would pass int64's
    range: the merge tree's sums would wrap (only states built from huge
    counts get there; no data set has 2**63 values)."""
    for f in ints:
        if f.size and float(f.sum(axis=axes, dtype=np.float64).max()) >= 2.0**62:
            exact = np.asarray(f, dtype=object).sum(axis=axes)
            if np.max(exact) >= 2**63:
                raise ValueError(COUNT_OVERFLOW)


def reduce(kind, fields, axes):
    if not axes:
        return fields
    if kind.startswith("weighted"):
        return _reduce_weighted(kind, fields, axes)
    code = _KIND[kind]
    ndim = fields[0].ndim
    kept = [i for i in range(ndim) if i not in axes]
    out_shape = tuple(fields[0].shape[i] for i in kept)
    order = kept + list(axes)
    m = int(np.prod(out_shape, dtype=np.int64))
    k = int(np.prod([fields[0].shape[i] for i in axes], dtype=np.int64))
    # In field order the ints are (count[, n_nonfinite, n_zero]) and the floats
    # (mean, m2[, min, max]): exactly the kernels' state layout.
    ints = [f for f in fields if f.dtype == np.int64]
    floats = [f for f in fields if f.dtype != np.int64]
    _check_count_sums(ints, tuple(axes))
    si = np.stack([f.transpose(order).reshape(m, k) for f in ints])
    sf = np.stack([f.transpose(order).reshape(m, k) for f in floats])
    reduce_states = _pick(reduce_state_rows, reduce_state_rows_serial, si.shape[1] * si.shape[2])
    si_out, sf_out = _run(reduce_states, code, m, si, sf)
    return _unpack(code, si_out, sf_out, out_shape)


def fold(kind, fields):
    """Merge the states along axis 0 one at a time, left to right (see the
    protocol in fastmoments._dispatch): one call for what would be k - 1
    merges, for "moments" and "summary"; None for other kinds."""
    if kind not in _KIND:
        return None
    code = _KIND[kind]
    k = fields[0].shape[0]
    out_shape = fields[0].shape[1:]
    m = int(np.prod(out_shape, dtype=np.int64))
    ints = [f for f in fields if f.dtype == np.int64]
    floats = [f for f in fields if f.dtype != np.int64]
    si = np.concatenate([f.reshape(k * m) for f in ints]).reshape(len(ints), k * m)
    sf = np.concatenate([f.reshape(k * m) for f in floats]).reshape(len(floats), k * m)
    si_out, sf_out = _outputs(code, m)
    if fold_state_rows(code, si, sf, k, si_out, sf_out):
        raise ValueError(COUNT_OVERFLOW)
    return _unpack(code, si_out, sf_out, out_shape)


def combine_mean_std(mean1, std1, n1, mean2, std2, n2, ddof):
    """``fastmoments.combine_mean_std`` in one fused pass, for real means and
    stds and integer counts; None where the general path must take the
    inputs (other dtypes, masked arrays, values it refuses: its messages
    name the problem)."""
    from . import published

    args = (mean1, std1, n1, mean2, std2, n2)
    if any(isinstance(a, np.ma.MaskedArray) for a in args):
        return None
    arrays = [np.asarray(a) for a in args]
    if any(a.dtype.kind not in "biuf" for a in arrays) or any(a.dtype.kind not in "iu" for a in arrays[2::3]):
        return None
    if any(a.dtype == np.uint64 for a in arrays[2::3]):
        return None  # counts from 2**63 up: the general path refuses them
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        return None
    flat = [
        np.ascontiguousarray(np.broadcast_to(a, shape), dtype=np.int64 if i % 3 == 2 else np.float64).reshape(-1)
        for i, a in enumerate(arrays)
    ]
    size = flat[0].size
    mean, std, n = np.empty(size), np.empty(size), np.empty(size, np.int64)
    kernel = _pick(published.combine_arrays, published.combine_arrays_serial, size, PARALLEL_MIN_STREAM)
    bad, wrapped = kernel(*flat, ddof, mean, std, n)
    if bad:
        return None
    if wrapped:
        raise ValueError(COUNT_OVERFLOW)
    return mean.reshape(shape), std.reshape(shape), n.reshape(shape)


# -- weighted and higher-order moments (kinds "weighted2/3/4"; kernels in .weighted) --

_NO_WEIGHTS = np.zeros((1, 1))  # the kernels' stand-in for unweighted data, never read


def _as_read(a):
    """``a`` as float32/float64 the weighted kernels read: bools as 0/1
    whatever their byte, other dtypes as float64 (C-contiguous)."""
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype.char in "fd":
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)
    if a.dtype == np.bool_:
        a = a.view(np.uint8) != 0  # any nonzero byte is True
    return np.ascontiguousarray(a, dtype=np.float64)


def _weights_laid_out(w, mode, axes, shape2):
    """The weights laid out as ``plan`` laid out the data: the same transpose
    and reshape (a view where possible, else one copy; broadcast weights
    are expanded)."""
    kept = [i for i in range(w.ndim) if i not in axes]
    perm = kept + list(axes) if mode == "rows" else list(axes) + kept
    return _as_read(w.transpose(perm).reshape(shape2))


def _check_weight_tally(bad, w):
    if bad:
        raise ValueError(weights_error(w, np) or "weights must be non-negative and finite")


def _weighted_fields(si, sf, shape):
    si.flags.writeable = False
    sf.flags.writeable = False
    si = si.reshape(si.shape[:1] + shape)
    sf = sf.reshape(sf.shape[:1] + shape)
    return (si[0, ...],) + tuple(sf[f, ...] for f in range(sf.shape[0]))


def _weighted_elementwise(x, w, skipna, order):
    """States of single values (an empty tuple of axes)."""
    v = _as_read(x).astype(np.float64, copy=False)
    if w is None:
        wt = np.ones(v.shape)
    else:
        _check_weight_tally(weights_error(w, np) is not None, w)
        wt = _as_read(w).astype(np.float64, copy=False)
    take = wt > 0
    if skipna:
        take &= ~np.isnan(v)
    W = np.where(take, wt, 0.0)
    m = np.where(take, np.where(np.isfinite(v), 0.0, np.nan), 0.0)
    return (take.astype(np.int64), W, W * W, np.where(take, v, np.nan)) + tuple(m.copy() for _ in range(order - 1))


def _weighted_rows(ks, x2, w2):
    m = x2.shape[0]
    si, sf = np.empty((1, m), np.int64), np.empty((ks.order + 2, m))
    reduce_rows = _pick(ks.reduce_rows, ks.reduce_rows_serial, x2.size, PARALLEL_MIN_STREAM)
    return si, sf, reduce_rows(x2, w2, si, sf)


def _weighted_col_states(ks, x2, w2, org):
    m = x2.shape[1]
    si, sf = np.empty((1, m), np.int64), np.empty((ks.order + 2, m))
    return si, sf, _pick(ks.reduce_cols, ks.reduce_cols_serial, x2.size)(x2, w2, org, si, sf)


def _weighted_cols(ks, x2, w2):
    """Column states of (k, m) ``x2``, narrow ones as _reduce_cols reduces
    them: viewed as (k/g, g*m), g interleaved copies of each column reduced
    side by side, then merged pairwise, the leftover rows merged last; means
    relative to the columns' origins until the end."""
    k, m = x2.shape
    org = ks.column_origins(x2, w2)
    g = _copies(m, x2.dtype.itemsize) if 0 < m * x2.dtype.itemsize < NARROW_BYTES else 1
    if g == 1 or k < 2 * g:
        si, sf, bad = _weighted_col_states(ks, x2, w2, org)
    else:
        body = k - k % g
        rw = (lambda a: a.reshape(body // g, g * m)) if ks.weighted else (lambda a: a)
        si, sf, bad = _weighted_col_states(ks, x2[:body].reshape(body // g, g * m), rw(w2[:body]), np.tile(org, g))
        mk = WK.kernels_for(ks.order, True, False)  # merges: one compiled set per order
        si_in = np.ascontiguousarray(si.reshape(1, g, m).transpose(0, 2, 1))
        sf_in = np.ascontiguousarray(sf.reshape(-1, g, m).transpose(0, 2, 1))
        si, sf = np.empty((1, m), np.int64), np.empty((ks.order + 2, m))
        mk.reduce_state_rows_serial(si_in, sf_in, si, sf)
        if body < k:
            ti, tf, tbad = _weighted_col_states(ks, x2[body:], w2[body:] if ks.weighted else w2, org)
            bad += tbad
            fields = [np.empty(m, np.int64)] + [np.empty(m) for _ in range(ks.order + 2)]
            pad = [np.empty(0)] * (4 - ks.order)
            mk.merge_arrays_serial(si[0], *sf, *pad, ti[0], *tf, *pad, *fields, *pad)
            si, sf = fields[0].reshape(1, m), np.stack(fields[1:])
    ks.means_from_origins(sf, org)
    # Columns with a non-finite mean or moment: NaN or Inf taken, or values in
    # range whose sums are not. The row kernels, which tell these apart block
    # by block (and scale the latter), redo them from a transposed copy. Rare:
    # one check of the output otherwise.
    with np.errstate(invalid="ignore", over="ignore"):
        redo = np.flatnonzero(~np.isfinite(sf[2:].sum(axis=0)) & (si[0] > 0))
    if redo.size:
        rx = np.ascontiguousarray(x2[:, redo].T)
        rw = np.ascontiguousarray(w2[:, redo].T) if ks.weighted else w2
        ri, rf, _ = _weighted_rows(ks, rx, rw)
        si[:, redo] = ri
        sf[:, redo] = rf
    return si, sf, bad


def weighted_moments(x, w, axes, skipna, order):
    if not axes:
        return _weighted_elementwise(x, w, skipna, order)
    mode, x2, out_shape = plan(x, axes)
    x2 = _as_read(x2)
    ks = WK.kernels_for(order, w is not None, skipna)
    w2 = _NO_WEIGHTS if w is None else _weights_laid_out(w, mode, axes, x2.shape)
    if mode == "rows" and 0 < x2.shape[1] <= SMALL_ROW and x2.shape[0] > 1:
        # Short rows: a block each would cost more in calls than in sums.
        # Transposed (one copy), they are many columns, vector-wide.
        mode, x2 = "cols", np.ascontiguousarray(x2.T)
        w2 = w2 if w is None else np.ascontiguousarray(w2.T)
    if mode == "rows":
        si, sf, bad = _weighted_rows(ks, x2, w2)
    else:
        si, sf, bad = _weighted_cols(ks, x2, w2)
    _check_weight_tally(bad, w)
    return _weighted_fields(si, sf, out_shape)


def _merge_weighted(kind, a, b):
    order = int(kind[len("weighted"):])
    shape, a, b = _flat_broadcast(a, b)
    size = a[0].size
    ks = WK.kernels_for(order, True, False)
    none = np.empty(0)
    pad = [none] * (7 - len(a))
    out = [np.empty(size, np.int64)] + [np.empty(size) for _ in range(len(a) - 1)]
    merge_arrays = _pick(ks.merge_arrays, ks.merge_arrays_serial, size, PARALLEL_MIN_STREAM)
    if merge_arrays(*a, *pad, *b, *pad, *out, *pad):
        raise ValueError(COUNT_OVERFLOW)
    return tuple(f.reshape(shape) for f in out)


def _reduce_weighted(kind, fields, axes):
    order = int(kind[len("weighted"):])
    ndim = fields[0].ndim
    kept = [i for i in range(ndim) if i not in axes]
    out_shape = tuple(fields[0].shape[i] for i in kept)
    perm = kept + list(axes)
    m = int(np.prod(out_shape, dtype=np.int64))
    k = int(np.prod([fields[0].shape[i] for i in axes], dtype=np.int64))
    _check_count_sums(fields[:1], tuple(axes))
    si = np.ascontiguousarray(fields[0].transpose(perm).reshape(1, m, k), dtype=np.int64)
    sf = np.stack([f.transpose(perm).reshape(m, k) for f in fields[1:]]).astype(np.float64, copy=False)
    ks = WK.kernels_for(order, True, False)
    si_out, sf_out = np.empty((1, m), np.int64), np.empty((order + 2, m))
    _pick(ks.reduce_state_rows, ks.reduce_state_rows_serial, m * k)(si, sf, si_out, sf_out)
    return _weighted_fields(si_out, sf_out, out_shape)


# -- grouped moments and summaries (kernels in .grouped) ------------------------------

def _group_layout(x, labels, axis):
    """``x`` as (n, m) float rows along ``axis`` (a copy where ``axis`` is not
    the first, or ``x`` is not contiguous), the labels as int32/int64."""
    x2 = np.moveaxis(x, axis, 0)
    rest = x2.shape[1:]
    m = int(np.prod(rest, dtype=np.int64))  # not -1: no values along axis leaves -1 undefined
    x2 = _readable(x2.reshape(x2.shape[0], m)) if x2.size else x2.reshape(x2.shape[0], m).astype(np.float64)
    native = labels.dtype.isnative and (labels.dtype.char in "il" or labels.dtype == np.int64)
    lab = labels if native else labels.astype(np.int64)  # big-endian labels too: the kernels read native ints
    return x2, np.ascontiguousarray(lab), rest


def _grouped(kind, x, labels, axis, ngroups):
    from . import grouped as GK
    from .._inputs import label_error

    x2, lab, rest = _group_layout(x, labels, axis)
    n, m = x2.shape
    ks = GK.kernels_for(kind)
    ni, nf = _N_FIELDS[kind]
    slots = ngroups * m
    size = x2.size
    if GK.partitioned(m, ngroups):
        si, sf, sh, over = _grouped_partitioned(ks, x2, lab, ngroups, ni, nf)
    else:
        lanes = GK.lanes_for(lab, m, ngroups)
        mode = GK.scan_mode(lab, m, ngroups)
        rows = GK.task_rows(n, m, ngroups, lanes)
        ntask = max(-(-n // rows), 1)
        si = np.empty((ni, ntask, slots), np.int64)
        sf = np.empty((nf, ntask, slots), np.float64)
        sh = np.empty((ntask, slots), np.float64)
        bad, over = _pick(ks.group_tasks, ks.group_tasks_serial, size, PARALLEL_MIN_STREAM)(
            x2, lab, ngroups, rows, lanes, mode, si, sf, sh)
        if bad >= 0:
            raise ValueError(label_error(int(bad), ngroups))
    if si.shape[1] == 1:  # one task (the partitioned path): its states are the result
        si, sf = si[:, 0], sf[:, 0]
        sf[0] += sh[0]  # what merge_tasks does for one task, bit for bit: its mean + its shift
    else:
        si_out, sf_out = _outputs(kind, slots)
        _pick(ks.merge_tasks, ks.merge_tasks_serial, si.size, PARALLEL_MIN_STREAM)(si, sf, sh, si_out, sf_out)
        si, sf = si_out, sf_out
    if over:
        _redo_overflowed_groups(kind, x2, lab, si, sf, m)
    shape = (ngroups,) + rest
    fields = _unpack(kind, si, sf, shape)
    if axis != 0:
        fields = tuple(np.moveaxis(f, 0, axis) for f in fields)
    return fields


def _grouped_partitioned(ks, x2, lab, G, ni, nf):
    """One column in many groups: the values partitioned by label into
    buckets of groups (stable, so each group's values keep their order and
    the result does not depend on the threads), each bucket one task."""
    from . import grouped as GK
    from .._inputs import label_error

    n = lab.shape[0]
    nch = -(-n // GK.PART_CHUNK)
    nb = ((G - 1) >> GK.PART_BITS) + 1
    hist = np.zeros((nch, nb), np.int64)
    bad = _pick(ks.part_counts, ks.part_counts_serial, n, PARALLEL_MIN_STREAM)(lab, G, hist)
    if bad >= 0:
        raise ValueError(label_error(int(bad), G))
    starts = np.zeros(nb + 1, np.int64)
    np.cumsum(hist.sum(axis=0), out=starts[1:])
    off = starts[:-1] + np.cumsum(hist, axis=0) - hist
    vals = np.empty((int(starts[-1]), 1), x2.dtype)
    loc = np.empty(int(starts[-1]), np.int16)
    _pick(ks.part_scatter, ks.part_scatter_serial, n, PARALLEL_MIN_STREAM)(x2, lab, G, off, vals, loc)
    si = np.empty((ni, 1, G), np.int64)
    sf = np.empty((nf, 1, G), np.float64)
    sh = np.empty((1, G), np.float64)
    over = _pick(ks.bucket_tasks, ks.bucket_tasks_serial, n, PARALLEL_MIN_STREAM)(vals, loc, starts, G, si, sf, sh)
    return si, sf, sh, over


def _redo_overflowed_groups(kind, x2, lab, si, sf, m):
    """Slots whose finite values' sums passed float64's range (not their
    non-finite values' rules): each reduced again by the ungrouped kernels,
    which scale such sums. Rare."""
    with np.errstate(invalid="ignore"):
        finite = (np.abs(sf[0]) <= np.finfo(np.float64).max) & (sf[1] <= np.finfo(np.float64).max)
    for j in np.flatnonzero(~finite & (si[0] > 0)):
        g, c = divmod(int(j), m)
        vals = np.ascontiguousarray(x2[lab == g, c])
        fields = _reduce_data(kind, vals, (0,))
        # A summary's mean and m2 are of its finite values, so where they are
        # not finite its sums overflowed, non-finite values or not; so did
        # those of moments skipping NaN with no Inf among the values.
        if kind == SUMMARY or (not np.isinf(vals).any() if kind == MOMENTS_SKIPNA else np.isfinite(vals).all()):
            sf[0, j], sf[1, j] = fields[1], fields[2]


def group_moments(x, labels, axis, ngroups, skipna):
    return _grouped(MOMENTS_SKIPNA if skipna else MOMENTS, x, labels, axis, ngroups)


def group_summarize(x, labels, axis, ngroups):
    return _grouped(SUMMARY, x, labels, axis, ngroups)


def _redo_overflowed_weighted(x2, w2, lab, fields, took_nonfinite, m, skipna, order):
    """Slots of only finite values with a NaN or Inf field (sums that passed
    float64's range): each reduced again by the ungrouped kernels, which
    scale such sums. Rare."""
    count, _, _, mean, *ms = fields
    with np.errstate(invalid="ignore"):
        odd = ~np.isfinite(mean)
        for a in ms:
            odd |= ~np.isfinite(a)
    for j in np.flatnonzero(odd & (count > 0) & ~took_nonfinite):
        g, c = divmod(int(j), m)
        rows = lab == g
        vals = np.ascontiguousarray(x2[rows, c])
        wv = None if w2 is None else np.ascontiguousarray(w2[rows, c])
        for f, v in zip(fields, weighted_moments(vals, wv, (0,), skipna, order)):
            f[j] = v


def group_weighted_moments(x, w, labels, axis, ngroups, skipna, order):
    from . import grouped as GK
    from . import grouped_weighted as GW
    from .._inputs import label_error

    m = int(np.prod(np.delete(x.shape, axis), dtype=np.int64))
    if ngroups * m > GW.MAX_SLOTS:
        return None
    x2, lab, rest = _group_layout(x, labels, axis)
    n, m = x2.shape
    w2 = None
    if w is not None:
        msg = weights_error(w, np)
        if msg is not None:
            raise ValueError(msg)
        w2 = _as_read(np.moveaxis(w, axis, 0).reshape(n, m))
    slots = ngroups * m
    rows = GK.task_rows(n, m, ngroups)
    ntask = max(-(-n // rows), 1)
    cnt = np.empty((ntask, slots), np.int64)
    fl = np.empty((order + 2, ntask, slots), np.float64)
    sh = np.empty((ntask, slots), np.float64)
    nf = np.empty((ntask, slots), np.bool_)
    ks = GW.kernels()
    bad = _pick(ks._group_tasks, ks._group_tasks_serial, x2.size, PARALLEL_MIN_STREAM)(
        x2, w2, lab, ngroups, rows, order, bool(skipna), cnt, fl, sh, nf)
    if bad >= 0:
        raise ValueError(label_error(int(bad), ngroups))
    # Task means relative to one origin per slot (the shift of its first task
    # with values), merged, the origin added back: see merge_tasks.
    first = np.argmax(cnt > 0, axis=0)
    origin = sh[first, np.arange(slots)]
    fl[2] += sh - origin
    with np.errstate(invalid="ignore", over="ignore"):
        fields = [np.array(f) for f in _reduce_weighted(f"weighted{order}", (cnt,) + tuple(fl), (0,))]
        fields[3] += origin
    _redo_overflowed_weighted(x2, w2, lab, fields, nf.any(axis=0), m, skipna, order)
    fields = tuple(f.reshape((ngroups,) + rest) for f in fields)
    if axis != 0:
        fields = tuple(np.moveaxis(f, 0, axis) for f in fields)
    return fields
