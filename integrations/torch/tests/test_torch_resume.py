"""state_dict / load_state_dict: a resumed run reports what an uninterrupted one would."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from fmt_testlib import RecordingWriter, batches, make, train

from fastmoments_torch import AlertRules, GradientMonitor

ARGS = dict(report_every=4, alerts=AlertRules(jump_factor=1.5, min_history=1, window=3), warn=False)


def _run(data, *, histogram, stop=None, on_nonfinite="warn", poison=None):
    """Train on ``data``; at step ``stop`` save everything, rebuild, load, and continue."""
    model, optimizer = make(opt="adam", lr=0.2)
    w = RecordingWriter()
    mon = GradientMonitor(model, histogram=histogram, writer=w, on_nonfinite=on_nonfinite, **ARGS)
    mon.attach(optimizer)
    if stop is None:
        train(model, optimizer, data, keep=False, poison=poison)
        return mon, w
    train(model, optimizer, data[:stop], keep=False, poison=poison)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": optimizer.state_dict(), "monitor": mon.state_dict()}, buf)
    json.dumps(mon.state_dict())  # plain values
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)  # the monitor's state loads without unpickling code
    model, optimizer = make(opt="adam", lr=0.2, seed=123)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["opt"])
    mon = GradientMonitor(model, histogram=histogram, writer=w, on_nonfinite=on_nonfinite, **ARGS)
    mon.load_state_dict(ckpt["monitor"])
    mon.attach(optimizer)
    later = {k - stop: v for k, v in (poison or {}).items() if k > stop}
    train(model, optimizer, data[stop:], keep=False, poison=later)
    return mon, w


@pytest.mark.parametrize("histogram", [False, True])
@pytest.mark.parametrize("stop", [4, 6])  # at a report, and inside an interval
def test_resumed_run_reports_as_uninterrupted(histogram, stop):
    data = batches(12)
    full, wf = _run(data, histogram=histogram)
    res, wr = _run(data, histogram=histogram, stop=stop)
    assert res.iteration == full.iteration == 12
    # Every report after the resume, every key, as the uninterrupted run (bit for bit).
    for tag, series in wf.scalars.items():
        got = [(s, v) for s, v in wr.scalars.get(tag, []) if s > stop]
        want = [(s, v) for s, v in series if s > stop]
        assert got == want, tag
    for tag, series in wf.histograms.items():
        assert [x for x in wr.histograms.get(tag, []) if x[0] > stop] == [x for x in series if x[0] > stop], tag
    assert res.history == full.history
    assert res.diagnosis() == full.diagnosis()
    assert res.table() == full.table()


def test_resume_keeps_skips_and_nonfinite_origin():
    data = batches(8)
    poison = {5: ("layers.1.weight", float("nan"))}
    full, wf = _run(data, histogram=False, on_nonfinite="skip", poison=poison)
    res, wr = _run(data, histogram=False, on_nonfinite="skip", poison=poison, stop=6)
    assert wf.scalars["grad/skipped"] == wr.scalars["grad/skipped"] == [(4, 0.0), (8, 1.0)]
    assert wr.scalars["grad/nonfinite_first_iteration"] == wf.scalars["grad/nonfinite_first_iteration"]
    assert [a.message() for a in res.last_report.alerts] == [a.message() for a in full.last_report.alerts]


def test_load_before_or_after_the_first_step():
    data = batches(5)
    model, optimizer = make()
    mon = GradientMonitor(model, report_every=None, warn=False)
    mon.attach(optimizer)
    train(model, optimizer, data[:3], keep=False)
    state = mon.state_dict()
    # A monitor that has already observed (entries set) can load too.
    other = GradientMonitor(model, report_every=None, warn=False)
    other.observe()
    other.load_state_dict(state)
    assert other.iteration == 3 and other.core.n_iter == 3
    values, ref = other.report(), mon.report()
    for k in ref:
        assert values[k] == ref[k] or (math.isnan(values[k]) and math.isnan(ref[k])), k
    with pytest.raises(ValueError):
        other.load_state_dict({"version": 99})


def _observed(model, steps=2):
    mon = GradientMonitor(model, report_every=None, warn=False)
    for _ in range(steps):
        model.zero_grad()
        model(torch.randn(3, 4)).sum().backward()
        mon.observe()
    return mon


def test_load_state_of_another_model_raises_naming_the_parameter():
    sd = _observed(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))).state_dict()
    other = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 5))  # same names, new head
    with pytest.raises(ValueError, match=r"1\.weight"):
        GradientMonitor(other).load_state_dict(sd)
    half = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)).to(torch.float64)
    with pytest.raises(ValueError, match=r"0\.weight.*dtype|dtype.*0\.weight"):
        GradientMonitor(half).load_state_dict(sd)
    # Loaded after the first observation: checked against the monitored parameters too.
    mon = _observed(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 5)), steps=1)
    with pytest.raises(ValueError, match=r"1\.weight.*40 elements"):
        mon.load_state_dict(sd)
    same = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    GradientMonitor(same).load_state_dict(sd)  # the same architecture loads


@pytest.mark.parametrize("bad", ["model", "list", "empty"])
def test_load_state_dict_of_something_else_is_a_clear_error(bad):
    model = torch.nn.Linear(4, 2)
    state = {"model": model.state_dict(), "list": [1, 2], "empty": {}}[bad]
    with pytest.raises((TypeError, ValueError), match="GradientMonitor.state_dict"):
        GradientMonitor(model).load_state_dict(state)
