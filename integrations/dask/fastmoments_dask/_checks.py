"""Argument checks shared by :func:`fastmoments_dask.moments` and
:func:`fastmoments_dask.comoments`: found when the graph is built, so that a
bad argument fails at the call, not in a worker at compute time."""

from __future__ import annotations

from numbers import Integral

import dask.array as da
import numpy as np

from fastmoments._dispatch import backend_for, is_gpu_array
from fastmoments._inputs import check_dtype, check_not_masked, check_weights_dtype


def as_dask(darr):
    """``darr`` as a Dask array of a supported dtype (TypeError otherwise)."""
    if not isinstance(darr, da.Array):
        darr = da.asarray(darr)
    check_dtype(darr.dtype)
    if isinstance(darr._meta, np.ma.MaskedArray):
        # Found at graph construction; the chunks would fail at compute time.
        raise TypeError(
            "masked dask arrays are not supported: their mask would be ignored. "
            "Use darr.map_blocks(np.ma.filled, np.nan) with skipna=True "
            "to leave the masked values out"
        )
    return darr


def fan_in(v, per_axis=False):
    """A merge tree's fan-in: an int >= 2 (``per_axis``: where a dict of
    them, one per axis, was also possible)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, Integral):
        kinds = "an int >= 2 or a dict of them" if per_axis else "an int >= 2"
        raise TypeError(f"split_every must be {kinds}, got {v!r}")
    if v < 2:
        raise ValueError(f"split_every must be at least 2, got {v}")
    return int(v)


def unknown(sizes):
    """Whether any of the chunk sizes is unknown (NaN)."""
    return any(n != n for n in sizes)


def weights_array(weights, darr):
    """``weights`` as a Dask array or an in-memory array of the chunks' array
    type (lists and scalars become one): TypeError for masked weights, weights
    that are not real numbers, or of the other array type (NumPy against CuPy).
    Shapes, chunks and values are the caller's to check."""
    if isinstance(weights, da.Array):
        w = weights
        if isinstance(w._meta, np.ma.MaskedArray):
            raise TypeError("weights: masked arrays are not supported: their mask would be ignored")
        check_weights_dtype(w.dtype)
    else:
        check_not_masked(weights, "weights")
        if not (isinstance(weights, np.ndarray) or is_gpu_array(weights)):
            # lists and scalars go with the chunks' array type, as in the core
            weights = backend_for(darr._meta).xp.asarray(weights)
        check_weights_dtype(weights.dtype)
        w = weights
    if is_gpu_array(w._meta if isinstance(w, da.Array) else w) != is_gpu_array(darr._meta):
        kinds = ("CuPy", "NumPy") if is_gpu_array(darr._meta) else ("NumPy", "CuPy")
        raise TypeError(
            f"the chunks are {kinds[0]} arrays and the weights {kinds[1]}: give weights of "
            "the chunks' array type (e.g. a Dask array of the same kind of chunks)"
        )
    return w
