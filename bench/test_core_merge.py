"""Elementwise merge of two 10-million-element states.

``fastmoments.merge`` vs the seed's ``combine_mean_std`` written with NumPy (the
formula of the seed post, below) and vs a 9-array streaming bound: a parallel
Numba kernel that reads the six input arrays and writes three new ones.
``fastmoments.combine_mean_std`` (the same task from published mean/std/count)
is measured too, as information. Target (issue 3): merge >= 0.7 of the bound.
"""

import numpy as np
import pytest

import fastmoments as fm

N_MERGE = 10_000_000
TARGET = 0.7


def seed_combine_mean_std(mean1, std1, n1, mean2, std2, n2):
    """The seed post's combine, in NumPy: mean, sample std (ddof=1) and size of the union."""
    n = n1 + n2
    mean = (n1 * mean1 + n2 * mean2) / n
    std = np.sqrt(((n1 - 1) * std1**2 + (n2 - 1) * std2**2 + n1 * n2 / n * (mean1 - mean2) ** 2) / (n - 1))
    return mean, std, n


@pytest.fixture(scope="module")
def states(kit):
    n = N_MERGE if kit.timing else 100_003
    rng = np.random.default_rng(1)
    groups = []
    for _ in range(2):
        count = rng.integers(2, 1000, n)
        mean = rng.standard_normal(n) * 3 + 1
        std = rng.random(n) * 2 + 0.1
        groups.append((mean, std, count))
    a = fm.Moments.from_mean_std(*groups[0][:2], groups[0][2], ddof=1)
    b = fm.Moments.from_mean_std(*groups[1][:2], groups[1][2], ddof=1)
    seed_args = (*groups[0], *groups[1])
    yield a, b, seed_args
    del a, b, seed_args, groups


VARIANTS = ["fastmoments.merge", "seed combine (NumPy)", "fastmoments.combine_mean_std", "bound (read 6, write 3)"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_merge(benchmark, kit, states, variant):
    a, b, seed_args = states
    n = a.size
    bound_args = (*a.fields, *b.fields)
    if variant == "fastmoments.merge":
        role, fn, args = "fastmoments", fm.merge, (a, b)
    elif variant == "seed combine (NumPy)":
        role, fn, args = "baseline", seed_combine_mean_std, seed_args
    elif variant == "fastmoments.combine_mean_std":
        role, fn, args = "fastmoments", fm.combine_mean_std, seed_args
    else:
        role, fn, args = "bound", kit.stream_merge9, bound_args
    result, bound_s = kit.run_big(benchmark, fn, *args, bound=(kit.stream_merge9, bound_args))

    want_mean, want_std, want_n = seed_combine_mean_std(*seed_args)
    if variant == "fastmoments.merge":
        got_mean, got_std, got_n = result.mean, result.std(ddof=1), result.count
    elif role == "bound":
        np.testing.assert_array_equal(result[0], a.count + b.count)
        np.testing.assert_array_equal(result[2], a.m2 + b.m2)
        got_mean, got_std, got_n = want_mean, want_std, want_n
    else:
        got_mean, got_std, got_n = result
    np.testing.assert_array_equal(got_n, want_n)
    np.testing.assert_allclose(got_mean, want_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_std, want_std, rtol=1e-10)

    kit.recorder.record(
        benchmark, workload=f"merge 2 states n={n:.0e}", variant=variant, role=role,
        nbytes=6 * 8 * n, bound_s=bound_s, elements=n,
        target=TARGET if variant == "fastmoments.merge" else None,
        primary=variant == "fastmoments.merge",
    )
