"""fastmoments: one-pass, mergeable mean/variance statistics on CPU and GPU.

The public API: the state types :class:`Moments` and :class:`Summary`, the
one-pass reductions :func:`moments`, :func:`summarize` and
:func:`summarize_each`, their per-group forms :func:`group_moments` and
:func:`group_summarize`, :func:`merge`, :func:`combine_mean_std` and the
stream accumulator :class:`RunningMoments`; for the covariance of several variables,
:func:`comoments`, its state :class:`CoMoments` and :class:`RunningCoMoments`. NumPy inputs run on Numba CPU
kernels, CuPy inputs on CUDA kernels.
"""

from ._histogram import HISTOGRAM_EXPONENTS
from .combine import combine_mean_std
from .covariance import CoMoments, comoments
from .grouped import group_moments, group_summarize
from .reductions import merge, moments, summarize, summarize_each
from .running import RunningMoments
from .running_comoments import RunningCoMoments
from .state import Moments, Summary

__version__ = "0.1.0"

__all__ = [
    "Moments",
    "Summary",
    "RunningMoments",
    "moments",
    "summarize",
    "summarize_each",
    "merge",
    "combine_mean_std",
    "CoMoments",
    "RunningCoMoments",
    "comoments",
    "HISTOGRAM_EXPONENTS",
    "group_moments",
    "group_summarize",
]
