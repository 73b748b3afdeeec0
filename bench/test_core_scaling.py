"""Scaling of ``moments`` on float64 from 10^5 to 10^8 values, with the bound at each size.

Target (issue 3): time per element flat within 20% from 10^6 to 10^8
(``bench/report.py`` prints the spread).
"""

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


@pytest.mark.parametrize("variant", ["fastmoments.moments", "bound"])
def test_scaling(benchmark, kit, vec, variant):
    nominal, x = vec
    # Enough rounds for a stable median at small sizes, few at 10^8 (~0.1 s each).
    rounds = int(min(200, max(5, 3e7 / x.size)))
    bound = (kit.stream_sum, (x,))
    if variant == "bound":
        total, bound_s = kit.run_big(benchmark, kit.stream_sum, x, bound=bound, rounds=rounds)
        kit.check_sum(total, x, rtol=1e-9)
        role = "bound"
    else:
        m, bound_s = kit.run_big(benchmark, fm.moments, x, bound=bound, rounds=rounds)
        kit.check_moments(m, x)
        role = "fastmoments"
    kit.recorder.record(
        benchmark, workload=f"scaling float64 n=1e{len(str(nominal)) - 1}", variant=variant,
        role=role, nbytes=x.nbytes, bound_s=bound_s, elements=x.size,
        primary=role == "fastmoments",
    )
    benchmark.extra_info["scaling_n"] = nominal
