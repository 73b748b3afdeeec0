"""Call overhead on 1,000 values: ``moments`` and ``summarize`` vs ``np.var``.

Target (issue 3): on 1,000 elements, no slower than ``np.var``. Each call is
timed by pytest-benchmark's own calibration (thousands of calls per round).
"""

import numpy as np
import pytest

import fastmoments as fm

N_SMALL = 1000

VARIANTS = {
    "fastmoments.moments": ("fastmoments", lambda x: fm.moments(x)),
    "fastmoments.summarize": ("fastmoments", lambda x: fm.summarize(x)),
    "np.var": ("baseline", lambda x: np.var(x)),
    "np.mean+np.var": ("baseline", lambda x: (np.mean(x), np.var(x))),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_small(benchmark, kit, variant):
    x = kit.normal(N_SMALL, "float64")
    role, call = VARIANTS[variant]
    call(x)  # first call: JIT/cache load, not part of the overhead measured here
    result = benchmark(call, x)
    count, mean, m2 = kit.reference_moments(x)
    if role == "fastmoments":
        kit.check_moments(result.moments if variant.endswith("summarize") else result, x)
    else:
        var = result[1] if isinstance(result, tuple) else result
        kit.check_var(var, x, rtol=1e-12)
    kit.recorder.record(
        benchmark, workload=f"small n={N_SMALL}", variant=variant, role=role,
        nbytes=x.nbytes, elements=x.size, primary=variant == "fastmoments.moments",
    )
    if role == "fastmoments":
        # Target as a speed ratio: np.var's median / this median >= 1.
        benchmark.extra_info.update(target=1.0, target_vs="np.var")
