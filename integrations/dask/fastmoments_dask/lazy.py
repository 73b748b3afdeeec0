"""Lazy states: Dask collections that compute to a fastmoments ``Moments`` / ``Summary``.

A :class:`LazyMoments` wraps the Dask array built by ``dask.array.reduction``
whose blocks are fastmoments states (one per output block). It implements the
Dask collection protocol, so ``result.compute()``, ``dask.compute(result, ...)``,
``dask.persist`` and ``client.compute`` all work and return (or hold) one
``fastmoments`` state, assembled from the blocks at the end. Its fields and
derived statistics are also available as ordinary lazy Dask arrays
(``result.mean``, ``result.var(ddof=1)``, ...) for further Dask work.

A :class:`LazyMoments` knows the layout of the states it computes to (the
order 2 ``Moments`` of unweighted data, or the core's layout with sums of
weights and M3/M4 for weighted data and orders 3 and 4), so the fields of
that layout (``m3``, ``m4``, ``sum_weights``, ...) and the statistics it
allows (``skew``, ``kurtosis``) are lazy arrays too, and the ones it does
not have are the core's errors as soon as they are asked for.
"""

from __future__ import annotations

import operator

import numpy as np
from dask.array.core import concatenate3
from dask.array.utils import meta_from_array
from dask.base import DaskMethodsMixin

from fastmoments import Moments, Summary

__all__ = ["LazyMoments", "LazySummary"]


def _assemble(results, cls, ndim):
    """Postcompute: nested lists of block states -> one state."""
    blocks = results
    if ndim == 0:
        while isinstance(blocks, (list, tuple)):
            blocks = blocks[0]
        return blocks
    flat = []

    def walk(n):
        if isinstance(n, (list, tuple)):
            for item in n:
                walk(item)
        else:
            flat.append(n)

    walk(blocks)
    if len(flat) == 1:
        return flat[0]

    def field_tree(n, i):
        if isinstance(n, (list, tuple)):
            return [field_tree(item, i) for item in n]
        return n.fields[i]

    # The layout (number of fields) is the blocks' own: Moments._wrap picks it.
    first = flat[0]
    fields = tuple(concatenate3(field_tree(blocks, i)) for i in range(len(first.fields)))
    return type(first)._wrap(fields)


def _var(state, ddof, weights="frequency"):
    return state.var(ddof, weights=weights)


def _std(state, ddof, weights="frequency"):
    return state.std(ddof, weights=weights)


def _skew(state, bias):
    return state.skew(bias)


def _kurtosis(state, fisher, bias):
    return state.kurtosis(fisher, bias)


def _norm(state):
    return state.norm()


def _rebuild(dsk, arr_rebuild, arr_args, cls, layout=None, rename=None):
    arr = arr_rebuild(dsk, *arr_args, rename=rename)
    return cls(arr) if layout is None else cls(arr, layout)


class _LazyState(DaskMethodsMixin):
    """Shared machinery; see :class:`LazyMoments` and :class:`LazySummary`."""

    _state_cls: type = Moments
    __slots__ = ("_arr",)

    def __init__(self, arr):
        self._arr = arr

    # -- the Dask collection protocol (delegated to the array of states) ---------
    def __dask_graph__(self):
        return self._arr.__dask_graph__()

    def __dask_keys__(self):
        return self._arr.__dask_keys__()

    def __dask_layers__(self):
        return self._arr.__dask_layers__()

    def __dask_tokenize__(self):
        return (type(self).__name__, self._state_cls.__name__, self._arr.name)

    @property
    def __dask_optimize__(self):
        # Same optimizer as dask arrays: computed together with arrays built
        # from the same input, the shared part of the graph runs once.
        return type(self._arr).__dask_optimize__

    @property
    def __dask_scheduler__(self):
        return type(self._arr).__dask_scheduler__

    def __dask_postcompute__(self):
        return _assemble, (self._state_cls, self._arr.ndim)

    def __dask_postpersist__(self):
        arr_rebuild, arr_args = self._arr.__dask_postpersist__()
        return _rebuild, (arr_rebuild, arr_args, type(self), self._persist_layout())

    def _persist_layout(self):
        return None

    # -- shape ------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        """Shape of the computed state (the input's shape without the reduced axes)."""
        return self._arr.shape

    @property
    def ndim(self) -> int:
        return self._arr.ndim

    @property
    def chunks(self) -> tuple:
        """Block structure of the result (the input's chunks along the kept axes)."""
        return self._arr.chunks

    @property
    def name(self) -> str:
        return self._arr.name

    def __repr__(self):
        return f"{type(self).__name__}(shape={self.shape}, chunks={self.chunks}, name={self.name!r})"

    # -- lazy fields and statistics as dask arrays --------------------------------
    def _map(self, func, dtype, **kwargs):
        meta = meta_from_array(self._arr._meta, ndim=self.ndim, dtype=dtype)
        return self._arr.map_blocks(func, dtype=dtype, meta=meta, **kwargs)

    def _field(self, name):
        dtype = np.int64 if name in self._state_cls._int_fields else np.float64
        return self._map(operator.attrgetter(name), dtype)

    @property
    def count(self):
        """Lazy int64 Dask array of the counts."""
        return self._field("count")

    @property
    def mean(self):
        """Lazy float64 Dask array of the means."""
        return self._field("mean")

    @property
    def m2(self):
        """Lazy float64 Dask array of M2 (sum of squared deviations)."""
        return self._field("m2")

    def _probe(self):
        """A zero-size state of this layout: the core's checks of arguments
        and fields run on it when a lazy statistic is asked for."""
        return self._state_cls._wrap(
            tuple(
                np.zeros(0, np.int64 if n in self._state_cls._int_fields else np.float64)
                for n in self._state_cls._fields
            )
        )

    def var(self, ddof=0, *, weights="frequency"):
        """Lazy variance, as :meth:`fastmoments.Moments.var`: ``m2 / (count - ddof)``
        (NaN where that is not positive); for weighted data ``weights`` says
        whether they were ``"frequency"`` or ``"reliability"`` weights. Bad
        arguments are the core's errors, raised here."""
        self._probe().var(ddof, weights=weights)
        return self._map(_var, np.float64, ddof=ddof, weights=weights)

    def std(self, ddof=0, *, weights="frequency"):
        """Lazy standard deviation, the square root of :meth:`var` (same arguments)."""
        self._probe().std(ddof, weights=weights)
        return self._map(_std, np.float64, ddof=ddof, weights=weights)

    def to_dask_array(self):
        """The underlying Dask array whose blocks are fastmoments states."""
        return self._arr


class LazyMoments(_LazyState):
    """Lazy :class:`fastmoments.Moments`: computes to one ``Moments``.

    Use ``.compute()``, ``dask.compute(lazy, ...)``, ``dask.persist`` or a
    distributed ``client.compute``. ``count``, ``mean``, ``m2``,
    ``sum_weights``, ``sum_weights2``, ``var(ddof, weights=...)`` and
    ``std(ddof, weights=...)`` are lazy Dask arrays; so are ``m3`` and
    ``skew(bias)`` for states of order 3 or 4, and ``m4`` and
    ``kurtosis(fisher, bias)`` for order 4 (an AttributeError for lower
    orders, as the core's). ``order`` and ``weighted`` describe the layout.

    Args:
        arr: the Dask array of states built by :func:`fastmoments_dask.moments`.
        layout: the class of those states (``Moments`` or the core's layout
            with sums of weights of the order computed).
    """

    __slots__ = ("_layout",)

    def __init__(self, arr, layout=Moments):
        if not (isinstance(layout, type) and issubclass(layout, Moments)):
            raise TypeError(f"layout must be a Moments class, got {layout!r}")
        super().__init__(arr)
        self._layout = layout

    @property
    def _state_cls(self):
        return self._layout

    def _persist_layout(self):
        return self._layout

    @property
    def order(self) -> int:
        """The highest central moment the computed state holds: 2, 3 or 4."""
        return self._layout._order

    @property
    def weighted(self) -> bool:
        """Whether the state keeps sums of weights (weighted data, or order 3/4)."""
        return "sum_weights" in self._layout._fields

    def __repr__(self):
        return (
            f"LazyMoments(order={self.order}, shape={self.shape}, chunks={self.chunks}, "
            f"name={self.name!r})"
        )

    @property
    def sum_weights(self):
        """Lazy float64 Dask array of the sums of weights (the counts for unweighted data)."""
        return self._map(operator.attrgetter("sum_weights"), np.float64)

    @property
    def sum_weights2(self):
        """Lazy float64 Dask array of the sums of squared weights (the counts for unweighted data)."""
        return self._map(operator.attrgetter("sum_weights2"), np.float64)

    @property
    def m3(self):
        """Lazy float64 Dask array of M3 (order 3 and 4; AttributeError otherwise)."""
        self._probe().m3
        return self._field("m3")

    @property
    def m4(self):
        """Lazy float64 Dask array of M4 (order 4; AttributeError otherwise)."""
        self._probe().m4
        return self._field("m4")

    def skew(self, bias=True):
        """Lazy sample skewness, as :meth:`fastmoments.Moments.skew` (order 3 or 4)."""
        self._probe().skew(bias)
        return self._map(_skew, np.float64, bias=bias)

    def kurtosis(self, fisher=True, bias=True):
        """Lazy sample kurtosis, as :meth:`fastmoments.Moments.kurtosis` (order 4)."""
        self._probe().kurtosis(fisher, bias)
        return self._map(_kurtosis, np.float64, fisher=fisher, bias=bias)


class LazySummary(_LazyState):
    """Lazy :class:`fastmoments.Summary`: computes to one ``Summary``.

    As :class:`LazyMoments`, plus lazy ``min``, ``max``, ``n_nonfinite``,
    ``n_zero`` and ``norm()``.
    """

    _state_cls = Summary
    __slots__ = ()

    @property
    def min(self):
        """Lazy float64 Dask array of the minima of the finite values."""
        return self._field("min")

    @property
    def max(self):
        """Lazy float64 Dask array of the maxima of the finite values."""
        return self._field("max")

    @property
    def n_nonfinite(self):
        """Lazy int64 Dask array of the NaN and +-Inf counts."""
        return self._field("n_nonfinite")

    @property
    def n_zero(self):
        """Lazy int64 Dask array of the zero counts."""
        return self._field("n_zero")

    def norm(self):
        """Lazy L2 norm of the finite values."""
        return self._map(_norm, np.float64)
