"""Weighted and higher-order moments of Dask arrays (``weights=``, ``order=``).

Checked three ways: against the core on the computed NumPy array, against
independent float64 NumPy references (two passes: weighted mean, then the
weighted sums of powers of deviations), and, where scipy is installed,
against ``scipy.stats.skew`` / ``kurtosis`` (on ``np.repeat``-ed data for
integer frequency weights).
"""

from __future__ import annotations

import importlib
import pickle
import warnings

import dask
import dask.array as da
import numpy as np
import pytest

import fastmoments
import fastmoments_dask as fmd

from test_reduction import close

RTOL = 1e-12
RNG = np.random.default_rng(20261205)
X = RNG.normal(2.0, 1.5, size=(60, 7, 5)) ** 3 / 10  # skewed, heavy-tailed
W = RNG.random(X.shape) * 3
W[RNG.random(X.shape) < 0.1] = 0.0  # zero weights: values left out

CHUNKINGS = [
    "one chunk",
    (7, 3, 2),  # many chunks
    ((1, 59), (4, 3), (5,)),  # uneven
    ((30, 0, 30), (7,), (2, 3)),  # a zero-size chunk
]
AXES = [None, 0, -1, (0, 2), (1, 2)]


@pytest.fixture(autouse=True)
def threaded():
    with dask.config.set(scheduler="threads"):
        yield


def _chunks(chunks, shape):
    return shape if chunks == "one chunk" else chunks


def reference(x, w, axis, order, skipna=False):
    """Two-pass float64 weighted moments: (count, W, W2, mean, M2..M<order>)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.broadcast_to(np.ones(()) if w is None else np.asarray(w, dtype=np.float64), x.shape)
    take = w > 0
    if skipna:
        take = take & ~np.isnan(x)
    wt = np.where(take, w, 0.0)
    with np.errstate(all="ignore"):
        count = take.sum(axis=axis)
        sw = wt.sum(axis=axis)
        mean = np.where(take, wt * x, 0.0).sum(axis=axis) / sw
        d = x - (mean if axis is None else np.expand_dims(mean, axis))
        ms = [np.where(take, wt * d**p, 0.0).sum(axis=axis) for p in range(2, order + 1)]
    return count, sw, (wt * wt).sum(axis=axis), mean, ms


def check_state(m, x, w, axis, order, skipna=False, rtol=RTOL):
    assert isinstance(m, fastmoments.Moments)
    assert m.order == order
    count, sw, sw2, mean, ms = reference(x, w, axis, order, skipna)
    np.testing.assert_array_equal(m.count, count)
    close(m.sum_weights, sw, rtol=rtol)
    close(m.sum_weights2, sw2, rtol=rtol)
    m2 = ms[0]
    spread = np.sqrt(m2 / np.where(sw > 0, sw, 1.0))
    close(m.mean, np.where(count > 0, mean, np.nan), scale=spread, rtol=rtol)
    close(m.m2, m2, rtol=rtol)
    if order >= 3:
        # M3 has no scale of its own near zero: compared relative to W * sd**3
        close(m.m3, ms[1], scale=sw * spread**3, rtol=rtol)
    if order >= 4:
        close(m.m4, ms[2], rtol=rtol)


def check_same(a, b, rtol=RTOL):
    """Two states equal to rounding (different merge trees): same layout and fields."""
    assert type(a) is type(b)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.count, b.count)
    for name in a._fields:
        if name == "count":
            continue
        fa, fb = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        scale = np.sqrt(np.abs(b.m2 * b.sum_weights)) if name in ("mean", "m3") else None
        if name == "m3":
            scale = np.abs(b.m2) ** 1.5 / np.sqrt(np.where(b.sum_weights > 0, b.sum_weights, 1.0))
        close(fa, fb, scale=scale, rtol=rtol)


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("chunks", CHUNKINGS, ids=str)
def test_weighted_match_core_and_numpy(chunks, axis, order):
    c = _chunks(chunks, X.shape)
    d = da.from_array(X, chunks=c)
    dw = da.from_array(W, chunks=(13, 2, 5))  # other chunks than x's: rechunked
    lazy = fmd.moments(d, axis=axis, weights=dw, order=order)
    assert lazy.order == order and lazy.weighted
    m = lazy.compute()
    assert m.shape == lazy.shape == np.mean(X, axis=axis).shape
    check_state(m, X, W, axis, order)
    check_same(m, fastmoments.moments(X, axis=axis, weights=W, order=order))


@pytest.mark.parametrize("order", [3, 4])
@pytest.mark.parametrize("axis", AXES, ids=str)
def test_unweighted_higher_orders(axis, order):
    d = da.from_array(X, chunks=(7, 3, 2))
    lazy = fmd.moments(d, axis=axis, order=order)
    assert lazy.order == order
    m = lazy.compute()
    check_state(m, X, None, axis, order)
    check_same(m, fastmoments.moments(X, axis=axis, order=order))
    # unweighted: the sums of weights are the counts
    np.testing.assert_array_equal(m.sum_weights, m.count)


def test_unweighted_order_2_keeps_its_layout():
    d = da.from_array(X, chunks=(7, 3, 2))
    lazy = fmd.moments(d, axis=0)
    assert lazy.order == 2 and not lazy.weighted
    m = lazy.compute()
    assert type(m) is fastmoments.Moments and m._fields == ("count", "mean", "m2")
    # sum_weights of an unweighted state are its counts, lazily too
    np.testing.assert_array_equal(lazy.sum_weights.compute(), m.count)
    # weighted order 2 keeps the sums of weights
    mw = fmd.moments(d, axis=0, weights=W).compute()
    assert mw.order == 2 and "sum_weights" in mw._fields


@pytest.mark.parametrize("split_every", [2, 3, 8, {0: 2, 1: 3}, {-1: 2}], ids=str)
@pytest.mark.parametrize("axis", [None, 0, (0, 2)], ids=str)
def test_split_every_trees(split_every, axis):
    d = da.from_array(X, chunks=(5, 3, 2))  # 12 x 3 x 3 chunks: a deep tree
    dw = da.from_array(W, chunks=(4, 7, 1))
    m = fmd.moments(d, axis=axis, weights=dw, order=4, split_every=split_every).compute()
    check_state(m, X, W, axis, 4)


def test_split_every_builds_a_deeper_tree():
    d = da.from_array(X, chunks=(5, 7, 5))
    tasks = lambda se: len(dict(fmd.moments(d, axis=0, weights=W, order=3, split_every=se).__dask_graph__()))  # noqa: E731
    assert tasks(2) > tasks(None)
    with pytest.raises(ValueError, match="split_every"):
        fmd.moments(d, weights=W, split_every=1)


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)], ids=str)
def test_keepdims(axis):
    d = da.from_array(X, chunks=(11, 4, 3))
    lazy = fmd.moments(d, axis=axis, weights=W, order=4, keepdims=True)
    m = lazy.compute()
    want = fastmoments.moments(X, axis=axis, weights=W, order=4, keepdims=True)
    assert m.shape == lazy.shape == want.shape == np.mean(X, axis=axis, keepdims=True).shape
    check_same(m, want)
    close(lazy.kurtosis().compute(), want.kurtosis(), scale=1.0)


@pytest.mark.parametrize("order", [2, 4])
@pytest.mark.parametrize("axis", [None, 0, 1], ids=str)
def test_skipna(axis, order):
    x = RNG.normal(size=(90, 8))
    x[RNG.random(x.shape) < 0.1] = np.nan
    x[:, 3] = np.nan  # a column with nothing left
    w = RNG.random(x.shape)
    w[5, :] = 0.0
    d = da.from_array(x, chunks=(13, 3))
    dw = da.from_array(w, chunks=(40, 8))
    m = fmd.moments(d, axis=axis, weights=dw, order=order, skipna=True).compute()
    check_state(m, x, w, axis, order, skipna=True)
    check_same(m, fastmoments.moments(x, axis=axis, weights=w, order=order, skipna=True))
    # without skipna a NaN of positive weight propagates to its slice
    m = fmd.moments(d, axis=axis, weights=dw, order=order).compute()
    check_same(m, fastmoments.moments(x, axis=axis, weights=w, order=order))
    if axis == 0:
        assert np.all(np.isnan(m.mean[np.isnan(x).any(axis=0)]))


@pytest.mark.parametrize("axis", [0, 1, -1, (2,)], ids=str)
@pytest.mark.parametrize("kind", ["dask", "numpy", "list"])
def test_one_dimensional_weights_along_the_axis(axis, kind, monkeypatch):
    a = axis[0] if isinstance(axis, tuple) else axis
    n = X.shape[a]
    w1 = RNG.random(n) * 2
    w1[1] = 0.0
    weights = {"dask": da.from_array(w1, chunks=max(1, n // 3)), "numpy": w1, "list": list(w1)}[kind]
    d = da.from_array(X, chunks=(9, 4, 2))
    lazy = fmd.moments(d, axis=axis, weights=weights, order=3)
    seen = []  # the chunk kernels get the 1-D blocks, not broadcast copies
    core = fastmoments.moments

    def spy(x, *args, weights=None, **kwargs):
        seen.append(np.ndim(weights))
        return core(x, *args, weights=weights, **kwargs)

    monkeypatch.setattr(fastmoments, "moments", spy)
    m = lazy.compute()
    monkeypatch.undo()
    assert seen and set(seen) == {1}
    shape = [1] * X.ndim
    shape[a] = n
    wfull = np.broadcast_to(w1.reshape(shape), X.shape)
    check_state(m, X, wfull, axis, 3)
    check_same(m, fastmoments.moments(X, axis=axis, weights=w1, order=3))


def test_zero_weights():
    x = RNG.normal(size=(40, 6))
    x[3, 0] = np.nan  # left out by its zero weight, NaN or not
    x[4, 1] = np.inf
    w = RNG.random(x.shape)
    w[3, 0] = w[4, 1] = 0.0
    w[:, 5] = 0.0  # a column of zero weights: empty
    w[:20, 2] = 0.0  # a whole chunk of zero weights along the axis
    d = da.from_array(x, chunks=(10, 4))
    for order in (2, 3, 4):
        m = fmd.moments(d, axis=0, weights=da.from_array(w, chunks=(7, 6)), order=order).compute()
        check_state(m, np.where(w > 0, x, 0.0), w, 0, order)
        assert m.count[5] == 0 and np.isnan(m.mean[5]) and m.m2[5] == 0 and m.sum_weights[5] == 0
        assert np.all(np.isfinite(m.mean[:5]))
    # all weights zero
    m = fmd.moments(d, weights=np.zeros(x.shape), order=4).compute()
    assert m.count == 0 and np.isnan(m.mean) and m.m4 == 0


@pytest.mark.parametrize("wdtype", [np.bool_, np.int32, np.uint8, np.float32])
def test_weight_dtypes(wdtype):
    x = RNG.normal(size=(70, 3))
    w = (RNG.random(x.shape) * 4).astype(wdtype)
    m = fmd.moments(da.from_array(x, chunks=(9, 2)), axis=0, weights=da.from_array(w, chunks=20), order=3).compute()
    check_state(m, x, w.astype(np.float64), 0, 3)


def test_frequency_weights_are_repeats():
    # integer weights as repeat counts: var(ddof=1), skew and kurtosis
    # (unbiased included) of the repeated data
    x = RNG.gamma(2.0, size=400)
    w = RNG.integers(0, 5, size=x.size)
    rep = np.repeat(x, w)
    lazy = fmd.moments(da.from_array(x, chunks=37), weights=da.from_array(w, chunks=50), order=4, split_every=3)
    m = lazy.compute()
    assert m.sum_weights == rep.size
    close(m.mean, rep.mean())
    close(m.var(ddof=1), rep.var(ddof=1))
    close(lazy.var(ddof=1).compute(), rep.var(ddof=1))
    close(lazy.std(ddof=1).compute(), rep.std(ddof=1))
    stats = pytest.importorskip("scipy.stats")
    for bias in (True, False):
        close(lazy.skew(bias=bias).compute(), stats.skew(rep, bias=bias), rtol=1e-11)
        for fisher in (True, False):
            close(lazy.kurtosis(fisher=fisher, bias=bias).compute(),
                  stats.kurtosis(rep, fisher=fisher, bias=bias), rtol=1e-11)


def test_reliability_weights_match_np_cov():
    x = RNG.normal(size=(300, 4))
    w = RNG.random(300) + 0.1
    lazy = fmd.moments(da.from_array(x, chunks=(41, 2)), axis=0, weights=da.from_array(w, chunks=100))
    for ddof in (0, 1):
        want = np.array([np.cov(x[:, j], aweights=w, ddof=ddof) for j in range(4)])
        close(lazy.var(ddof, weights="reliability").compute(), want)
        close(lazy.std(ddof, weights="reliability").compute(), np.sqrt(want))
        want_f = np.array([np.cov(x[:, j], fweights=np.ones(300, int), ddof=ddof) for j in range(4)])
        close(fmd.moments(da.from_array(x, chunks=50), axis=0, weights=np.ones(300)).var(ddof).compute(), want_f)


@pytest.mark.parametrize("axis", [None, 0, (1, 2)], ids=str)
def test_unweighted_skew_kurtosis_match_scipy(axis):
    stats = pytest.importorskip("scipy.stats")
    lazy = fmd.moments(da.from_array(X, chunks=(7, 3, 2)), axis=axis, order=4)
    xs = X.reshape(-1) if axis is None else X
    if isinstance(axis, tuple):
        xs = X.reshape(X.shape[0], -1)
    ax = 1 if isinstance(axis, tuple) else axis if axis is not None else 0
    for bias in (True, False):
        close(lazy.skew(bias=bias).compute(), stats.skew(xs, axis=ax, bias=bias), scale=1.0, rtol=1e-11)
        close(lazy.kurtosis(bias=bias).compute(), stats.kurtosis(xs, axis=ax, bias=bias), scale=1.0, rtol=1e-11)


def test_lazy_fields_and_statistics():
    d = da.from_array(X, chunks=(13, 4, 5))
    lazy = fmd.moments(d, axis=0, weights=da.from_array(W, chunks=(20, 7, 5)), order=4)
    m = lazy.compute()
    arrays = {
        "count": lazy.count, "sum_weights": lazy.sum_weights, "sum_weights2": lazy.sum_weights2,
        "mean": lazy.mean, "m2": lazy.m2, "m3": lazy.m3, "m4": lazy.m4,
    }
    for name, arr in arrays.items():
        assert isinstance(arr, da.Array)
        assert arr.shape == (7, 5) and arr.chunks == lazy.chunks
        assert arr.dtype == (np.int64 if name == "count" else np.float64)
        np.testing.assert_array_equal(arr.compute(), getattr(m, name))
    stats = {
        "var": (lazy.var(ddof=1), m.var(ddof=1)),
        "var_r": (lazy.var(ddof=1, weights="reliability"), m.var(ddof=1, weights="reliability")),
        "std_r": (lazy.std(weights="reliability"), m.std(weights="reliability")),
        "skew": (lazy.skew(), m.skew()),
        "skew_unbiased": (lazy.skew(bias=False), m.skew(bias=False)),
        "kurt": (lazy.kurtosis(), m.kurtosis()),
        "kurt_pearson_unbiased": (lazy.kurtosis(fisher=False, bias=False), m.kurtosis(fisher=False, bias=False)),
    }
    for name, (arr, want) in stats.items():
        assert isinstance(arr, da.Array) and arr.chunks == lazy.chunks, name
        np.testing.assert_array_equal(arr.compute(), want, err_msg=name)
    # composes with other dask work, one pass over x
    z, state = dask.compute((d - lazy.mean) / lazy.std(), lazy)
    check_same(state, m, rtol=0)


def test_lazy_layout_errors_come_early():
    d = da.from_array(X, chunks=(13, 4, 5))
    two = fmd.moments(d, axis=0, weights=W)
    three = fmd.moments(d, axis=0, order=3)
    plain = fmd.moments(d, axis=0)
    for lazy in (two, plain):
        with pytest.raises(AttributeError, match="m3"):
            lazy.m3
        with pytest.raises(AttributeError, match="m3"):
            lazy.skew()
    with pytest.raises(AttributeError, match="m4"):
        three.m4
    with pytest.raises(AttributeError, match="m4"):
        three.kurtosis()
    assert isinstance(three.skew(), da.Array)
    with pytest.raises(ValueError, match="frequency"):
        two.var(weights="importance")
    with pytest.raises(TypeError, match="ddof"):
        three.std("1")
    # core errors are the same on computed states
    with pytest.raises(AttributeError, match="m4"):
        three.compute().m4


def test_compute_persist_pickle_tokenize():
    d = da.from_array(X, chunks=(13, 4, 5))
    dw = da.from_array(W, chunks=(13, 4, 5))
    lazy = fmd.moments(d, axis=(0, 2), weights=dw, order=3)
    m, total = dask.compute(lazy, d.sum())
    check_state(m, X, W, (0, 2), 3)
    p = lazy.persist()
    assert isinstance(p, fmd.LazyMoments) and p.order == 3 and p.weighted
    check_same(p.compute(), m, rtol=0)
    np.testing.assert_array_equal(p.m3.compute(), m.m3)
    q = pickle.loads(pickle.dumps(lazy))
    assert q.order == 3
    check_same(q.compute(), m, rtol=0)
    tok = dask.base.tokenize
    assert tok(lazy) == tok(fmd.moments(d, axis=(0, 2), weights=dw, order=3))
    assert tok(lazy) != tok(fmd.moments(d, axis=(0, 2), weights=dw, order=4))
    assert tok(lazy) != tok(fmd.moments(d, axis=(0, 2), order=3))
    assert tok(lazy) != tok(fmd.moments(d, axis=(0, 2), weights=dw * 2, order=3))
    assert "order=3" in repr(lazy)


def test_one_pass_over_the_data():
    # each block of x is read by one task: the weighted chunk states fuse
    # with the reduction's pass-through (blockwise fusion), and x and w are
    # not stacked or concatenated
    reads = []

    def spy(b):
        if b.size:  # not Dask's probe of the meta
            reads.append(b.shape)
        return b

    d = da.from_array(X, chunks=(20, 7, 5)).map_blocks(spy, dtype=X.dtype)
    fmd.moments(d, axis=0, weights=W, order=4).compute()
    assert len(reads) == 3


def test_unknown_chunk_sizes():
    x = RNG.normal(size=3000)
    w = RNG.random(3000)
    d = da.from_array(x, chunks=400)
    dw = da.from_array(w, chunks=400)
    keep = d > 0
    xs, ws = d[keep], dw[keep]  # both of the same unknown chunks
    assert np.isnan(xs.chunks[0][0])
    m = fmd.moments(xs, weights=ws, order=4).compute()
    check_state(m, x[x > 0], w[x > 0], None, 4)
    with pytest.raises(ValueError, match="unknown chunk sizes|compute_chunk_sizes"):
        fmd.moments(xs, weights=w[x > 0])
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        fmd.moments(xs, weights=ws.rechunk(100))


def test_empty_and_zero_size():
    m = fmd.moments(da.zeros((0, 3), chunks=(1, 3)), axis=0, weights=np.zeros((0, 3)), order=4).compute()
    np.testing.assert_array_equal(m.count, [0, 0, 0])
    assert np.all(np.isnan(m.mean)) and m.order == 4
    # a 0-d array with its 0-d weight
    m = fmd.moments(da.from_array(np.float64(2.5)), weights=np.float64(2.0), order=3).compute()
    assert m.count == 1 and m.mean == 2.5 and m.sum_weights == 2.0 and m.m2 == 0


def test_bad_weights_values_at_compute_time():
    x = RNG.normal(size=(50, 4))
    d = da.from_array(x, chunks=(10, 4))
    for bad, what in [(-1.0, "negative"), (np.nan, "NaN"), (np.inf, "infinite")]:
        w = np.ones(x.shape)
        w[37, 2] = bad
        lazy = fmd.moments(d, axis=0, weights=da.from_array(w, chunks=(10, 2)))  # not checked yet
        with pytest.raises(ValueError, match=what):
            lazy.compute()
        with pytest.raises(ValueError, match=what):
            lazy.mean.compute()
        # in-memory weights are checked when the graph is built
        with pytest.raises(ValueError, match=what):
            fmd.moments(d, axis=0, weights=w)
    with pytest.raises(ValueError, match="negative"):
        fmd.moments(d, axis=0, weights=-np.ones(50))


def test_bad_weights_at_graph_construction():
    d = da.from_array(X, chunks=(13, 4, 5))
    for w in (np.ones((60, 7)), np.ones(7), np.ones(61), da.ones((60, 7, 4), chunks=10), np.ones(()), [1.0, 2.0]):
        with pytest.raises(ValueError, match="do not fit"):
            fmd.moments(d, axis=0, weights=w)
    # 1-D weights need one reduced axis
    with pytest.raises(ValueError, match="do not fit"):
        fmd.moments(d, axis=(0, 1), weights=np.ones(60))
    with pytest.raises(ValueError, match="do not fit"):
        fmd.moments(d, weights=np.ones(60))
    with pytest.raises(TypeError, match="complex"):
        fmd.moments(d, weights=da.ones(X.shape, chunks=20, dtype=np.complex128))
    with pytest.raises(TypeError, match="complex"):
        fmd.moments(d, weights=np.ones(X.shape, np.complex64))
    with pytest.raises(TypeError, match="object"):
        fmd.moments(d, weights=np.ones(X.shape).astype(object))
    with pytest.raises(TypeError, match="masked"):
        fmd.moments(d, weights=np.ma.masked_less(W, 0.5))
    with pytest.raises(TypeError, match="masked"):
        fmd.moments(d, weights=da.ma.masked_less(da.from_array(W, chunks=20), 0.5))


def test_bad_order():
    d = da.from_array(X, chunks=20)
    for order in (0, 1, 5, -2):
        with pytest.raises(ValueError, match="order"):
            fmd.moments(d, order=order)
        with pytest.raises(ValueError, match="order"):
            fmd.moments(d, weights=W, order=order)
    for order in (2.0, "3", True, None):
        with pytest.raises(TypeError, match="order"):
            fmd.moments(d, order=order)


def test_numpy_data_with_numpy_weights():
    m = fmd.moments(X, axis=1, weights=W, order=4).compute()
    check_state(m, X, W, 1, 4)


@pytest.mark.gpu
def test_cupy_chunks_weighted():
    cp = pytest.importorskip("cupy")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception:  # pragma: no cover - no device
        pytest.skip("no CUDA device")
    gpu = importlib.import_module("fastmoments.gpu")
    if not hasattr(gpu, "weighted_moments"):
        pytest.skip("fastmoments.gpu has no weighted_moments yet (the GPU wing's weighted kernels are not in)")
    x = RNG.normal(size=(700, 5))
    w = RNG.random(x.shape)
    w[RNG.random(x.shape) < 0.1] = 0.0
    w1 = RNG.random(700)
    d = da.from_array(cp.asarray(x), chunks=(97, 2))
    dw = da.from_array(cp.asarray(w), chunks=(150, 5))
    lazy = fmd.moments(d, axis=0, weights=dw, order=4, split_every=2)
    assert type(lazy.m4._meta).__module__.startswith("cupy")
    m = lazy.compute()
    assert type(m.m4).__module__.startswith("cupy")
    check_state(m.to_numpy(), x, w, 0, 4, rtol=1e-11)
    k = lazy.kurtosis(bias=False).compute()
    assert type(k).__module__.startswith("cupy")
    close(cp.asnumpy(k), m.to_numpy().kurtosis(bias=False), scale=1.0)
    # 1-D weights along the axis, a CuPy Dask array
    m = fmd.moments(d, axis=0, weights=da.from_array(cp.asarray(w1), chunks=200), order=3).compute()
    check_state(m.to_numpy(), x, np.broadcast_to(w1[:, None], x.shape), 0, 3, rtol=1e-11)
    # a list takes the chunks' array type, as in the core
    m = fmd.moments(d, axis=0, weights=list(w1), order=2).compute()
    assert type(m.mean).__module__.startswith("cupy")
    check_state(m.to_numpy(), x, np.broadcast_to(w1[:, None], x.shape), 0, 2, rtol=1e-11)
    # unweighted order 3
    check_state(fmd.moments(d, axis=None, order=3).compute().to_numpy(), x, None, None, 3, rtol=1e-11)
    # NumPy weights for CuPy chunks: the core's TypeError, when the graph is built
    with pytest.raises(TypeError, match="NumPy|CuPy"):
        fmd.moments(d, axis=0, weights=w)
    # a bad weight inside a CuPy chunk: ValueError at compute time
    wb = w.copy()
    wb[3, 1] = -1.0
    with pytest.raises(ValueError, match="negative"):
        fmd.moments(d, axis=0, weights=da.from_array(cp.asarray(wb), chunks=(150, 5))).compute()
