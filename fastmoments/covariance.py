"""Streaming, mergeable covariance: :func:`comoments` and the state :class:`CoMoments`.

A :class:`CoMoments` holds, for a batch of observations of ``d`` variables,
the count, the sums of weights and squared weights, the mean vector and
``c2``, the (weighted) sum over observations of the outer products of their
deviations from the mean. Two states merge exactly (Chan et al., Pebay):

    c2 = c2a + c2b + outer(d, d) * wa * wb / w,    d = mean_b - mean_a

so statistics of data split across batches, threads, devices or a cluster's
chunks combine without loss, and the covariance or correlation matrix is
derived on demand (``ddof`` and the kind of weights stay the caller's).

How :func:`comoments` is fast and exact: the observations are cut into blocks
of rows; each block is centered on a shift (in float64, whatever the input's
dtype, one block at a time so memory stays bounded) and its sums of products
come from one matrix product of the centered block (``xc.T @ xc``: NumPy
hands it to BLAS as ``syrk``; with weights the rows are scaled by
``sqrt(w)`` first). On the CPU one Numba pass (the backend's
``center_rows``) centers the block and sums its deviations; elsewhere (the
GPU) array code widens the block by a column of ones whose products are the
sums. Blocks are grouped into at most ``_LEAVES`` runs of consecutive rows
("leaves") that share one shift, the median of their first rows, so that a
leaf's products are summed about a point near its mean: the cancellation in
``c2 = P - w * outer(u, u)`` costs a factor of ``1 + |u|**2 / var``, usually
nothing. Leaf states keep their means relative to an origin (the first
leaf's shift) and merge in a fixed pairwise tree, so data far from zero
keeps the accuracy of a two-pass method, and the result depends only on the
data and its shape, never on the number of threads. On the CPU the leaves
are spread over a few Python threads, each running BLAS single-threaded
(OpenBLAS' own threads spin between calls and lose badly on loaded or small
machines); on a GPU the same array code runs on CuPy arrays (a cuBLAS
product per block).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._dispatch import backend_for, is_gpu_array
from ._inputs import COUNT_OVERFLOW, check_not_masked, check_weights_dtype, weights_error
from .state import Moments, _as_count, _check_ddof, _float_field

__all__ = ["CoMoments", "comoments"]

_INT64_MAX = 2**63 - 1

# -- blocks and leaves ------------------------------------------------------------------

#: Bytes of one centered float64 block on the CPU. The centering pass reads
#: the block from memory, the product then from cache; blocks past the L2
#: still win, by fewer calls (Python, BLAS set-up and the result's update per
#: block). Measured on the 2-core AMD EPYC KVM VM, 2026-12-06, (10**6, 64)
#: float64, two threads, against the per-core product of the centered array
#: (medians of 9 interleaved pairs): blocks of 256 KiB / 512 KiB / 1 / 2 /
#: 4 / 8 MiB at 0.59 / 0.71 / 0.78-0.84 / 0.79-0.88 / 0.77 / 0.72 of it.
BLOCK_BYTES_CPU = 1 << 21
#: Rows per block: at least BLOCK_ROWS_MIN and ``ROWS_PER_VAR`` times the
#: variables (a product over few rows against d is mostly the update of its
#: d x d result, which leaves the L2 from d ~ 400: single-threaded dsyrk of
#: (rows, 512) ran at 24 / 29 / 31 / 38 / 40 GFLOP/s for 256 / 512 / 1024 /
#: 2048 / 4096 rows, the whole (10**5, 512) at 33; comoments of (2*10**5,
#: 512) at 0.80-0.83 / 0.81-0.87 / 0.86-0.93 of the per-core bound with 2 /
#: 4 / 8 d rows, medians of 7 pairs in 2-4 runs, 2026-12-06), at most BLOCK_ROWS_MAX rows and
#: BLOCK_BYTES_MAX bytes.
BLOCK_ROWS_MIN, BLOCK_ROWS_MAX, ROWS_PER_VAR = 256, 16384, 8
BLOCK_BYTES_MAX = 1 << 24
#: A GPU block: big enough that one cuBLAS product fills the device.
BLOCK_BYTES_GPU = 1 << 27
#: A leaf's shift is the median of its first this many rows (see ``_shift``):
#: near enough to the leaf's mean for independent rows (the cancellation
#: costs a factor of 1 + |mean - shift|**2 / var), and cheap: the mean of a
#: whole first block took ~3% of the time.
SHIFT_ROWS = 64
#: At most this many leaves: enough for load balance over a few threads,
#: few enough that their shifts see many rows; and, where a d x d array takes
#: LEAF_BLOCKS_FROM bytes or more, at least LEAF_BLOCKS blocks a leaf (where
#: there are enough): each leaf and merge makes d x d arrays, which malloc
#: then maps afresh and whose pages cost their faults. (10**5, 512) on one
#: thread, 32 leaves: 33,000 faults, 0.99-1.07 s against 0.67-0.79 for the
#: product bound; 6 leaves: 6,700 faults, 0.81-0.90 s.
_LEAVES = 32
LEAF_BLOCKS, LEAF_BLOCKS_FROM = 8, 1 << 17


def _block_rows(n_vars, gpu):
    if gpu:  # the array code's blocks, widened by a column of ones
        rows = BLOCK_BYTES_GPU // (8 * (n_vars + 1))
        return int(min(max(rows, BLOCK_ROWS_MIN), BLOCK_ROWS_MAX * 64))
    row_bytes = 8 * max(n_vars, 1)
    rows = max(BLOCK_BYTES_CPU // row_bytes, ROWS_PER_VAR * n_vars, BLOCK_ROWS_MIN)
    return int(max(min(rows, BLOCK_ROWS_MAX, BLOCK_BYTES_MAX // row_bytes), 1))


def _plan(n, rows, d):
    """Leaves as (start, stop) row ranges, whole blocks each; depends only on
    n, rows and d."""
    nblocks = -(-n // rows)
    per_leaf = LEAF_BLOCKS if 8 * d * d >= LEAF_BLOCKS_FROM else 1
    nleaves = max(1, min(nblocks // per_leaf, _LEAVES))
    bounds = [min(n, (i * nblocks // nleaves) * rows) for i in range(nleaves + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(nleaves)]


# -- BLAS threads ------------------------------------------------------------------------

_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None  # the threadpoolctl limit in force while _blas_users > 0
_controller = None


def _blas_controller():
    """threadpoolctl's controller, or None where it is not installed."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl comes with scipy/sklearn
            _controller = False
        else:
            ctl = ThreadpoolController()
            _controller = ctl if ctl.select(user_api="blas").lib_controllers else False
    return _controller or None


class _SingleThreadedBlas:
    """BLAS limited to one thread while any call is inside (reference counted,
    so concurrent calls from several Python threads restore it only once)."""

    def __enter__(self):
        global _blas_users, _blas_limiter
        with _blas_lock:
            if _blas_users == 0:
                _blas_limiter = _blas_controller().limit(limits=1, user_api="blas")
            _blas_users += 1

    def __exit__(self, *exc):
        global _blas_users, _blas_limiter
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None
        return False


def _workers(nleaves):
    """Python threads for the leaves: several only from the main thread.

    Called from other threads (Dask's threaded scheduler, a user's pool),
    the caller's parallelism is already there: the leaves run in the calling
    thread, BLAS single-threaded all the same (see ``_reduce``).
    """
    if nleaves < 2 or _blas_controller() is None or threading.current_thread() is not threading.main_thread():
        return 1
    return min(nleaves, os.cpu_count() or 1, 8)


def _single_threaded_blas_here(nleaves):
    """Whether a serial run limits BLAS to one thread: in threads other than
    the main one, where several calls at once would each start BLAS's threads
    (measured under Dask's threaded scheduler, (1.3e6, 48) float32 in 20
    chunks generated by ``z @ A`` in the same tasks: 50 s with BLAS's threads,
    against 0.4 s for the reduction alone)."""
    return (nleaves >= 2 and _blas_controller() is not None
            and threading.current_thread() is not threading.main_thread())


# -- the state's arithmetic (array code on NumPy or CuPy) -----------------------------------


def _empty_fields(xp, d):
    return (xp.zeros((), np.int64), xp.zeros((), np.float64), xp.zeros((), np.float64),
            xp.full((d,), np.nan), xp.zeros((d, d), np.float64))


def _count_of(a):
    return int(a[0])


def _merge_fields(xp, a, b, inplace=False):
    """The union of two states given as field tuples (count, W, W2, mean, c2).

    Means may be relative to any common origin. An empty side is the
    identity. Counts passing int64 are a ValueError. ``inplace``: ``a``'s
    c2 may be overwritten (states nobody else holds: d x d temporaries cost
    their page faults).
    """
    na, nb = _count_of(a), _count_of(b)
    if nb == 0:
        return a
    if na == 0:
        return b
    if na + nb > _INT64_MAX:
        raise ValueError(COUNT_OVERFLOW)
    _, Wa, W2a, ma, ca = a
    _, Wb, W2b, mb, cb = b
    W = Wa + Wb
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rb = Wb / W
        f = Wa * rb
        finite = xp.isfinite(ma) & xp.isfinite(mb)
        dd = xp.where(finite, mb - ma, 0.0)
        mean = xp.where(finite, ma + dd * rb, ma + mb)
        if inplace:
            c2 = ca
            c2 += cb
        else:
            c2 = ca + cb
        o = xp.outer(dd, dd)
        o *= f
        c2 += o
    return (xp.asarray(na + nb, dtype=np.int64), W, W2a + W2b, mean, c2)


def _nan_where_unbounded(xp, fields):
    """The fields, with NaN in the rows and columns of c2 whose variable's
    mean is not finite (a NaN or an Inf among its values), as ``np.cov``. An
    empty state (mean NaN, c2 0) stays as it is."""
    count, W, W2, mean, c2 = fields
    if _count_of(fields) == 0:
        return fields
    bad = ~xp.isfinite(mean)
    return (count, W, W2, mean, xp.where(bad[:, None] | bad[None, :], np.nan, c2))


def _tree(xp, nleaves, leaves):
    """Merge the states that ``leaves`` yields (fresh states, merged in
    place), in order, in a fixed pairwise tree (halves of halves), keeping
    only the states of one path alive."""
    it = iter(leaves)

    def build(lo, hi):
        if hi - lo == 1:
            return next(it)
        mid = lo + (hi - lo) // 2
        left = build(lo, mid)
        return _merge_fields(xp, left, build(mid, hi), inplace=True)

    return build(0, nleaves)


# -- one leaf: consecutive blocks about one shift ----------------------------------------


def _usable(xp, blk, wb, skipna):
    """The values of a block that may serve as a shift, as float64 with NaN
    elsewhere: finite, of rows taken (positive weight and, with ``skipna``,
    no NaN in the row)."""
    v = blk.astype(np.float64)
    ok = xp.isfinite(v)
    if skipna:
        ok &= ~xp.isnan(v).any(axis=1)[:, None]
    if wb is not None:
        ok &= (wb > 0)[:, None]
    return xp.where(ok, v, np.nan), ok


def _shift(xp, x, w, lo, hi, skipna, fallback):
    """Per variable, a value near the mean of rows lo:hi: the lower median of
    its usable values (see ``_usable``) among the first SHIFT_ROWS rows;
    where it has none there, its first usable value further on (looked for
    in runs growing eightfold); else ``fallback``. One of the values, so it
    cannot overflow as a mean of values near the float range's end can, and
    outliers and rows left out do not move it."""
    stop = min(hi, lo + SHIFT_ROWS)
    v, ok = _usable(xp, x[lo:stop], None if w is None else w[lo:stop], skipna)
    k = ok.sum(axis=0)
    v = xp.sort(v, axis=0)  # NaN last
    med = xp.take_along_axis(v, xp.maximum(k - 1, 0)[None, :] // 2, axis=0)[0]
    out = xp.where(k > 0, med, np.nan)
    run = SHIFT_ROWS
    while stop < hi and bool(xp.isnan(out).any()):
        start, stop, run = stop, min(hi, stop + 8 * run), 8 * run
        v, ok = _usable(xp, x[start:stop], None if w is None else w[start:stop], skipna)
        first = xp.take_along_axis(v, xp.argmax(ok, axis=0)[None, :], axis=0)[0]
        out = xp.where(xp.isnan(out) & ok.any(axis=0), first, out)
    return xp.where(xp.isnan(out), fallback, out)


def _leaf(be, x, w, lo, hi, rows, origin, skipna, w_zero, scratch):
    """State (count, W, W2, mean - origin, c2) of rows lo:hi of x.

    ``scratch`` (a ``threading.local``) keeps the calling thread's buffers
    (the centered block, a d x d product) from one leaf to the next: fresh
    ones per leaf cost their page faults, with the temporaries of the d x d
    arithmetic a quarter of the time of (10**5, 512) on one thread."""
    xp = be.xp
    d = x.shape[1]
    shift = _shift(xp, x, w, lo, hi, skipna, origin)
    center = getattr(be, "center_rows", None)
    if center is None:
        count, W, W2, sums, c2 = _leaf_array_code(xp, x, w, lo, hi, rows, shift, skipna, w_zero)
        if count == 0:
            return _empty_fields(xp, d)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            u = sums / W
            c2 = c2 - xp.outer(u, u) * W
    else:
        buf = getattr(scratch, "buf", None)
        if buf is None:
            buf = scratch.buf = xp.empty((rows, d), np.float64)
            scratch.prod = xp.empty((d, d), np.float64)
        prod = scratch.prod
        sums = xp.zeros(d, np.float64)
        c2 = None
        count, W, W2 = 0, 0.0, 0.0
        with np.errstate(invalid="ignore", over="ignore"):  # NaN and Inf: see _nan_where_unbounded
            for i in range(lo, hi, rows):
                wb = None if w is None else w[i:min(hi, i + rows)]
                nb, Wb, W2b = center(x[i:min(hi, i + rows)], wb, shift, skipna, buf, sums)
                if nb:
                    b = buf[:nb]
                    if c2 is None:
                        c2 = xp.matmul(b.T, b)  # the state's own array
                    else:
                        xp.matmul(b.T, b, out=prod)
                        c2 += prod
                    count += nb
                    W += Wb
                    W2 += W2b
        if count == 0:
            return _empty_fields(xp, d)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            u = sums / W
            o = xp.outer(u, u, out=prod)
            o *= W
            c2 -= o
    mean = (shift - origin) + u
    return (xp.asarray(count, dtype=np.int64), xp.array(W, dtype=np.float64),
            xp.array(W2, dtype=np.float64), mean, c2)


def _leaf_array_code(xp, x, w, lo, hi, rows, shift, skipna, w_zero):
    """(count, W, W2, sums of deviations from shift, their products) of rows
    lo:hi, for backends without ``center_rows`` (the GPU): each block centered
    into a buffer widened by a column of ones (of sqrt(w) with weights), whose
    products with the rest are the sums."""
    d = x.shape[1]
    buf = xp.empty((rows, d + 1), np.float64)
    buf[:, d] = 1.0
    prod = xp.empty((d + 1, d + 1), np.float64)
    acc = xp.zeros((d + 1, d + 1), np.float64)
    count = 0
    W2 = 0.0
    for i in range(lo, hi, rows):
        blk = x[i:min(hi, i + rows)]
        wb = None if w is None else w[i:min(hi, i + rows)]
        if skipna or w_zero:
            keep = None
            if skipna:
                keep = ~xp.isnan(blk).any(axis=1)
            if w_zero:
                keep = wb > 0 if keep is None else keep & (wb > 0)
            if not bool(keep.all()):
                blk = blk[keep]
                wb = None if wb is None else wb[keep]
        nb = blk.shape[0]
        if nb == 0:
            continue
        b = buf[:nb]
        xp.subtract(blk, shift, out=b[:, :d])
        if wb is not None:
            wf = wb.astype(np.float64)
            sw = xp.sqrt(wf)
            b[:, d] = sw
            b[:, :d] *= sw[:, None]
            W2 += wf @ wf
        xp.matmul(b.T, b, out=prod)
        acc += prod
        count += nb
    W = acc[d, d]
    return count, W, (W if w is None else W2), acc[d, :d], acc[:d, :d]


def _reduce(be, x, w, skipna, origin=None):
    """Fields of ``x`` (observations by variables, an array of backend ``be``)
    with the mean relative to ``origin`` (None: chosen here), and the origin
    used."""
    xp = be.xp
    n, d = x.shape
    gpu = xp is not np
    rows = _block_rows(d, gpu)
    if origin is None:
        origin = _shift(xp, x, w, 0, n, skipna, 0.0) if n else xp.zeros(d)
    if n == 0:
        return _empty_fields(xp, d), origin
    w_zero = w is not None and bool((w == 0).any())
    leaves = _plan(n, rows, d)

    scratch = threading.local()  # per thread, for this call only

    def leaf(span):
        return _leaf(be, x, w, span[0], span[1], rows, origin, skipna, w_zero, scratch)

    workers = 1 if gpu else _workers(len(leaves))
    if workers == 1 and not gpu and _single_threaded_blas_here(len(leaves)):
        with _SingleThreadedBlas():
            fields = _tree(xp, len(leaves), (leaf(s) for s in leaves))
    elif workers == 1:
        fields = _tree(xp, len(leaves), (leaf(s) for s in leaves))
    else:
        with _SingleThreadedBlas(), ThreadPoolExecutor(workers, thread_name_prefix="fastmoments-comoments") as ex:
            # Submitted a window ahead of the tree, so finished leaves waiting
            # for an earlier one stay few.
            futures = [ex.submit(leaf, s) for s in leaves[: 2 * workers]]

            def results():
                for i in range(len(leaves)):
                    if i + 2 * workers < len(leaves):
                        futures.append(ex.submit(leaf, leaves[i + 2 * workers]))
                    yield futures[i].result()
                    futures[i] = None

            fields = _tree(xp, len(leaves), results())
    return fields, origin


def _with_origin(xp, fields, origin):
    count, W, W2, mean_rel, c2 = fields
    return _nan_where_unbounded(xp, (count, W, W2, mean_rel + origin, c2))


# -- inputs -------------------------------------------------------------------------------


def _check_axis(axis):
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be 0 or 1 (the axis of observations), got {axis!r}")
    if not -2 <= axis <= 1:
        raise np.exceptions.AxisError(int(axis), 2, "axis of observations")
    return int(axis) % 2


def _observations(x, axis, weights):
    """(backend, x as (n, d) backend array, weights as 1-D backend array or None)."""
    check_not_masked(x)
    if weights is not None:
        check_not_masked(weights, "weights")
    be = backend_for(x, weights)
    arr = be.asarray(x)
    shape = arr.shape
    if arr.ndim != 2:
        raise ValueError(
            f"comoments needs a 2-D x (observations along axis, variables along the other), "
            f"got shape {arr.shape}"
        )
    axis = _check_axis(axis)
    if axis == 1:
        arr = arr.T
    w = None
    if weights is not None:
        w = be.xp.asarray(weights)
        check_weights_dtype(w.dtype)
        if w.shape != (arr.shape[0],):
            raise ValueError(
                f"weights of shape {w.shape} do not fit x of shape {shape}: "
                f"give 1-D weights, one per observation ({arr.shape[0]} along axis {axis})"
            )
        msg = weights_error(w, be.xp)
        if msg is not None:
            raise ValueError(msg)
    return be, arr, w


def comoments(x, *, axis=0, weights=None, skipna=False) -> "CoMoments":
    """Count, mean vector and co-moment matrix of the observations in ``x``.

    Args:
        x: a 2-D array-like (NumPy or CuPy) of bool, integer or real float
            values: observations along ``axis``, variables along the other.
            float16/32 data is accumulated in float64.
        axis: 0 (rows are observations, as ``np.cov(x, rowvar=False)``) or
            1 (columns are, as ``np.cov(x)``); -2 and -1 too.
        weights: None, or non-negative finite real weights, 1-D, one per
            observation. An observation of weight 0 is left out as if
            absent (NaN and Inf too). See :meth:`CoMoments.cov` for
            frequency and reliability weights.
        skipna: False: a NaN makes the mean of its variable and that
            variable's row and column of ``c2`` NaN (as ``np.cov``).
            True: an observation with any NaN is left out entirely
            (complete cases).

    Returns:
        A :class:`CoMoments` of ``d`` variables.
    """
    be, arr, w = _observations(x, axis, weights)
    fields, origin = _reduce(be, arr, w, bool(skipna))
    return CoMoments._wrap(_with_origin(be.xp, fields, origin))


# -- the state ----------------------------------------------------------------------------


def _rebuild(fields):
    return CoMoments._wrap(tuple(fields))


class CoMoments:
    """Count, mean vector and co-moments of observations of ``d`` variables.

    Fields (NumPy arrays for CPU data, CuPy arrays for GPU data):

    - ``count``: int64, 0-d: observations taken (positive weight).
    - ``sum_weights``, ``sum_weights2``: float64, 0-d: sums of their weights
      and squared weights (both equal to ``count`` without weights).
    - ``mean``: float64, shape ``(d,)`` (NaN where ``count`` is 0).
    - ``c2``: float64, shape ``(d, d)``, symmetric: the weighted sum over
      observations of ``outer(v - mean, v - mean)``.

    States are immutable and merge exactly (:meth:`merge`,
    :func:`fastmoments.merge`); they pickle. Build them with
    :func:`fastmoments.comoments`, or from fields with ``CoMoments(count,
    mean, c2, sum_weights=..., sum_weights2=...)``.
    """

    _fields = ("count", "sum_weights", "sum_weights2", "mean", "c2")
    __slots__ = _fields

    def __new__(cls, count, mean, c2, *, sum_weights=None, sum_weights2=None):
        return cls.from_fields(count=count, mean=mean, c2=c2, sum_weights=sum_weights, sum_weights2=sum_weights2)

    @classmethod
    def _wrap(cls, fields):
        """Build from backend arrays we own, skipping validation and copies."""
        self = object.__new__(cls)
        for name, arr in zip(cls._fields, fields):
            if type(arr) is np.ndarray:
                if arr.flags.writeable:
                    arr.flags.writeable = False
            elif isinstance(arr, np.generic):
                arr = np.array(arr)
                arr.flags.writeable = False
            object.__setattr__(self, name, arr)
        return self

    @classmethod
    def from_fields(cls, *, count, mean, c2, sum_weights=None, sum_weights2=None):
        """A state from its fields (copied), checked: a whole non-negative
        count below 2**63, real means, a square symmetric ``c2`` of the means'
        length, non-negative sums of weights (default: the count)."""
        if (sum_weights is None) != (sum_weights2 is None):
            raise ValueError("give both sum_weights and sum_weights2, or neither")
        given = [v for v in (count, mean, c2, sum_weights, sum_weights2) if v is not None]
        xp = backend_for(*given).xp
        n = _as_count(count, xp)
        if n.shape != ():
            raise ValueError(f"count must be a single number (0-d), got shape {n.shape}")
        m = _float_field("mean", mean, xp)
        c = _float_field("c2", c2, xp)
        if m.ndim != 1 or c.shape != (m.shape[0], m.shape[0]):
            raise ValueError(
                f"mean must be 1-D (d,) and c2 square (d, d) of the same d; got mean {m.shape}, c2 {c.shape}"
            )
        if bool(xp.any((c != c.T) & ~(xp.isnan(c) & xp.isnan(c.T)))):
            raise ValueError("c2 must be symmetric")
        if sum_weights is None:
            W = n.astype(np.float64)
            W2 = W.copy()
        else:
            W, W2 = (_float_field(k, v, xp) for k, v in (("sum_weights", sum_weights), ("sum_weights2", sum_weights2)))
            for k, v in (("sum_weights", W), ("sum_weights2", W2)):
                if v.shape != ():
                    raise ValueError(f"{k} must be a single number (0-d), got shape {v.shape}")
                if bool(xp.any(v < 0)):
                    raise ValueError(f"{k} must be non-negative")
        if int(n) == 0:
            return cls._wrap(_empty_fields(xp, m.shape[0]))
        return cls._wrap((n, W, W2, m, c))

    @classmethod
    def empty(cls, d, *, like=None):
        """The state of no observations of ``d`` variables: the identity of :meth:`merge`.

        Args:
            d: the number of variables.
            like: an array whose type (NumPy or CuPy) the fields take.
        """
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or d < 0:
            raise TypeError(f"d must be a non-negative int, got {d!r}")
        xp = backend_for(like).xp if like is not None else np
        return cls._wrap(_empty_fields(xp, int(d)))

    def __setattr__(self, name, value):
        raise AttributeError("CoMoments is immutable")

    def __delattr__(self, name):
        raise AttributeError("CoMoments is immutable")

    def __reduce__(self):
        return (_rebuild, (self.fields,))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    @property
    def fields(self) -> tuple:
        """The field arrays, in the order of ``_fields``."""
        return tuple(getattr(self, f) for f in self._fields)

    @property
    def nvars(self) -> int:
        """The number of variables ``d``."""
        return int(self.mean.shape[0])

    def __repr__(self):
        return f"CoMoments(count={int(self.count)}, nvars={self.nvars})"

    def to_numpy(self):
        """A copy with NumPy fields (a device-to-host copy for GPU states)."""
        return self._wrap(tuple(f.get() if is_gpu_array(f) else f.copy() for f in self.fields))

    def merge(self, other):
        """The state of both batches of observations together (exact).

        Args:
            other: a :class:`CoMoments` of the same number of variables.
        """
        if not isinstance(other, CoMoments):
            raise TypeError(f"cannot merge CoMoments with {type(other).__name__}")
        if other.nvars != self.nvars:
            raise ValueError(
                f"cannot merge states of different numbers of variables: {self.nvars} and {other.nvars}"
            )
        xp = backend_for(*self.fields, *other.fields).xp
        return self._wrap(_nan_where_unbounded(xp, _merge_fields(xp, self.fields, other.fields)))

    # -- derived statistics ----------------------------------------------------------
    def _denominator(self, ddof, weights):
        _check_ddof(ddof)
        if weights not in ("frequency", "reliability"):
            raise ValueError(f'weights must be "frequency" or "reliability", got {weights!r}')
        W = self.sum_weights
        if weights == "frequency":
            return W - ddof
        xp = backend_for(W).xp
        with np.errstate(divide="ignore", invalid="ignore"):
            denom = W - ddof * (self.sum_weights2 / xp.where(W > 0, W, 1.0))
        return xp.where(W > 0, denom, 0.0)

    def cov(self, ddof=1, *, weights="frequency"):
        """Covariance matrix ``(d, d)``, as ``np.cov(x, rowvar=False, ddof=ddof)``.

        For weighted data, ``weights`` says what the weights were:
        ``"frequency"`` (repeat counts): ``c2 / (sum_weights - ddof)``, as
        ``np.cov(..., fweights=w)``; ``"reliability"``: ``c2 / (sum_weights -
        ddof * sum_weights2 / sum_weights)``, as ``np.cov(..., aweights=w)``.
        NaN where that denominator is not positive.

        Args:
            ddof: delta degrees of freedom, a real number (default 1, as np.cov).
            weights: ``"frequency"`` or ``"reliability"``.
        """
        denom = self._denominator(ddof, weights)
        xp = backend_for(self.c2).xp
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp.where(denom > 0, self.c2 / xp.where(denom > 0, denom, 1.0), np.nan)

    def var(self, ddof=0, *, weights="frequency"):
        """Variances ``(d,)``: the diagonal of :meth:`cov` (with ``ddof=0`` by default)."""
        denom = self._denominator(ddof, weights)
        xp = backend_for(self.c2).xp
        diag = xp.diagonal(self.c2).copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp.where(denom > 0, diag / xp.where(denom > 0, denom, 1.0), np.nan)

    def std(self, ddof=0, *, weights="frequency"):
        """Standard deviations, the square root of :meth:`var`."""
        return backend_for(self.c2).xp.sqrt(self.var(ddof, weights=weights))

    def corr(self):
        """Correlation matrix ``(d, d)``, as ``np.corrcoef(x, rowvar=False)``
        (clipped to [-1, 1]); NaN for a variable without spread (and for no data)."""
        xp = backend_for(self.c2).xp
        diag = xp.diagonal(self.c2)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = xp.sqrt(xp.where(diag > 0, diag, np.nan))
            r = self.c2 / s[:, None] / s[None, :]
        return xp.clip(r, -1.0, 1.0)

    def moments(self) -> Moments:
        """The per-variable :class:`Moments` (count, mean, the diagonal of
        ``c2``; with the sums of weights where the data was weighted)."""
        xp = backend_for(self.c2).xp
        d = self.nvars
        count = xp.broadcast_to(self.count, (d,)).copy()
        m2 = xp.diagonal(self.c2).copy()
        mean = self.mean.copy()
        W = float(self.sum_weights)
        W2 = float(self.sum_weights2)
        n = float(int(self.count))
        if W == n and W2 == n:
            return Moments._wrap((count, mean, m2))
        sw = xp.full((d,), W)
        sw2 = xp.full((d,), W2)
        return Moments._wrap((count, sw, sw2, mean, m2))
