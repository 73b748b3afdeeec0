"""Scaling of ``moments`` on float64 from 10^5 to 10^8 values, with the bound at each size.

Target (issue 3): time per element flat within 20% from 10^6 to 10^8
(``bench/report.py`` prints the spread).

Two modes. "warm": rounds back to back, so up to ~10^6 values (8 MB) the
data sits in the 32 MB L3 and is read far faster than from memory, which no
per-element figure can be flat across. "cold": before every round a 64 MB
buffer is read, evicting the data, so each size is read from memory; the
flatness target is checked on this mode (it is about overheads, not caches).
"""

import statistics
import time

import numpy as np
import pytest

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


def _run_cold(benchmark, kit, fn, x, rounds):
    """Like kit.run_big, with the data evicted before the bound and the workload."""
    times = []

    def setup():
        _evict(kit)
        t0 = time.perf_counter()
        kit.stream_sum(x)
        times.append(time.perf_counter() - t0)
        _evict(kit)

    result = benchmark.pedantic(fn, args=(x,), setup=setup if not benchmark.disabled else None,
                                rounds=rounds, warmup_rounds=1, iterations=1)
    return result, (statistics.median(times[1:]) if len(times) > 1 else None)


@pytest.mark.parametrize("mode", ["warm", "cold"])
@pytest.mark.parametrize("variant", ["fastmoments.moments", "bound"])
def test_scaling(benchmark, kit, vec, variant, mode):
    nominal, x = vec
    # Enough rounds for a stable median at small sizes, few at 10^8 (~0.1 s each).
    rounds = int(min(200, max(5, 3e7 / x.size)))
    if mode == "cold":
        rounds = min(rounds, 30)  # each round also reads 128 MB to evict
    fn = kit.stream_sum if variant == "bound" else fm.moments
    if mode == "warm":
        result, bound_s = kit.run_big(benchmark, fn, x, bound=(kit.stream_sum, (x,)), rounds=rounds)
    else:
        result, bound_s = _run_cold(benchmark, kit, fn, x, rounds)
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
