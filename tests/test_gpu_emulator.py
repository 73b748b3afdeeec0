"""The CUDA emulator of the GPU tests catches broken kernels.

Each case breaks the GPU wing's own kernel source in one place, as a slip of
the pen would (a barrier removed, a shuffle mask naming half the lanes, a
wrong shuffle offset, a loop bound off by one), and asserts that the emulated
run fails: the emulator raises, or the result differs from NumPy's, in at
least one of the three thread and block orders. The unbroken source passes
in every order. Runs only on the stand-in CuPy (tests/gpu_emu).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmoments as fm

cupy = pytest.importorskip("cupy")
pytestmark = pytest.mark.skipif(
    not getattr(cupy, "__fmemu__", False), reason="needs the CUDA emulator (FASTMOMENTS_GPU_EMULATOR=1 or CI=true)"
)

if getattr(cupy, "__fmemu__", False):
    from cupy import _emu
    from cupy._emu import EmulatorError

from fastmoments.gpu import _kernels, _sources

ORDERS = (0, 1, 2)  # forward, reverse, shuffled

# (what, text to find in fm_reduce.cu with fm_state.cuh inlined, its broken form)
BREAKS = [
    ("block barrier removed", "    if (lane == 0) warps[warp] = s;\n    __syncthreads();\n",
     "    if (lane == 0) warps[warp] = s;\n"),
    ("lane-kernel barrier removed", "    tile[threadIdx.y][threadIdx.x] = s;\n    __syncthreads();\n",
     "    tile[threadIdx.y][threadIdx.x] = s;\n"),
    ("shuffle mask of half the lanes", "o.n = __shfl_down_sync(0xffffffffu, s.n, offset);",
     "o.n = __shfl_down_sync(0x0000ffffu, s.n, offset);"),
    ("wrong shuffle offset", "for (int offset = 16; offset > 0; offset >>= 1)",
     "for (int offset = 8; offset > 0; offset >>= 1)"),
    ("off-by-one in the tail loop", "for (; i < cnt; ++i) fm_push1<KIND>",
     "for (; i <= cnt; ++i) fm_push1<KIND>"),
    ("off-by-one in the merge of partial states", "for (long long j = begin + lane; j < end; j += TPO)",
     "for (long long j = begin + lane; j <= end; j += TPO)"),
    ("chunk bound off by one", "long long end = min(K, (c + 1) * chunk);\n    long long first = c * chunk + threadIdx.x;",
     "long long end = min(K, (c + 1) * chunk + 1);\n    long long first = c * chunk + threadIdx.x;"),
]

RNG = np.random.default_rng(20261205)
CASES = [
    (RNG.standard_normal(100_003), None),  # segment kernel, several chunks, then fm_finalize
    (RNG.standard_normal((37, 300)), 1),  # segment-free: lane kernel over rows
    (RNG.standard_normal((3000, 40)), 0),  # lane kernel over columns, chunked, then fm_finalize
    (RNG.standard_normal(1001).astype(np.float32), None),
]


def _fails(source: str, monkeypatch) -> list[str]:
    """How the emulated reductions with ``source`` go wrong, per order (empty: they all pass)."""
    monkeypatch.setattr(_sources, "read_source", lambda path=_sources.REDUCE_SOURCE: source
                        if path == _sources.REDUCE_SOURCE else _sources.__dict__["_orig_read"](path))
    problems = []
    for mode in ORDERS:
        monkeypatch.setattr(_emu.settings, "mode", mode)
        _kernels._modules.clear()
        for x, axis in CASES:
            try:
                for skipna in (False, True):
                    got = fm.moments(cupy.asarray(x), axis=axis, skipna=skipna).to_numpy()
                    x64 = x.astype(np.float64)
                    ok = (
                        np.array_equal(got.count, np.full(np.shape(got.mean), x.size // max(np.size(got.mean), 1)))
                        and np.allclose(got.mean, x64.mean(axis=axis), rtol=1e-12, atol=1e-12)
                        and np.allclose(got.var(), x64.var(axis=axis), rtol=1e-10)
                    )
                    if not ok:
                        problems.append(f"order {mode}, shape {x.shape}, axis {axis}: wrong result")
                        break
            except EmulatorError as e:
                problems.append(f"order {mode}, shape {x.shape}, axis {axis}: {str(e)[:200]}")
    _kernels._modules.clear()
    return problems


@pytest.fixture(autouse=True)
def _keep_reader(monkeypatch):
    _sources.__dict__.setdefault("_orig_read", _sources.read_source)
    yield
    _kernels._modules.clear()


def test_unbroken_kernels_pass_in_every_order(monkeypatch):
    assert _fails(_sources.__dict__["_orig_read"](), monkeypatch) == []


@pytest.mark.parametrize("what, find, broken", BREAKS, ids=[b[0] for b in BREAKS])
def test_broken_kernel_fails(what, find, broken, monkeypatch):
    source = _sources.__dict__["_orig_read"]()
    assert source.count(find) == 1, f"the text to break is not in the source once: {find!r}"
    problems = _fails(source.replace(find, broken), monkeypatch)
    assert problems, f"{what}: the emulated run did not notice"
