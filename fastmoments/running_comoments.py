"""A mutable accumulator of the mean vector and covariance over a stream of batches."""

from __future__ import annotations

import numpy as np

from ._dispatch import backend_for
from .covariance import CoMoments, _merge_fields, _nan_where_unbounded, _observations, _reduce

__all__ = ["RunningCoMoments"]


class RunningCoMoments:
    """Count, mean vector, covariance and correlation of ``d`` variables over a stream.

    Args:
        d: the number of variables, or None to take it from the first batch;
            a batch of another number of variables is a ValueError.
        skipna: leave observations with any NaN out (complete cases); see
            :func:`fastmoments.comoments`.

    Each :meth:`update` reduces one batch (one matrix product per block of
    rows) and merges it in exactly, so the result equals :func:`comoments`
    of all batches concatenated. The running means are kept relative to an
    origin (the first batch's estimate of its mean), so a stream far from
    zero keeps the accuracy of a two-pass method across batches.
    """

    def __init__(self, d=None, *, skipna=False):
        if d is not None and (isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or d < 0):
            raise TypeError(f"d must be None or a non-negative int, got {d!r}")
        self.d = None if d is None else int(d)
        self.skipna = bool(skipna)
        self._fields = None  # (count, W, W2, mean - origin, c2)
        self._origin = None

    def _check_d(self, d, what):
        if self.d is not None and d != self.d:
            raise ValueError(f"{what} has {d} variables, the running statistics {self.d}")

    def _merge_rel(self, fields, xp):
        if self._fields is None:
            self._fields = fields
        else:
            backend_for(self._fields[3], fields[3])  # TypeError for NumPy mixed with CuPy
            self._fields = _merge_fields(xp, self._fields, fields)

    def update(self, batch, axis=0, weights=None):
        """Reduce ``batch`` (observations along ``axis``) and merge it in.

        Args:
            batch: a 2-D batch (NumPy or CuPy).
            axis: 0 (rows are observations) or 1.
            weights: None, or 1-D non-negative weights, one per observation.
        """
        be, arr, w = _observations(batch, axis, weights)
        self._check_d(arr.shape[1], "the batch")
        origin = None
        if self._fields is not None:
            backend_for(self._origin, arr)  # TypeError for NumPy mixed with CuPy
            if int(self._fields[0]) > 0:
                origin = self._origin  # empty so far: the batch picks its own
        fields, origin = _reduce(be, arr, w, self.skipna, origin)
        if self.d is None:
            self.d = arr.shape[1]
        self._origin = origin
        self._merge_rel(fields, be.xp)
        return self

    def merge(self, other):
        """Merge another RunningCoMoments or a :class:`CoMoments` state into this one."""
        if isinstance(other, RunningCoMoments):
            if other._fields is None:
                return self
            state = other.state
        elif isinstance(other, CoMoments):
            state = other
        else:
            raise TypeError(f"cannot merge {type(other).__name__} into RunningCoMoments")
        self._check_d(state.nvars, "the merged state")
        xp = backend_for(*state.fields).xp
        if self._fields is None or int(self._fields[0]) == 0:
            self._fields = None
            self._origin = xp.where(xp.isfinite(state.mean), state.mean, 0.0)
            if self.d is None:
                self.d = state.nvars
        count, W, W2, mean, c2 = state.fields
        self._merge_rel((count, W, W2, mean - self._origin, c2), xp)
        return self

    @property
    def state(self) -> CoMoments:
        """The accumulated :class:`CoMoments` (count 0 before any update)."""
        if self._fields is None:
            return CoMoments.empty(self.d or 0)
        xp = backend_for(self._origin).xp
        count, W, W2, mean_rel, c2 = self._fields
        return CoMoments._wrap(_nan_where_unbounded(xp, (count.copy(), W.copy(), W2.copy(), mean_rel + self._origin, c2.copy())))

    @property
    def count(self):
        return self.state.count

    @property
    def mean(self):
        return self.state.mean

    def cov(self, ddof=1, *, weights="frequency"):
        """See :meth:`CoMoments.cov`."""
        return self.state.cov(ddof, weights=weights)

    def corr(self):
        """See :meth:`CoMoments.corr`."""
        return self.state.corr()

    def var(self, ddof=0, *, weights="frequency"):
        """See :meth:`CoMoments.var`."""
        return self.state.var(ddof, weights=weights)

    def __repr__(self):
        return f"RunningCoMoments({self.state!r})"
