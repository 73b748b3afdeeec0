"""Constants and single-value helpers shared by the weighted kernels.

Every function of ``weighted_*.py`` is plain Python written against the
variant constants ``ORDER``, ``WEIGHTED`` and ``SKIPNA`` below;
:func:`fastmoments.cpu.weighted.kernels_for` compiles a copy per variant with
them bound (see :mod:`fastmoments.cpu.weighted` for the layout and the
algorithm).
"""

from __future__ import annotations

import numpy as np

from ._llvm import _f64

_MAXF = np.finfo(np.float64).max
_DOWN = 2.0**-64
_ORIGIN_MAX = 2.0**1000
ORIGIN_SAMPLES = 9
ORIGIN_SEARCH = 64  # values searched from each sample position for one of positive weight

TILE_COLS = 1024  # columns per tile
TILE_BYTES = 1 << 20  # bytes of x (and as many of w) per column tile

# Bound per compiled variant by kernels_for; these values only let the modules
# be read (and linted) as plain Python.
ORDER = 4
WEIGHTED = True
SKIPNA = False
NF = ORDER + 2


# -- one value ---------------------------------------------------------------------


def _weight(wy, i):
    """The weight of value i (1.0 for unweighted data: LLVM folds it away)."""
    return _f64(wy[i]) if WEIGHTED else 1.0


def _takes(v, w):
    """Whether a value (relative to any origin) of weight ``w`` is taken."""
    if SKIPNA:
        return (w > 0.0) & (v == v)
    return w > 0.0
