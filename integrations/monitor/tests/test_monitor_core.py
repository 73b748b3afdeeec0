"""MonitorCore and IntervalPool against NumPy, on plain arrays (no framework)."""

import json
import math
import warnings

import numpy as np
import pytest

from fastmoments_monitor import AlertRules, GradientAlert, MonitorCore, STATS
from fastmoments_monitor.pool import NONE, IntervalPool


def _steps(n_steps=4, seed=0, missing=None):
    rng = np.random.default_rng(seed)
    out = []
    for it in range(n_steps):
        arrays = [rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal(7),
                  np.zeros(3, np.float16), rng.integers(-2, 3, (2, 2)).astype(np.float32)]
        if missing and it in missing:
            arrays[missing[it]] = None
        out.append(arrays)
    return out


def _reference(steps, j):
    per = [s[j] for s in steps if s[j] is not None]
    allv = np.concatenate([np.asarray(a, np.float64).ravel() for a in per])
    fin = allv[np.isfinite(allv)]
    sq = [float(np.sum(np.where(np.isfinite(a), np.asarray(a, np.float64), 0.0) ** 2)) for a in per]
    return {"mean": fin.mean(), "std": fin.std(), "min": fin.min(), "max": fin.max(),
            "norm": math.sqrt(np.mean(sq)), "zeros": np.mean(allv == 0),
            "nonfinite": float(np.sum(~np.isfinite(allv)))}


PATHS = ["a/W", "a/b", "b/W", "c/W"]


@pytest.mark.parametrize("missing", [None, {1: 2, 2: 0}])
def test_pooled_statistics_match_numpy(missing):
    steps = _steps(missing=missing)
    core = MonitorCore(alerts=None, warn=False)
    core.set_entries([("grad", p) for p in PATHS])
    for it, arrays in enumerate(steps, 1):
        core.observe(arrays, it)
    rep = core.report()
    for j, path in enumerate(PATHS):
        ref = _reference(steps, j)
        for s in STATS:
            np.testing.assert_allclose(rep.values[f"grad/{path}/{s}"], ref[s], rtol=1e-9, atol=1e-15,
                                       err_msg=f"{path}/{s}")
    assert rep.iterations == 4 and rep.first_iteration == 1 and rep.iteration == 4
    assert core.n_iter == 0  # a new interval


def test_first_bad_iteration_per_array():
    pool = IntervalPool(3)
    clean = [np.ones(4, np.float32), np.ones(2), np.ones(3, np.float32)]
    pool.add(clean, 10)
    bad = [np.array([1, np.nan], np.float32), np.ones(2), np.ones(3, np.float32)]
    pool.add([bad[0]] + clean[1:], 11)
    pool.add([bad[0], np.array([np.inf, 1.0]), clean[2]], 12)
    summary, first = pool.collect()
    assert first.tolist() == [11, 12, NONE]
    assert summary.n_nonfinite.tolist() == [2, 1, 0]
    counts = pool.add(clean[:2] + [np.array([np.nan, 0, 0], np.float32)], 13, check=True)
    assert counts.tolist() == [0, 0, 1]
    assert pool.collect()[1].tolist() == [11, 12, 13]


def _layered(values, forward_order=None, rules=AlertRules(), n_iter=1):
    core = MonitorCore(warn=False, alerts=rules)
    layers = list(values)
    core.set_entries([("grad", f"{n}/W") for n in layers], forward_order=forward_order)
    for it in range(1, n_iter + 1):
        core.observe([np.asarray(values[n], np.float32) for n in layers], it)
    return core, core.report()


def test_dead_layer_is_dead_not_vanishing():
    live = np.random.default_rng(1).standard_normal(100)
    nearly = np.zeros(1000)
    nearly[:5] = 1e-3  # 99.5% zeros
    core, rep = _layered({"h0": np.zeros(100), "h1": nearly, "h2": live * 1e-6, "out": live})
    kinds = {a.layer: a.kind for a in rep.alerts}
    assert kinds == {"h0": "dead", "h1": "dead", "h2": "vanishing"}
    h1 = next(a for a in rep.alerts if a.layer == "h1")
    assert h1.value == pytest.approx(0.995) and "99.5% of its gradient values are exactly zero" in h1.reason
    assert rep.values["grad/alerts/dead"] == 2 and rep.values["grad/alerts/vanishing"] == 1
    assert [x["zeros"] for x in rep.layers][:2] == [1.0, 0.995]
    assert core.dead_since == {"h0": 1, "h1": 1}


def test_dead_alert_says_since_when_and_after_what():
    core = MonitorCore(warn=False, alerts=AlertRules(explode_ceiling=100.0))
    core.set_entries([("grad", "h0/W"), ("grad", "out/W")])
    g = np.random.default_rng(2).standard_normal(50)
    core.observe([g * 1e6, g], 1)
    core.report(1)
    for it in (2, 3):
        core.observe([np.zeros(50), g], it)
        rep = core.report(it)
    dead = next(a for a in rep.alerts if a.kind == "dead")
    assert "dead since iteration 2" in dead.reason and "after exploding gradients at iteration 1" in dead.reason
    assert core.diagnosis().startswith("exploding gradients at iteration 1 ")
    assert "dead: h0 (since iteration 2)" in core.diagnosis()
    core.observe([g, g], 4)  # revived: the streak ends
    core.report(4)
    assert core.dead_since == {}


def test_nonfinite_origin_uses_forward_order():
    core = MonitorCore(warn=False)
    # entries listed out-first; forward order says out is last, so closest to the loss
    core.set_entries([("grad", "out/W"), ("grad", "mid/W"), ("grad", "in/W")], forward_order=["in", "mid", "out"])
    ok = np.ones(4, np.float32)
    nan = np.array([np.nan, 1, 1, 1], np.float32)
    core.observe([ok, ok, ok], 1)
    core.observe([ok, nan, nan], 2)   # mid and in at 2: mid is closer to the loss
    core.observe([nan, nan, nan], 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientAlert)
        rep = core.report()
    origin = rep.nonfinite_origin
    assert (origin["layer"], origin["iteration"]) == ("mid", 2)
    assert origin["order"] == [("mid", 2), ("in", 2), ("out", 3)]
    alert = next(a for a in rep.alerts if a.kind == "nonfinite")
    assert "NaN/Inf first at iteration 2 in 'mid'" in alert.reason
    assert "then in (iteration 2), out (iteration 3)" in alert.reason
    assert alert.layer == "out/W, mid/W, in/W"  # backward order
    assert core.events["nonfinite"] == {"iteration": 2, "layer": "mid"}
    assert [x["layer"] for x in rep.layers] == ["in", "mid", "out"]  # forward order


def test_state_round_trip_mid_interval_is_bit_identical():
    steps = _steps(6, seed=5)

    def run(split):
        a = MonitorCore(warn=False)
        a.set_entries([("grad", p) for p in PATHS])
        for it, arrays in enumerate(steps[:split], 1):
            a.observe(arrays, it)
        if split == 6:
            return a.report().values
        blob = json.loads(json.dumps(a.state()))
        b = MonitorCore(warn=False)
        b.load_state(blob)            # before the entries: applied at set_entries
        assert b.n_iter == split
        b.set_entries([("grad", p) for p in PATHS])
        for it, arrays in enumerate(steps[split:], split + 1):
            b.observe(arrays, it)
        return b.report().values

    whole = run(6)
    for split in (1, 3):
        got = run(split)
        assert got.keys() == whole.keys()
        for k in whole:
            assert got[k] == whole[k] or (math.isnan(got[k]) and math.isnan(whole[k])), k



def test_deferred_merges_equal_merging_every_iteration():
    """CPU groups fold their per-iteration Summaries every FOLD_EVERY
    iterations and at collect: the pooled state is bit for bit the running
    merge one iteration at a time (what resume's bit-identity rests on),
    across fold boundaries and with a resume in between."""
    import fastmoments
    from fastmoments_monitor import pool as pool_mod

    n_it = 2 * pool_mod.FOLD_EVERY + 5
    steps = _steps(n_it, seed=7)
    ref = None
    for arrays in steps:
        s = fastmoments.summarize_each(arrays)
        ref = s if ref is None else ref.merge(s)
    pool = IntervalPool(len(PATHS))
    for it, arrays in enumerate(steps, 1):
        pool.add(arrays, it)
        if it == pool_mod.FOLD_EVERY + 3:  # a collect mid-interval must not change what follows
            pool.collect()
    got, _ = pool.collect()
    # Resumed at an iteration that is not a fold boundary.
    resumed = IntervalPool(len(PATHS))
    half = pool_mod.FOLD_EVERY - 2
    for it, arrays in enumerate(steps[:half], 1):
        resumed.add(arrays, it)
    saved, fb = resumed.collect()
    resumed.load(saved, resumed.n_obs, resumed.n_iter, fb)
    for it, arrays in enumerate(steps[half:], half + 1):
        resumed.add(arrays, it)
    again, _ = resumed.collect()
    for a, b, c in zip(ref.fields, got.fields, again.fields):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_collect_gives_the_identity_bits_where_nothing_was_finite():
    """Review finding: an all-NaN/Inf array's Summary has a mean of -NaN; the
    pooled total must still carry the empty identity's NaN (what a state
    saved to JSON and resumed gives), so resumed runs stay bit-identical."""
    from fastmoments_monitor.pool import empty_summary

    pool = IntervalPool(2)
    for it in range(3):
        pool.add([np.array([np.nan, np.inf]), np.ones(2)], it + 1)
    s, _ = pool.collect()
    assert s.count[0] == 0 and s.n_nonfinite[0] == 6
    assert s.mean[0:1].view(np.uint64) == empty_summary(2).mean[0:1].view(np.uint64)

def test_version_1_history_loads():
    core = MonitorCore(warn=False)
    core.load_state({"version": 1, "first_iteration": None, "iteration": 7, "serial": 1,
                     "layer_norms": {"l1": [0.5]}, "history": [[7, {"l1": 0.5}, {"l1": 0.1}]]})
    assert core.history[0]["norm"] == {"l1": 0.5} and core.history[0]["iteration"] == 7


def test_loss_scale_divides_gradients_only():
    core = MonitorCore(warn=False, alerts=None)
    core.set_entries([("grad", "l/W"), ("param", "l/W")])
    g = np.array([2.0, -4.0], np.float32)
    core.observe([g, g], 1, loss_scale=2.0)
    v = core.report().values
    assert v["grad/l/W/max"] == 1.0 and v["param/l/W/max"] == 2.0
    assert v["grad/l/W/norm"] == pytest.approx(math.sqrt(5))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown statistics"):
        MonitorCore(stats=["kurtosis"])
    with pytest.raises(ValueError, match="dead_fraction"):
        AlertRules(dead_fraction=1.5)
    with pytest.raises(ValueError, match="no parameter"):
        MonitorCore().set_entries([])


def test_pool_keeps_no_gradient_alive():
    # The stand-in for a missing array must not be a view of a gradient: a view
    # would keep that gradient's whole buffer alive as long as the monitor.
    import gc
    import weakref

    pool = IntervalPool(2)
    big = np.ones(1 << 20, np.float32)
    ref = weakref.ref(big)
    pool.add([big, np.ones(3, np.float32)], 1)
    del big
    gc.collect()
    assert ref() is None


def test_state_is_a_snapshot_not_live_references():
    # A checkpoint kept in memory must not change as training goes on.
    steps = _steps(8, seed=2)
    core = MonitorCore(warn=False)
    core.set_entries([("grad", p) for p in PATHS])
    for it, arrays in enumerate(steps[:4], 1):
        core.observe(arrays, it)
        if it % 2 == 0:
            core.report()
    saved = core.state()
    frozen = json.dumps(saved, sort_keys=True)
    for it, arrays in enumerate(steps[4:], 5):
        core.observe(arrays, it)
        if it % 2 == 0:
            core.report()
    assert json.dumps(saved, sort_keys=True) == frozen
    again = MonitorCore(warn=False)
    again.load_state(saved)
    again.set_entries([("grad", p) for p in PATHS])
    again.observe(steps[4], 5)
    again.report()
    assert json.dumps(saved, sort_keys=True) == frozen  # loading does not tie the dict to the new monitor
