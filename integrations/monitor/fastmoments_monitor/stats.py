"""The reported statistics, derived on the host from pooled Summaries.

A parameter's Summary pooled over a report interval holds the count, mean and
M2 of every finite gradient value seen in the interval, their min and max,
and the counts of non-finite values and exact zeros. From it:

- ``mean``, ``std`` (ddof 0), ``min``, ``max``: of those finite values.
- ``norm``: the root mean square, over the interval's iterations, of the
  per-iteration L2 norm. The sum over iterations of the squared norms is the
  sum of all pooled squares, ``M2 + count * mean**2``, so no per-iteration
  bookkeeping is needed: ``norm = sqrt((M2 + count * mean**2) / iterations)``.
  With one iteration it is that iteration's L2 norm (of the finite values).
- ``zeros``: the fraction of values (finite or not) that are exactly zero.
- ``nonfinite``: the count of NaN and +-Inf values.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STATS", "derive", "sum_of_squares"]

#: Every statistic the monitor can report, in table order.
STATS = ("mean", "std", "min", "max", "norm", "zeros", "nonfinite")


def sum_of_squares(summary) -> np.ndarray:
    """Sum of the squares of the finite values, per element of a host Summary."""
    mean = np.where(summary.count > 0, summary.mean, 0.0)
    return summary.m2 + summary.count * mean * mean


def derive(summary, iterations: np.ndarray) -> dict[str, np.ndarray]:
    """All of :data:`STATS` for each element of a host (NumPy) Summary.

    Args:
        summary: a pooled :class:`fastmoments.Summary` with NumPy fields.
        iterations: per element, how many iterations contributed to it.

    Returns:
        A dict from statistic name to a float64 array of the summary's shape;
        NaN where nothing was seen.
    """
    count = summary.count
    total = count + summary.n_nonfinite
    iterations = np.asarray(iterations)
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.where(count > 0, np.sqrt(summary.m2 / np.where(count > 0, count, 1)), np.nan)
        norm = np.where(iterations > 0,
                        np.sqrt(sum_of_squares(summary) / np.where(iterations > 0, iterations, 1)),
                        np.nan)
        zeros = np.where(total > 0, summary.n_zero / np.where(total > 0, total, 1), np.nan)
    return {
        "mean": np.where(count > 0, summary.mean, np.nan),
        "std": std,
        "min": np.asarray(summary.min, np.float64),
        "max": np.asarray(summary.max, np.float64),
        "norm": norm,
        "zeros": zeros,
        "nonfinite": summary.n_nonfinite.astype(np.float64),
    }
