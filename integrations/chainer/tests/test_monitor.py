"""GradientMonitor's reported values against a NumPy reference from the captured gradients."""

import math

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
import pytest
from chainer import training
from fmc_testlib import MLP, Capture, data, reference

from fastmoments_chainer import GradientFlowPlot, GradientMonitor, format_table
from fastmoments_chainer.stats import STATS


def _train(model, monitor, steps, optimizer=None, x=None, t=None, lossfun=None):
    opt = optimizer or chainer.optimizers.SGD(0.1)
    opt.setup(model)
    monitor.attach(opt)
    cap = Capture(model)
    opt.add_hook(cap)  # after the monitor: sees the same gradients
    if x is None:
        x, t = data()
    lossfun = lossfun or (lambda: F.softmax_cross_entropy(model(x), t))
    for _ in range(steps):
        opt.update(lossfun)
    return cap.steps


def _check(values, steps, paths, prefix="grad", stats=STATS):
    assert paths, "no parameter to check"
    for path in paths:
        ref = reference(steps, path)
        for s in stats:
            got = values[f"{prefix}/{path}/{s}"]
            np.testing.assert_allclose(got, ref[s], rtol=1e-9, atol=1e-15, err_msg=f"{path}/{s}")


@pytest.mark.parametrize("n_steps", [1, 5])
def test_matches_numpy_reference(rng_seed, n_steps):
    model = MLP()
    mon = GradientMonitor(model)
    steps = _train(model, mon, n_steps)
    values = mon.report()
    paths = [p.lstrip("/") for p, _ in model.namedparams()]
    _check(values, steps, paths)
    sq = sum(np.sum(s[p] ** 2) for s in steps for p in paths)
    assert values["grad/norm"] == pytest.approx(math.sqrt(sq / n_steps), rel=1e-12)
    assert values["grad/nonfinite"] == 0
    if n_steps == 1:  # one iteration: the norm is that iteration's L2 norm
        g = steps[0]["l1/W"]
        assert values["grad/l1/W/norm"] == pytest.approx(np.linalg.norm(g), rel=1e-12)


def test_intervals_are_separate(rng_seed):
    model = MLP()
    mon = GradientMonitor(model)
    steps = _train(model, mon, 3)
    mon.report()
    opt_steps = steps[:]
    # Two more updates on the same optimizer: the next report covers only them.
    x, t = data(seed=1)
    opt = mon._optimizer
    for _ in range(2):
        opt.update(lambda: F.softmax_cross_entropy(model(x), t))
    cap = opt._hookable._pre_update_hooks["capture"].steps[len(opt_steps):]
    values = mon.report()
    _check(values, cap, ["l1/W", "l3/b"])
    assert mon.last_report.iterations == 2
    assert mon.report() == {}  # nothing observed since


def test_classifier_paths_and_keys(rng_seed):
    model = L.Classifier(MLP())
    mon = GradientMonitor(model)
    x, t = data()
    steps = _train(model, mon, 2, lossfun=lambda: model(x, t))
    values = mon.report()
    assert "grad/predictor/l1/W/norm" in values
    assert not any(k.startswith("grad//") for k in values)
    _check(values, steps, ["predictor/l1/W", "predictor/l3/b"])


def test_nested_chainlist(rng_seed):
    inner = chainer.ChainList(L.Linear(6, 5), L.Linear(5, 4))
    model = chainer.ChainList(inner, L.Linear(4, 3))

    def lossfun():
        x, t = data()
        return F.softmax_cross_entropy(model[1](F.relu(inner[1](F.relu(inner[0](x))))), t)

    mon = GradientMonitor(model)
    steps = _train(model, mon, 3, lossfun=lossfun)
    values = mon.report()
    _check(values, steps, ["0/0/W", "0/1/b", "1/W"])
    assert {r["layer"] for r in mon.last_report.layers} == {"0/0", "0/1", "1"}


def test_grad_none_is_left_out(rng_seed):
    model = MLP()
    unused = L.Linear(2, 2)
    with model.init_scope():
        model.unused = unused
    mon = GradientMonitor(model)
    x, t = data()
    steps = []
    for i in range(3):
        model.cleargrads()
        y = model(x)
        if i == 0:  # the extra link takes part once only
            y = y + F.sum(unused(np.ones((1, 2), np.float32))) * 0.5
        F.softmax_cross_entropy(y, t).backward()
        steps.append({p.lstrip("/"): None if v.grad is None else np.array(v.grad, np.float64)
                      for p, v in model.namedparams()})
        mon.observe()
    assert steps[1]["unused/W"] is None
    values = mon.report()
    _check(values, steps, ["l1/W", "unused/W", "unused/b"])
    # norm of 'unused' is the RMS over the one iteration it had a gradient
    assert values["grad/unused/b/norm"] == pytest.approx(np.linalg.norm(steps[0]["unused/b"]), rel=1e-12)
    # the total treats a missing gradient as zero, as Chainer's optimizer does
    paths = [p.lstrip("/") for p, _ in model.namedparams()]
    sq = sum(np.sum(s[p] ** 2) for s in steps for p in paths if s[p] is not None)
    assert values["grad/norm"] == pytest.approx(math.sqrt(sq / 3), rel=1e-12)


def test_never_seen_parameter_is_not_reported(rng_seed):
    model = MLP()
    with model.init_scope():
        model.unused = L.Linear(2, 2)
    mon = GradientMonitor(model)
    x, t = data()
    model.cleargrads()
    F.softmax_cross_entropy(model(x), t).backward()
    mon.observe()
    values = mon.report()
    assert "grad/l1/W/norm" in values
    assert not any(k.startswith("grad/unused/") for k in values)


def test_float16_parameters(rng_seed):
    with chainer.using_config("dtype", np.float16):
        model = MLP()
    assert model.l1.W.dtype == np.float16
    mon = GradientMonitor(model)
    x, t = data(dtype=np.float16)
    steps = _train(model, mon, 3, x=x, t=t)
    assert model.l1.W.grad.dtype == np.float16
    values = mon.report()
    _check(values, steps, ["l1/W", "l2/b", "l3/W"])


def test_values_stats_subset_and_selection(rng_seed):
    model = MLP()
    mon = GradientMonitor(model, stats=("mean", "norm"), params=["l1/*", "l3/b"], values=True)
    x, t = data()
    params_seen = []

    class CaptureValues(Capture):
        def __call__(self, optimizer):
            super().__call__(optimizer)
            params_seen.append({p.lstrip("/"): np.array(v.array, np.float64) for p, v in model.namedparams()})

    opt = chainer.optimizers.SGD(0.1)
    opt.setup(model)
    mon.attach(opt)
    cap = CaptureValues(model)
    opt.add_hook(cap)
    for _ in range(2):
        opt.update(lambda: F.softmax_cross_entropy(model(x), t))
    values = mon.report()
    stat_names = {k.rsplit("/", 1)[1] for k in values if k.count("/") >= 3 and "/alerts/" not in k}
    assert stat_names == {"mean", "norm"}
    assert {k.split("/", 1)[1].rsplit("/", 1)[0] for k in values if k.startswith("grad/l")} == {"l1/W", "l1/b", "l3/b"}
    _check(values, cap.steps, ["l1/W", "l3/b"], stats=("mean", "norm"))
    _check(values, params_seen, ["l1/W", "l3/b"], prefix="param", stats=("mean", "norm"))
    assert "param/norm" in values


def test_trainer_extension_reports_through_logreport(rng_seed, tmp_path):
    from chainer import training
    from chainer.training import extensions

    model = L.Classifier(MLP())
    x, t = data(n=32)
    it = chainer.iterators.SerialIterator(chainer.datasets.TupleDataset(x, t), 8, shuffle=False)
    opt = chainer.optimizers.Adam()
    opt.setup(model)
    cap = Capture(model)
    opt.add_hook(cap)  # sees unclipped gradients: it runs before the clipping
    opt.add_hook(chainer.optimizer_hooks.GradientClipping(1e-3))  # registered before the monitor
    updater = training.updaters.StandardUpdater(it, opt)
    trainer = training.Trainer(updater, (2, "epoch"), out=str(tmp_path))
    mon = GradientMonitor(model, report_trigger=(1, "epoch"), warn=False)
    trainer.extend(mon)
    trainer.extend(extensions.LogReport(trigger=(1, "epoch")))
    trainer.run()
    # the monitor was moved in front of GradientClipping: it saw unclipped gradients
    assert list(opt._hookable._pre_update_hooks)[0] == mon.name
    log = trainer.get_extension("LogReport").log
    assert len(log) == 2 and "grad/predictor/l1/W/norm" in log[0]
    total = math.sqrt(sum(np.sum(g ** 2) for s in cap.steps[:4] for g in s.values()) / 4)
    assert total > 1e-3  # the clipping bound: had the monitor seen clipped grads, this would fail
    np.testing.assert_allclose(log[0]["grad/norm"], total, rtol=1e-6)
    np.testing.assert_allclose(log[1]["grad/predictor/l2/W/std"], reference(cap.steps[4:], "predictor/l2/W")["std"], rtol=1e-6)


def test_table_and_plot(rng_seed, tmp_path):
    from fastmoments_chainer.plot import plot_gradient_flow

    model = MLP()
    mon = GradientMonitor(model)
    _train(model, mon, 2)
    mon.report()
    _train_more = mon._optimizer
    x, t = data()
    _train_more.update(lambda: F.softmax_cross_entropy(model(x), t))
    mon.report()
    text = format_table(mon.last_report)
    lines = text.splitlines()
    assert lines[1].split()[:3] == ["parameter", "shape", "mean"]
    row = next(line for line in lines if line.startswith("l1/W"))
    assert row.split()[1] == "5x6"
    path = tmp_path / "flow.png"
    plot_gradient_flow(mon.history, str(path), alerts=mon.last_report.alerts)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(mon.history) == 2


def test_bad_arguments():
    model = MLP()
    with pytest.raises(TypeError, match="chainer.Link"):
        GradientMonitor(object())
    with pytest.raises(ValueError, match="unknown statistics"):
        GradientMonitor(model, stats=("mean", "kurtosis"))
    with pytest.raises(ValueError, match="on_nonfinite"):
        GradientMonitor(model, on_nonfinite="ignore")
    mon = GradientMonitor(model, params=["nothing/*"])
    with pytest.raises(ValueError, match="no parameter"):
        mon.observe()
    with pytest.raises(TypeError, match="params must be .* got 5"):
        GradientMonitor(model, params=5)
    with pytest.raises(ValueError, match="not set up"):
        GradientMonitor(model).attach(chainer.optimizers.SGD())
    with pytest.raises(TypeError, match="chainer.Optimizer"):
        GradientMonitor(model).attach(model)


def test_one_statistic_by_name(rng_seed):
    model = MLP()
    mon = GradientMonitor(model, stats="norm")
    steps = _train(model, mon, 2)
    values = mon.report()
    assert {k.rsplit("/", 1)[1] for k in values if k.count("/") == 3} == {"norm"}
    _check(values, steps, ["l1/W", "l2/b"], stats=("norm",))


class _Tempered(chainer.Chain):
    """A 0-d parameter first in namedparams order: ``a/temperature`` sorts before ``l1``."""

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.a = chainer.Chain()
            with self.a.init_scope():
                self.a.temperature = chainer.Parameter(np.array(1.5, np.float32))
            self.l1 = L.Linear(6, 3)

    def forward(self, x):
        y = self.l1(x)
        return y / F.broadcast_to(self.a.temperature, y.shape)


def test_zero_d_parameter_first(rng_seed):
    model = _Tempered()
    assert [p for p, _ in model.namedparams()][0] == "/a/temperature"
    mon = GradientMonitor(model)
    steps = _train(model, mon, 3)
    values = mon.report()
    _check(values, steps, ["a/temperature", "l1/W", "l1/b"])
    table = format_table(mon.last_report)
    assert "a/temperature" in table and "()" in table


def test_two_monitors_on_one_optimizer(rng_seed):
    model = MLP()
    a = GradientMonitor(model, params="l1/*")
    b = GradientMonitor(model, params="l2/*", on_nonfinite="skip", prefix="grad2")
    opt = chainer.optimizers.SGD(0.1)
    opt.setup(model)
    a.attach(opt)
    b.attach(opt)
    cap = Capture(model)
    opt.add_hook(cap)
    x, t = data()
    for _ in range(2):
        opt.update(lambda: F.softmax_cross_entropy(model(x), t))
    va, vb = a.report(), b.report()
    _check(va, cap.steps, ["l1/W", "l1/b"])
    _check(vb, cap.steps, ["l2/W", "l2/b"], prefix="grad2")
    assert not any("l2/" in k for k in va) and not any("l1/" in k for k in vb)
    assert not va.keys() & vb.keys()


def test_monitors_with_one_prefix_are_refused(rng_seed, tmp_path):
    # Their totals (grad/norm) would overwrite each other in the reporter, and
    # monitors of sibling links their per-parameter keys too (enc/W -> W).
    model = MLP()
    opt = chainer.optimizers.SGD(0.1)
    opt.setup(model)
    GradientMonitor(model.l1, values=True).attach(opt)
    with pytest.raises(ValueError, match="prefix 'grad'"):
        GradientMonitor(model.l2).attach(opt)
    with pytest.raises(ValueError, match="prefix 'param'"):
        GradientMonitor(model.l2, prefix="g2", values=True).attach(opt)
    GradientMonitor(model.l2, prefix="g2").attach(opt)  # distinct prefixes are fine

    clf = L.Classifier(MLP())
    x, t = data()
    it = chainer.iterators.SerialIterator(chainer.datasets.TupleDataset(x, t), 4)
    opt = chainer.optimizers.SGD(0.1)
    opt.setup(clf)
    trainer = training.Trainer(training.updaters.StandardUpdater(it, opt), (1, "iteration"), out=str(tmp_path))
    trainer.extend(GradientMonitor(clf, params="predictor/l1/*"))
    trainer.extend(GradientMonitor(clf, params="predictor/l2/*"))
    with pytest.raises(ValueError, match="prefix 'grad'"):
        trainer.run()


def test_parameters_added_later_are_monitored_from_the_next_interval(rng_seed):
    model = MLP()
    mon = GradientMonitor(model)
    opt = chainer.optimizers.SGD(0.1)
    opt.setup(model)
    mon.attach(opt)
    x, t = data()
    opt.update(lambda: F.softmax_cross_entropy(model(x), t))
    mon.report()
    with model.init_scope():
        model.extra = L.Linear(3, 3)
    opt.setup(model)
    mon.attach(opt)
    cap = Capture(model)
    opt.add_hook(cap)
    for _ in range(2):
        opt.update(lambda: F.softmax_cross_entropy(model.extra(model(x)), t))
    values = mon.report()
    _check(values, cap.steps, ["extra/W", "extra/b", "l1/W"])


def test_history_length(rng_seed):
    for keep in (0, 2):
        model = MLP()
        mon = GradientMonitor(model, history=keep)
        for _ in range(3):
            _train(model, mon, 1)
            mon.report()
        assert len(mon.history) == keep
    with pytest.raises(ValueError, match="history"):
        GradientMonitor(MLP(), history=-1)
    # A plot of no history would stop the trainer at its first report.
    with pytest.raises(ValueError, match="history=0"):
        GradientFlowPlot(GradientMonitor(MLP(), history=0))
