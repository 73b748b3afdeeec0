"""The ground the CPU kernels share: the state layout, the kinds, the
partition sizes, the compile options, and the writes of one state slot.

A *state* is (count, mean, m2) and, for summaries, also min, max, n_nonfinite
and n_zero. Integer fields live in ``si[field]`` (int64), float fields in
``sf[field]`` (float64):

    si: 0 count, 1 n_nonfinite, 2 n_zero
    sf: 0 mean,  1 m2,          2 min,   3 max

Work is split into fixed blocks of ``BLOCK`` contiguous values. Each block is
summed in one pass around a shift near its mean, or, where that would cancel
digits (checked), with the corrected two-pass algorithm while it sits in
cache: the data is read from memory once. Block states are merged with the
pairwise formula of Chan, Golub & LeVeque in a fixed binary tree (a carry
stack). The partition and the tree depend only on the input's shape, never
on the thread count, so results are bit-identical for any number of threads.

``kind`` selects what a block computes: 0 moments, 1 moments skipping NaN,
2 summary (finite values only).

The kernels are modules layered from the bottom up; each imports only
modules above it in this list, never one below:

    _llvm       LLVM intrinsics and vector IR helpers (no kernel of its own)
    base        this module
    histogram   magnitude histograms of blocks (summaries with histogram=True)
    blocks      one block's moments (shifted sums, two-pass, skipna, scaled)
    summaries   one block's summary (min, max, zeros with the sums)
    groups      one block of any kind, and four blocks read together
    merges      pairwise merges, the carry stack, merges of state arrays
    origins     the origins that block and tile means are kept relative to
    tiles       column tiles: per-column states of a block of rows
    columns     reduce_cols: the first axis of a (k, m) array, by tiles
    rows        reduce_rows: the last axis of an (m, k) array, by blocks
    short_rows  short_row_moments: moments of rows of at most SMALL_ROW values
    table       reduce_table: many 1-D arrays by address (summarize_each)

Numba caches each kernel beside its module; :mod:`._cache` stamps every
entry with all of these modules, so that an edit to one recompiles the
kernels that inlined it.
"""

from __future__ import annotations

import types as pytypes

import numpy as np
from numba import njit


BLOCK = 8192  # values per block: 64 KiB of float64, resident in L2 during its two passes
CHUNK = 64  # blocks (or tiles) per parallel task; a power of two keeps the tree unchanged
STACK = 64  # carry-stack depth: enough for 2**64 blocks

MOMENTS, MOMENTS_SKIPNA, SUMMARY = 0, 1, 2
N_INT, N_FLOAT = 3, 4

_INF = np.inf
_MAXF = np.finfo(np.float64).max
# Reassociation lets LLVM vectorize the block sums; it is confined to the
# functions that loop over one block or tile, never the merges.
_FAST = {"reassoc", "contract"}
# error_model="numpy": division by zero gives inf/nan instead of a Python
# exception check, which would also keep loops with a division from vectorizing.
_opts = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_opts)
def _put(si, sf, j, n, mean, m2):
    si[0, j] = n
    sf[0, j] = mean
    sf[1, j] = m2


@njit(**_opts)
def _put_summary(si, sf, j, n, mean, m2, lo, hi, nnf, nz):
    _put(si, sf, j, n, mean, m2)
    si[1, j] = nnf
    si[2, j] = nz
    sf[2, j] = lo
    sf[3, j] = hi


@njit(**_opts)
def nonfinite_mean(nnan, npinf, nninf):
    """The mean of values of which some are NaN or infinite (the counts of
    each, one of them > 0): NaN where a NaN or both infinities are among
    them, else that infinity. The rule of every kernel that keeps NaN."""
    if nnan > 0 or (npinf > 0 and nninf > 0):
        return np.nan
    return np.inf if npinf > 0 else -np.inf


@njit(**_opts)
def n_fields(kind):
    """(int fields, float fields) of an output state array of this kind."""
    return (N_INT, N_FLOAT) if kind == SUMMARY else (1, 2)


@njit(**_opts)
def set_empty(kind, si, sf, j):
    si[0, j] = 0
    sf[0, j] = np.nan
    sf[1, j] = 0.0
    if si.shape[0] > 1:
        si[1, j] = 0
        si[2, j] = 0
        sf[2, j] = np.nan
        sf[3, j] = np.nan


@njit(**_opts)
def copy_slot(si, sf, a, si_out, sf_out, o):
    for f in range(min(si.shape[0], si_out.shape[0])):
        si_out[f, o] = si[f, a]
    for f in range(min(sf.shape[0], sf_out.shape[0])):
        sf_out[f, o] = sf[f, a]


# -- serial twins -----------------------------------------------------------------
# A parallel region costs tens of microseconds to start, and far more when
# another library's threads (OpenBLAS after a matmul) are spinning on the same
# cores, so small inputs take these single-threaded twins. They run the same
# code with prange as range, so results are bit-identical.
def _serial_twin(dispatcher):
    f = dispatcher.py_func
    g = pytypes.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial",
                             f.__defaults__, f.__closure__)
    g.__qualname__ = f.__qualname__ + "_serial"  # its own on-disk cache entry
    g.__doc__ = f.__doc__
    return njit(**_opts)(g)


# -- variants: one module's functions compiled with constants bound -------------------
def compile_variant(g, spec, tag, **attrs):
    """Compile the functions that ``spec`` names from the namespace ``g``
    (a module's globals plus the variant's constants, say ``KIND``), lazily,
    as Numba compiles: on first call. ``spec`` maps a name to ``(fastmath,
    inline, parallel)``, callees first; each compiled function replaces its
    Python one in ``g``, so that callers compile against the variant, and a
    parallel one gets a ``<name>_serial`` twin (prange run as range:
    bit-identical results). ``tag`` names the variant in each function's
    qualified name, which keys its own on-disk cache entry. Returns a
    namespace of the dispatchers, with ``attrs`` set on it."""
    ns = pytypes.SimpleNamespace(**attrs)
    for name, (fast, inline, parallel) in spec.items():
        f = g[name]
        for suffix, par in [("", parallel)] + ([("_serial", False)] if parallel else []):
            fn = pytypes.FunctionType(f.__code__, g, name, f.__defaults__, f.__closure__)
            fn.__qualname__ = f"{name}_{tag}{suffix}"
            fn.__doc__ = f.__doc__
            opts = dict(_opts)
            if fast:
                opts["fastmath"] = _FAST
            if inline:
                opts["inline"] = "always"
            d = njit(parallel=par, **opts)(fn)
            setattr(ns, name + suffix, d)
            if not suffix:
                g[name] = d
    return ns
