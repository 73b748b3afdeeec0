"""The shared table and gradient-flow plot from the torch monitor; a dead layer and an explosion diagnosed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fmt_testlib import batches, make, train

from fastmoments_torch import AlertRules, GradientMonitor, format_table


def test_table_rows_follow_named_parameters():
    model, optimizer = make()
    mon = GradientMonitor(model, report_every=3, histogram=True, warn=False)
    assert mon.table() == "no report yet"
    mon.attach(optimizer)
    train(model, optimizer, batches(3), keep=False)
    text = mon.table()
    assert text == format_table(mon.last_report)
    lines = text.splitlines()
    assert lines[0].startswith("gradients, iterations 1-3 (3 updates)")
    names = [line.split()[0] for line in lines[3:9]]
    assert names == [n.replace(".", "/") for n, _ in model.named_parameters()]
    row = lines[3].split()
    assert row[1] == "16x8"  # layers.0.weight's shape
    assert "fp16flush" in lines[1]


def test_dead_layers_after_explosion_diagnosed_and_plotted(tmp_path):
    pytest.importorskip("matplotlib")
    model, optimizer = make(lr=0.0)  # parameters fixed: the gradients are what we make them
    mon = GradientMonitor(model, report_every=2, alerts=AlertRules(explode_ceiling=1e2), histogram=True,
                          warn=False)
    mon.attach(optimizer)
    data = batches(10)
    for step, (x, y) in enumerate(data, 1):
        if step == 5:  # the first layer's ReLUs stop firing: its gradients are exactly zero from now on
            with torch.no_grad():
                model.layers[0].bias.fill_(-1e3)
        optimizer.zero_grad()
        scale = 1e6 if step <= 2 else 1.0  # an explosion in the first report interval
        (scale * torch.nn.functional.cross_entropy(model(x), y)).backward()
        optimizer.step()
    first = list(mon.history[0]["status"].values())
    assert "exploding" in first
    last = {a.layer: a.kind for a in mon.last_report.alerts}
    assert last.get("layers/0") == "dead"
    text = mon.diagnosis()
    assert text.startswith("exploding gradients at iterations 1-2") and "dead: layers/0 (since iteration 5)" in text
    dead = [a for a in mon.last_report.alerts if a.kind == "dead"][0]
    assert "after exploding gradients" in dead.reason
    assert "D" in mon.table().splitlines()[3]
    path = mon.plot(str(tmp_path / "flow.png"), title="exploding, then dead")
    from matplotlib.image import imread

    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 1000  # three panels: heatmap included
    assert np.std(img[..., :3]) > 0.05  # not blank


def test_plot_without_report_raises(tmp_path):
    model, _ = make()
    with pytest.raises(ValueError, match="nothing to plot"):
        GradientMonitor(model).plot(str(tmp_path / "x.png"))
