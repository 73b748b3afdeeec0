"""Review checks of the grouped kernels' sliced scans (unsigned slot indices,
one compare for labels < 0 or >= G, constant lanes) and of the weighted
kernel's row slices, each against an independent per-group NumPy reference.

Sizes: n = 200003 rows (more than one task of 2**16 rows, not a multiple of
the 8 lanes); one column with sorted labels takes the lanes path, random
labels the plain one; more than 2**14 groups the partitioned one."""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastmoments as fm

N = 200003


def _ref(x2, lab, G, *, skipna=False, w2=None, order=2):
    """Per (group, column): count, mean, m2[, m3, m4] by exact-ish sums
    (math.fsum, two passes), with the NaN/Inf rules of ``moments``."""
    m = x2.shape[1]
    cnt = np.zeros((G, m), np.int64)
    mean = np.full((G, m), np.nan)
    ms = np.zeros((order - 1, G, m))
    for g in range(G):
        rows = lab == g
        for c in range(m):
            v = x2[rows, c].astype(np.float64)
            wv = np.ones(v.size) if w2 is None else w2[rows, c].astype(np.float64)
            keep = wv > 0
            if skipna:
                keep &= ~np.isnan(v)
            v, wv = v[keep], wv[keep]
            cnt[g, c] = v.size
            if v.size == 0:
                continue
            fin = np.isfinite(v)
            if not fin.all():
                nan = np.isnan(v).any() or (np.isposinf(v).any() and np.isneginf(v).any())
                mean[g, c] = np.nan if nan else (np.inf if np.isposinf(v).any() else -np.inf)
                ms[:, g, c] = np.nan
                continue
            # Deviations from a shift (the first value), then from the mean
            # kept relative to it, so that the mean's rounding to ulps of a
            # large offset (1e9) stays out of the reference's m3 and m4.
            k = v[0]
            dv = v - k
            W = math.fsum(wv)
            mu = math.fsum(wv * dv) / W
            mu += math.fsum(wv * (dv - mu)) / W
            d = dv - mu
            mean[g, c] = k + mu
            for p in range(2, order + 1):
                ms[p - 2, g, c] = math.fsum(wv * d**p)
    return cnt, mean, ms


def _close(got, want, rtol, atol=0.0):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want))
    with np.errstate(invalid="ignore"):
        ok = np.isnan(want) | (got == want) | (np.isfinite(want) & (np.abs(got - want) <= atol + rtol * np.abs(want)))
    assert ok.all(), (got[~ok][:5], want[~ok][:5])


def _check_moments(res, ref, *, rtol_m2=1e-9, order=2):
    cnt, mean, ms = ref
    assert np.array_equal(np.asarray(res.count), cnt)
    scale = np.sqrt(np.where(cnt > 0, ms[0] / np.maximum(cnt, 1), 0.0))
    _close(res.mean, mean, 1e-15, atol=1e-12 * np.nan_to_num(scale, nan=0.0))
    _close(res.m2, ms[0], rtol_m2, atol=1e-300)
    if order >= 3:
        sd3 = np.nan_to_num(scale, nan=0.0) ** 3 * cnt
        _close(res.m3, ms[1], 1e-7, atol=1e-7 * sd3)
    if order >= 4:
        _close(res.m4, ms[2], 1e-7)


def _labels(rng, kind, G, n=N):
    if kind == "sorted":  # runs: the lanes path for one column
        lab = np.sort(rng.integers(0, G, n))
        lab[1000:3000] = -1
        lab[50000:50100] = -7
        return lab
    return rng.integers(-1, G, n)


@pytest.mark.parametrize("kind", ["sorted", "random"])
def test_one_column_offset_data_lanes_and_plain(kind):
    rng = np.random.default_rng(11)
    x = 1e9 + rng.standard_normal(N)
    lab = _labels(rng, kind, 10)
    G = 12  # groups 10 and 11 empty
    ref = _ref(x[:, None], lab, G)
    res = fm.group_moments(x, lab, ngroups=G)
    _check_moments(res, tuple(a[..., 0] for a in ref[:2]) + (ref[2][..., 0],))
    s = fm.group_summarize(x, lab, ngroups=G)
    assert np.array_equal(s.count, ref[0][:, 0])
    _close(s.m2, ref[2][0, :, 0], 1e-9)
    for g in range(10):
        assert s.min[g] == x[lab == g].min() and s.max[g] == x[lab == g].max()


@pytest.mark.parametrize("kind", ["sorted", "random"])
def test_trend_data_takes_the_second_pass(kind):
    """Values drifting within a group: the shifted sums cancel and the task is
    read again around its first-pass means (lanes: the same lane per row)."""
    rng = np.random.default_rng(12)
    x = 1e9 + np.arange(N) * 1e-3 + rng.standard_normal(N) * 1e-2
    lab = _labels(rng, kind, 10)
    cnt, mean, ms = _ref(np.stack([x, -x[::-1]], 1), lab, 10)
    r1 = fm.group_moments(x, lab, ngroups=10)
    _check_moments(r1, (cnt[:, 0], mean[:, 0], ms[:, :, 0]))
    r2 = fm.group_moments(np.stack([x, -x[::-1]], 1), lab, ngroups=10)
    _check_moments(r2, (cnt, mean, ms))


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                                   np.uint64, np.intc, np.longlong])
def test_label_dtypes(dtype):
    rng = np.random.default_rng(13)
    x = 3.0 + rng.standard_normal(N)
    info = np.iinfo(dtype)
    lab = rng.integers(max(info.min, -128), min(info.max, 127) + 1, N).astype(dtype)
    lab[::2] = np.sort(lab[::2])  # runs of equal labels: the lanes path too
    G = 300  # more than int8/uint8 hold
    ref = _ref(x[:, None], lab.astype(np.int64), G, order=3)
    flat = (ref[0][:, 0], ref[1][:, 0], ref[2][:, :, 0])
    _check_moments(fm.group_moments(x, lab, ngroups=G), flat)
    _check_moments(fm.group_moments(x, lab, ngroups=G, weights=np.ones(N), order=3), flat, order=3)
    assert np.array_equal(fm.group_summarize(x, lab, ngroups=G).count, flat[0])
    _check_moments(fm.group_moments(x, lab, ngroups=20000), tuple(np.concatenate(
        [a, np.zeros(a.shape[:-1] + (20000 - G,), a.dtype) if a.dtype.kind == "i"
         else np.full(a.shape[:-1] + (20000 - G,), np.nan if a.ndim == 1 else 0.0)], -1) for a in flat))


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_very_negative_labels_left_out(dtype):
    rng = np.random.default_rng(14)
    x = rng.standard_normal(N)
    lab = np.sort(rng.integers(0, 10, N)).astype(dtype)
    lab[::5] = np.iinfo(dtype).min
    lab[1::7] = -1
    lab[2::11] = np.iinfo(dtype).min + 1
    w = rng.random(N)
    for G in (10, 20000):
        ref = _ref(x[:, None], lab, G)
        _check_moments(fm.group_moments(x, lab, ngroups=G), (ref[0][:, 0], ref[1][:, 0], ref[2][:, :, 0]))
        assert np.array_equal(fm.group_summarize(x, lab, ngroups=G).count, ref[0][:, 0])
    ref = _ref(x[:, None], lab, 10, w2=w[:, None], order=4)
    _check_moments(fm.group_moments(x, lab, ngroups=10, weights=w, order=4),
                   (ref[0][:, 0], ref[1][:, 0], ref[2][:, :, 0]), order=4)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64])
def test_label_equal_to_ngroups_raises_on_every_path(dtype):
    rng = np.random.default_rng(15)
    x = rng.standard_normal(N)
    lab = np.sort(rng.integers(0, 9, N)).astype(dtype)
    lab[N // 2] = 9
    lab[-1] = 9
    calls = [
        lambda G: fm.group_moments(x, lab, ngroups=G),
        lambda G: fm.group_moments(x, lab[::-1].copy(), ngroups=G),
        lambda G: fm.group_moments(np.stack([x, x], 1), lab, ngroups=G),
        lambda G: fm.group_summarize(x, lab, ngroups=G),
        lambda G: fm.group_moments(x, lab, ngroups=G, order=3),
    ]
    want = np.bincount(lab.astype(np.int64), minlength=10)
    for call in calls:
        with pytest.raises(ValueError, match=r"label 9 "):
            call(9)
        count = np.asarray(call(10).count)
        assert np.array_equal(count if count.ndim == 1 else count[:, 0], want)
    if dtype in (np.int32, np.int64):  # the partitioned path (> 2**14 groups)
        big = np.where(lab == 9, 20000, lab.astype(np.int64) * 2000).astype(dtype)
        with pytest.raises(ValueError, match=r"label 20000 "):
            fm.group_moments(x, big, ngroups=20000)
        with pytest.raises(ValueError, match=r"label 20000 "):
            fm.group_summarize(x, big, ngroups=20000)


def test_uint64_huge_label_raises():
    x = np.ones(100)
    for big in (2**64 - 1, 2**63 - 1, 2**63):
        lab = np.zeros(100, np.uint64)
        lab[5] = np.uint64(big)
        with pytest.raises(ValueError, match=f"label {big} "):
            fm.group_moments(x, lab, ngroups=10)
        with pytest.raises(ValueError, match=f"label {big} "):
            fm.group_moments(x, lab, ngroups=20000, order=3)


def test_columns_axes_and_strided_input():
    rng = np.random.default_rng(16)
    X = 1e9 + rng.standard_normal((20003, 7))
    lab = rng.integers(-2, 13, 20003)
    w = rng.random(20003) * (rng.random(20003) > 0.3)
    cases = [
        (X[:, ::2], X[:, ::2], 0),
        (np.asfortranarray(X), X, 0),
        (X.T, X, 1),
        (X[:, 3:4], X[:, 3:4], 0),  # one strided column
    ]
    for arr, x2, axis in cases:
        ref = _ref(x2, lab, 13)
        res = fm.group_moments(arr, lab, axis=axis, ngroups=13)
        got = fm.Moments(*(np.moveaxis(np.asarray(f), axis, 0) for f in (res.count, res.mean, res.m2)))
        _check_moments(got, ref)
    ref = _ref(X, lab, 13, w2=np.broadcast_to(w[:, None], X.shape), order=4)
    _check_moments(fm.group_moments(X, lab, ngroups=13, weights=w, order=4), ref, order=4)


@pytest.mark.parametrize("kind", ["sorted", "random"])
def test_nan_inf_rules(kind):
    rng = np.random.default_rng(17)
    x = 5.0 + rng.standard_normal(N)
    lab = _labels(rng, kind, 10)
    x[rng.integers(0, N, 300)] = np.nan
    x[rng.integers(0, N, 300)] = np.inf
    x[rng.integers(0, N, 20)] = -np.inf
    g3 = np.flatnonzero(lab == 3)
    x[g3] = np.where(rng.random(g3.size) < 0.01, np.inf, 5.0 + rng.standard_normal(g3.size))  # only +Inf
    x[lab == 4] = np.where(np.arange((lab == 4).sum()) % 97 == 1, np.nan, 1.0)  # NaN only, skipped -> var 0
    w = rng.random(N) * (rng.random(N) > 0.2)
    for skipna in (False, True):
        ref = _ref(x[:, None], lab, 10, skipna=skipna)
        flat = (ref[0][:, 0], ref[1][:, 0], ref[2][:, :, 0])
        _check_moments(fm.group_moments(x, lab, ngroups=10, skipna=skipna), flat)
        ref = _ref(x[:, None], lab, 10, skipna=skipna, w2=w[:, None], order=3)
        flat = (ref[0][:, 0], ref[1][:, 0], ref[2][:, :, 0])
        _check_moments(fm.group_moments(x, lab, ngroups=10, skipna=skipna, weights=w, order=3), flat, order=3)
    s = fm.group_summarize(x, lab, ngroups=10)
    for g in range(10):
        v = x[lab == g]
        fin = v[np.isfinite(v)]
        assert s.count[g] == fin.size and s.n_nonfinite[g] == v.size - fin.size
        assert s.min[g] == fin.min() and s.max[g] == fin.max()
        assert abs(s.m2[g] - math.fsum((fin - fin.mean()) ** 2)) <= 1e-9 * s.m2[g]


def test_partitioned_many_groups():
    rng = np.random.default_rng(18)
    x = 1e9 + rng.standard_normal(N)
    lab = rng.integers(-3, 30000, N)
    G = 30001  # the last group empty
    cnt = np.bincount(lab[lab >= 0], minlength=G)
    sums = np.bincount(lab[lab >= 0], weights=x[lab >= 0] - 1e9, minlength=G)
    res = fm.group_moments(x, lab, ngroups=G)
    assert np.array_equal(res.count, cnt)
    mean = 1e9 + sums / np.maximum(cnt, 1)
    has = cnt > 0
    _close(res.mean[has], mean[has], 1e-15)
    assert np.isnan(res.mean[~has]).all()
    d = x - res.mean[np.maximum(lab, 0)]
    m2 = np.bincount(lab[lab >= 0], weights=(d * d)[lab >= 0], minlength=G)
    _close(res.m2, m2, 1e-9, atol=1e-12)
    s = fm.group_summarize(x, lab, ngroups=G)
    assert np.array_equal(s.count, cnt)
    lo = np.full(G, np.inf)
    np.minimum.at(lo, lab[lab >= 0], x[lab >= 0])
    assert np.array_equal(s.min[has], lo[has])


def test_bit_identical_for_one_and_two_threads():
    child = textwrap.dedent("""
        import sys, numpy as np, fastmoments as fm
        rng = np.random.default_rng(19)
        n = 200003
        x = 1e9 + np.arange(n) * 1e-3 + rng.standard_normal(n)
        x[rng.integers(0, n, 50)] = np.inf
        ls = np.sort(rng.integers(-1, 10, n)); lr = rng.integers(-1, 10, n)
        out = []
        for lab in (ls, lr):
            for st in (fm.group_moments(x, lab, ngroups=10), fm.group_moments(x, lab, ngroups=10, skipna=True),
                       fm.group_summarize(x, lab, ngroups=10),
                       fm.group_moments(np.stack([x, x[::-1]], 1), lab, ngroups=10),
                       fm.group_moments(x, lab, ngroups=10, weights=rng.random(n), order=4),
                       fm.group_moments(x, lab * 3000, ngroups=30000)):
                out += [np.asarray(getattr(st, f)) for f in st._fields]
        sys.stdout.write(b"".join(np.ascontiguousarray(a).tobytes() for a in out).hex())
    """)
    runs = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        runs.append(subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, check=True).stdout)
    assert runs[0] and runs[0] == runs[1]


@pytest.mark.parametrize("dtype", [">i4", ">i8", ">i2", ">u4"])
def test_non_native_byte_order_labels(dtype):
    # Labels in big-endian order (as read from some files) are the same labels:
    # they crashed in Numba's typing before (found in review, 2026-12-07).
    rng = np.random.default_rng(11)
    x = rng.normal(5.0, 2.0, 5000)
    lab = rng.integers(-1 if np.dtype(dtype).kind == "i" else 0, 7, x.size)
    got = fm.group_moments(x, lab.astype(dtype), ngroups=7)
    want = fm.group_moments(x, lab, ngroups=7)
    for g in range(7):
        v = x[lab == g]
        assert got.count[g] == v.size
        np.testing.assert_allclose(got.mean[g], v.mean(), rtol=1e-12)
        np.testing.assert_allclose(got.var()[g], v.var(), rtol=1e-10)
    np.testing.assert_array_equal(got.mean, want.mean)
    s = fm.group_summarize(x, lab.astype(dtype), ngroups=7)
    np.testing.assert_array_equal(s.max, [x[lab == g].max() for g in range(7)])
    gw = fm.group_moments(x, lab.astype(dtype), ngroups=7, weights=np.ones_like(x), order=4)
    np.testing.assert_allclose(gw.mean, want.mean, rtol=1e-12)
