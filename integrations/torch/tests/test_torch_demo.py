"""The demo's exploding run: explosion then dead layers, diagnosed, with TensorBoard events and a PNG."""

from __future__ import annotations

import os

import pytest


def test_demo_exploding_run(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fastmoments_torch import demo

    assert demo.main(["--runs", "exploding", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "exploding"
    files = sorted(os.listdir(folder))
    assert "gradient_flow.png" in files and "alerts.txt" in files
    assert any(f.startswith("events.out.tfevents.") for f in files)
    text = (folder / "alerts.txt").read_text()
    assert "exploding gradients" in text and "dead gradients" in text and "vanishing gradients" not in text
    assert "diagnosis: exploding gradients at iterations" in text and "dead: h0" in text
    assert "fp16flush" in out  # the table's float16 columns
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    assert acc.Scalars("grad/alerts/dead")[-1].value >= 1
    assert "grad/out/magnitude" in acc.Tags()["histograms"]
