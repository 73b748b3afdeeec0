"""Merging published summaries (mean, std, count) in one pass: ``combine_mean_std``.

Each element is turned into a state as ``Moments.from_mean_std`` does and
merged with the very function behind ``merge`` (``merge_moments``), then its
standard deviation taken: one read of the six inputs, one write of the three
outputs. Inputs the state constructors would refuse (negative counts or
stds) are tallied, not diagnosed: the caller then takes the checked path,
whose messages name the problem.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .base import _opts, _serial_twin
from .merges import merge_moments


@njit(**_opts)
def _state(n, mean, std, ddof):
    """(m2, mean) of a published group, as Moments.from_mean_std builds it."""
    if n == 0:
        return 0.0, np.nan
    if n == 1:
        return 0.0, mean  # one value has no spread, whatever std says
    dof = n - ddof
    return (std * std * dof if dof > 0 else np.nan), mean


@njit(parallel=True, **_opts)
def combine_arrays(m1, s1, n1, m2, s2, n2, ddof, mean_out, std_out, n_out):
    """Elementwise union of two groups of flat, equally shaped arrays; returns
    (refused inputs, counts whose sum passed int64)."""
    bad = 0
    wrapped = 0
    for i in prange(m1.size):
        na, nb = n1[i], n2[i]
        bad += 1 if (na < 0) | (nb < 0) | (s1[i] < 0) | (s2[i] < 0) else 0
        qa, ma = _state(na, m1[i], s1[i], ddof)
        qb, mb = _state(nb, m2[i], s2[i], ddof)
        n, mean, q = merge_moments(na, ma, qa, nb, mb, qb)
        wrapped += 1 if n < 0 else 0
        denom = n - ddof
        n_out[i] = n
        mean_out[i] = mean
        std_out[i] = np.sqrt(q / denom) if denom > 0 else np.nan
    return bad, wrapped


combine_arrays_serial = _serial_twin(combine_arrays)
