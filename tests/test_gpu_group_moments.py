"""group_moments on the GPU wing (fm_grouped.cu's one pass, or the array code
for more slots than it holds) against NumPy per group and the CPU wing.

Runs on a CUDA device, or in CI on the CPU emulator (FASTMOMENTS_GPU_EMULATOR=1),
whose thread and block orders change from launch to launch: equal results of
repeated calls are the determinism the kernel promises.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import fastmoments as fm

from gpu_skip import REASON, cupy, pytestmark  # noqa: F401 (the module's marks)


def _reference(x, lab, axis, G, skipna):
    """Per group, NumPy in float64: count, mean, m2 by the kernels' NaN/Inf rules."""
    xm = np.moveaxis(np.asarray(x, np.float64), axis, 0)
    count, mean, m2 = [], [], []
    for g in range(G):
        v = xm[lab == g]
        if skipna:
            keep = ~np.isnan(v)
            cnt = keep.sum(axis=0)
        else:
            keep = np.ones(v.shape, bool)
            cnt = np.full(v.shape[1:], v.shape[0])
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            s = np.where(keep, v, 0.0).sum(axis=0)
            mu = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
            q = np.where(keep, (v - mu) ** 2, 0.0).sum(axis=0)
            finite = np.where(keep, np.isfinite(v), True).all(axis=0)
            q = np.where(finite, q, np.nan)
        count.append(cnt)
        mean.append(mu)
        m2.append(np.where(cnt > 0, q, 0.0))
    return tuple(np.moveaxis(np.array(a), 0, axis) for a in (count, mean, m2))


def _check(gpu, ref, m2_rtol=1e-10):
    host = gpu.to_numpy()
    count, mean, m2 = ref
    np.testing.assert_array_equal(host.count, count)
    np.testing.assert_allclose(host.mean, mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host.m2, m2, rtol=m2_rtol, atol=1e-9)
    return host


CASES = [  # shape, axis, groups: slots = groups x the other axes' size
    ((20_000,), 0, 7),  # several blocks of 8 warps
    ((70_001,), 0, 3),  # blocks and a ragged last warp
    ((3000, 5), 0, 40),  # 200 slots: fewer warps per block
    ((4, 2500), 1, 3),  # rows of the kept axis: a copy to (n, m)
    ((30, 200, 3), 1, 9),  # 810 slots: one warp per block
]


@pytest.mark.parametrize("shape,axis,G", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
@pytest.mark.parametrize("skipna", [False, True])
def test_against_numpy_and_the_cpu_wing(shape, axis, G, dtype, skipna):
    rng = np.random.default_rng(sum(shape) + G)
    x = (rng.standard_normal(shape) * 3 + 1e3).astype(dtype)
    if dtype != np.int32:
        x.reshape(-1)[::997] = np.nan
        x.reshape(-1)[5::1301] = -np.inf
    lab = rng.integers(-1, G, shape[axis])  # -1: left out
    lab[lab == G - 2] = -1  # one empty group
    xg, lg = cupy.asarray(x), cupy.asarray(lab)
    gpu = fm.group_moments(xg, lg, axis=axis, ngroups=G, skipna=skipna)
    assert isinstance(gpu.count, cupy.ndarray)
    expect = list(shape)
    expect[axis] = G
    assert gpu.count.shape == tuple(expect)
    host = _check(gpu, _reference(x, lab, axis, G, skipna))
    cpu = fm.group_moments(x, lab, axis=axis, ngroups=G, skipna=skipna)
    np.testing.assert_array_equal(host.count, cpu.count)
    np.testing.assert_array_equal(np.isnan(host.mean), np.isnan(cpu.mean))
    np.testing.assert_allclose(host.m2, cpu.m2, rtol=1e-10, atol=1e-9)
    again = fm.group_moments(xg, lg, axis=axis, ngroups=G, skipna=skipna).to_numpy()
    for f in ("count", "mean", "m2"):  # other thread and block orders, the same bits
        np.testing.assert_array_equal(getattr(again, f), getattr(host, f), err_msg=f)
    np.testing.assert_array_equal(xg.get(), x)  # the input is left as it was
    np.testing.assert_array_equal(lg.get(), lab)


def test_infinities_and_nan_follow_the_cpu_rules():
    # Per group: only +Inf, +Inf and -Inf, a NaN among finite values, only
    # finite values; first in a batch and alone in one.
    x = np.array([np.inf, 1.0, np.inf, -np.inf, 2.0, np.nan, 3.0, 4.0, 5.0, np.inf] * 7)
    lab = np.array([0, 2, 0, 1, 2, 2, 3, 3, 1, 1] * 7)
    for skipna in (False, True):
        gpu = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), ngroups=5, skipna=skipna).to_numpy()
        cpu = fm.group_moments(x, lab, ngroups=5, skipna=skipna)
        np.testing.assert_array_equal(gpu.count, cpu.count)
        np.testing.assert_array_equal(gpu.mean, cpu.mean)  # +-Inf and NaN where the CPU has them
        np.testing.assert_allclose(gpu.m2, cpu.m2, rtol=1e-15)  # NaN where the CPU has it


def test_offset_and_exact_integers():
    rng = np.random.default_rng(5)
    # Values near 1e9: the warps' and blocks' origins (values of the data)
    # keep the digits of the spread.
    x = rng.standard_normal(30_000) + 1e9
    lab = rng.integers(0, 6, x.size)
    _check(fm.group_moments(cupy.asarray(x), cupy.asarray(lab)), _reference(x, lab, 0, 6, False), m2_rtol=1e-9)
    # Integers near 2**40 as float64: deviations from a value of the data are
    # exact, so are sums of their squares below 2**53: exact counts, means, m2.
    v = rng.integers(-50, 50, 20_000) + 2**40
    lab = rng.integers(0, 4, v.size)
    gpu = fm.group_moments(cupy.asarray(v.astype(np.float64)), cupy.asarray(lab)).to_numpy()
    for g in range(4):
        vals = [int(a) for a in v[lab == g]]
        mean = Fraction(sum(vals), len(vals))
        m2 = sum((Fraction(a) - mean) ** 2 for a in vals)
        assert gpu.count[g] == len(vals)
        assert abs(Fraction(gpu.mean[g]) - mean) <= Fraction(2**40) * 2**-52
        assert abs(Fraction(gpu.m2[g]) - m2) <= m2 * Fraction(1, 2**45)


def test_axis_none_int32_labels_and_bool_data():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((60, 70))
    lab = rng.integers(0, 5, x.shape).astype(np.int32)
    gpu = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), axis=None)
    _check(gpu, _reference(x.reshape(-1), lab.reshape(-1), 0, 5, False))
    b = rng.random(5000) < 0.3
    lab = rng.integers(0, 3, b.size)
    _check(fm.group_moments(cupy.asarray(b), cupy.asarray(lab)), _reference(b, lab, 0, 3, False))


def test_overflowing_batches_take_single_values():
    # Batches whose sum overflows float64 go one value at a time (Chan
    # merges of values near the range's end), as the CPU wing's redo does.
    x = np.array([1.5e308, 1.6e308, 1.7e308, -1.7e308, 1.0, 2.0] * 40)
    lab = np.array([0, 0, 0, 1, 1, 2] * 40)
    gpu = fm.group_moments(cupy.asarray(x), cupy.asarray(lab)).to_numpy()
    cpu = fm.group_moments(x, lab)
    np.testing.assert_array_equal(gpu.count, cpu.count)
    np.testing.assert_allclose(gpu.mean, cpu.mean, rtol=1e-12)
    np.testing.assert_array_equal(np.isinf(gpu.m2), np.isinf(cpu.m2))
    np.testing.assert_allclose(gpu.m2[2], cpu.m2[2], rtol=1e-12)


def test_many_slots_take_the_array_code():
    from fastmoments.gpu import grouped as GG

    rng = np.random.default_rng(9)
    x = rng.standard_normal(6000)
    lab = rng.integers(0, 2000, x.size)
    assert GG.plan(2000, GG.FIELDS[0], x.size) is None  # 2,000 slots: no block holds a warp's states
    assert fm.gpu.group_moments(cupy.asarray(x), cupy.asarray(lab), 0, 2000, False) is None
    gpu = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), ngroups=2000)
    _check(gpu, _reference(x, lab, 0, 2000, False))


@pytest.mark.parametrize("slots", [1, 7, 100, 768, 1536])
@pytest.mark.parametrize("kind", [0, 2])
def test_plan_fits_shared_memory(slots, kind):
    from fastmoments.gpu import grouped as GG

    for total in (1, 1000, 10**7):
        p = GG.plan(slots, GG.FIELDS[kind], total)
        if slots * GG.FIELDS[kind] > GG.SHARED:
            assert p is None
            continue
        warps, chunk, blocks = p
        assert 1 <= warps <= GG.WARPS and warps * slots * GG.FIELDS[kind] <= GG.SHARED
        assert chunk % (32 * warps) == 0 and chunk >= 32 * slots
        assert (blocks - 1) * chunk < total <= blocks * chunk or (total <= chunk and blocks == 1)


def test_empty_inputs_and_bad_labels():
    x = cupy.arange(6.0)
    none = fm.group_moments(x, cupy.full(6, -1), ngroups=3).to_numpy()
    np.testing.assert_array_equal(none.count, 0)
    assert np.isnan(none.mean).all() and (none.m2 == 0).all()
    assert fm.group_moments(x, cupy.full(6, -1), ngroups=0).count.shape == (0,)
    assert fm.group_moments(cupy.zeros((0, 3)), cupy.zeros(0, np.int64), ngroups=2).count.shape == (2, 3)
    with pytest.raises(ValueError, match="label"):
        fm.group_moments(x, cupy.asarray([0, 1, 2, 3, 9, 0]), ngroups=4)
    with pytest.raises(TypeError):
        fm.group_moments(x, cupy.asarray([0.0, 1, 2, 3, 1, 0]), ngroups=4)


# -- weights and orders 3 and 4 (fm_wgrouped.cu) ---------------------------------------


def _wreference(x, lab, axis, G, w, order, skipna):
    """Per group, NumPy in float64: (count, W, W2, mean, m2..m<order>) of the
    values of positive weight (NaN left out with skipna), finite data only."""
    xm = np.moveaxis(np.asarray(x, np.float64), axis, 0)
    wm = np.moveaxis(np.broadcast_to(np.ones(1) if w is None else np.asarray(w, np.float64), np.shape(x)), axis, 0)
    out = [[] for _ in range(3 + order)]
    for g in range(G):
        v, wt = xm[lab == g], wm[lab == g]
        take = wt > 0
        if skipna:
            take &= ~np.isnan(v)
        wt = np.where(take, wt, 0.0)
        v = np.where(take, v, 0.0)
        W = wt.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = np.where(W > 0, (wt * v).sum(axis=0) / np.where(W > 0, W, 1), np.nan)
            d = np.where(take, v - mu, 0.0)
        out[0].append(take.sum(axis=0))
        out[1].append(W)
        out[2].append((wt * wt).sum(axis=0))
        out[3].append(mu)
        for q in range(2, order + 1):
            out[2 + q].append((wt * d**q).sum(axis=0))
    return tuple(np.moveaxis(np.array(a), 0, axis) for a in out)


WCASES = [((20_000,), 0, 7), ((3000, 5), 0, 40), ((4, 2500), 1, 3), ((30, 20, 3), 1, 9)]


@pytest.mark.parametrize("shape,axis,G", WCASES)
@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("weights", ["float64", "along axis", "int32", None])
def test_weighted_against_numpy_and_the_cpu_wing(shape, axis, G, order, weights):
    if weights is None and order == 2:
        pytest.skip("unweighted order 2 is group_moments' kernel")
    rng = np.random.default_rng(sum(shape) + G + order)
    x = rng.standard_normal(shape) * 3 + 1e3
    x.reshape(-1)[::389] = np.nan  # left out by skipna, NaN moments without it
    lab = rng.integers(-1, G, shape[axis])
    lab[lab == G - 2] = -1
    if weights == "float64":
        w = rng.random(shape) * 2
        w.reshape(-1)[::7] = 0.0  # weight 0: left out
    elif weights == "along axis":
        w = rng.random(shape[axis])
    elif weights == "int32":
        w = rng.integers(0, 4, shape).astype(np.int32)
    else:
        w = None
    wg = None if w is None else cupy.asarray(w)
    kw = dict(axis=axis, ngroups=G, weights=wg, order=order)
    for skipna in (True, False):
        gpu = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), skipna=skipna, **kw)
        assert isinstance(gpu.count, cupy.ndarray)
        host = gpu.to_numpy()
        cpu = fm.group_moments(x, lab, axis=axis, ngroups=G, weights=w, order=order, skipna=skipna)
        for f in host._fields:
            a, b = getattr(host, f), getattr(cpu, f)
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f)
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-6, err_msg=f)
        again = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), skipna=skipna, **kw).to_numpy()
        for f in host._fields:
            np.testing.assert_array_equal(getattr(again, f), getattr(host, f), err_msg=f)
    wfull = None if w is None else np.broadcast_to(
        w.reshape([-1 if i == axis else 1 for i in range(x.ndim)]) if weights == "along axis" else w, shape)
    ref = _wreference(x, lab, axis, G, wfull, order, True)
    host = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), skipna=True, **kw).to_numpy()
    for f, r in zip(host._fields, ref):
        scale = 1e-9 * (1.0 + np.nanmax(np.abs(r)))
        np.testing.assert_allclose(getattr(host, f), r, rtol=1e-10, atol=scale, err_msg=f)


def test_weighted_offset_infinities_and_bad_weights():
    rng = np.random.default_rng(12)
    x = rng.standard_normal(20_000) + 1e9
    lab = rng.integers(0, 5, x.size)
    w = rng.random(x.size)
    got = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), weights=cupy.asarray(w), order=4).to_numpy()
    # The reference on x - 1e9 (exact: within a factor 2): its own mean's rounding
    # at 1e9 (1e-7) would move m3 by ~3e-7 * m2, more than the kernel's error.
    ref = list(_wreference(x - 1e9, lab, 0, 5, w, 4, False))
    ref[3] = ref[3] + 1e9
    for f, r in zip(got._fields, ref):  # origins from the data: the spread's digits kept at 1e9
        np.testing.assert_allclose(getattr(got, f), r, rtol=1e-9, atol=1e-9 * (1 + np.nanmax(np.abs(r))), err_msg=f)
    cpu = fm.group_moments(x, lab, weights=w, order=4)
    for f in got._fields:
        np.testing.assert_allclose(getattr(got, f), getattr(cpu, f), rtol=1e-9, atol=1e-7, err_msg=f)
    x = np.array([np.inf, 1.0, np.inf, -np.inf, 2.0, np.nan, 3.0, 4.0, 1e308, 1.7e308] * 9)
    lab = np.array([0, 2, 0, 1, 2, 2, 3, 3, 4, 4] * 9)
    w = np.linspace(0.5, 2, x.size)
    for skipna in (False, True):
        gpu = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), weights=cupy.asarray(w), order=4,
                               skipna=skipna).to_numpy()
        cpu = fm.group_moments(x, lab, weights=w, order=4, skipna=skipna)
        for f in gpu._fields:  # group 4's spread overflows (values near 1e308): m2 and m4 inf, m3 NaN
            np.testing.assert_allclose(getattr(gpu, f), getattr(cpu, f), rtol=1e-12, err_msg=f)  # NaN and Inf alike
    for bad in (-1.0, np.nan, np.inf):
        wb = np.ones(x.size)
        wb[17] = bad
        with pytest.raises(ValueError, match="weight"):
            fm.group_moments(cupy.asarray(x), cupy.asarray(lab), weights=cupy.asarray(wb), order=3)
        # on a value left out (label -1), and with no group at all: still an error, as on the CPU (review)
        lo = lab.copy()
        lo[17] = -1
        for labels, G in ((lo, 5), (np.full(x.size, -1), 5), (lab, 0)):
            if G == 0:
                labels = np.full(x.size, -1)
            with pytest.raises(ValueError, match="weight"):
                fm.group_moments(x, labels, ngroups=G, weights=wb, order=3)
            with pytest.raises(ValueError, match="weight"):
                fm.group_moments(cupy.asarray(x), cupy.asarray(labels), ngroups=G, weights=cupy.asarray(wb), order=3)


def test_weighted_many_slots_take_the_array_code():
    from fastmoments.gpu import grouped as GG

    rng = np.random.default_rng(13)
    x = rng.standard_normal(4000)
    lab = rng.integers(0, 1000, x.size)
    w = rng.random(x.size)
    assert GG.plan(1000, 4 + 4, x.size) is None
    assert fm.gpu.group_weighted_moments(cupy.asarray(x), cupy.asarray(w), cupy.asarray(lab), 0, 1000, False,
                                         4) is None
    got = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), ngroups=1000, weights=cupy.asarray(w),
                           order=4).to_numpy()
    cpu = fm.group_moments(x, lab, ngroups=1000, weights=w, order=4)
    for f in got._fields:
        np.testing.assert_allclose(getattr(got, f), getattr(cpu, f), rtol=1e-9, atol=1e-12, err_msg=f)


# -- origins (review of 8cff6c3) -------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_groups_spanning_the_float_range_keep_a_finite_mean(weighted):
    # A warp's origin must be usable (|v| < 2**969): [1e308, -1e308] around
    # 1e308 gave a mean of -inf and m2 NaN; the CPU gives 0 and inf.
    cases = [np.array([1e308, -1e308]), np.array([1e308, 1e308, -1e308]), np.array([-1.5e308, 1e308, 1e308, 1e308])]
    for at in ([0, 1], [0, 2048], [0, 30000]):  # one batch; two warps of a block; two blocks
        x = np.zeros(40000)
        lab = np.full(40000, -1)
        x[at] = [1e308, -1e308]
        lab[at] = 0
        cases.append((x, lab))
    for case in cases:
        x, lab = case if isinstance(case, tuple) else (case, np.zeros(case.size, np.int64))
        kw = dict(weights=np.ones(x.size), order=4) if weighted else {}
        gkw = dict(weights=cupy.ones(x.size), order=4) if weighted else {}
        gpu = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), ngroups=1, **gkw).to_numpy()
        cpu = fm.group_moments(x, lab, ngroups=1, **kw)
        assert np.isfinite(gpu.mean).all()
        np.testing.assert_allclose(gpu.mean, cpu.mean, rtol=1e-12, atol=1e293)
        assert np.isinf(gpu.m2).all() and np.isinf(cpu.m2).all()
        if not weighted:
            s = fm.group_summarize(cupy.asarray(x), cupy.asarray(lab), ngroups=1).to_numpy()
            np.testing.assert_allclose(s.mean, cpu.mean, rtol=1e-12, atol=1e293)
            assert np.isinf(s.m2).all()


@pytest.mark.parametrize("weighted", [False, True])
def test_an_outlier_first_value_is_not_the_origin(weighted):
    # The origin was a group's first value in a warp: 1e20 here, around which
    # every value near 5 rounds to the same difference (mean 0.0 for 5.0085).
    rng = np.random.default_rng(0)
    x = np.array([1e20, -1e20] + list(rng.normal(5, 1, 98)))
    lab = np.zeros(x.size, np.int64)
    exact = float(sum(Fraction(float(t)) for t in x) / x.size)
    kw = dict(weights=cupy.ones(x.size), order=3) if weighted else {}
    got = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), **kw).to_numpy()
    assert abs(got.mean[0] - exact) < 0.25, (got.mean[0], exact)  # float sums of 1e20 and 5: 1e20 * 2**-53 per add


@pytest.mark.parametrize("order,groups", [(2, 2), (4, 2), (4, 500)])
def test_a_light_far_first_value_rounds_nothing_else(order, groups):
    # Review of 7fae377: 1e15 of weight 1e-40, group 0's first value alone in
    # its first batch, became warp 0's origin and block 0's shift; every later
    # value of the group rounded to ulp(1e15) = 0.125 around it (mean 0.375
    # for 0.2926). Batches far from the origin against their spread are now
    # summed around a value of their own, the heavier side gives the origin,
    # and merges start from the heavier side's mean.
    rng = np.random.default_rng(5)
    n = 40000
    x = rng.normal(0.3, 1.0, n)
    w = rng.random(n) + 0.5
    x[0], w[0] = 1e15, 1e-40
    lab = rng.integers(0, groups, n)  # 500 groups: batches of one value (one warp a block)
    lab[0] = 0
    lab[1:32] = 1
    got = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), ngroups=groups, weights=cupy.asarray(w),
                           order=order).to_numpy()
    v = [Fraction(float(t)) for t in x[lab == 0]]
    wt = [Fraction(float(t)) for t in w[lab == 0]]
    W = sum(wt)
    mean = sum(a * b for a, b in zip(v, wt)) / W
    assert abs(got.mean[0] - float(mean)) <= 1e-15
    # m2 of the exact weights: the 1e15 value adds 1e-40 * 1e30 = 1e-10 to it
    m2 = float(sum(b * (a - mean) ** 2 for a, b in zip(v, wt)))
    assert abs(got.m2[0] / m2 - 1) <= 1e-12


def test_an_overflowing_m4_is_inf_as_on_the_cpu():
    # Review of 7fae377: deviations near 1e100 overflow m4; value-by-value
    # merges gave NaN (inf - inf from the m3 term), the CPU and the array code inf.
    x = np.array([1e100, -1.2e100, 3e100, -2e100, 0.5e100] * 13)
    lab = np.zeros(x.size, np.int64)
    w = np.linspace(0.5, 1.5, x.size)
    gpu = fm.group_moments(cupy.asarray(x), cupy.asarray(lab), weights=cupy.asarray(w), order=4).to_numpy()
    cpu = fm.group_moments(x, lab, weights=w, order=4)
    np.testing.assert_allclose(gpu.m2, cpu.m2, rtol=1e-12)
    np.testing.assert_allclose(gpu.m3, cpu.m3, rtol=1e-9)
    assert np.isinf(cpu.m4[0]) and np.isinf(gpu.m4[0]) and gpu.m4[0] > 0
