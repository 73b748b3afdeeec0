"""``summarize_each`` over the 161 float32 parameter arrays of ResNet-50 (25.6 M values).

Baselines: a Python loop of NumPy mean/std/min/max/count_nonzero per array (what a
gradient-watching hook does today), and the streaming bound over the same total
bytes (a parallel Numba sum over one buffer of that size). Target (issue 3):
>= 0.7 of the bound.
"""

import numpy as np
import pytest

import fastmoments as fm

TARGET = 0.7


def test_resnet50_shapes(kit):
    shapes = kit.resnet50_param_shapes()
    # torchvision.models.resnet50(): 161 parameter tensors, 25,557,032 values.
    assert len(shapes) == 161
    assert sum(int(np.prod(s)) for s in shapes) == 25_557_032


@pytest.fixture(scope="module")
def params(kit):
    shapes = kit.resnet50_param_shapes()
    if not kit.timing:  # untimed CI run: same count and ranks, far fewer values
        shapes = [(min(s[0], 8),) + s[1:] for s in shapes]
    rng = np.random.default_rng(2)
    arrays = [(rng.standard_normal(s, dtype=np.float32) * 0.05) for s in shapes]
    for a in arrays[1::9]:  # some exact zeros, as in freshly initialised biases
        a.reshape(-1)[::3] = 0
    flat = np.concatenate([a.reshape(-1) for a in arrays])  # the bound's buffer: same bytes
    ref = {
        "count": np.array([a.size for a in arrays]),
        "mean": np.array([a.mean(dtype=np.float64) for a in arrays]),
        "std": np.array([a.std(dtype=np.float64) for a in arrays]),
        "min": np.array([a.min() for a in arrays], dtype=np.float64),
        "max": np.array([a.max() for a in arrays], dtype=np.float64),
        "n_zero": np.array([a.size - np.count_nonzero(a) for a in arrays]),
    }
    yield arrays, flat, ref
    del arrays, flat


def numpy_loop(arrays):
    """What a hook does today: five NumPy reductions per array, in Python."""
    return [(a.mean(), a.std(), a.min(), a.max(), np.count_nonzero(a)) for a in arrays]


VARIANTS = {
    "fastmoments.summarize_each": "fastmoments",
    "fastmoments.summarize_each(histogram=True)": "histogram",
    "NumPy loop (mean/std/min/max/count_nonzero)": "baseline",
    "bound (same bytes)": "bound",
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_summarize_each(benchmark, kit, params, variant):
    arrays, flat, ref = params
    role = VARIANTS[variant]
    bound = (kit.stream_sum, (flat,))
    if role == "fastmoments":
        s, bound_s = kit.run_big(benchmark, fm.summarize_each, arrays, bound=bound)
        np.testing.assert_array_equal(s.count, ref["count"])
        np.testing.assert_array_equal(s.n_nonfinite, 0)
        np.testing.assert_array_equal(s.n_zero, ref["n_zero"])
        np.testing.assert_array_equal(s.min, ref["min"])
        np.testing.assert_array_equal(s.max, ref["max"])
        np.testing.assert_allclose(s.mean, ref["mean"], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(s.std(), ref["std"], rtol=1e-10)
    elif role == "histogram":
        # Issue 21: the magnitude histogram in the same pass, at most 1.3x the time without it.
        s, bound_s = kit.run_big(benchmark, lambda a: fm.summarize_each(a, histogram=True), arrays, bound=bound)
        np.testing.assert_array_equal(s.count, ref["count"])
        np.testing.assert_array_equal(s.histogram.sum(axis=1), ref["count"] - ref["n_zero"])
    elif role == "baseline":
        out, bound_s = kit.run_big(benchmark, numpy_loop, arrays, bound=bound)
        np.testing.assert_allclose([o[1] for o in out], ref["std"], rtol=1e-4)
        np.testing.assert_array_equal([o[4] for o in out], ref["count"] - ref["n_zero"])
    else:
        total, bound_s = kit.run_big(benchmark, kit.stream_sum, flat, bound=bound)
        kit.check_sum(total, flat, rtol=1e-3)
    kit.recorder.record(
        benchmark, workload=f"summarize_each ResNet-50 ({len(arrays)} arrays, {flat.size / 1e6:.1f}M float32)",
        variant=variant, role=role, nbytes=flat.nbytes, bound_s=bound_s, elements=flat.size,
        target=TARGET if role == "fastmoments" else None, primary=role == "fastmoments",
    )
