"""The fixed layout of the magnitude histogram of a :class:`~fastmoments.Summary`.

``summarize``/``summarize_each`` with ``histogram=True`` count the finite
non-zero values ``v`` by the binary exponent of ``|v|``: bin ``1 + E - MIN_EXPONENT``
holds the values with ``2**E <= |v| < 2**(E + 1)``, for every E from
MIN_EXPONENT = -149 (float32's smallest subnormal) to MAX_EXPONENT = 127
(float32's largest binade). Bin 0 holds ``0 < |v| < 2**-149`` and the last bin
``|v| >= 2**128`` (both reachable only by float64 data). So every finite
non-zero float32, float16 and bfloat16 value has a bin of its own exponent:
float16's underflow to zero (below 2**-24), its subnormals ([2**-24, 2**-14))
and its largest value (65504, in [2**15, 2**16)) all show, as do bfloat16's
subnormals down to 2**-133. Zeros, NaN and +-Inf are not counted here: they
are ``n_zero`` and ``n_nonfinite``.

The bin is the float64 exponent field of the value (exact, no logarithm): the
value is taken as float64 first, exactly for every float dtype (an integer
beyond 2**53 rounds as its conversion does).
"""

from __future__ import annotations

import numpy as np

__all__ = ["HISTOGRAM_EXPONENTS", "MIN_EXPONENT", "MAX_EXPONENT", "N_BINS", "histogram_edges", "histogram_of"]

MIN_EXPONENT = -149
MAX_EXPONENT = 127
#: One bin per exponent, plus the underflow and overflow bins.
N_BINS = MAX_EXPONENT - MIN_EXPONENT + 3
#: E of bins 1 .. N_BINS - 2: bin ``1 + i`` counts ``2**E[i] <= |v| < 2**(E[i] + 1)``.
HISTOGRAM_EXPONENTS = np.arange(MIN_EXPONENT, MAX_EXPONENT + 1)
HISTOGRAM_EXPONENTS.flags.writeable = False
# The float64 exponent field (biased by 1023) of a value in bin 1 is
# 1023 + MIN_EXPONENT: bin = field - _FIELD_OFFSET, clamped to [0, N_BINS - 1].
_FIELD_OFFSET = 1023 + MIN_EXPONENT - 1


def histogram_edges() -> np.ndarray:
    """The N_BINS + 1 edges of the bins of |v|: 0, 2**-149, 2**-148, ...,
    2**128, inf. Bin i counts ``edges[i] <= |v| < edges[i + 1]`` (values of
    bin 0 are above 0: zeros are not counted)."""
    inner = np.ldexp(1.0, np.arange(MIN_EXPONENT, MAX_EXPONENT + 2))
    return np.concatenate([[0.0], inner, [np.inf]])


def bins_of(v) -> np.ndarray:
    """The bin of each value of the NumPy array ``v`` (as float64), N_BINS for
    values that are not counted (zeros, NaN, +-Inf)."""
    v = np.asarray(v, dtype=np.float64)
    field = (v.view(np.uint64) >> np.uint64(52)).astype(np.int64) & 0x7FF
    b = np.clip(field - _FIELD_OFFSET, 0, N_BINS - 1)
    return np.where((v == 0) | ~np.isfinite(v), N_BINS, b)


def histogram_of(v) -> np.ndarray:
    """The histogram (int64, N_BINS) of all values of the NumPy array ``v``."""
    return np.bincount(bins_of(v).reshape(-1), minlength=N_BINS + 1)[:N_BINS].astype(np.int64)


def elementwise(v) -> np.ndarray:
    """One histogram per value of ``v`` (shape ``v.shape + (N_BINS,)``): a state per element."""
    b = bins_of(v)
    return (b[..., None] == np.arange(N_BINS)).astype(np.int64)
