"""Streaming covariance (issue 19): ``comoments`` vs the matrix product bound and ``np.cov``.

Workloads (the issue's), float64 and float32: ``(10**6, 64)`` and
``(2*10**5, 512)``, observations along axis 0.

- ``fastmoments``: ``fm.comoments(x)`` (float64 accumulation whatever the input).
- ``bound xc.T @ xc``: the product of the already centered array in the
  input's dtype, NumPy/BLAS as configured (the issue's bound; target 0.8).
  Timed interleaved with every round of every variant (``run_big``'s setup),
  so ``frac_bound`` compares times taken under the same load.
- ``bound per core``: the same product split into one part per core, each
  on a Python thread with BLAS single-threaded (threadpoolctl), summed: how
  fastmoments runs its products. On a loaded machine OpenBLAS' own threads
  lose badly (they spin-wait for each other: 5-10x slower measured here
  under a load of 5 on 2 cores), so this is the steadier bound; as
  information, with its ratio to fastmoments in ``frac_per_core``.
- ``xc64 per core`` (float32 only): the per-core product of the centered
  array in float64, the arithmetic fastmoments does (float32 is accumulated
  in float64, so the float32 product's speed is out of its reach); as
  information.
- ``np.cov``: ``np.cov(x, rowvar=False)``, what people call today (target:
  fastmoments at least 2x faster).

``extra_info`` adds ``gflops``: ``n * d * (d + 1)`` floating-point operations
(the symmetric product's multiply-adds) per median second. Each result is
checked against ``np.cov`` in float64 before it is recorded.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastmoments as fm

TARGET_BOUND = 0.8
ROUNDS = 3  # each call takes 0.1-5 s here: few rounds keep the suite within minutes
SHAPES = {"(1e6, 64)": ((10**6, 64), (20_000, 64)), "(2e5, 512)": ((2 * 10**5, 512), (2_000, 512))}


@pytest.fixture(scope="module", params=[(s, t) for s in SHAPES for t in ("float64", "float32")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def data(request, kit):
    label, dtype = request.param
    big, small = SHAPES[label]
    shape = big if kit.timing else small
    x = kit.normal(shape, dtype)
    x += np.linspace(0, 50, shape[1], dtype=dtype)  # variables of different means
    xc = x - x.mean(axis=0, dtype=np.float64).astype(dtype)
    ref = np.cov(x.astype(np.float64), rowvar=False)
    yield label, dtype, x, xc, ref
    del x, xc


def _product(a):
    return a.T @ a


def _per_core(a):
    parts = np.array_split(a, os.cpu_count() or 1)
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(len(parts)) as ex:
        return sum(ex.map(_product, parts))


def _cov(a):
    return np.cov(a, rowvar=False)


VARIANTS = ["fastmoments", "bound xc.T @ xc", "bound per core", "xc64 per core", "np.cov"]
_PER_CORE_S = {}  # workload -> median seconds of the per-core bound


@pytest.mark.parametrize("variant", VARIANTS)
def test_comoments(benchmark, kit, data, variant):
    label, dtype, x, xc, ref = data
    n, d = x.shape
    if variant == "xc64 per core" and dtype == "float64":
        pytest.skip("the same as the per-core bound for float64 input")
    arg = x
    if variant == "fastmoments":
        role, call = "fastmoments", fm.comoments
    elif variant == "bound xc.T @ xc":
        role, call, arg = "bound", _product, xc
    elif variant == "bound per core":
        role, call, arg = "baseline", _per_core, xc
    elif variant == "xc64 per core":
        role, call, arg = "baseline", _per_core, xc.astype(np.float64)
    else:
        role, call = "baseline", _cov
    rounds = 2 if variant == "np.cov" else ROUNDS  # np.cov takes 5-40 s a call on a loaded VM
    result, bound_s = kit.run_big(benchmark, call, arg, bound=(_product, (xc,)), rounds=rounds)
    scale = np.sqrt(np.outer(np.diag(ref), np.diag(ref)))
    if role == "fastmoments":
        err = float(np.max(np.abs(result.cov() - ref) / scale))
        assert err < 1e-12, err
    elif variant == "np.cov":
        err = float(np.max(np.abs(result - ref) / scale))
        assert err < (1e-4 if dtype == "float32" else 1e-12), err
    else:
        err = float(np.max(np.abs(np.asarray(result, np.float64) / (n - 1) - ref) / scale))
        assert err < (1e-3 if dtype == "float32" else 1e-9), err
    kit.recorder.record(
        benchmark, workload=f"comoments {label} {dtype}", variant=variant, role=role,
        nbytes=x.nbytes, bound_s=bound_s, elements=x.size,
        target=TARGET_BOUND if role == "fastmoments" else None, primary=role == "fastmoments",
        var_rel_err=err,
    )
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        med = stats.stats.median
        benchmark.extra_info["gflops"] = n * d * (d + 1) / med / 1e9
        key = (label, dtype)
        if variant == "bound per core":
            _PER_CORE_S[key] = med
        elif variant == "fastmoments":
            _PER_CORE_S[key, "fm"] = med
        if key in _PER_CORE_S and (key, "fm") in _PER_CORE_S:
            benchmark.extra_info["frac_per_core"] = _PER_CORE_S[key] / _PER_CORE_S[key, "fm"]
