"""A mutable accumulator over a stream of batches."""

from __future__ import annotations

from .reductions import moments
from .state import Moments, _check_order

__all__ = ["RunningMoments"]


class RunningMoments:
    """Per-feature count, mean, variance (and skewness, kurtosis) over a stream of batches.

    Args:
        order: 2, 3 or 4: the highest central moment kept (3 for
            :meth:`skew`, 4 for :meth:`kurtosis` too).
        skipna: leave NaN out (see :func:`fastmoments.moments`).

    Each :meth:`update` reduces one batch in a single pass and merges it in,
    so the result equals the statistics of all batches concatenated.
    """

    def __init__(self, order=2, *, skipna=False):
        self.order = _check_order(order)
        self.skipna = bool(skipna)
        self._state = None

    def update(self, x, axis=0, weights=None):
        """Reduce ``x`` over ``axis`` (default 0: rows are samples) and merge it in.

        Args:
            x: a batch (NumPy or CuPy).
            axis: the axis (or axes) of samples.
            weights: None, or weights of ``x``'s shape or 1-D along ``axis``
                (see :func:`fastmoments.moments`).
        """
        batch = moments(x, axis=axis, skipna=self.skipna, weights=weights, order=self.order)
        self._merge_in(batch, "batch")
        return self

    def _merge_in(self, state, what):
        # A stream keeps one shape: broadcasting a batch of another shape into
        # it (a (5, 1) batch into (3,) features) would merge one feature's
        # values into all of them.
        if self._state is not None and state.shape != self._state.shape:
            raise ValueError(
                f"{what} statistics of shape {state.shape} do not match the "
                f"running statistics of shape {self._state.shape}"
            )
        self._state = state if self._state is None else self._state.merge(state)

    def merge(self, other):
        """Merge another RunningMoments or a Moments state into this one."""
        if isinstance(other, RunningMoments) and other._state is None:
            return self  # nothing seen yet: the identity, whatever our shape
        state = other.state if isinstance(other, RunningMoments) else other
        if not isinstance(state, Moments):
            raise TypeError(f"cannot merge {type(other).__name__} into RunningMoments")
        if state.order != self.order:
            raise ValueError(
                f"cannot merge a state of order {state.order} into RunningMoments of order {self.order}"
            )
        self._merge_in(state, "merged")
        return self

    @property
    def state(self) -> Moments:
        """The accumulated :class:`Moments` (count 0 before any update)."""
        return Moments.empty(order=self.order) if self._state is None else self._state

    @property
    def count(self):
        return self.state.count

    @property
    def mean(self):
        return self.state.mean

    def var(self, ddof=0, *, weights="frequency"):
        """See :meth:`Moments.var`."""
        return self.state.var(ddof, weights=weights)

    def std(self, ddof=0, *, weights="frequency"):
        """See :meth:`Moments.std`."""
        return self.state.std(ddof, weights=weights)

    def skew(self, bias=True):
        """See :meth:`Moments.skew` (needs order 3 or 4)."""
        return self.state.skew(bias)

    def kurtosis(self, fisher=True, bias=True):
        """See :meth:`Moments.kurtosis` (needs order 4)."""
        return self.state.kurtosis(fisher, bias)

    def __repr__(self):
        return f"RunningMoments({self.state!r})"
