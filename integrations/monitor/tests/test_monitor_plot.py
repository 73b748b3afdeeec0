"""The gradient-flow figure: what it is given and what it marks."""

import numpy as np
import pytest

from fastmoments_monitor import AlertRules, MonitorCore, plot_gradient_flow
from fastmoments_monitor.plot import _status, draw_magnitude_heatmap, panels_for


def _story():
    """An explosion, then a dead layer, then NaN in another."""
    core = MonitorCore(warn=False, alerts=AlertRules(explode_ceiling=100.0))
    core.set_entries([("grad", "h0/W"), ("grad", "h1/W"), ("grad", "out/W")], forward_order=["h0", "h1", "out"])
    g = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    bad = g.copy()
    bad[3] = np.nan
    plan = [(g, g, g), (g * 1e5, g * 1e4, g), (np.zeros(64), g, g), (np.zeros(64), bad, g)]
    for it, arrays in enumerate(plan, 1):
        core.observe(list(arrays), it)
        core.report(it)
    return core


def test_plot_marks_dead_and_nonfinite(tmp_path):
    core = _story()
    data = core.plot_data()
    status = _status(data)
    assert status["h0"][0] == "dead" and "dead since it 3" in status["h0"][1]
    assert status["h1"][0] == "nonfinite" 
    assert "first NaN/Inf of the run at it 4" == status["h1"][1]
    assert status["out"] == ("ok", "")
    g = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    assert data["worst"]["h0"] == (pytest.approx(np.linalg.norm((g * 1e5).astype(np.float64)), rel=1e-12), 2)
    assert data["last_finite"]["h1"][0] == 3  # the latest report without NaN/Inf
    assert data["layers"] == ["h0", "h1", "out"]
    path = tmp_path / "flow.png"
    plot_gradient_flow(core, str(path), title="story")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(panels_for(data)) == 2  # no histogram panel without histograms


def test_plot_takes_a_bare_history_of_the_first_format(tmp_path):
    history = [(7, {"a": 1.0, "b": 0.0}, {"a": 0.5, "b": 0.0}), (14, {"a": 2.0, "b": 0.0}, {"a": 1.0, "b": 0.0})]
    plot_gradient_flow(history, str(tmp_path / "old.png"))
    assert (tmp_path / "old.png").exists()
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_gradient_flow([], str(tmp_path / "none.png"))


def test_heatmap_panel_draws_frexp_counts(tmp_path):
    # The panel the histogram follow-up will feed, drawn from real counts.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(0)
    layers = {"h0": rng.standard_normal(1000) * 1e-6, "out": rng.standard_normal(1000)}
    exponents = np.arange(-30, 5)
    counts = []
    for v in layers.values():
        _, e = np.frexp(np.abs(v[v != 0]))
        counts.append([(e == k).sum() for k in exponents])
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    draw_magnitude_heatmap(ax, list(layers), exponents, counts)
    fig.savefig(tmp_path / "heat.png")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["h0", "out"]
