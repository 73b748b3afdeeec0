"""MonitorCore(histogram=True): float16 flush/subnormal fractions per layer and the heatmap's data."""

import numpy as np
import pytest

from fastmoments_monitor.core import MonitorCore


def _monitor(**kw):
    m = MonitorCore(warn=False, **kw)
    m.set_entries([("grad", "l1/W"), ("grad", "l1/b"), ("grad", "l2/W"), ("param", "l1/W")])
    return m


def test_fp16_fractions_every_other_iteration():
    m = _monitor(histogram=True, histogram_every=2)
    tiny = np.array([2.0**-30, 2.0**-25, 2.0**-24, 2.0**-15, 2.0**-14, 1.0, 0.0, np.nan])
    for it in range(1, 5):
        m.observe([tiny, np.ones(4), np.full(5, 3.0), np.full(7, 2.0**-30)])
    r = m.report()
    l1 = next(x for x in r.layers if x["layer"] == "l1")
    # Finite non-zero gradient values of l1 per counted iteration: 6 of `tiny` + 4 ones.
    assert l1["fp16_flush"] == pytest.approx(2 / 10)
    assert l1["fp16_subnormal"] == pytest.approx(2 / 10)
    assert r.values["grad/l1/fp16_flush"] == pytest.approx(0.2)
    h = m.history[-1]["histogram"]
    assert sum(h["counts"]["l1"]) == 2 * 10  # iterations 2 and 4 only; parameter values not counted
    assert sum(h["counts"]["l2"]) == 2 * 5
    e = h["exponents"]
    assert e == list(range(e[0], e[-1] + 1)) and e[0] <= -29 and e[-1] >= 16
    assert h["counts"]["l1"][e.index(-29)] == 2  # 2**-30 in frexp's e = -29


def test_off_by_default_and_arguments():
    m = _monitor()
    m.observe([np.ones(3)] * 4)
    r = m.report()
    assert all(np.isnan(x["fp16_flush"]) for x in r.layers)
    assert m.history[-1]["histogram"] is None
    with pytest.raises(TypeError):
        MonitorCore(histogram="yes")
    with pytest.raises(ValueError):
        MonitorCore(histogram=True, histogram_every=0)


def test_heatmap_png(tmp_path):
    pytest.importorskip("matplotlib")
    from fastmoments_monitor.plot import panels_for, plot_gradient_flow

    m = _monitor(histogram=True)
    rng = np.random.default_rng(0)
    for _ in range(3):
        m.observe([rng.standard_normal(50) * 1e-6, rng.standard_normal(5), rng.standard_normal(20), np.ones(3)])
    m.report()
    assert len(panels_for(m.plot_data())) == 3
    out = tmp_path / "flow.png"
    plot_gradient_flow(m, out)
    assert out.stat().st_size > 0


def _tiny_run(m, iterations=4):
    # l1/W per iteration, finite non-zero: 2 below 2**-24, 2 in [2**-24, 2**-14), 2 normal.
    tiny = np.array([2.0**-30, 2.0**-25, 2.0**-24, 2.0**-15, 2.0**-14, 1.0, 0.0, np.nan])
    for _ in range(iterations):
        m.observe([tiny, np.ones(4), np.full(5, 3.0), np.full(7, 2.0**-30)])
    return m.report()


def _cells(text, name):
    return next(line.split() for line in text.splitlines() if line.split() and line.split()[0] == name)


def test_table_fp16_columns():
    from fastmoments_monitor.table import format_table

    r = _tiny_run(_monitor(histogram=True, histogram_every=2))
    row = {x["path"]: x for x in r.rows if x["kind"] == "grad"}
    assert row["l1/W"]["fp16_flush"] == pytest.approx(2 / 6)
    assert row["l1/W"]["fp16_subnormal"] == pytest.approx(2 / 6)
    assert row["l1/b"]["fp16_flush"] == 0 and row["l2/W"]["fp16_subnormal"] == 0
    assert r.histogram_iterations == 2
    text = format_table(r)
    head = text.splitlines()[1].split()
    assert head[-3:] == ["fp16flush", "fp16sub", "flags"]
    i, j = head.index("fp16flush"), head.index("fp16sub")
    w = _cells(text, "l1/W")
    assert (w[i], w[j]) == ("33.3%", "33.3%")
    b = _cells(text, "l1/b")
    assert (b[i], b[j]) == ("0", "0")
    assert "fp16flush | fp16sub: % of finite non-zero values < 2^-24" in text
    assert "2 of 4 iterations counted" in text
    both = format_table(r, kinds=("grad", "param"))
    p = _cells(both, "param:l1/W")  # parameter values: all 2**-30, below float16's range
    assert p[head.index("fp16flush")] == "100%"


def test_table_fp16_formats_and_no_values():
    from fastmoments_monitor.table import _pct, format_table

    assert [_pct(v) for v in (0.0, 1e-5, 0.125, 0.99999, 1.0, float("nan"))] == \
        ["0", "<0.1%", "12.5%", ">99.9%", "100%", "-"]
    m = _monitor(histogram=True)
    m.observe([np.zeros(3), np.ones(2), np.ones(2), np.ones(2)])  # l1/W: only zeros
    text = format_table(m.report())
    head = text.splitlines()[1].split()
    w = _cells(text, "l1/W")
    assert (w[head.index("fp16flush")], w[head.index("fp16sub")]) == ("-", "-")


def test_table_unchanged_without_histograms():
    from fastmoments_monitor.table import format_table

    plain = format_table(_tiny_run(_monitor()))
    assert "fp16" not in plain
    assert plain.splitlines()[1].split() == ["parameter", "shape", "mean", "std", "min", "max", "norm",
                                             "zeros", "nonfin", "flags"]
    # Histograms on, but no iteration of the interval counted them: the same table.
    assert format_table(_tiny_run(_monitor(histogram=True, histogram_every=100))) == plain


def test_heatmap_latest_report_with_histograms_and_thresholds():
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from fastmoments_monitor.plot import _draw_histograms, _status, panels_for

    m = _monitor(histogram=True, histogram_every=2)
    rng = np.random.default_rng(0)
    for it in (1, 2, 3):  # reports at 2 (histograms of iteration 2) and 3 (none)
        m.observe([np.zeros(50), np.zeros(5), rng.standard_normal(20) * 1e-6, np.ones(3)], it)  # l1 dead
        if it >= 2:
            m.report(it)
    assert m.history[-1]["histogram"] is None
    data = m.plot_data()
    assert len(panels_for(data)) == 3  # the heatmap of the report at 2 stays
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    _draw_histograms(ax, data, _status(data))
    assert "report at it 2 (latest with histograms)" in ax.get_title()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels and all(t.startswith("$2^{") for t in labels)
    lines = {round(line.get_xdata()[0]) for line in ax.get_lines()}
    assert {-24, -14} <= lines
    top = [t.get_text() for t in ax.child_axes[0].get_xticklabels()] if ax.child_axes else []
    assert "fp16 flush" in top and "fp16 subnormal" in top
    assert [t.get_text() for t in ax.texts] == ["all zero (dead)"]  # the blank row of l1 says why


def _run_with_resume(steps, split, **kw):
    """Report after all steps, resuming from a JSON round trip of state() after `split` steps."""
    import json

    a = _monitor(**kw)
    for it, arrays in enumerate(steps[:split], 1):
        a.observe(arrays, it)
    if split == len(steps):
        return a
    b = MonitorCore(warn=False, **kw)
    b.load_state(json.loads(json.dumps(a.state())))
    b.set_entries([("grad", "l1/W"), ("grad", "l1/b"), ("grad", "l2/W"), ("param", "l1/W")])
    for it, arrays in enumerate(steps[split:], split + 1):
        b.observe(arrays, it)
    return b


def test_histograms_survive_a_resume_mid_interval():
    # A resumed run reports the histograms an uninterrupted one would: the
    # interval's counts so far, and how many iterations counted them, are saved.
    rng = np.random.default_rng(4)
    steps = [[rng.standard_normal(6) * 2.0**-20, rng.standard_normal(3), rng.standard_normal(5) * 1e3,
              rng.standard_normal(6)] for _ in range(6)]
    whole = _run_with_resume(steps, 6, histogram=True, histogram_every=2)
    r_whole = whole.report()
    for split in (1, 3):
        m = _run_with_resume(steps, split, histogram=True, histogram_every=2)
        r = m.report()
        assert m.history[-1]["histogram"] == whole.history[-1]["histogram"], split
        assert r.histogram_iterations == r_whole.histogram_iterations == 3
        for got, want in zip(r.layers, r_whole.layers):
            assert got["fp16_flush"] == want["fp16_flush"] and got["fp16_subnormal"] == want["fp16_subnormal"]
    # The reference: NumPy frexp counts of layer l2's values over the counted iterations.
    h = whole.history[-1]["histogram"]
    vals = np.concatenate([s[2] for it, s in enumerate(steps, 1) if it % 2 == 0])
    _, e = np.frexp(vals)
    want = [int(np.sum(e == k)) for k in h["exponents"]]
    assert h["counts"]["l2"] == want
