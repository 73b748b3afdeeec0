"""Statistics of GradientMonitor against torch's own per-tensor float64 computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fmt_testlib import batches, make, reference, train

from fastmoments_torch import GradientMonitor

STATS = ("mean", "std", "min", "max", "norm", "zeros", "nonfinite")


def _check(values, kept, names, prefix="grad"):
    for name in names:
        ref = reference(kept, name)
        path = name.replace(".", "/")
        for s in STATS:
            got = values[f"{prefix}/{path}/{s}"]
            assert math.isclose(got, ref[s], rel_tol=1e-9, abs_tol=1e-12), (name, s, got, ref[s])


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_report_matches_torch_float64(opt):
    model, optimizer = make(opt=opt)
    mon = GradientMonitor(model, report_every=None, warn=False)
    mon.attach(optimizer)
    kept = train(model, optimizer, batches(5))
    values = mon.report()
    names = [n for n, _ in model.named_parameters()]
    _check(values, kept, names)
    total = math.sqrt(sum(reference(kept, n)["norm"] ** 2 for n in names))
    assert math.isclose(values["grad/norm"], total, rel_tol=1e-9)
    assert values["grad/nonfinite"] == 0.0
    for key in ("grad/alerts/vanishing", "grad/alerts/exploding", "grad/alerts/dead"):
        assert values[key] == 0.0
    assert mon.last_report.iterations == 5 and mon.last_report.iteration == 5


def test_report_every_pools_each_interval_separately():
    model, optimizer = make()
    mon = GradientMonitor(model, report_every=3, warn=False)
    mon.attach(optimizer)
    reports = []
    orig = mon.report

    def capture(iteration=None):
        v = orig(iteration)
        reports.append(v)
        return v

    mon.report = capture
    kept = train(model, optimizer, batches(7))
    assert len(reports) == 2  # steps 3 and 6; step 7 is in the open interval
    names = [n for n, _ in model.named_parameters()]
    _check(reports[0], kept[0:3], names)
    _check(reports[1], kept[3:6], names)
    assert mon.core.n_iter == 1


def test_observe_without_optimizer_and_every():
    model, optimizer = make()
    mon = GradientMonitor(model, every=2, report_every=None, warn=False)
    kept = train(model, optimizer, batches(6), after_backward=lambda step: mon.observe())
    values = mon.report()
    # Steps 2, 4 and 6 observed.
    _check(values, [kept[1], kept[3], kept[5]], [n for n, _ in model.named_parameters()])
    assert mon.last_report.iterations == 3 and mon.last_report.iteration == 6


def test_parameters_without_gradients_are_skipped():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used = torch.nn.Linear(4, 2)
            self.unused = torch.nn.Linear(4, 2)       # requires grad, never in the graph: grad None
            self.frozen = torch.nn.Linear(2, 2)
            self.frozen.requires_grad_(False)          # no gradient ever

        def forward(self, x):
            return self.frozen(self.used(x))

    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    mon = GradientMonitor(model, report_every=None, warn=False)
    mon.attach(optimizer)
    kept = []
    for x in torch.randn(3, 5, 4):
        optimizer.zero_grad()
        model(x).square().mean().backward()
        kept.append({n: p.grad.double().clone() for n, p in model.named_parameters() if p.grad is not None})
        optimizer.step()
    values = mon.report()
    assert not any(k.startswith(("grad/unused/", "grad/frozen/")) for k in values)
    assert [p for _, p in mon._params if p is model.frozen.weight] == []
    _check(values, kept, ["used.weight", "used.bias"])
    # The unused layer is neither vanishing nor dead: it is not reported at all.
    assert "unused" not in {x["layer"] for x in mon.last_report.layers}


def test_gradient_present_in_some_steps_only():
    model, optimizer = make()
    mon = GradientMonitor(model, report_every=None, warn=False)
    mon.attach(optimizer)
    last = model.layers[2].bias

    def drop(step):
        if step in (2, 3):
            last.grad = None

    kept = train(model, optimizer, batches(4), after_backward=drop)
    assert [("layers.2.bias" in g) for g in kept] == [True, False, False, True]
    values = mon.report()
    _check(values, kept, [n for n, _ in model.named_parameters()])


def test_params_selection_and_names():
    model, optimizer = make()
    mon = GradientMonitor(model, params="layers.1.*", report_every=None, warn=False, stats=("norm", "max"))
    mon.attach(optimizer)
    kept = train(model, optimizer, batches(2))
    values = mon.report()
    assert {k for k in values if k.count("/") == 4} == {
        "grad/layers/1/weight/norm", "grad/layers/1/weight/max", "grad/layers/1/bias/norm", "grad/layers/1/bias/max"}
    ref = reference(kept, "layers.1.weight")
    assert math.isclose(values["grad/layers/1/weight/norm"], ref["norm"], rel_tol=1e-9)
    mon2 = GradientMonitor(model, params=lambda n: n.endswith("bias"), report_every=None)
    mon2.observe()
    assert [n for n, _ in mon2._params] == ["layers.0.bias", "layers.1.bias", "layers.2.bias"]
    with pytest.raises(ValueError, match="no parameter"):
        GradientMonitor(model, params="nothing.*").observe()


def test_forward_order_recorded_and_hooks_removed():
    class Rev(torch.nn.Module):  # modules declared in the reverse of their use
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Linear(3, 2)
            self.a = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.b(self.a(x))

    model = Rev()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = GradientMonitor(model, report_every=None, warn=False).attach(opt)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    assert mon.core.forward_order == ["a", "b"]
    assert not model.a._forward_pre_hooks and not model.b._forward_pre_hooks
    mon.report()
    assert [x["layer"] for x in mon.last_report.layers] == ["a", "b"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes(dtype):
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 4).to(dtype)
    mon = GradientMonitor(model, report_every=None, warn=False)
    kept = []
    for _ in range(2):
        model.zero_grad()
        model(torch.randn(5, 6).to(dtype)).float().square().mean().backward()
        kept.append({n: p.grad.double().clone() for n, p in model.named_parameters()})
        mon.observe()
    values = mon.report()
    _check(values, kept, ["weight", "bias"])
    assert mon.last_report.rows[0]["dtype"] == str(dtype).removeprefix("torch.")


def test_cpu_gradients_are_views_not_copies():
    from fastmoments_torch import as_array

    g = torch.randn(3, 4)
    a = as_array(g)
    assert isinstance(a, np.ndarray) and a.ctypes.data == g.data_ptr()
    t = torch.randn(4, 3).t()  # non-contiguous: still a view
    assert as_array(t).ctypes.data == t.data_ptr()


def test_model_changed_between_intervals():
    model, optimizer = make()
    mon = GradientMonitor(model, report_every=None, warn=False)
    train(model, optimizer, batches(1), keep=False, after_backward=lambda s: mon.observe())
    mon.report()
    model.extra = torch.nn.Linear(2, 2)  # unused: no gradient, but a new entry
    model.layers[0].weight.requires_grad_(False)
    model.layers[0].weight.grad = None
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    train(model, optimizer, batches(1), keep=False, after_backward=lambda s: mon.observe())
    values = mon.report()
    assert "grad/layers/0/weight/norm" not in values and "grad/layers/0/bias/norm" in values


def test_bad_arguments():
    model, optimizer = make()
    with pytest.raises(TypeError):
        GradientMonitor(object())
    with pytest.raises(ValueError):
        GradientMonitor(model, on_nonfinite="ignore")
    with pytest.raises(ValueError):
        GradientMonitor(model, every=0)
    with pytest.raises(ValueError):
        GradientMonitor(model, stats=("median",))
    with pytest.raises(TypeError):
        GradientMonitor(model).attach(model)
    assert GradientMonitor(model).report() == {}


def test_reports_at_steps_not_observed():
    from fmt_testlib import RecordingWriter

    model, optimizer = make()
    w = RecordingWriter()
    mon = GradientMonitor(model, every=2, report_every=3, writer=w, warn=False).attach(optimizer)
    kept = train(model, optimizer, batches(6))
    assert [s for s, _ in w.scalars["grad/norm"]] == [3, 6]  # the report's step, observed or not
    names = [n for n, _ in model.named_parameters()]
    ref = math.sqrt(sum(reference([kept[1]], n)["norm"] ** 2 for n in names))
    assert math.isclose(w.scalars["grad/norm"][0][1], ref, rel_tol=1e-9)  # step 2 only
    ref = math.sqrt(sum(reference([kept[3], kept[5]], n)["norm"] ** 2 for n in names))
    assert math.isclose(w.scalars["grad/norm"][1][1], ref, rel_tol=1e-9)  # steps 4 and 6
    assert mon.last_report.iteration == 6 and mon.last_report.iterations == 2


def test_argument_types_and_selection_checked_at_construction():
    model, optimizer = make()

    class ScalarsOnly:
        def add_scalar(self, tag, value, global_step=None):
            pass

    with pytest.raises(TypeError, match="add_histogram_raw"):
        GradientMonitor(model, histogram=True, writer=ScalarsOnly())
    GradientMonitor(model, writer=ScalarsOnly())  # scalars only without histograms
    for bad in (dict(every=2.5), dict(every="2"), dict(report_every=1.5), dict(report_every=True),
                dict(history=2.5), dict(history="3"), dict(prefix=None), dict(prefix=3)):
        with pytest.raises(TypeError):
            GradientMonitor(model, **bad)
    with pytest.raises(ValueError):
        GradientMonitor(model, report_every=0)
    with pytest.raises(ValueError, match="pattern .encoder.*no parameter"):
        GradientMonitor(model, params=["layers.0.*", "encoder.*"])  # a typo'd pattern
    with pytest.raises(ValueError, match="no parameter"):
        GradientMonitor(model, params=lambda n: False)
    GradientMonitor(model, params=["layers.0.*", "layers.1.bias"])
