"""GradientMonitor(histogram=True): float16 flush/subnormal fractions against the captured gradients."""

import chainer
import chainer.functions as F
import numpy as np
import pytest
from fmc_testlib import MLP, Capture, data

from fastmoments_chainer import GradientMonitor


def test_fp16_fractions_match_captured_gradients(rng_seed):
    model = MLP()
    mon = GradientMonitor(model, histogram=True, histogram_every=2, warn=False)
    opt = chainer.optimizers.SGD(0.1)
    opt.setup(model)
    mon.attach(opt)
    cap = Capture(model)
    opt.add_hook(cap)
    x, t = data()
    for _ in range(4):
        opt.update(lambda: F.softmax_cross_entropy(model(x), t) * 1e-5)  # small gradients: some below 2**-24
    values = mon.report()
    layers = {p.lstrip("/").rsplit("/", 1)[0] for p, _ in model.namedparams()}
    for layer in layers:
        g = np.concatenate([s[p].ravel() for i, s in enumerate(cap.steps) if (i + 1) % 2 == 0
                            for p in s if p.rsplit("/", 1)[0] == layer]).astype(np.float64)
        a = np.abs(g[np.isfinite(g) & (g != 0)])
        assert values[f"grad/{layer}/fp16_flush"] == pytest.approx(np.mean(a < 2.0**-24), abs=1e-12)
        assert values[f"grad/{layer}/fp16_subnormal"] == pytest.approx(
            np.mean((a >= 2.0**-24) & (a < 2.0**-14)), abs=1e-12)
    assert mon.core.history[-1]["histogram"] is not None
