"""Grouped reductions: ``group_moments`` and ``group_summarize``.

One state per integer label: the reduced axis of ``x`` becomes a group axis
of length ``ngroups``. Unweighted order-2 moments and summaries run on the
backend's one-pass kernels (``group_moments``/``group_summarize`` of the
backend protocol, :mod:`fastmoments._dispatch`); weights and orders 3 and 4
take the backend's ``group_weighted_moments`` (the CPU: two reads of each
task of rows, the second from cache; the GPU: one pass). Where a backend
has no kernel or returns None (too many groups x columns for it),
:func:`_group_weighted` serves: a few passes of array code (``bincount``)
that any backend with NumPy's API runs.
"""

from __future__ import annotations

import math

import numpy as np

from ._dispatch import backend_for
from ._inputs import check_labels_dtype, check_ngroups, check_not_masked, check_weights_dtype, label_error, weights_error
from .state import Moments, Summary, _check_order

__all__ = ["group_moments", "group_summarize"]


def group_moments(x, by, *, axis=0, ngroups=None, skipna=False, weights=None, order=2) -> Moments:
    """Count, mean and central moments of ``x`` per group of ``by``, in one pass.

    Args:
        x: array-like of bool, integer or real float values (NumPy or CuPy).
        by: integer group labels: 1-D with the length of ``x.shape[axis]``
            (each slice along ``axis`` goes to its label's group), or, with
            ``axis=None``, of ``x``'s shape (each value goes to its label's
            group). Negative labels mean "no group": those values are left
            out. Bool, float and string labels are a TypeError.
        axis: the axis reduced per group (an int, negative allowed), or
            None for all values.
        ngroups: the number of groups; defaults to ``by.max() + 1`` (a pass
            over ``by``). A label >= ``ngroups`` is a ValueError.
        skipna: leave NaN out, as in :func:`moments`.
        weights: None, or non-negative finite weights of ``x``'s shape or, with
            an int ``axis``, 1-D along it, as in :func:`moments`.
        order: 2, 3 or 4, as in :func:`moments`.

    Weights and orders 3 and 4 are computed by the corrected two-pass
    algorithm: on the CPU each task of rows read twice, the second time
    from cache (up to ``2**16`` groups x columns); on the GPU in one pass,
    batches of a warp's values two-pass in registers (up to 1,024 groups x
    columns with weights at order 2, 877 at order 3, 768 at order 4);
    beyond those, in a few passes of array code (``bincount``).

    Returns:
        A :class:`Moments` whose shape is ``x``'s with ``axis`` replaced by
        a group axis of length ``ngroups`` (``(ngroups,)`` for
        ``axis=None``). Groups without values are empty states (count 0),
        the identity of :func:`merge`.
    """
    order = _check_order(order)
    be = backend_for(x, by) if weights is None else backend_for(x, by, weights)
    arr, lab, ax, G = _prepare(be, x, by, axis, ngroups)
    if weights is None and order == 2 and hasattr(be, "group_moments"):
        fields = be.group_moments(arr, lab, ax, G, bool(skipna))
        if fields is not None:  # None: too many groups for the backend's kernel
            return Moments._wrap(fields)
    w = None
    if weights is not None:
        w = _weights_for(be, weights, x if axis is None else arr, axis)
        if axis is None:
            w = w.reshape(-1)
    if hasattr(be, "group_weighted_moments") and not (weights is None and order == 2):
        fields = be.group_weighted_moments(arr, w, lab, ax, G, bool(skipna), order)
        if fields is not None:
            return Moments._wrap(fields)
    fields = _group_weighted(be.xp, arr, lab, ax, G, w, bool(skipna), order, plain=weights is None and order == 2)
    return Moments._wrap(fields)


def group_summarize(x, by, *, axis=0, ngroups=None) -> Summary:
    """Count, mean, M2, min, max, non-finite and zero counts of ``x`` per group of ``by``.

    As :func:`summarize` per group: NaN and +-Inf are counted in
    ``n_nonfinite`` and left out of everything else. ``by``, ``axis`` and
    ``ngroups`` as in :func:`group_moments`. NumPy and CuPy arrays (on the
    GPU: one pass for up to 768 groups x columns, beyond that the rows put
    in label order, then the ``summarize_each`` kernels over each group's
    run; the same result on every run).

    Returns:
        A :class:`Summary` whose shape is ``x``'s with ``axis`` replaced by
        a group axis of length ``ngroups`` (``(ngroups,)`` for
        ``axis=None``); groups without values are empty (count 0).
    """
    be = backend_for(x, by)
    if not hasattr(be, "group_summarize"):
        raise NotImplementedError(f"group_summarize has no kernel for {type(x).__name__} arrays; copy the data to NumPy")
    arr, lab, ax, G = _prepare(be, x, by, axis, ngroups)
    return Summary._wrap(be.group_summarize(arr, lab, ax, G))


# -- inputs -------------------------------------------------------------------------

def _prepare(be, x, by, axis, ngroups):
    """(x, labels, axis, ngroups) checked: x a backend array, labels 1-D
    integers along ``axis`` (both flattened for ``axis=None``, then axis 0)."""
    arr = be.asarray(x)
    check_not_masked(by, "by")
    lab = be.xp.asarray(by)
    check_labels_dtype(lab.dtype)
    if axis is None:
        if lab.shape != arr.shape:
            raise ValueError(f"by of shape {lab.shape} does not fit x of shape {arr.shape}: with axis=None "
                             "give labels of x's shape")
        arr, lab, ax = arr.reshape(-1), lab.reshape(-1), 0
    else:
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be None or an int, got {axis!r}")
        ax = int(np.lib.array_utils.normalize_axis_index(int(axis), arr.ndim))
        if lab.shape != (arr.shape[ax],):
            raise ValueError(f"by of shape {lab.shape} does not fit x of shape {arr.shape} along axis {axis}: "
                             f"give 1-D labels of length {arr.shape[ax]}")
    if lab.dtype == np.uint64 and lab.size and int(lab.max()) > np.iinfo(np.int64).max:
        raise ValueError(label_error(int(lab.max()), ngroups))
    if lab.dtype.kind == "u" or lab.dtype.itemsize < 4:
        lab = lab.astype(np.int64)
    G = _ngroups(lab, ngroups)
    return arr, lab, ax, G


def _ngroups(lab, ngroups):
    if ngroups is None:
        return max(int(lab.max()) + 1, 0) if lab.size else 0
    return check_ngroups(ngroups)


def _weights_for(be, weights, x, axis):
    check_not_masked(weights, "weights")
    w = be.xp.asarray(weights)
    check_weights_dtype(w.dtype)
    x = be.xp.asarray(x)
    if w.shape == x.shape:
        return w
    if axis is not None and w.ndim == 1 and x.ndim > 1 and w.shape[0] == x.shape[axis]:
        shape = [1] * x.ndim
        shape[axis] = w.shape[0]
        return be.xp.broadcast_to(w.reshape(shape), x.shape)
    raise ValueError(f"weights of shape {w.shape} do not fit x of shape {x.shape}: give weights of x's shape"
                     + (f" or 1-D of length {x.shape[axis]} along axis {axis}" if axis is not None else ""))


# -- weighted and higher orders: array code ---------------------------------------------

def _group_weighted(xp, x, lab, axis, G, w, skipna, order, plain=False):
    """The fields of kind ``weighted<order>`` per group (``plain``: those of
    kind "moments"), by the corrected two-pass algorithm in ``bincount``
    passes: the mean, its correction by the mean deviation, then the sums of
    powers of the deviations, corrected once more for the stored mean's
    rounding. NaN and Inf follow the kernels' rules."""
    x2 = xp.moveaxis(x, axis, 0)
    rest = x2.shape[1:]
    n = x2.shape[0]
    m = math.prod(rest)  # not -1: no values along axis leaves -1 undefined
    x2 = x2.reshape(n, m).astype(np.float64, copy=False)
    if w is not None:
        err = weights_error(w, xp)
        if err:
            raise ValueError(err)
        w2 = xp.moveaxis(w, axis, 0).reshape(n, m).astype(np.float64, copy=False)
    else:
        w2 = xp.ones((n, m))
    lab = lab.astype(np.int64, copy=False)
    if lab.size and int(lab.max()) >= G:
        raise ValueError(label_error(int(lab.max()), G))
    take = (w2 > 0) & (lab >= 0)[:, None]
    if skipna:
        take &= ~xp.isnan(x2)
    idx = (lab[:, None] * m + xp.arange(m))[take]
    v = x2[take]
    wt = w2[take]
    size = G * m

    def total(vals):
        return xp.bincount(idx, weights=vals, minlength=size)[:size]

    count = xp.bincount(idx, minlength=size)[:size].astype(np.int64)
    W = total(wt)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        safe = xp.where(W > 0, W, 1.0)
        mean = total(wt * v) / safe
        d = v - mean[idx]
        corr = total(wt * d) / safe
        mean = xp.where(xp.isfinite(mean) & xp.isfinite(corr), mean + corr, mean)
        mean = xp.where(count > 0, mean, xp.nan)
        d = v - mean[idx]
        # The stored mean rounds to the ulps of its magnitude (1.2e-4 at 1e12):
        # the sums of powers are taken around it, then moved to the mean by
        # the binomial shift by e = sum(w * d) / W (as fm_wpush_group does).
        c = total(wt * d)
        e = c / safe
        s = [total(wt * d**p) for p in range(2, order + 1)]
        ms = [xp.maximum(s[0] - c * e, 0.0)]  # c * e <= s[0] but for roundings
        if order >= 3:
            ms.append(s[1] - 3.0 * e * s[0] + 2.0 * e * (e * c))
        if order >= 4:
            ms.append(s[2] - 4.0 * e * s[1] + 6.0 * e * (e * s[0]) - 3.0 * e * (e * (e * c)))
        # Where a sum is not finite (Inf or NaN taken, or overflow), the plain one stands.
        ms = [xp.where(xp.isfinite(m) & xp.isfinite(e), m, sp) for m, sp in zip(ms, s)]
    out_shape = (G,) + tuple(rest)

    def laid(a):
        return xp.moveaxis(a.reshape(out_shape), 0, axis)

    if plain:
        return laid(count), laid(mean), laid(ms[0])
    return (laid(count), laid(W), laid(total(wt * wt)), laid(mean)) + tuple(laid(a) for a in ms)
