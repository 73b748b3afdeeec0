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
