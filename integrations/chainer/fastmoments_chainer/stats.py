"""The reported statistics: moved to :mod:`fastmoments_monitor.stats` (framework-free); re-exported here."""

from fastmoments_monitor.stats import STATS, derive, sum_of_squares  # noqa: F401

__all__ = ["STATS", "derive", "sum_of_squares"]
