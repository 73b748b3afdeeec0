"""Input checks shared by both backends: axes and dtypes."""

from __future__ import annotations

import operator

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

__all__ = [
    "normalize_axes", "check_dtype", "check_not_masked", "check_weights_dtype", "weights_error", "COUNT_OVERFLOW",
    "check_labels_dtype", "label_error",
]

COUNT_OVERFLOW = "the merged counts pass 2**63 - 1, the range of their int64"


def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """Sorted non-negative axes; None means all. Raises NumPy's AxisError."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (bool, np.bool_)) or not (
        isinstance(axis, (int, np.integer, tuple, list))
    ):
        raise TypeError(f"axis must be None, an int or a tuple of ints, got {axis!r}")
    if isinstance(axis, list):
        axis = tuple(axis)
    return tuple(sorted(normalize_axis_tuple(axis, ndim, "axis")))


def check_dtype(dtype) -> None:
    """Accept bool, integer and real floating dtypes up to 64 bits; TypeError for the rest."""
    if dtype.kind == "f" and dtype.itemsize > 8:
        # Accumulating in float64 would round its values, and overflow those
        # beyond float64's range, without a word.
        raise TypeError(
            f"unsupported dtype {dtype}: extended precision (np.longdouble) is not "
            "supported; convert explicitly, e.g. x.astype(np.float64)"
        )
    if dtype.kind not in "biuf":
        what = {
            "c": "complex numbers have no single variance",
            "O": "object arrays are not numeric",
            "U": "strings are not numeric",
            "S": "bytes are not numeric",
            "V": "structured/void arrays are not numeric",
            "M": "datetimes are not supported",
            "m": "timedeltas are not supported",
        }.get(dtype.kind, "not a real numeric dtype")
        raise TypeError(f"unsupported dtype {dtype}: {what}")


def check_not_masked(x, name=None) -> None:
    """TypeError for NumPy masked arrays, whose mask np.asarray would drop,
    also inside (nested) lists and tuples. ``name``: the argument, for a
    message about something other than the data reduced."""
    if not _holds_masked(x):
        return
    if name is not None:
        raise TypeError(f"{name}: masked arrays are not supported: their mask would be ignored")
    raise TypeError(
        "masked arrays are not supported: their mask would be ignored. Reduce "
        "x.compressed() for all values, or x.filled(np.nan) with skipna=True "
        "(moments) to leave the masked values out along an axis"
    )


def _holds_masked(x, depth=0) -> bool:
    if isinstance(x, np.ma.MaskedArray):
        return True
    # Sequences of arrays or sequences only: a list of a million numbers is
    # not walked (np.asarray refuses arrays mixed with scalars anyway).
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], (list, tuple, np.ndarray)) and depth < 32:
        return any(_holds_masked(v, depth + 1) for v in x)
    return False


def check_weights_dtype(dtype) -> None:
    """Weights are bool, integer or real floats; TypeError naming the dtype otherwise."""
    try:
        check_dtype(dtype)
    except TypeError as e:
        raise TypeError(f"weights: {e}") from None


def weights_error(w, xp):
    """The message for weights that are not all non-negative and finite, or
    None where they are (one pass over ``w``; on a GPU, one synchronization)."""
    if w.dtype.kind != "f":
        return None if w.dtype.kind in "bu" or not bool(xp.any(w < 0)) else "weights must be non-negative"
    problems = []
    if bool(xp.any(xp.isnan(w))):
        problems.append("NaN")
    if bool(xp.any(xp.isinf(w))):
        problems.append("infinite")
    if bool(xp.any(w < 0)):
        problems.append("negative")
    if not problems:
        return None
    return f"weights must be non-negative and finite; got {' and '.join(problems)} weights"


def check_labels_dtype(dtype) -> None:
    """Group labels are integers; TypeError naming the dtype otherwise (bool
    too: True/False as groups 1/0 is ambiguous)."""
    if dtype.kind == "b":
        raise TypeError("by: bool labels are ambiguous; give integer group labels, e.g. by.astype(np.int64)")
    if dtype.kind not in "iu":
        raise TypeError(f"by: group labels must be integers, got dtype {dtype}")


def check_ngroups(ngroups) -> int:
    """``ngroups`` as a non-negative int: TypeError for anything but an
    integer (bool too), ValueError for a negative one."""
    if isinstance(ngroups, (bool, np.bool_)):
        raise TypeError(f"ngroups must be a non-negative int, got {ngroups!r}")
    try:
        G = operator.index(ngroups)
    except TypeError:
        raise TypeError(f"ngroups must be a non-negative int, got {ngroups!r}") from None
    if G < 0:
        raise ValueError(f"ngroups must be non-negative, got {G}")
    return int(G)


def label_error(label, ngroups) -> str:
    """The message for a group label past ``ngroups``."""
    return f"by: label {label} is out of range for ngroups={ngroups} (labels must be < ngroups; negative means no group)"
