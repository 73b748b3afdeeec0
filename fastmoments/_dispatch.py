"""The one place that picks a backend (CPU or GPU wing) for the arrays given.

A backend is a module that provides the functions below. Every array it takes
or returns is of its own array type (NumPy for ``fastmoments.cpu``, CuPy for
``fastmoments.gpu``); the layers above never touch kernels directly.

``xp``
    The array module (``numpy`` or ``cupy``).
``asarray(x)``
    Coerce ``x`` to a backend array of an accepted dtype (bool, integer,
    float16/32/64), raising TypeError naming the dtype otherwise. Never
    modifies ``x``.
``moments(x, axes, skipna) -> (count, mean, m2)``
    One pass over ``x``. ``axes`` is a sorted tuple of non-negative axes to
    reduce (empty: every element is its own state). The results have the shape
    of ``x`` without ``axes``: count int64, mean and m2 float64.
``summarize(x, axes) -> (count, mean, m2, min, max, n_nonfinite, n_zero)``
    As ``moments``, over the finite values only; counts are int64, the rest
    float64; min and max are NaN where count is 0.
``summarize(x, axes, histogram=False)`` with ``histogram=True``
    also returns an 8th field: int64 counts of the finite non-zero values per
    binary exponent of ``|v|``, of shape ``out_shape + (N_BINS,)``, in the
    fixed layout of :mod:`fastmoments._histogram` (bin of the float64
    exponent field, clamped to the under- and overflow bins).
``summarize_each(arrays, histogram=False) -> the same 7 fields, each of shape (len(arrays),)``
    (and the histogram, of shape ``(len(arrays), N_BINS)``, with
    ``histogram=True``), computed in the same pass over the data.
    Histograms are merged and reduced by the state layer (a sum), never by a
    backend's ``merge``/``reduce``, which take the 7 summary fields only.
``weighted_moments(x, w, axes, skipna, order) -> fields of kind "weighted<order>"``
    One pass over ``x`` (and ``w``) for weighted and higher-order moments.
    ``w`` is None (every value weighs 1) or a backend array of ``x``'s shape
    (possibly a broadcast view with zero strides) of dtype bool, integer or
    float; ``order`` is 2, 3 or 4. A value of weight 0 is left out as if
    absent, whatever it is (NaN and Inf too); with ``skipna`` NaN values are
    left out whatever their weight. Weights that are negative, NaN or
    infinite are a ValueError with ``_inputs.weights_error``'s message (a
    backend may check them inside its kernel and diagnose only on failure).
    Returns ``(count, sum_weights, sum_weights2, mean, m2[, m3[, m4]])``:
    count int64 (values taken: positive weight), the rest float64, with
    ``m<p>`` the weighted sum of ``(v - mean)**p``. An empty state has count
    0, sums of weights 0, mean NaN and m2 = m3 = m4 = 0. Non-finite values
    taken follow the order-2 rules: a NaN makes mean and m-fields NaN, an Inf
    makes the mean Inf (NaN for both signs) and the m-fields NaN.
``merge(kind, a, b, checked=True) -> fields``
    Elementwise merge of two field tuples of ``kind`` ("moments", "summary",
    or "weighted2"/"weighted3"/"weighted4", the fields of ``weighted_moments``:
    Pebay's pairwise formulas with the sums of weights in place of counts),
    with NumPy broadcasting. Counts whose sums pass int64 are a ValueError;
    ``checked=False`` lets a backend skip that check where it costs a
    synchronization (the GPU), for callers whose counts cannot get there.
``group_moments(x, labels, axis, ngroups, skipna) -> (count, mean, m2)``
    Optional (without it the layer above computes in array code). One pass
    over ``x`` reducing ``axis`` (an int >= 0) per group: ``labels`` is a
    1-D integer backend array (int32 or int64) of length ``x.shape[axis]``;
    negative labels are left out, a label >= ``ngroups`` is a ValueError
    with ``_inputs.label_error``'s message. The results have ``x``'s shape
    with ``axis`` replaced by ``ngroups``; groups without values are empty
    states. None where it does not take these arguments (the GPU: more
    groups x columns than its one-pass kernel holds); the layer above then
    computes in array code.
``group_weighted_moments(x, w, labels, axis, ngroups, skipna, order) -> fields of kind "weighted<order>"``
    Optional (without it the layer above computes in array code). As
    ``group_moments`` for ``weighted_moments``' fields: ``w`` None or
    weights of ``x``'s shape (possibly a broadcast view), checked as there;
    ``order`` 2, 3 or 4. Groups without values are empty states. None
    where it does not take these arguments (too many groups x columns: on
    the CPU over 2**16, on the GPU over what a block's shared memory
    holds); the layer above then computes in array code.
``group_summarize(x, labels, axis, ngroups) -> the 7 summary fields``
    The same for ``summarize``'s fields (optional: without it, a
    NotImplementedError).
``fold(kind, fields) -> fields or None``
    Optional. Merge the states of a field tuple along axis 0 one at a time,
    left to right: bit for bit what ``merge`` gives merging them in that
    order, as a running total does (``merge(merge(s0, s1), s2)``...); counts
    whose sums pass int64 are a ValueError. None for a kind it does not fold
    (the layer above then merges one at a time).
``center_rows(x, w, shift, skipna, out, sums) -> (k, W, W2)``
    Optional (``comoments``' blocks; without it the layer above centers in
    array code). ``x`` is a 2-D block of observations (rows) of ``d``
    variables, ``w`` None or its 1-D weights. Writes the rows taken, minus
    ``shift`` (float64, ``(d,)``) and times the square root of their weight,
    to ``out[:k]`` (float64, C-contiguous, at least as many rows), and adds
    their deviations from ``shift`` times their weight to ``sums`` (float64,
    ``(d,)``). Rows taken: all, except those of weight 0 and, with
    ``skipna``, those with a NaN. Returns ``k`` and the sums of their
    weights and squared weights (both ``k`` without weights).
``reduce(kind, fields, axes) -> fields``
    Merge the states of a field tuple along ``axes`` (a pairwise tree);
    counts whose sums pass int64 are a ValueError.
"""

from __future__ import annotations

import importlib

import numpy as np

__all__ = ["backend_for", "is_gpu_array"]

_BACKENDS: dict[str, object] = {}


def is_gpu_array(x) -> bool:
    """True for CuPy arrays, found without importing CuPy."""
    return type(x).__module__.split(".", 1)[0] == "cupy"


def _load(name: str):
    mod = _BACKENDS.get(name)
    if mod is None:
        mod = importlib.import_module(f"fastmoments.{name}")
        _BACKENDS[name] = mod
    return mod


def backend_for(*values):
    """Return the backend module for ``values``.

    Python and NumPy scalars and lists go with either backend; NumPy arrays with the CPU
    and CuPy arrays with the GPU. Mixing NumPy and CuPy arrays is a TypeError.
    """
    gpu = cpu = False
    for v in values:
        if type(v) is np.ndarray:
            cpu = True
        elif is_gpu_array(v):
            gpu = True
        elif isinstance(v, np.ndarray):
            cpu = True
    if gpu and cpu:
        raise TypeError(
            "cannot mix NumPy and CuPy arrays in one call; move the data to one "
            "device first (cupy.asarray or cupy.asnumpy)"
        )
    return _load("gpu" if gpu else "cpu")
