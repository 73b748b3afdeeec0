"""on_nonfinite: 'skip' leaves parameters and optimizer state untouched, 'raise' names the parameters,
'warn' reports where NaN/Inf started; AMP GradScaler on the CPU."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from fmt_testlib import batches, make, train

from fastmoments_torch import GradientAlert, GradientMonitor, NonFiniteGradientError


def _snapshot(model, optimizer):
    return ({n: p.detach().clone() for n, p in model.named_parameters()}, copy.deepcopy(optimizer.state_dict()))


def _same_state(a, b):
    pa, oa = a
    pb, ob = b
    assert pa.keys() == pb.keys()
    for n in pa:
        assert torch.equal(pa[n], pb[n]), n
    sa, sb = oa["state"], ob["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        for f in sa[k]:
            x, y = sa[k][f], sb[k][f]
            assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y, (k, f)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_skip_leaves_parameters_and_optimizer_state_untouched(opt):
    model, optimizer = make(opt=opt)
    mon = GradientMonitor(model, on_nonfinite="skip", report_every=None, warn=False)
    mon.attach(optimizer)
    data = batches(4)
    train(model, optimizer, data[:2], keep=False)
    before = _snapshot(model, optimizer)
    poisoned = {}

    def poison(step):
        with torch.no_grad():
            model.layers[1].weight.grad.view(-1)[3] = float("nan")
        poisoned.update({n: p.grad for n, p in model.named_parameters()})

    train(model, optimizer, data[2:3], keep=False, after_backward=poison)
    _same_state(_snapshot(model, optimizer), before)
    # The gradients are given back after the skipped step, as backward left them.
    assert all(p.grad is poisoned[n] for n, p in model.named_parameters())
    assert math.isnan(model.layers[1].weight.grad.view(-1)[3].item())
    # Training goes on: the next (finite) step updates again, as one that never saw the bad batch would.
    ref_model, ref_opt = make(opt=opt)
    train(ref_model, ref_opt, data[:2] + data[3:4], keep=False)
    train(model, optimizer, data[3:4], keep=False)
    for (n, p), (_, q) in zip(model.named_parameters(), ref_model.named_parameters()):
        assert torch.equal(p, q), n
    values = mon.report()
    assert values["grad/skipped"] == 1.0 and values["grad/nonfinite"] == 1.0
    skipped = [a for a in mon.last_report.alerts if a.kind == "skipped"]
    assert len(skipped) == 1 and skipped[0].iteration == 3 and "layers/1/weight" in skipped[0].layer
    assert "S" in mon.last_report.flags("layers/1")
    assert "S" in mon.table()


def test_skip_warns_at_the_step():
    model, optimizer = make()
    mon = GradientMonitor(model, on_nonfinite="skip", report_every=None)
    mon.attach(optimizer)
    with pytest.warns(GradientAlert, match="step skipped"):
        train(model, optimizer, batches(1), keep=False, poison={1: ("layers.2.bias", float("inf"))})


def test_raise_names_the_parameters_before_the_step():
    model, optimizer = make()
    mon = GradientMonitor(model, on_nonfinite="raise", report_every=None, warn=False)
    mon.attach(optimizer)
    train(model, optimizer, batches(1), keep=False)
    before = _snapshot(model, optimizer)
    with pytest.raises(NonFiniteGradientError) as info:
        train(model, optimizer, batches(1), keep=False,
              poison={1: ("layers.0.weight", float("nan"))},
              after_backward=lambda s: model.layers[2].bias.grad.fill_(float("inf")))
    err = info.value
    assert err.iteration == 2
    # torch's names, in backward order (closest to the loss first), with their counts.
    assert list(err.layers) == ["layers.2.bias", "layers.0.weight"]
    assert err.layers == {"layers.2.bias": 3, "layers.0.weight": 1}
    assert "layers.0.weight" in str(err)
    _same_state(_snapshot(model, optimizer), before)


def test_warn_reports_where_nonfinite_started():
    model, optimizer = make()
    mon = GradientMonitor(model, report_every=4)
    mon.attach(optimizer)
    poison = {2: ("layers.0.weight", float("nan"))}

    def more(step):
        if step == 2:
            model.layers[1].bias.grad[0] = float("inf")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GradientAlert)
        train(model, optimizer, batches(4), keep=False, poison=poison, after_backward=more)
    values = mon.last_report.values
    assert values["grad/nonfinite_first_iteration"] == 2.0
    # 'warn' lets the step happen: the NaN spreads into later steps' gradients.
    assert values["grad/layers/0/weight/nonfinite"] >= 1.0 and values["grad/layers/1/bias/nonfinite"] >= 1.0
    assert values["grad/layers/2/weight/nonfinite"] > 0  # by step 3, from the NaN weights
    origin = mon.last_report.nonfinite_origin
    # Both layers had them first at step 2: the one closer to the loss is named.
    assert origin["layer"] == "layers/1" and origin["iteration"] == 2
    msgs = [str(w.message) for w in caught if issubclass(w.category, GradientAlert)]
    assert any("NaN/Inf first at iteration 2 in 'layers/1'" in m for m in msgs)
    assert "N" in mon.last_report.flags("layers/0")


def test_warn_reads_nothing_per_step(monkeypatch):
    """'warn' never asks the core for the non-finite counts (no synchronization on a GPU)."""
    model, optimizer = make()
    mon = GradientMonitor(model, report_every=None, warn=False)
    mon.attach(optimizer)
    checks = []
    orig = mon.core.observe

    def spy(arrays, iteration=None, **kw):
        checks.append(kw.get("check"))
        return orig(arrays, iteration, **kw)

    monkeypatch.setattr(mon.core, "observe", spy)
    train(model, optimizer, batches(3), keep=False, poison={2: ("layers.0.bias", float("nan"))})
    assert checks == [False, False, False]


def test_grad_scaler_on_cpu_sees_unscaled_gradients():
    try:
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    except (AttributeError, RuntimeError, TypeError) as exc:  # pragma: no cover - older torch
        pytest.skip(f"torch.amp.GradScaler('cpu') is not supported here: {exc}")
    if not scaler.is_enabled():  # pragma: no cover
        pytest.skip("GradScaler is disabled on the CPU in this torch build")
    model, optimizer = make()
    mon = GradientMonitor(model, report_every=None, warn=False)
    mon.attach(optimizer)
    kept = []
    for step, (x, y) in enumerate(batches(4), 1):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        if step == 3:  # an overflow: the scaler skips this step (and our hook never sees it)
            model.layers[0].bias.grad[0] = float("inf")
        scaler.unscale_(optimizer)
        kept.append({n: p.grad.double().clone() for n, p in model.named_parameters()})
        scaler.step(optimizer)
        scaler.update()
    values = mon.report()
    seen = [kept[i] for i in (0, 1, 3)]
    assert mon.last_report.iterations == 3 and values["grad/nonfinite"] == 0.0
    from fmt_testlib import reference
    for n in seen[0]:
        ref = reference(seen, n)
        path = n.replace(".", "/")
        for s in ("mean", "std", "norm", "min", "max"):
            assert math.isclose(values[f"grad/{path}/{s}"], ref[s], rel_tol=1e-9, abs_tol=1e-12), (n, s)
    # Unscaled: the norms are those of the loss's own gradients, far below the 2**10 scale.
    assert values["grad/norm"] < 100
