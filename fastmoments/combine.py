"""Combining published group summaries (mean, std, count): the seed example done right."""

from __future__ import annotations

import numpy as np

from ._dispatch import backend_for
from .state import Moments, _check_ddof

__all__ = ["combine_mean_std"]


def combine_mean_std(mean1, std1, n1, mean2, std2, n2, *, ddof=1):
    """Mean, standard deviation and size of the union of two groups.

    Vectorized over arrays (NumPy or CuPy, broadcasting). A group of size 0 is
    the identity; a group of size 1 has no spread whatever its std says (NaN
    included); where the union has at most ``ddof`` values its std is NaN.

    Args:
        mean1, std1, n1: first group's mean, std (computed with ``ddof``) and size.
        mean2, std2, n2: the same for the second group.
        ddof: delta degrees of freedom of the given and returned stds.

    Returns:
        ``(mean, std, n)``.
    """
    _check_ddof(ddof)
    fused = getattr(backend_for(mean1, std1, n1, mean2, std2, n2), "combine_mean_std", None)
    out = None if fused is None else fused(mean1, std1, n1, mean2, std2, n2, ddof)
    if out is not None:
        mean, std, n = out
        return (mean[()], std[()], n[()]) if mean.ndim == 0 else out
    a = Moments.from_mean_std(mean1, std1, n1, ddof=ddof)
    b = Moments.from_mean_std(mean2, std2, n2, ddof=ddof)
    m = a.merge(b)
    mean, std, n = m.mean, m.std(ddof), m.count
    if mean.ndim == 0 and isinstance(mean, np.ndarray):
        return mean[()], std, n[()]
    return mean, std, n
