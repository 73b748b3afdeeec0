"""The CuPy kernels of the GPU wing, compiled on first use and cached.

``fm_reduce.cu`` (with ``fm_state.cuh`` inlined) becomes one small RawModule
per (dtype, kind), ``fm_weighted.cu`` (with ``fm_wstate.cuh``) one per
(data dtype, weights dtype, order), ``fm_grouped.cu`` one per (dtype,
kind) and ``fm_wgrouped.cu`` one per (data dtype, weights dtype, order), so a first call compiles only what it
needs; CuPy keeps the binaries in its on-disk cache. The merges are
ElementwiseKernels whose preamble is ``fm_state.cuh`` or ``fm_wstate.cuh``,
the same device functions the reductions use.
"""

from __future__ import annotations

import cupy

from . import _sources as src

__all__ = ["partial_kernels", "each_kernel", "finalize_kernel", "merge_kernel", "weighted_partial_kernels",
           "weighted_finalize_kernel", "group_partial_kernel", "wgroup_partial_kernel"]

_OPTIONS = ("-std=c++17",)
_modules: dict = {}
_merges: dict = {}


def _function(names: tuple[str, ...], name: str, source=None):
    key = (cupy.cuda.runtime.getDevice(), names)
    mod = _modules.get(key)
    if mod is None:
        code = src.read_source() if source is None else src.read_source(source)
        mod = cupy.RawModule(code=code, options=_OPTIONS, name_expressions=list(names))
        _modules[key] = mod
    return mod.get_function(name)


def partial_kernels(dtype, kind):
    """(segment kernel, lane kernel) reading ``dtype`` for ``kind``."""
    names = src.partial_names(dtype, kind)
    return _function(names, names[0]), _function(names, names[1])


def each_kernel():
    name = src.each_name()
    return _function((name,), name)


def finalize_kernel(kind, tpo):
    names = tuple(src.finalize_name(kind, t) for t in src.FINALIZE_TPO)
    return _function(names, src.finalize_name(kind, tpo))


def weighted_partial_kernels(dtype, wdtype, order):
    """(segment kernel, lane kernel) of fm_weighted.cu for data of ``dtype``,
    weights of ``wdtype`` (None: unweighted) and ``order``."""
    names = src.weighted_partial_names(dtype, wdtype, order)
    return (_function(names, names[0], src.WEIGHTED_SOURCE), _function(names, names[1], src.WEIGHTED_SOURCE))


def weighted_finalize_kernel(order, tpo):
    names = tuple(src.weighted_finalize_name(order, t) for t in src.FINALIZE_TPO)
    return _function(names, src.weighted_finalize_name(order, tpo), src.WEIGHTED_SOURCE)


def group_partial_kernel(dtype, kind):
    """fm_grouped.cu's partial kernel for data of ``dtype`` and ``kind`` (one module per pair)."""
    name = src.group_partial_name(dtype, kind)
    return _function((name,), name, src.GROUPED_SOURCE)


def wgroup_partial_kernel(dtype, wdtype, order):
    """fm_wgrouped.cu's partial kernel for data of ``dtype``, weights of
    ``wdtype`` (None: unweighted) and ``order`` (one module per triple)."""
    name = src.wgroup_partial_name(dtype, wdtype, order)
    return _function((name,), name, src.WGROUPED_SOURCE)


def merge_kernel(kind: str):
    """The ElementwiseKernel merging two field tuples of ``kind`` (broadcasting)."""
    k = _merges.get(kind)
    if k is None:
        in_params, out_params, body = src.MERGE_KERNELS[kind]
        k = cupy.ElementwiseKernel(
            in_params,
            out_params,
            body,
            f"fastmoments_merge_{kind}",
            preamble=src.read_source(src.MERGE_PREAMBLES[kind]),
            options=_OPTIONS,
        )
        _merges[kind] = k
    return k
