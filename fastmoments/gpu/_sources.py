"""The CUDA sources of the GPU wing and the kernel names taken from them.

Pure Python (no CuPy), so that the sources can be assembled and compile-checked
with nvcc on machines without a GPU (tests/test_cuda_sources.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

__all__ = [
    "HERE",
    "STATE_HEADER",
    "REDUCE_SOURCE",
    "CTYPES",
    "DTYPE_CODES",
    "KINDS",
    "FINALIZE_TPO",
    "ctype_of",
    "dtype_code",
    "read_source",
    "partial_names",
    "each_name",
    "finalize_name",
    "all_kernel_names",
    "MERGE_KERNELS",
    "MERGE_PREAMBLES",
    "WSTATE_HEADER",
    "WEIGHTED_SOURCE",
    "ORDERS",
    "weight_ctype_of",
    "weighted_partial_names",
    "weighted_finalize_name",
    "weighted_kernel_names",
    "GROUPED_SOURCE",
    "group_partial_name",
    "grouped_kernel_names",
    "WGROUPED_SOURCE",
    "wgroup_partial_name",
    "wgrouped_kernel_names",
]

HERE = Path(__file__).resolve().parent
STATE_HEADER = HERE / "fm_state.cuh"
REDUCE_SOURCE = HERE / "fm_reduce.cu"
WSTATE_HEADER = HERE / "fm_wstate.cuh"
WEIGHTED_SOURCE = HERE / "fm_weighted.cu"
GROUPED_SOURCE = HERE / "fm_grouped.cu"
WGROUPED_SOURCE = HERE / "fm_wgrouped.cu"

# Storage type of each accepted dtype, as named in the kernels' templates, and
# its code in the summarize_each table (FM_DT_* in fm_reduce.cu).
CTYPES = {
    np.dtype(np.bool_): "fm_bool",  # read as bytes: any nonzero byte is True
    np.dtype(np.int8): "signed char",
    np.dtype(np.uint8): "unsigned char",
    np.dtype(np.int16): "short",
    np.dtype(np.uint16): "unsigned short",
    np.dtype(np.int32): "int",
    np.dtype(np.uint32): "unsigned int",
    np.dtype(np.int64): "long long",
    np.dtype(np.uint64): "unsigned long long",
    np.dtype(np.float16): "fm_half",
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
}
DTYPE_CODES = {dt: code for code, dt in enumerate(CTYPES)}

MOMENTS, MOMENTS_SKIPNA, SUMMARY = 0, 1, 2
KINDS = (MOMENTS, MOMENTS_SKIPNA, SUMMARY)
THREADS = 256  # FM_THREADS
FINALIZE_TPO = (1, 32, THREADS)

# The merge ElementwiseKernels: (in_params, out_params, operation) per state
# kind. The operations only call fm_state.cuh, their preamble.
MERGE_KERNELS = {
    "moments": (
        "int64 na, float64 ma, float64 qa, int64 nb, float64 mb, float64 qb",
        "int64 n_out, float64 mean_out, float64 m2_out",
        "fm_state r = fm_merge_moments_ew(na, ma, qa, nb, mb, qb);"
        " n_out = r.n; mean_out = r.mean; m2_out = r.m2;",
    ),
    "summary": (
        "int64 na, float64 ma, float64 qa, float64 loa, float64 hia, int64 nnfa, int64 nza,"
        " int64 nb, float64 mb, float64 qb, float64 lob, float64 hib, int64 nnfb, int64 nzb",
        "int64 n_out, float64 mean_out, float64 m2_out, float64 lo_out, float64 hi_out,"
        " int64 nnf_out, int64 nz_out",
        "fm_state r = fm_merge_summary_ew(na, ma, qa, loa, hia, nnfa, nza,"
        " nb, mb, qb, lob, hib, nnfb, nzb);"
        " n_out = r.n; mean_out = r.mean; m2_out = r.m2; lo_out = r.lo; hi_out = r.hi;"
        " nnf_out = r.nnf; nz_out = r.nz;",
    ),
}

ORDERS = (2, 3, 4)
_WFIELDS = ("n", "w", "w2", "mean", "m2", "m3", "m4")


def _weighted_merge(order: int):
    """The merge ElementwiseKernel of kind ``weighted<order>``."""
    names = _WFIELDS[: 3 + order]

    def params(suffix):
        return ", ".join(f"{'int64' if f == 'n' else 'float64'} {f}{suffix}" for f in names)

    def args(suffix):
        return ", ".join(f"{f}{suffix}" if f in names else "0.0" for f in _WFIELDS)

    body = (
        f"fm_wstate<{order}> r = fm_wmerge_ew<{order}>({args('a')}, {args('b')});"
        " n_out = r.n; w_out = r.w; w2_out = r.w2; mean_out = r.mean; m2_out = r.m[0];"
        + (" m3_out = r.m[1];" if order >= 3 else "")
        + (" m4_out = r.m[2];" if order >= 4 else "")
    )
    return (f"{params('a')}, {params('b')}", params("_out"), body)


for _order in ORDERS:
    MERGE_KERNELS[f"weighted{_order}"] = _weighted_merge(_order)
del _order

# The preamble (a header, inlined) of each merge ElementwiseKernel.
MERGE_PREAMBLES = {kind: WSTATE_HEADER if kind.startswith("weighted") else STATE_HEADER for kind in MERGE_KERNELS}

_INCLUDE = re.compile(r'^#include "([^"]+)"\s*$', re.M)


def _canonical(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    # intc/longlong and friends: the same storage as the sized type.
    for known in CTYPES:
        if dt.kind == known.kind and dt.itemsize == known.itemsize:
            return known
    raise TypeError(f"unsupported dtype {dt}")


def ctype_of(dtype) -> str:
    """The C type the kernels use to read values of ``dtype``."""
    return CTYPES[_canonical(dtype)]


def dtype_code(dtype) -> int:
    """The FM_DT_* code of ``dtype`` for the summarize_each table."""
    return DTYPE_CODES[_canonical(dtype)]


def read_source(path: Path = REDUCE_SOURCE) -> str:
    """The text of ``path`` with our own ``#include "x.cuh"`` lines inlined.

    Inlining (instead of an include path) keys CuPy's kernel cache on the whole
    text, so an edit of the header can never reuse a stale binary.
    """
    seen: set[Path] = set()

    def expand(p: Path) -> str:
        if p in seen:  # the headers have include guards; once is enough
            return ""
        seen.add(p)
        text = p.read_text()
        return _INCLUDE.sub(lambda m: expand(p.parent / m.group(1)), text)

    return expand(Path(path))


def partial_names(dtype, kind: int) -> tuple[str, str]:
    """Name expressions of the segment and lane kernels for ``dtype`` and ``kind``."""
    t = ctype_of(dtype)
    return (f"fm_segment_partial<{t}, {kind}>", f"fm_lane_partial<{t}, {kind}>")


def each_name() -> str:
    return f"fm_each_partial<{SUMMARY}>"


def finalize_name(kind: int, tpo: int) -> str:
    """``kind`` is MOMENTS or SUMMARY (skipna does not change merging)."""
    k = SUMMARY if kind == SUMMARY else MOMENTS
    return f"fm_finalize<{k}, {tpo}>"


def all_kernel_names() -> list[str]:
    """Every kernel instantiation the GPU wing may ask for."""
    names = []
    for dt in CTYPES:
        for kind in KINDS:
            names.extend(partial_names(dt, kind))
    names.append(each_name())
    for kind in (MOMENTS, SUMMARY):
        for tpo in FINALIZE_TPO:
            names.append(finalize_name(kind, tpo))
    return names


# -- weighted and higher-order moments (fm_weighted.cu) -------------------------------


def weight_ctype_of(wdtype) -> str:
    """The C type the weighted kernels read weights of ``wdtype`` as; None: no weights."""
    return "fm_unit" if wdtype is None else ctype_of(wdtype)


def weighted_partial_names(dtype, wdtype, order: int) -> tuple[str, str]:
    """Name expressions of the weighted segment and lane kernels for data of
    ``dtype``, weights of ``wdtype`` (None: unweighted) and ``order``."""
    t, tw = ctype_of(dtype), weight_ctype_of(wdtype)
    return (f"fm_wsegment_partial<{t}, {tw}, {order}>", f"fm_wlane_partial<{t}, {tw}, {order}>")


def weighted_finalize_name(order: int, tpo: int) -> str:
    return f"fm_wfinalize<{order}, {tpo}>"


def weighted_kernel_names(full: bool = False) -> list[str]:
    """Kernel instantiations of fm_weighted.cu. ``full``: every one the GPU
    wing may ask for (12 data x 13 weight types x 3 orders, compiled lazily
    one (data, weights, order) module at a time); otherwise a covering sample
    for compile checks: every data type with float64 weights and without,
    every weight type with float64 data, each at every order, and every
    finalize."""
    wtypes = [None, *CTYPES]
    if full:
        combos = [(dt, wt) for dt in CTYPES for wt in wtypes]
    else:
        f64 = np.dtype(np.float64)
        combos = [(dt, wt) for dt in CTYPES for wt in (None, f64)] + [(f64, wt) for wt in CTYPES if wt != f64]
    names = []
    for order in ORDERS:
        for dt, wt in combos:
            names.extend(weighted_partial_names(dt, wt, order))
        for tpo in FINALIZE_TPO:
            names.append(weighted_finalize_name(order, tpo))
    return names


# -- grouped moments and summaries (fm_grouped.cu) ------------------------------------


def group_partial_name(dtype, kind: int) -> str:
    """Name expression of the grouped partial kernel for data of ``dtype`` and ``kind``."""
    return f"fm_group_partial<{ctype_of(dtype)}, {kind}>"


def grouped_kernel_names() -> list[str]:
    """Every instantiation of fm_grouped.cu the GPU wing may ask for."""
    return [group_partial_name(dt, kind) for dt in CTYPES for kind in KINDS]


def wgroup_partial_name(dtype, wdtype, order: int) -> str:
    """Name expression of fm_wgrouped.cu's kernel for data of ``dtype``,
    weights of ``wdtype`` (None: unweighted) and ``order``."""
    return f"fm_wgroup_partial<{ctype_of(dtype)}, {weight_ctype_of(wdtype)}, {order}>"


def wgrouped_kernel_names(full: bool = False) -> list[str]:
    """Instantiations of fm_wgrouped.cu: ``full`` every one the GPU wing may
    ask for; otherwise the compile check's sample (every data type with
    float64 weights and without, every weight type with float64 data, each
    at every order)."""
    wtypes = [None, *CTYPES]
    f64 = np.dtype(np.float64)
    if full:
        combos = [(dt, wt) for dt in CTYPES for wt in wtypes]
    else:
        combos = [(dt, wt) for dt in CTYPES for wt in (None, f64)] + [(f64, wt) for wt in CTYPES if wt != f64]
    return [wgroup_partial_name(dt, wt, order) for order in ORDERS for dt, wt in combos]
