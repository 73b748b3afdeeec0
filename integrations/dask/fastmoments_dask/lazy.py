"""Lazy states: Dask collections that compute to a fastmoments ``Moments`` / ``Summary``.

A :class:`LazyMoments` wraps the Dask array built by ``dask.array.reduction``
whose blocks are fastmoments states (one per output block). It implements the
Dask collection protocol, so ``result.compute()``, ``dask.compute(result, ...)``,
``dask.persist`` and ``client.compute`` all work and return (or hold) one
``fastmoments`` state, assembled from the blocks at the end. Its fields and
derived statistics are also available as ordinary lazy Dask arrays
(``result.mean``, ``result.var(ddof=1)``, ...) for further Dask work.
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

    fields = tuple(concatenate3(field_tree(blocks, i)) for i in range(len(cls._fields)))
    return cls._wrap(fields)


def _var(state, ddof):
    return state.var(ddof)


def _std(state, ddof):
    return state.std(ddof)


def _norm(state):
    return state.norm()


def _rebuild(dsk, arr_rebuild, arr_args, cls, rename=None):
    return cls(arr_rebuild(dsk, *arr_args, rename=rename))


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
        return (type(self).__name__, self._arr.name)

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
        return _rebuild, (arr_rebuild, arr_args, type(self))

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

    def var(self, ddof=0):
        """Lazy variance, ``m2 / (count - ddof)`` (NaN where ``count <= ddof``)."""
        return self._map(_var, np.float64, ddof=ddof)

    def std(self, ddof=0):
        """Lazy standard deviation."""
        return self._map(_std, np.float64, ddof=ddof)

    def to_dask_array(self):
        """The underlying Dask array whose blocks are fastmoments states."""
        return self._arr


class LazyMoments(_LazyState):
    """Lazy :class:`fastmoments.Moments`: computes to one ``Moments``.

    Use ``.compute()``, ``dask.compute(lazy, ...)``, ``dask.persist`` or a
    distributed ``client.compute``. ``count``, ``mean``, ``m2``, ``var(ddof)``
    and ``std(ddof)`` are lazy Dask arrays.
    """

    _state_cls = Moments
    __slots__ = ()


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
