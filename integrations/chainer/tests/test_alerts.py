"""Vanishing/exploding rules, and both firing on real networks."""

import warnings

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
import pytest
from fmc_testlib import data

from fastmoments_chainer import AlertRules, GradientAlert, GradientMonitor
from fastmoments_chainer.alerts import evaluate, layer_of


def test_layer_of():
    assert layer_of("predictor/l1/W") == "predictor/l1"
    assert layer_of("W") == "(root)"


def test_vanishing_floor_and_ratio():
    rules = AlertRules(vanish_floor=1e-8, vanish_ratio=1e-3)
    got = evaluate(10, ["a", "b", "c"], np.array([1e-9, 1e-4, 1.0]), np.zeros(3), 1.0, {}, rules)
    assert [(a.layer, a.kind) for a in got] == [("a", "vanishing"), ("b", "vanishing")]
    assert "floor" in got[0].reason and "total norm" in got[1].reason
    assert got[0].iteration == 10


def test_exploding_ceiling_and_jump():
    rules = AlertRules(explode_ceiling=100.0, jump_factor=10.0, window=5, min_history=3)
    hist = {"a": [1.0, 1.2, 0.9], "b": [1.0, 1.0], "c": [1.0, 1.0, 1.0]}
    got = evaluate(3, ["a", "b", "c", "d"], np.array([11.0, 50.0, 5.0, 500.0]), np.zeros(4), 500.0, hist, rules)
    assert [(a.layer, a.kind) for a in got] == [("a", "exploding"), ("d", "exploding")]
    assert "running median 1" in got[0].reason and "ceiling" in got[1].reason


def test_nonfinite_layers_are_not_judged():
    got = evaluate(1, ["a"], np.array([0.0]), np.array([3]), 1.0, {}, AlertRules())
    assert got == []


def test_bad_rules():
    with pytest.raises(ValueError, match="vanish_ratio"):
        AlertRules(vanish_ratio=-1)
    with pytest.raises(ValueError, match="min_history"):
        AlertRules(window=2, min_history=3)


class DeepSigmoid(chainer.Chain):
    def __init__(self, depth=10, width=16):
        super().__init__()
        self.depth = depth
        with self.init_scope():
            for i in range(depth):
                setattr(self, f"h{i}", L.Linear(None, width))
            self.out = L.Linear(width, 3)

    def forward(self, x):
        for i in range(self.depth):
            x = F.sigmoid(getattr(self, f"h{i}")(x))
        return self.out(x)


def test_deep_sigmoid_early_layers_vanish(rng_seed):
    model = DeepSigmoid()
    opt = chainer.optimizers.SGD(0.1)
    opt.setup(model)
    mon = GradientMonitor(model)
    mon.attach(opt)
    x, t = data()
    for _ in range(3):
        opt.update(lambda: F.softmax_cross_entropy(model(x), t))
    with pytest.warns(GradientAlert, match="vanishing gradients in 'h0'"):
        values = mon.report()
    assert values["grad/h0/vanishing"] == 1.0
    assert "grad/out/vanishing" not in values and "grad/h9/vanishing" not in values  # late layers are fine
    norms = [values[f"grad/h{i}/W/norm"] for i in range(10)]
    assert norms == sorted(norms)  # shrinking towards the input
    assert values["grad/alerts/vanishing"] >= 3


def test_large_learning_rate_explodes(rng_seed):
    model = chainer.Sequential(L.Linear(6, 32), F.relu, L.Linear(32, 32), F.relu, L.Linear(32, 3))
    opt = chainer.optimizers.SGD(3.0)
    opt.setup(model)
    mon = GradientMonitor(model, alerts=AlertRules(explode_ceiling=None, jump_factor=10.0))
    mon.attach(opt)
    x, t = data(n=64)
    x = x * 5
    fired = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(12):
            opt.update(lambda: F.softmax_cross_entropy(model(x), t))
            mon.report()
            fired += [a for a in mon.last_report.alerts if a.kind in ("exploding", "nonfinite")]
    assert fired, "a far too large learning rate should raise an exploding or non-finite alert"
