"""Magnitude histograms against NumPy frexp counts, and the TensorBoard event file read back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fmt_testlib import RecordingWriter, batches, frexp_counts, make, reference, train

from fastmoments_torch import GradientMonitor
from fastmoments_torch._tensorboard import raw_histogram

LAYERS = {"layers/0": ["layers.0.weight", "layers.0.bias"], "layers/1": ["layers.1.weight", "layers.1.bias"],
          "layers/2": ["layers.2.weight", "layers.2.bias"]}


def _edges():
    import fastmoments

    return fastmoments.summarize_each([np.zeros(1, np.float32)], histogram=True).histogram_edges


def _expected(kept, names):
    """The record the writer should get for a layer, from frexp counts and torch float64 sums."""
    counts = frexp_counts([g[n] for g in kept for n in names if n in g])
    used = np.flatnonzero(counts)
    lo, hi = used[0], used[-1]
    allv = torch.cat([g[n].reshape(-1) for g in kept for n in names])
    return {"counts": counts[lo:hi + 1].tolist(), "limits": _edges()[lo + 1:hi + 2].tolist(),
            "min": float(_edges()[lo]), "max": allv.abs().max().item(), "num": int(counts.sum()),
            "sum": allv.sum().item(), "sum_squares": allv.square().sum().item()}


def _check_record(rec, exp):
    assert rec["bucket_counts"] == exp["counts"]
    assert rec["bucket_limits"] == pytest.approx(exp["limits"], rel=0)
    assert rec["num"] == exp["num"]
    assert rec["min"] == exp["min"]
    assert math.isclose(rec["max"], exp["max"], rel_tol=1e-12)
    assert math.isclose(rec["sum"], exp["sum"], rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(rec["sum_squares"], exp["sum_squares"], rel_tol=1e-9)
    # What TensorBoard draws: buckets [min, l0), [l0, l1), ..., [l_{n-2}, max].
    assert rec["min"] <= exp["max"] <= rec["bucket_limits"][-1]


def test_writer_gets_frexp_histograms_per_layer():
    model, optimizer = make()
    w = RecordingWriter()
    mon = GradientMonitor(model, report_every=4, histogram=True, writer=w, warn=False)
    mon.attach(optimizer)
    kept = train(model, optimizer, batches(8))
    assert set(w.histograms) == {f"grad/{layer}/magnitude" for layer in LAYERS}
    for layer, names in LAYERS.items():
        recs = w.histograms[f"grad/{layer}/magnitude"]
        assert [s for s, _ in recs] == [4, 8]
        for (step, rec), part in zip(recs, (kept[:4], kept[4:])):
            _check_record(rec, _expected(part, names))
    # The scalars: every reported value at the report's step.
    assert w.scalars["grad/norm"][1][0] == 8
    ref = reference(kept[4:], "layers.1.weight")["std"]
    assert math.isclose(w.scalars["grad/layers/1/weight/std"][1][1], ref, rel_tol=1e-9)
    assert "grad/layers/0/fp16_flush" in w.scalars


def test_fp16_fractions_against_frexp():
    model, optimizer = make()
    mon = GradientMonitor(model, report_every=None, histogram=True, warn=False)
    mon.attach(optimizer)

    def tiny(step):  # put values below float16's thresholds into layer 0
        with torch.no_grad():
            g = model.layers[0].weight.grad.view(-1)
            g[:10] = 2.0 ** -30
            g[10:15] = 2.0 ** -20
    kept = train(model, optimizer, batches(3), after_backward=tiny)
    values = mon.report()
    counts = frexp_counts([g[n] for g in kept for n in LAYERS["layers/0"]])
    exps = np.arange(279) - 150  # bin b holds 2**(b - 150) <= |g| < 2**(b - 149)
    total = counts.sum()
    assert math.isclose(values["grad/layers/0/fp16_flush"], counts[exps < -24].sum() / total, rel_tol=1e-12)
    assert math.isclose(values["grad/layers/0/fp16_subnormal"],
                        counts[(exps >= -24) & (exps < -14)].sum() / total, rel_tol=1e-12)
    assert values["grad/layers/0/fp16_flush"] > 0


def test_histogram_every_counts_only_those_steps():
    model, optimizer = make()
    w = RecordingWriter()
    mon = GradientMonitor(model, report_every=6, histogram=True, histogram_every=3, writer=w, warn=False)
    mon.attach(optimizer)
    kept = train(model, optimizer, batches(6))
    rec = w.histograms["grad/layers/2/magnitude"][0][1]
    counts = frexp_counts([kept[i][n] for i in (2, 5) for n in LAYERS["layers/2"]])
    used = np.flatnonzero(counts)
    assert rec["bucket_counts"] == counts[used[0]:used[-1] + 1].tolist()
    assert mon.last_report.histogram_iterations == 2


def test_raw_histogram_edge_cases():
    h = np.zeros(279, np.int64)
    assert raw_histogram(h, 0.0, 0.0, 0.0) is None  # a dead layer: no record
    h[-1] = 2  # the overflow bin (float64 only): its upper edge inf becomes the largest float64
    rec = raw_histogram(h, 1e300, 0.0, 0.0)
    assert rec["bucket_limits"] == [np.finfo(np.float64).max] and rec["bucket_counts"] == [2]


def test_dead_layer_gets_no_histogram_but_scalars():
    model, optimizer = make()
    w = RecordingWriter()
    mon = GradientMonitor(model, report_every=2, histogram=True, writer=w, warn=False)
    mon.attach(optimizer)

    def kill(step):
        for p in model.layers[1].parameters():
            p.grad.zero_()
    train(model, optimizer, batches(2), keep=False, after_backward=kill)
    assert "grad/layers/1/magnitude" not in w.histograms
    assert w.scalars["grad/layers/1/dead"] == [(2, 1.0)]
    assert w.scalars["grad/alerts/dead"] == [(2, 1.0)]


def test_tensorboard_event_file_read_back(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    model, optimizer = make()
    writer = SummaryWriter(log_dir=str(tmp_path))
    mon = GradientMonitor(model, report_every=3, histogram=True, writer=writer, warn=False)
    mon.attach(optimizer)
    kept = train(model, optimizer, batches(6))
    writer.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    assert set(tags["histograms"]) == {f"grad/{layer}/magnitude" for layer in LAYERS}
    norms = acc.Scalars("grad/norm")
    assert [e.step for e in norms] == [3, 6]
    for e, part in zip(norms, (kept[:3], kept[3:])):
        names = [n for n in kept[0]]
        ref = math.sqrt(sum(reference(part, n)["norm"] ** 2 for n in names))
        assert math.isclose(e.value, ref, rel_tol=1e-6)  # stored as float32
    std = acc.Scalars("grad/layers/0/weight/std")[1].value
    assert math.isclose(std, reference(kept[3:], "layers.0.weight")["std"], rel_tol=1e-6)
    for layer, names in LAYERS.items():
        events = acc.Histograms(f"grad/{layer}/magnitude")
        assert [e.step for e in events] == [3, 6]
        for e, part in zip(events, (kept[:3], kept[3:])):
            hv = e.histogram_value
            exp = _expected(part, names)
            assert list(hv.bucket) == exp["counts"]
            assert list(hv.bucket_limit) == pytest.approx(exp["limits"], rel=0)
            assert hv.num == exp["num"] and hv.min == exp["min"]
            assert math.isclose(hv.max, exp["max"], rel_tol=1e-12)
            assert math.isclose(hv.sum_squares, exp["sum_squares"], rel_tol=1e-9)


def test_import_runs_no_summary():
    # Importing the package computes nothing (the histogram edges are computed at first use).
    import subprocess
    import sys

    code = ("import fastmoments\n"
            "def boom(*a, **k): raise AssertionError('summarize_each at import')\n"
            "fastmoments.summarize_each = boom\n"
            "import fastmoments_torch, fastmoments_torch._tensorboard\n")
    subprocess.run([sys.executable, "-c", code], check=True)
