"""TensorBoard raw histograms from the fused pass's magnitude counts (no pass over the gradients).

``fastmoments.summarize_each(..., histogram=True)`` counts each array's
finite non-zero ``|g|`` per power of two (bin ``i`` holds
``edges[i] <= |g| < edges[i + 1]``, ``edges = Summary.histogram_edges``:
0, 2**-149, ..., 2**128, inf). TensorBoard's raw histogram record
(``add_histogram_raw``) takes exactly such counts with the bins' upper
edges as ``bucket_limits``. Per layer (its parameters' gradients summed),
over the report interval:

- ``bucket_limits``/``bucket_counts``: the bins from the first to the last
  that holds a value (empty bins between them kept, with count 0); the
  overflow bin's upper edge inf is written as the largest float64, as
  TensorBoard's own histograms end;
- ``min``: the lower edge of the first such bin (TensorBoard draws it as
  the first bucket's left edge); ``max``: the largest ``|g|``, exact, from
  the Summary's min and max (the last bucket's right edge);
- ``num``: the values counted (finite, non-zero);
- ``sum``, ``sum_squares``: the sum and the sum of squares of the layer's
  finite gradient values, exact from the Summary (count, mean, M2; zeros
  add nothing to either). ``sum`` is of the signed values: the Summary has
  no sum of ``|g|``. Both cover every observed step of the interval; with
  ``histogram_every > 1`` the counts cover only the steps that counted
  histograms.

A layer whose gradients held no finite non-zero value in the interval
(dead, or all NaN) gets no histogram record at that report.
"""

from __future__ import annotations

import functools

import numpy as np

import fastmoments

__all__ = ["layer_histograms", "raw_histogram"]


@functools.lru_cache(maxsize=None)
def _edges():
    """The histogram's bin edges (computed at first use: importing the package runs no summary)."""
    return fastmoments.summarize_each([np.zeros(1, np.float32)], histogram=True).histogram_edges

_DBL_MAX = float(np.finfo(np.float64).max)


def raw_histogram(counts, maxabs, total, sum_squares):
    """``add_histogram_raw``'s keyword arguments for one histogram ``counts`` (N_BINS), or None if empty."""
    counts = np.asarray(counts, np.int64)
    used = np.flatnonzero(counts)
    if not used.size:
        return None
    lo, hi = int(used[0]), int(used[-1])
    edges = _edges()
    limits = np.minimum(edges[lo + 1 : hi + 2], _DBL_MAX)
    return {"min": float(edges[lo]), "max": float(maxabs), "num": int(counts.sum()), "sum": float(total),
            "sum_squares": float(sum_squares), "bucket_limits": [float(v) for v in limits],
            "bucket_counts": [int(c) for c in counts[lo : hi + 1]]}


def layer_histograms(core):
    """Per gradient layer of ``core``'s running interval: :func:`raw_histogram`'s record.

    Empty dict when the interval counted no histogram. Reads the pool's host
    copies (as a report does), leaving the interval as it is.
    """
    counts = core.pool.histograms()
    if counts is None:
        return {}
    pooled, _ = core.pool.collect()
    n_obs = core.pool.n_obs
    acc = {}
    for e, ent in enumerate(core.entries):
        if ent.kind != "grad" or not n_obs[e]:
            continue
        a = acc.setdefault(ent.layer, [np.zeros(counts.shape[-1], np.int64), 0.0, 0.0, 0.0])
        a[0] += counts[e]
        c = int(pooled.count[e])
        if c:
            mean = float(pooled.mean[e])
            a[1] = max(a[1], abs(float(pooled.min[e])), abs(float(pooled.max[e])))
            a[2] += c * mean
            a[3] += float(pooled.m2[e]) + c * mean * mean
    out = {}
    for layer, (h, maxabs, total, sq) in acc.items():
        rec = raw_histogram(h, maxabs, total, sq)
        if rec is not None:
            out[layer] = rec
    return out
