"""Scaling of ``moments`` on float64 from 10^5 to 10^8 values, with the bound at each size.

Target (issue 3): time per element flat within 20% from 10^6 to 10^8
(``bench/report.py`` prints the spread).

Three modes:

- "warm": rounds back to back, so up to ~10^6 values (8 MB) the data sits in
  the 32 MB L3 and is read far faster than from memory, which no per-element
  figure can be flat across.
- "flushed": before every round the data's cache lines are flushed
  (``clflush``), so each size is read from memory while the interpreter, the
  compiled code and everything else stay where a loop calling ``moments``
  keeps them. The flatness target is checked on this mode: it is about
  fixed per-call costs, not caches.
- "cold": before every round a 64 MB buffer is read, evicting everything,
  the interpreter's own objects too: every Python-level step of any call then
  costs tens of microseconds in cache misses (``np.var`` of 10 values took
  170 us so, 14 us warm). Information: how a call fares after unrelated
  work has swept the caches.
"""

import platform
import statistics
import time

import numpy as np
import pytest
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

import fastmoments as fm

SIZES = [10**5, 10**6, 10**7, 10**8]


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"1e{len(str(n)) - 1}")
def vec(request, kit):
    n = request.param if kit.timing else request.param // 1000  # untimed: 100 .. 100,000
    x = kit.normal(n, "float64", seed=3)
    yield request.param, x
    del x


_EVICT = {}


def _evict(kit):
    """Read a 64 MB buffer (twice the L3) so the next read comes from memory."""
    if "buf" not in _EVICT:
        _EVICT["buf"] = np.ones(8 << 20)
    kit.stream_sum(_EVICT["buf"])


_X86 = platform.machine().lower() in ("x86_64", "amd64")


@intrinsic
def _clflush(typingctx, arr, index):
    """Write back and drop the cache line holding ``arr[index]`` (x86 ``clflush``)."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, b, signature, args):
        ary = context.make_array(signature.args[0])(context, b, args[0])
        idx = context.cast(b, args[1], signature.args[1], types.intp)
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(b.module, ir.FunctionType(ir.VoidType(), [i8p]),
                                            "llvm.x86.sse2.clflush")
        b.call(fn, [b.bitcast(b.gep(ary.data, [idx]), i8p)])
        return context.get_dummy_value()

    return types.void(arr, index), codegen


@intrinsic
def _mfence(typingctx):
    def codegen(context, b, signature, args):
        fn = cgutils.get_or_insert_function(b.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.mfence")
        b.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@njit(cache=True)
def _flush_lines(x):
    for i in range(0, x.size, max(1, 64 // x.itemsize)):
        _clflush(x, i)
    _mfence()  # clflush is ordered only by fences: the flush is done before the timer starts


def _flush(kit, x):
    """Drop ``x`` (C-contiguous) from every cache level, nothing else; elsewhere
    than on x86, evict everything instead."""
    if _X86:
        _flush_lines(x.reshape(-1))
    else:
        _evict(kit)


def _run_from_memory(benchmark, kit, fn, x, rounds, clear):
    """Like kit.run_big, with ``clear(kit, x)`` before the bound's round and the workload's."""
    times = []

    def setup():
        clear(kit, x)
        t0 = time.perf_counter()
        kit.stream_sum(x)
        times.append(time.perf_counter() - t0)
        clear(kit, x)

    if benchmark.disabled:
        clear(kit, x)  # so that CI runs the flush too
    result = benchmark.pedantic(fn, args=(x,), setup=setup if not benchmark.disabled else None,
                                rounds=rounds, warmup_rounds=1, iterations=1)
    return result, (statistics.median(times[1:]) if len(times) > 1 else None)


@pytest.mark.parametrize("mode", ["warm", "flushed", "cold"])
@pytest.mark.parametrize("variant", ["fastmoments.moments", "bound"])
def test_scaling(benchmark, kit, vec, variant, mode):
    nominal, x = vec
    # Enough rounds for a stable median at small sizes, few at 10^8 (~0.1 s each).
    rounds = int(min(200, max(5, 3e7 / x.size)))
    if mode != "warm":
        rounds = min(rounds, 30)  # each round also evicts or flushes twice
    fn = kit.stream_sum if variant == "bound" else fm.moments
    if mode == "warm":
        result, bound_s = kit.run_big(benchmark, fn, x, bound=(kit.stream_sum, (x,)), rounds=rounds)
    else:
        clear = _flush if mode == "flushed" else lambda kit, x: _evict(kit)
        result, bound_s = _run_from_memory(benchmark, kit, fn, x, rounds, clear)
    if variant == "bound":
        kit.check_sum(result, x, rtol=1e-9)
        role = "bound"
    else:
        kit.check_moments(result, x)
        role = "fastmoments"
    kit.recorder.record(
        benchmark, workload=f"scaling float64 n=1e{len(str(nominal)) - 1} ({mode})", variant=variant,
        role=role, nbytes=x.nbytes, bound_s=bound_s, elements=x.size,
        primary=role == "fastmoments",
    )
    benchmark.extra_info["scaling_n"] = nominal
    benchmark.extra_info["scaling_mode"] = mode
