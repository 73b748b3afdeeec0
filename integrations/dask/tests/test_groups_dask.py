"""fastmoments_dask.group_moments / group_summarize against the core on the
computed array and against a NumPy loop over the groups (float64)."""

import dask
import dask.array as da
import numpy as np
import pytest

import fastmoments as fm
import fastmoments_dask as fmd

RTOL = 1e-12


# -- references -------------------------------------------------------------------------

def ref_moments(x, by, G, axis=0, skipna=False, w=None, order=2):
    """Per-group count, sum of weights, mean and central sums of powers, by a
    loop over the groups (two-pass, float64), group axis at ``axis``."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, 0)
    if w is None:
        w = np.ones_like(x)
    else:
        w = np.asarray(w, np.float64)
        w = np.moveaxis(w, axis, 0) if w.ndim == x.ndim else np.broadcast_to(
            w.reshape((-1,) + (1,) * (x.ndim - 1)), x.shape)
    rest = x.shape[1:]
    out = {k: np.zeros((G,) + rest) for k in ["count", "sw", "mean"] + [f"m{p}" for p in range(2, order + 1)]}
    for g in range(G):
        sel = by == g
        for j in np.ndindex(*rest):
            v = x[(sel,) + j]
            wt = w[(sel,) + j]
            keep = wt > 0
            if skipna:
                keep &= ~np.isnan(v)
            v, wt = v[keep], wt[keep]
            out["count"][(g,) + j] = v.size
            out["sw"][(g,) + j] = wt.sum()
            mean = (wt * v).sum() / wt.sum() if v.size else np.nan
            out["mean"][(g,) + j] = mean
            for p in range(2, order + 1):
                out[f"m{p}"][(g,) + j] = (wt * (v - mean) ** p).sum()
    return {k: np.moveaxis(a, 0, axis) for k, a in out.items()}


def ref_summary(x, by, G, axis=0):
    x = np.moveaxis(np.asarray(x, np.float64), axis, 0)
    rest = x.shape[1:]
    names = ["count", "mean", "m2", "min", "max", "n_nonfinite", "n_zero"]
    out = {k: np.zeros((G,) + rest) for k in names}
    for g in range(G):
        for j in np.ndindex(*rest):
            v = x[(by == g,) + j]
            fin = v[np.isfinite(v)]
            out["count"][(g,) + j] = fin.size
            out["mean"][(g,) + j] = fin.mean() if fin.size else np.nan
            out["m2"][(g,) + j] = ((fin - fin.mean()) ** 2).sum() if fin.size else 0.0
            out["min"][(g,) + j] = fin.min() if fin.size else np.nan
            out["max"][(g,) + j] = fin.max() if fin.size else np.nan
            out["n_nonfinite"][(g,) + j] = (~np.isfinite(v)).sum()
            out["n_zero"][(g,) + j] = (v == 0).sum()
    return {k: np.moveaxis(a, 0, axis) for k, a in out.items()}


def close(a, b, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol,
                               equal_nan=True)


def check_moments(got, core, ref, order=2, weighted=False):
    """``got`` (computed from Dask) against the core's state on the whole
    array (tight) and the NumPy reference; empty groups are count 0."""
    assert type(got) is type(core)
    assert got.shape == core.shape
    np.testing.assert_array_equal(got.count, core.count)
    np.testing.assert_array_equal(got.count, ref["count"])
    nonempty = ref["count"] > 0
    assert np.all(np.isnan(np.asarray(got.mean)[~nonempty]))
    scale = max(1.0, float(np.nanmax(np.abs(ref["m2"]))) if ref["m2"].size else 1.0)
    close(got.mean, core.mean, atol=1e-13)
    close(got.mean, ref["mean"], rtol=1e-11, atol=1e-13)
    fields = ["m2"] + (["m3"] if order >= 3 else []) + (["m4"] if order >= 4 else [])
    for f in fields:
        p = int(f[1])
        close(getattr(got, f), getattr(core, f), rtol=1e-11, atol=1e-11 * scale ** (p / 2))
        close(getattr(got, f), ref[f], rtol=1e-10, atol=1e-10 * scale ** (p / 2))
    if weighted:
        close(got.sum_weights, ref["sw"], rtol=1e-12)


def data(n=240, cols=(), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(2.0, 3.0, size=(n,) + cols)


# -- 1-D, chunkings and label patterns ---------------------------------------------------

CHUNKS = [(240,), (7,), ((50, 3, 1, 186),), ((0, 120, 0, 120),), (1,)]


def labels(kind, n, seed=1):
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.integers(0, 6, n)
    if kind == "sorted":  # runs of 40: longer than most chunks
        return np.repeat(np.arange(6), n // 6)
    if kind == "negative_empty":  # no group 1, 4 or 7; -1 and -5 are "no group"
        return rng.choice([-5, -1, 0, 2, 3, 5, 6], n)
    if kind == "one":
        return np.zeros(n, np.int64)
    raise ValueError(kind)


@pytest.mark.parametrize("chunks", CHUNKS)
@pytest.mark.parametrize("kind", ["random", "sorted", "negative_empty", "one"])
def test_group_moments_1d(chunks, kind):
    x = data()
    by = labels(kind, x.shape[0])
    G = 8
    lazy = fmd.group_moments(da.from_array(x, chunks=chunks), by, ngroups=G)
    assert isinstance(lazy, fmd.LazyMoments) and lazy.shape == (G,)
    got = lazy.compute()
    check_moments(got, fm.group_moments(x, by, ngroups=G), ref_moments(x, by, G))
    assert got.count.sum() == (by >= 0).sum()
    assert np.all(got.count[[g for g in range(G) if g not in by]] == 0)


@pytest.mark.parametrize("chunks", CHUNKS)
@pytest.mark.parametrize("kind", ["random", "sorted", "negative_empty"])
def test_group_summarize_1d(chunks, kind):
    x = data()
    x[::17] = np.nan
    x[5::29] = np.inf
    x[3::11] = 0.0
    by = labels(kind, x.shape[0])
    G = 7
    lazy = fmd.group_summarize(da.from_array(x, chunks=chunks), by, ngroups=G)
    assert isinstance(lazy, fmd.LazySummary) and lazy.shape == (G,)
    got = lazy.compute()
    core = fm.group_summarize(x, by, ngroups=G)
    ref = ref_summary(x, by, G)
    for f in ["count", "n_nonfinite", "n_zero"]:
        np.testing.assert_array_equal(getattr(got, f), getattr(core, f))
        np.testing.assert_array_equal(getattr(got, f), ref[f])
    for f in ["min", "max"]:
        np.testing.assert_array_equal(getattr(got, f), ref[f])
    close(got.mean, core.mean, atol=1e-13)
    close(got.mean, ref["mean"], rtol=1e-11, atol=1e-13)
    close(got.m2, core.m2, rtol=1e-11)
    close(got.m2, ref["m2"], rtol=1e-10)


# -- 2-D, both axes, chunks along the other axis -----------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("chunks", [(37, 2), (240, 5), ((100, 140), (1, 4)), (5, 5)])
def test_group_moments_2d(axis, chunks):
    x = data(cols=(5,))
    if axis % 2 == 1:
        x = np.ascontiguousarray(x.T)
        chunks = tuple(reversed(chunks))
    n = x.shape[axis]
    by = labels("negative_empty", n)
    G = 9
    dx = da.from_array(x, chunks=chunks)
    got = fmd.group_moments(dx, by, axis=axis, ngroups=G).compute()
    expect_shape = list(x.shape)
    expect_shape[axis] = G
    assert got.shape == tuple(expect_shape)
    check_moments(got, fm.group_moments(x, by, axis=axis, ngroups=G), ref_moments(x, by, G, axis=axis % 2))
    s = fmd.group_summarize(dx, by, axis=axis, ngroups=G).compute()
    ref = ref_summary(x, by, G, axis=axis % 2)
    np.testing.assert_array_equal(s.count, ref["count"])
    np.testing.assert_array_equal(s.min, ref["min"])
    np.testing.assert_array_equal(s.max, ref["max"])
    close(s.m2, ref["m2"], rtol=1e-10)


def test_3d_middle_axis():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 60, 3))
    by = rng.integers(-1, 5, 60)
    got = fmd.group_moments(da.from_array(x, chunks=(3, 11, 2)), by, axis=1, ngroups=5).compute()
    assert got.shape == (4, 5, 3)
    check_moments(got, fm.group_moments(x, by, axis=1, ngroups=5), ref_moments(x, by, 5, axis=1))


# -- NaN, weights, higher orders --------------------------------------------------------

@pytest.mark.parametrize("chunks", [(13, 3), (240, 3)])
def test_skipna(chunks):
    x = data(cols=(3,))
    x[::7, 0] = np.nan
    x[:, 2] = np.nan  # a column with no value left
    by = labels("random", x.shape[0])
    G = 6
    dx = da.from_array(x, chunks=chunks)
    got = fmd.group_moments(dx, by, ngroups=G, skipna=True).compute()
    check_moments(got, fm.group_moments(x, by, ngroups=G, skipna=True), ref_moments(x, by, G, skipna=True))
    assert np.all(got.count[:, 2] == 0)
    # without skipna, NaN propagates to its group's column, as in the core
    plain = fmd.group_moments(dx, by, ngroups=G).compute()
    core = fm.group_moments(x, by, ngroups=G)
    np.testing.assert_array_equal(np.isnan(plain.mean), np.isnan(core.mean))
    assert np.all(np.isnan(plain.mean[:, 0])) and not np.any(np.isnan(plain.mean[:, 1]))


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("wshape", ["1d", "full", "dask-other-chunks"])
def test_weights_orders(order, wshape):
    rng = np.random.default_rng(5)
    x = data(cols=(3,))
    x[::9, 1] = np.nan
    by = labels("negative_empty", x.shape[0])
    G = 8
    w = rng.random(x.shape) if wshape == "full" else rng.random(x.shape[0])
    w[::5] = 0.0  # weight 0 is left out
    dx = da.from_array(x, chunks=(23, 2))
    dw = da.from_array(w, chunks=17) if wshape == "dask-other-chunks" else w  # 1-D, rechunked to x's
    lazy = fmd.group_moments(dx, by, ngroups=G, weights=dw, order=order, skipna=True)
    assert lazy.order == order and lazy.weighted
    got = lazy.compute()
    core = fm.group_moments(x, by, ngroups=G, weights=w, order=order, skipna=True)
    check_moments(got, core, ref_moments(x, by, G, skipna=True, w=w, order=order), order=order, weighted=True)


@pytest.mark.parametrize("order", [3, 4])
def test_unweighted_higher_order(order):
    x = data(cols=(2,))
    by = labels("random", x.shape[0])
    lazy = fmd.group_moments(da.from_array(x, chunks=(11, 1)), by, ngroups=6, order=order)
    assert lazy.order == order
    got = lazy.compute()
    check_moments(got, fm.group_moments(x, by, ngroups=6, order=order), ref_moments(x, by, 6, order=order),
                  order=order)
    # lazy statistics against SciPy-free NumPy formulas of the reference
    ref = ref_moments(x, by, 6, order=order)
    close(lazy.skew().compute(), np.sqrt(ref["count"]) * ref["m3"] / ref["m2"] ** 1.5, rtol=1e-9)


# -- labels as Dask arrays, ints of other widths -----------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.int64])
def test_dask_labels_other_chunks(dtype):
    x = data(cols=(2,))
    by = labels("random", x.shape[0]).astype(dtype)
    dby = da.from_array(by, chunks=31)
    dx = da.from_array(x, chunks=(20, 2))
    got = fmd.group_moments(dx, dby, ngroups=6).compute()
    check_moments(got, fm.group_moments(x, by, ngroups=6), ref_moments(x, by.astype(np.int64), 6))


def test_unknown_chunk_sizes():
    x = data()
    by = labels("random", x.shape[0])
    dx = da.from_array(x, chunks=30)
    dby = da.from_array(by, chunks=30)
    mask = dx > 1.0
    got = fmd.group_moments(dx[mask], dby[mask], ngroups=6).compute()
    keep = x > 1.0
    ref = ref_moments(x[keep], by[keep], 6)
    check_moments(got, fm.group_moments(x[keep], by[keep], ngroups=6), ref)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fmd.group_moments(dx[mask], by[keep], ngroups=6)


def test_empty_array():
    x = np.zeros((0, 3))
    got = fmd.group_moments(da.from_array(x, chunks=(1, 3)), np.zeros(0, np.int64), ngroups=4).compute()
    assert got.shape == (4, 3) and np.all(got.count == 0) and np.all(np.isnan(got.mean))
    s = fmd.group_summarize(da.from_array(x, chunks=(1, 3)), np.zeros(0, np.int64), ngroups=4).compute()
    assert s.shape == (4, 3) and np.all(s.count == 0)


def test_zero_groups():
    x = data()
    by = -np.ones(x.shape[0], np.int64)
    got = fmd.group_moments(da.from_array(x, chunks=50), by, ngroups=0).compute()
    assert got.shape == (0,)


# -- determinism, trees, laziness --------------------------------------------------------

@pytest.mark.parametrize("func", ["group_moments", "group_summarize"])
def test_deterministic_across_schedulers(func):
    rng = np.random.default_rng(11)
    x = rng.normal(1e3, 1.0, size=(5000, 3))
    by = rng.integers(0, 40, 5000)
    lazy = getattr(fmd, func)(da.from_array(x, chunks=(97, 2)), by, ngroups=40)
    runs = [lazy.compute(scheduler="sync")]
    for workers in (1, 2, 4):
        runs.append(lazy.compute(scheduler="threads", num_workers=workers))
    for r in runs[1:]:
        for a, b in zip(runs[0].fields, r.fields):
            np.testing.assert_array_equal(a, b)  # bit for bit
    # and the same graph built again gives the same bits
    again = getattr(fmd, func)(da.from_array(x, chunks=(97, 2)), by, ngroups=40).compute(scheduler="threads")
    for a, b in zip(runs[0].fields, again.fields):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("split_every", [2, 3, 100])
def test_split_every(split_every):
    x = data(cols=(2,))
    by = labels("random", x.shape[0])
    lazy = fmd.group_moments(da.from_array(x, chunks=(9, 2)), by, ngroups=6, split_every=split_every)
    check_moments(lazy.compute(), fm.group_moments(x, by, ngroups=6), ref_moments(x, by, 6))
    n_merge = sum(1 for k in dict(lazy.__dask_graph__()) if "merge" in (k[0] if isinstance(k, tuple) else k))
    if split_every == 100:
        assert n_merge == 0  # 27 chunks merged at the root
    else:
        assert n_merge > 0


def test_lazy_composes():
    x = data(cols=(4,))
    by = labels("random", x.shape[0])
    dx = da.from_array(x, chunks=(50, 2))
    lazy = fmd.group_moments(dx, by, ngroups=6)
    assert lazy.chunks == ((6,), (2, 2))
    ref = ref_moments(x, by, 6)
    v = lazy.var(ddof=1)
    assert isinstance(v, da.Array) and v.shape == (6, 4)
    close(v.compute(), ref["m2"] / (ref["count"] - 1), rtol=1e-11)
    (m, total) = dask.compute(lazy, dx.sum())
    close(total, x.sum(), rtol=1e-12)
    close(m.mean, ref["mean"], rtol=1e-11)
    s = fmd.group_summarize(dx, by, ngroups=6)
    close(s.max.compute(), ref_summary(x, by, 6)["max"], rtol=0)


# -- errors -----------------------------------------------------------------------------

def test_errors():
    x = data(cols=(2,))
    dx = da.from_array(x, chunks=(50, 2))
    by = labels("random", x.shape[0])
    for f in (fmd.group_moments, fmd.group_summarize):
        with pytest.raises(TypeError, match="ngroups is required"):
            f(dx, by)
        with pytest.raises(TypeError, match="ngroups"):
            f(dx, by, ngroups=6.0)
        with pytest.raises(TypeError, match="ngroups"):
            f(dx, by, ngroups=True)
        with pytest.raises(ValueError, match="non-negative"):
            f(dx, by, ngroups=-1)
        with pytest.raises(TypeError, match="integers"):
            f(dx, by.astype(np.float64), ngroups=6)
        with pytest.raises(TypeError, match="bool"):
            f(dx, by > 2, ngroups=6)
        with pytest.raises(TypeError, match="integers"):
            f(dx, da.from_array(by.astype(np.float32), chunks=50), ngroups=6)
        with pytest.raises(ValueError, match=r"\(239,\).*\(240, 2\)"):
            f(dx, by[:-1], ngroups=6)
        with pytest.raises(ValueError, match=r"\(240,\).*\(240, 2\)"):
            f(dx, by, axis=1, ngroups=6)
        with pytest.raises(ValueError, match=r"\(239,\).*\(240, 2\)"):
            f(dx, da.from_array(by[:-1], chunks=50), ngroups=6)
        with pytest.raises(ValueError, match=r"\(240, 1\)"):
            f(dx, by[:, None], ngroups=6)
        with pytest.raises(TypeError, match="axis"):
            f(dx, by, axis=None, ngroups=6)
        with pytest.raises(np.exceptions.AxisError):
            f(dx, by, axis=2, ngroups=6)
        with pytest.raises(TypeError):
            f(da.from_array(x.astype(np.complex128), chunks=50), by, ngroups=6)
        # a label >= ngroups: the core's message, when computed
        lazy = f(dx, by, ngroups=5)
        with pytest.raises(ValueError, match="label 5 is out of range for ngroups=5"):
            lazy.compute()
    with pytest.raises(ValueError, match="weights of shape"):
        fmd.group_moments(dx, by, ngroups=6, weights=np.ones(239))
    with pytest.raises(ValueError):
        fmd.group_moments(dx, by, ngroups=6, weights=-np.ones(240))
    with pytest.raises(ValueError):
        fmd.group_moments(dx, by, ngroups=6, order=5)
    with pytest.raises(ValueError):
        fmd.group_moments(dx, by, ngroups=6, split_every=1)


@pytest.mark.gpu
def test_cupy_chunks():
    cp = pytest.importorskip("cupy")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception:  # pragma: no cover - no device
        pytest.skip("no CUDA device")
    x = data(n=600, cols=(3,))
    x[::13, 1] = np.nan
    by = labels("negative_empty", 600)
    d = da.from_array(cp.asarray(x), chunks=(71, 2))
    for dby in (by, da.from_array(cp.asarray(by), chunks=100)):  # NumPy labels are moved to the device
        lazy = fmd.group_moments(d, dby, ngroups=8, skipna=True)
        assert type(lazy.mean._meta).__module__.startswith("cupy")
        m = lazy.compute()
        assert type(m.mean).__module__.startswith("cupy")
        check_moments(m.to_numpy(), fm.group_moments(x, by, ngroups=8, skipna=True),
                      ref_moments(x, by, 8, skipna=True))
    s = fmd.group_summarize(d, by, ngroups=8).compute().to_numpy()
    ref = ref_summary(x, by, 8)
    np.testing.assert_array_equal(s.min, ref["min"])
    np.testing.assert_array_equal(s.n_nonfinite, ref["n_nonfinite"])
    w = fmd.group_moments(d, by, ngroups=8, skipna=True, weights=cp.asarray(np.linspace(0, 1, 600)), order=4)
    mw = w.compute().to_numpy()
    check_moments(mw, fm.group_moments(x, by, ngroups=8, skipna=True, weights=np.linspace(0, 1, 600), order=4),
                  ref_moments(x, by, 8, skipna=True, w=np.linspace(0, 1, 600), order=4), order=4, weighted=True)
