"""NaN injected into one layer's gradient under each on_nonfinite policy."""

import warnings

import chainer
import chainer.functions as F
import numpy as np
import pytest
from chainer import training
from fmc_testlib import MLP, data

from fastmoments_chainer import GradientAlert, GradientMonitor, NonFiniteGradientError


def _setup(policy, optimizer=None):
    model = MLP()
    opt = optimizer or chainer.optimizers.Adam()
    opt.setup(model)
    mon = GradientMonitor(model, on_nonfinite=policy)
    mon.attach(opt)
    x, t = data()
    return model, opt, mon, x, t


def _step(model, opt, x, t, poison=False):
    model.cleargrads()
    F.softmax_cross_entropy(model(x), t).backward()
    if poison:
        model.l2.W.grad[1, 2] = np.nan
        model.l2.W.grad[0, 0] = np.inf
    opt.update()  # no loss function: uses the gradients as they are


def _snapshot(model):
    out = {}
    for path, p in model.namedparams():
        rule = p.update_rule
        out[path] = (p.array.copy(), {k: v.copy() for k, v in rule.state.items()}, rule.t)
    return out


def test_warn_names_the_layer(rng_seed):
    model, opt, mon, x, t = _setup("warn")
    _step(model, opt, x, t)
    _step(model, opt, x, t, poison=True)
    with pytest.warns(GradientAlert, match=r"l2/W \(2\)"):
        values = mon.report()
    assert values["grad/l2/W/nonfinite"] == 2
    assert values["grad/nonfinite"] == 2
    assert values["grad/l1/W/nonfinite"] == 0
    # the finite statistics leave the two bad values out
    assert np.isfinite(values["grad/l2/W/mean"]) and np.isfinite(values["grad/l2/W/norm"])
    assert "N" in mon.last_report.flags("l2")


def test_raise_at_the_update(rng_seed):
    model, opt, mon, x, t = _setup("raise")
    _step(model, opt, x, t)
    with pytest.raises(NonFiniteGradientError, match="iteration 2") as err:
        _step(model, opt, x, t, poison=True)
    assert err.value.layers == {"l2/W": 2}


def test_skip_leaves_params_and_optimizer_state_untouched(rng_seed):
    model, opt, mon, x, t = _setup("skip")
    _step(model, opt, x, t)
    _step(model, opt, x, t)
    before = _snapshot(model)
    with pytest.warns(GradientAlert, match="update skipped"):
        _step(model, opt, x, t, poison=True)
    after = _snapshot(model)
    for path, (w, state, rule_t) in before.items():
        w2, state2, rule_t2 = after[path]
        np.testing.assert_array_equal(w2, w, err_msg=path)
        assert rule_t2 == rule_t == 2, path
        assert state2.keys() == state.keys()
        for k in state:
            np.testing.assert_array_equal(state2[k], state[k], err_msg=f"{path} {k}")
    assert all(p.update_rule.enabled for p in model.params())
    # the next clean update goes through
    _step(model, opt, x, t)
    assert not np.array_equal(model.l1.W.array, before["/l1/W"][0])
    assert model.l1.W.update_rule.t == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradientAlert)
        values = mon.report()
    assert values["grad/skipped"] == 1
    assert values["grad/l2/W/nonfinite"] == 2


def test_skip_keeps_user_disabled_rules_disabled(rng_seed):
    model, opt, mon, x, t = _setup("skip")
    model.l3.W.update_rule.enabled = False
    with pytest.warns(GradientAlert):
        _step(model, opt, x, t, poison=True)
    assert model.l3.W.update_rule.enabled is False
    assert model.l1.W.update_rule.enabled is True


def test_skip_alerts_survive_a_snapshot_mid_interval(tmp_path):
    model, opt, mon, x, t = _setup("skip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradientAlert)
        _step(model, opt, x, t, poison=True)
    path = str(tmp_path / "m.npz")
    chainer.serializers.save_npz(path, mon)
    fresh = GradientMonitor(model, on_nonfinite="skip")
    chainer.serializers.load_npz(path, fresh)
    mon.detach()
    assert set(opt._hookable._pre_update_hooks) == set(opt._hookable._post_update_hooks) == set()
    fresh.attach(opt)
    _step(model, opt, x, t)
    fresh.report()
    kinds = [a.kind for a in fresh.last_report.alerts]
    assert kinds.count("skipped") == 1 and fresh.last_report.values["grad/skipped"] == 1


def test_raise_without_an_optimizer_hook(rng_seed, tmp_path):
    # No optimizer holds all of the model: the monitor observes after each
    # update instead of hooking one, and 'raise' must still stop training.
    model = MLP()
    opt = chainer.optimizers.SGD(0.1)
    opt.setup(model.l1)
    x, t = data(n=8)
    x[0, 0] = np.nan
    it = chainer.iterators.SerialIterator(chainer.datasets.TupleDataset(x, t), 8)
    updater = training.updaters.StandardUpdater(it, opt, loss_func=lambda x, t: F.softmax_cross_entropy(model(x), t))
    trainer = training.Trainer(updater, (3, "iteration"), out=str(tmp_path))
    trainer.extend(GradientMonitor(model, report_trigger=(3, "iteration"), on_nonfinite="raise"))
    with pytest.raises(NonFiniteGradientError, match="iteration 1"):
        trainer.run()
