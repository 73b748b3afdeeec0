"""A mutable accumulator over a stream of batches."""

from __future__ import annotations

from .reductions import moments
from .state import Moments

__all__ = ["RunningMoments"]


class RunningMoments:
    """Per-feature count, mean and variance over a stream of batches.

    Args:
        skipna: leave NaN out (see :func:`fastmoments.moments`).

    Each :meth:`update` reduces one batch in a single pass and merges it in,
    so the result equals the statistics of all batches concatenated.
    """

    def __init__(self, *, skipna=False):
        self.skipna = bool(skipna)
        self._state = None

    def update(self, x, axis=0):
        """Reduce ``x`` over ``axis`` (default 0: rows are samples) and merge it in."""
        batch = moments(x, axis=axis, skipna=self.skipna)
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
        self._merge_in(state, "merged")
        return self

    @property
    def state(self) -> Moments:
        """The accumulated :class:`Moments` (count 0 before any update)."""
        return Moments.empty() if self._state is None else self._state

    @property
    def count(self):
        return self.state.count

    @property
    def mean(self):
        return self.state.mean

    def var(self, ddof=0):
        return self.state.var(ddof)

    def std(self, ddof=0):
        return self.state.std(ddof)

    def __repr__(self):
        return f"RunningMoments({self.state!r})"
