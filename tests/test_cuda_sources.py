"""Every CUDA source of the project compiles with nvcc for sm_90 (no GPU needed).

Templates compile only when instantiated, so each source is wrapped in a small
generated translation unit that takes the address of every kernel the Python
side asks CuPy for (fastmoments.gpu._sources.all_kernel_names; for
fm_weighted.cu, whose 900-odd instantiations are compiled lazily one module at
a time, weighted_kernel_names' sample of every data type, weight type and
order), and, for fm_state.cuh and fm_wstate.cuh, calls each device function
and the merge ElementwiseKernels' operations as CuPy would inline them. nvcc runs to SASS (ptxas included, so
register and shared-memory limits are checked) with warnings as errors; the
wrappers are compiled in parallel to stay well under a minute.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) not on PATH")

ARCH = "sm_90"
FLAGS = ["-std=c++17", f"-arch={ARCH}", "-Werror", "all-warnings", "-cubin"]
_SKIP_DIRS = {".git", ".venv", "node_modules", "build", "dist", "__pycache__"}


def _project_sources():
    out = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")]
        for f in filenames:
            if f.endswith((".cu", ".cuh")):
                out.append(Path(dirpath) / f)
    return sorted(out)


def _sources_module():
    from fastmoments.gpu import _sources

    return _sources


_C_TYPES = {"int64": "long long", "float64": "double"}


def _elementwise_mock(kind, params):
    """A kernel shaped like CuPy's ElementwiseKernel around one merge operation."""
    in_params, out_params, body = params
    decls, args = [], []
    for p in in_params.split(","):
        t, n = p.split()
        args.append(f"const {_C_TYPES[t]}* _raw_{n}")
        decls.append(f"const {_C_TYPES[t]} {n} = _raw_{n}[i];")
    for p in out_params.split(","):
        t, n = p.split()
        args.append(f"{_C_TYPES[t]}* _raw_{n}")
        decls.append(f"{_C_TYPES[t]} &{n} = _raw_{n}[i];")
    return (
        f'extern "C" __global__ void fastmoments_merge_{kind}({", ".join(args)}, long long size) {{\n'
        "    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < size;"
        " i += (long long)blockDim.x * gridDim.x) {\n"
        f"        {' '.join(decls)}\n        {body}\n    }}\n}}\n"
    )


def _merge_mocks(srcmod, header):
    return "\n".join(
        _elementwise_mock(kind, p) for kind, p in srcmod.MERGE_KERNELS.items() if srcmod.MERGE_PREAMBLES[kind] == header
    )


def _state_header_wrapper(path, srcmod):
    """fm_state.cuh on its own: each device function and kind, and the merge
    operations. (fm_reduce.cu's wrappers instantiate every stored type.)"""
    accumulate = "\n".join(
        f"    fm_accumulate<{t}, {k}>(reinterpret_cast<const {t}*>(p), stride, cnt, s, 0.0);"
        for t in ("fm_bool", "fm_half", "double")
        for k in srcmod.KINDS
    )
    merges = "\n".join(f"    s = fm_merge<{k}>(s, fm_empty());" for k in srcmod.KINDS)
    ew = _merge_mocks(srcmod, srcmod.STATE_HEADER)
    return (
        f'#include "{path}"\n'
        f'#include "{path}"  // the include guard must hold\n'
        "__global__ void fm_check_state(const void* p, long long stride, long long cnt, fm_state* out) {\n"
        "    fm_state s = fm_empty();\n"
        f"{accumulate}\n{merges}\n"
        "    out[0] = s;\n}\n" + ew
    )


def _wstate_header_wrapper(path, srcmod):
    """fm_wstate.cuh on its own: accumulation and merges at every order, with
    and without weights, and the weighted merge operations."""
    body = []
    for order in srcmod.ORDERS:
        body.append(f"    {{ fm_wstate<{order}> s = fm_wempty<{order}>(); bool bad = false;")
        for t, tw in (("fm_bool", "fm_unit"), ("fm_half", "double"), ("double", "fm_half")):
            body.append(
                f"      fm_waccumulate<{t}, {tw}, {order}>(reinterpret_cast<const {t}*>(p), stride,"
                f" reinterpret_cast<const {tw}*>(q), stride, cnt, 0.0, cnt > 3, s, bad);"
            )
        body.append(f"      fm_wmerge_into(s, fm_wempty<{order}>()); out[{order}] = s.m[0] + (bad ? 1.0 : 0.0); }}")
    return (
        f'#include "{path}"\n'
        f'#include "{path}"  // the include guard must hold\n'
        "__global__ void fm_check_wstate(const void* p, const void* q, long long stride, long long cnt,"
        " double* out) {\n" + "\n".join(body) + "\n}\n" + _merge_mocks(srcmod, srcmod.WSTATE_HEADER)
    )


def _kernel_wrappers(path, names, parts):
    """Wrappers that instantiate ``names`` (split in ``parts`` units) of the .cu at ``path``."""
    units = []
    for j in range(parts):
        chunk = names[j::parts]
        lines = "\n".join(f"    fm_sink = (const void*)&{n};" for n in chunk)
        units.append(
            f'#include "{path}"\n'
            "const void* volatile fm_sink;\n"
            f"void fm_instantiate_{j}() {{\n{lines}\n}}\n"
        )
    return units


def _units():
    srcmod = _sources_module()
    units = []
    for path in _project_sources():
        if path == srcmod.STATE_HEADER:
            units.append((path.name, _state_header_wrapper(path, srcmod)))
        elif path == srcmod.REDUCE_SOURCE:
            names = srcmod.all_kernel_names()
            parts = max(2, min(8, os.cpu_count() or 2))
            for j, text in enumerate(_kernel_wrappers(path, names, parts)):
                units.append((f"{path.name}[{j}]", text))
        elif path == srcmod.WSTATE_HEADER:
            units.append((path.name, _wstate_header_wrapper(path, srcmod)))
        elif path == srcmod.WEIGHTED_SOURCE:
            names = srcmod.weighted_kernel_names()
            parts = max(2, min(8, os.cpu_count() or 2))
            for j, text in enumerate(_kernel_wrappers(path, names, parts)):
                units.append((f"{path.name}[{j}]", text))
        elif path in (srcmod.GROUPED_SOURCE, srcmod.WGROUPED_SOURCE):
            names = srcmod.grouped_kernel_names() if path == srcmod.GROUPED_SOURCE else srcmod.wgrouped_kernel_names()
            parts = max(2, min(8, os.cpu_count() or 2))
            for j, text in enumerate(_kernel_wrappers(path, names, parts)):
                units.append((f"{path.name}[{j}]", text))
        elif path.suffix == ".cuh":
            units.append((path.name, f'#include "{path}"\n'))
        else:
            units.append((path.name, f'#include "{path}"\n'))
    return units


def _compile(label, text, tmp):
    safe = label.replace("[", "_").replace("]", "")
    cu = tmp / f"check_{safe}.cu"
    cu.write_text(text)
    proc = subprocess.run(
        [NVCC, *FLAGS, "-o", str(tmp / f"{safe}.cubin"), str(cu)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return label, proc.returncode, proc.stdout + proc.stderr


def test_project_has_cuda_sources():
    names = {p.name for p in _project_sources()}
    assert {"fm_state.cuh", "fm_reduce.cu", "fm_wstate.cuh", "fm_weighted.cu"} <= names


def test_every_cuda_source_compiles(tmp_path):
    units = _units()
    workers = max(1, min(len(units), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda u: _compile(u[0], u[1], tmp_path), units))
    failed = [f"--- {label} (rc {rc})\n{log}" for label, rc, log in results if rc != 0]
    assert not failed, "nvcc failed:\n" + "\n".join(failed)


def test_every_requested_kernel_is_in_the_source():
    """Each name the Python side asks for names a template defined in fm_reduce.cu."""
    srcmod = _sources_module()
    text = srcmod.read_source()
    for name in srcmod.all_kernel_names():
        base = name.split("<", 1)[0]
        assert f" {base}(" in text or f"\n    {base}(" in text, name


def test_every_requested_weighted_kernel_is_in_the_source():
    """Each weighted name names a template of fm_weighted.cu, and the compile
    check's sample covers every data type, weight type and order."""
    srcmod = _sources_module()
    text = srcmod.read_source(srcmod.WEIGHTED_SOURCE)
    full = srcmod.weighted_kernel_names(full=True)
    for name in full:
        base = name.split("<", 1)[0]
        assert f"\n    {base}(" in text, name
    sample = srcmod.weighted_kernel_names()
    assert set(sample) <= set(full)
    args = [n.split("<", 1)[1].rstrip(">").split(", ") for n in sample if n.startswith("fm_wsegment")]
    assert {a[0] for a in args} == set(srcmod.CTYPES.values())
    assert {a[1] for a in args} == set(srcmod.CTYPES.values()) | {"fm_unit"}
    assert {a[2] for a in args} == {str(o) for o in srcmod.ORDERS}
    assert text.count("struct fm_state {") == 1 and text.count("struct fm_wstate {") == 1


def test_read_source_inlines_the_header_once():
    srcmod = _sources_module()
    text = srcmod.read_source()
    assert "#include" not in text
    assert text.count("struct fm_state {") == 1
