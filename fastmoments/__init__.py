"""fastmoments: one-pass, mergeable mean/variance statistics on CPU and GPU.

The public API: the state types :class:`Moments` and :class:`Summary`, the
one-pass reductions :func:`moments`, :func:`summarize` and
:func:`summarize_each`, :func:`merge`, :func:`combine_mean_std` and the
stream accumulator :class:`RunningMoments`. NumPy inputs run on Numba CPU
kernels, CuPy inputs on CUDA kernels.
"""

from .combine import combine_mean_std
from .reductions import merge, moments, summarize, summarize_each
from .running import RunningMoments
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
]
