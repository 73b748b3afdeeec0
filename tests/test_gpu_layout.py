"""The GPU wing's index arithmetic, emulated on the CPU (no GPU, no CuPy needed).

For many shapes, views and axes, the launch plan of fastmoments.gpu (layout,
kernel choice, chunking) and the per-thread loops of fm_reduce.cu (transcribed
below) must visit every element of every output exactly once; and the
summarize_each table with the kernel's binary search must send every block to
its own array and chunk.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fastmoments.gpu import _layout as L


def _all_axes(ndim):
    for r in range(ndim + 1):
        yield from itertools.combinations(range(ndim), r)


def _visits(p, g):
    """Element offsets each output's threads read, as fm_*_partial do."""
    out = [[] for _ in range(p.M)]
    for o in range(p.M):
        base = (o // p.B) * p.sA + (o % p.B) * p.sB
        for c in range(g.C):
            end = min(p.K, (c + 1) * g.chunk)
            lanes, step = (L.THREADS, L.THREADS) if g.segment else (8, 8)
            for t in range(lanes):
                first = c * g.chunk + t
                cnt = (end - first + step - 1) // step if first < end else 0
                out[o].extend(base + (first + i * step) * p.sK for i in range(cnt))
    return out


def _views():
    base = np.arange(4 * 6 * 5 * 3)
    yield base.reshape(4, 6, 5, 3), base
    yield base.reshape(4, 6, 15)[:, ::2, 3:], base
    yield base.reshape(12, 30).T, base
    yield base.reshape(12, 30)[::-1, ::3], base
    yield base.reshape(4, 6, 5, 3).transpose(2, 0, 3, 1), base
    yield np.asfortranarray(base.reshape(20, 18)), None
    yield base[:7], base
    yield base[5:6].reshape(()), base
    big = np.arange(3 * 5000)
    yield big.reshape(3, 5000), big
    yield big.reshape(5000, 3), big
    yield big.reshape(5000, 3)[::2], big
    yield big[:12000].reshape(300, 40), big  # lane kernel with a split axis (C > 1)


@pytest.mark.parametrize("case", range(12))
def test_every_element_read_once(case):
    x, base = list(_views())[case]
    if base is None:  # a copy: offsets relative to its own first element
        base = x.ravel(order="K")  # a view: F order is its memory order
    for axes in _all_axes(x.ndim):
        strides = tuple(s // x.itemsize for s in x.strides)
        p = L.plan(x.shape, strides, axes)
        kept = [i for i in range(x.ndim) if i not in axes]
        M = int(np.prod([x.shape[i] for i in kept]))
        K = int(np.prod([x.shape[i] for i in axes]))
        want = np.transpose(x, kept + list(axes)).reshape(M, K)
        if p is None:  # the wing copies to (M, K) contiguous first
            y = np.ascontiguousarray(want)
            p = L.plan(y.shape, (y.shape[1], 1), (1,))
            origin, flat = 0, y.reshape(-1)
        else:
            origin, flat = (x.ctypes.data - base.ctypes.data) // x.itemsize, base
        assert p.M == want.shape[0] and p.K == want.shape[1]
        got = _visits(p, L.geometry(p))
        for o in range(p.M):
            vals = flat[origin + np.asarray(got[o], dtype=np.int64)] if got[o] else np.array([], flat.dtype)
            np.testing.assert_array_equal(np.sort(vals), np.sort(want[o]), err_msg=f"axes {axes} output {o}")


def test_plan_fast_paths():
    # C-contiguous reduced tail: rows; reduced head: columns; middle: both kept groups
    assert L.plan((4, 5, 6), (30, 6, 1), (1, 2)) == L.Plan(1, 4, 0, 30, 30, 1)
    assert L.plan((4, 5, 6), (30, 6, 1), (0,)) == L.Plan(1, 30, 0, 1, 4, 30)
    assert L.plan((4, 5, 6), (30, 6, 1), (1,)) == L.Plan(4, 6, 30, 1, 5, 6)
    assert L.plan((4, 5, 6), (30, 6, 1), ()) == L.Plan(1, 120, 0, 1, 1, 0)
    # reduce the first and last axes of a 3-D array: no 3-dimension view
    assert L.plan((4, 5, 6), (30, 6, 1), (0, 2)) is None


def test_lane_split_is_exercised():
    g = L.geometry(L.plan((300, 40), (40, 1), (0,)))
    assert not g.segment and g.C > 1


def test_geometry_chunks_cover_the_axis():
    for M, K, sK in [(1, 1, 0), (1, 10**8, 1), (1, 10**8, 2), (4, 10**6, 4), (10**6, 3, 1), (64, 5000, 64), (3, 1023, 1)]:
        p = L.Plan(1, M, 0, K, K, sK)
        g = L.geometry(p)
        assert g.C >= 1 and (g.C - 1) * g.chunk < K <= g.C * g.chunk
        assert g.C <= L.MAX_GRID_Y or g.segment


def _search(table, count, slot):
    """fm_each_partial's binary search, transcribed."""
    lo, hi = 0, count - 1
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if table[mid, 2] <= slot:
            lo = mid
        else:
            hi = mid - 1
    return lo


def test_each_table_maps_blocks_to_arrays():
    rng = np.random.default_rng(0)
    for sizes in ([0], [5], [0, 0, 3, 0], [8192, 8193, 0, 1, 20000, 0], list(rng.integers(0, 40000, 200))):
        rows = tuple((1000 + t, int(n), 10) for t, n in enumerate(sizes))
        table, total, max_chunks = L.each_table(rows, chunk=8192)
        assert total == sum(-(-n // 8192) for n in sizes)
        assert max_chunks == max(-(-n // 8192) for n in sizes)
        seen = {t: 0 for t in range(len(sizes))}
        for slot in range(total):
            t = _search(table, len(sizes), slot)
            c = slot - table[t, 2]
            assert 0 <= c * 8192 < sizes[t], (sizes, slot, t)
            seen[t] += min(8192, sizes[t] - c * 8192)
        assert seen == {t: int(n) for t, n in enumerate(sizes)}
        # fm_finalize's ranges: chunk0 of array t to chunk0 of t + 1
        assert table[len(sizes), 2] == total


def _weight_views(x):
    """Weights of x's shape in other layouts: their own copy in C and F
    order, and broadcast views along each axis (zero strides elsewhere)."""
    wbase = np.arange(10_000, 10_000 + x.size).reshape(x.shape)
    yield wbase, np.ascontiguousarray(wbase).ravel()
    if x.ndim:
        f = np.asfortranarray(wbase)
        yield f, f.ravel(order="K")
    for ax in range(x.ndim):
        line = np.arange(20_000, 20_000 + x.shape[ax])
        shape = [1] * x.ndim
        shape[ax] = x.shape[ax]
        v = np.broadcast_to(line.reshape(shape), x.shape)
        yield v, line


@pytest.mark.parametrize("case", range(12))
def test_joint_plans_read_value_and_weight_together(case):
    """fm_weighted.cu reads element k of output o of the data and of its
    weights through plan_joint's plans: every (value, weight) pair exactly once."""
    x, base = list(_views())[case]
    if base is None:
        base = x.ravel(order="K")
    for w, wflat in _weight_views(x):
        worigin = (w.ctypes.data - wflat.ctypes.data) // w.itemsize if w.size else 0
        for axes in _all_axes(x.ndim):
            xs = tuple(s // x.itemsize for s in x.strides)
            ws = tuple(s // w.itemsize for s in w.strides)
            plans = L.plan_joint(x.shape, (xs, ws), axes)
            kept = [i for i in range(x.ndim) if i not in axes]
            M = int(np.prod([x.shape[i] for i in kept]))
            K = int(np.prod([x.shape[i] for i in axes]))
            want_x = np.transpose(x, kept + list(axes)).reshape(M, K)
            want_w = np.transpose(w, kept + list(axes)).reshape(M, K)
            if plans is None:  # both copied to (M, K) contiguous
                continue
            p, pw = plans
            assert (p.A, p.B, p.K) == (pw.A, pw.B, pw.K)
            g = L.geometry(p)
            gx, gw = _visits(p, g), _visits(pw, g)
            xo = (x.ctypes.data - base.ctypes.data) // x.itemsize
            for o in range(p.M):
                pairs = sorted(zip(base[xo + np.asarray(gx[o], np.int64)].tolist(),
                                   wflat[worigin + np.asarray(gw[o], np.int64)].tolist()))
                assert pairs == sorted(zip(want_x[o].tolist(), want_w[o].tolist())), (axes, o)


def test_plan_joint_fast_paths():
    # weights along the last axis broadcast over the rest: reducing two axes has
    # no common view (the wing copies), reducing the one does
    assert L.plan_joint((4, 5, 6), ((30, 6, 1), (0, 0, 1)), (1, 2)) is None
    assert L.plan_joint((4, 30), ((30, 1), (0, 1)), (1,)) == (L.Plan(1, 4, 0, 30, 30, 1), L.Plan(1, 4, 0, 0, 30, 1))
    # C data, F weights: the kept axes no longer coalesce, still two strided dims
    assert L.plan_joint((4, 5, 6), ((30, 6, 1), (1, 4, 20)), (2,)) == (
        L.Plan(4, 5, 30, 6, 6, 1), L.Plan(4, 5, 1, 4, 6, 20))
