"""The main job: watch gradients vanish and explode while three small nets train.

Run ``python -m fastmoments_chainer.demo [--device @numpy|@cupy:0] [--out result]``.

On scikit-learn's bundled digits (1,797 8x8 images, no download) it trains:

1. ``healthy``: a ReLU MLP with Adam. No alerts.
2. ``vanishing``: a 10-layer sigmoid MLP with SGD: the early layers'
   gradients shrink by ~4x per layer and the vanishing alerts fire.
3. ``exploding``: a ReLU MLP with a far too large SGD learning rate: the
   gradient norms blow past the ceiling within the first reports, then the
   hidden ReLUs die: their gradients are exactly zero from then on, and the
   monitor says "dead" (after the explosion), not "vanishing". It runs with
   ``on_nonfinite='skip'``: an update whose gradients hold NaN/Inf is skipped,
   and the alert names the first layer in backward order that had them.

The monitors also count magnitude histograms every 10 iterations
(``histogram=True, histogram_every=10``): the table gains the float16
columns (``fp16flush``, ``fp16sub``) at reports whose interval counted them,
and the PNG a heatmap of the layers' gradient magnitudes per power of two
with float16's thresholds 2**-24 and 2**-14 marked (the vanishing run's
early layers fall below them).

Each run prints the per-layer gradient table once an epoch (the latest report) and writes,
under ``<out>/<name>/``, Chainer's ``log`` (LogReport JSON, with the
``grad/...`` keys), ``gradient_flow.png`` and ``alerts.txt``, and ends with
each run's one-line diagnosis. The output has no third-party deprecation
warnings and, when it is not a terminal, no escape codes (see ``_compat``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

from . import GradientAlert, GradientFlowPlot, GradientMonitor, GradientTable  # noqa: E402  (shims first)
from .alerts import AlertRules  # noqa: E402
from fastmoments_monitor.demo import digits, print_summary  # noqa: E402

import chainer  # noqa: E402
import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402
import numpy as np  # noqa: E402
from chainer import training  # noqa: E402
from chainer.training import extensions  # noqa: E402


class MLP(chainer.Chain):
    """``depth`` hidden layers named h0, h1, ... and an output layer ``out``."""

    def __init__(self, depth, width, activation):
        super().__init__()
        self.depth = depth
        self.activation = activation
        with self.init_scope():
            for i in range(depth):
                setattr(self, f"h{i}", L.Linear(None, width))
            self.out = L.Linear(width, 10)

    def forward(self, x):
        for i in range(self.depth):
            x = self.activation(getattr(self, f"h{i}")(x))
        return self.out(x)


RUNS = {
    # name: (depth, width, activation, optimizer, epochs, on_nonfinite, description)
    "healthy": (2, 64, F.relu, lambda: chainer.optimizers.Adam(1e-3), 4, "warn",
                "2x64 ReLU MLP, Adam(1e-3)"),
    "vanishing": (10, 32, F.sigmoid, lambda: chainer.optimizers.SGD(0.1), 4, "warn",
                  "10x32 sigmoid MLP, SGD(0.1): early layers' gradients vanish"),
    "exploding": (3, 64, F.relu, lambda: chainer.optimizers.SGD(20.0), 4, "skip",
                  "3x64 ReLU MLP, SGD(lr=20): gradients explode"),
}


def load_digits():
    x, t = digits()
    return chainer.datasets.TupleDataset(x, t.astype(np.int32))


def run(name, dataset, device, out, batch=64, report_every=7):
    depth, width, act, make_opt, epochs, policy, about = RUNS[name]
    print(f"\n=== {name}: {about} ===", flush=True)
    np.random.seed({"healthy": 0, "vanishing": 1, "exploding": 2}[name])
    model = L.Classifier(MLP(depth, width, act))
    model.to_device(device)
    optimizer = make_opt()
    optimizer.setup(model)
    it = chainer.iterators.SerialIterator(dataset, batch, shuffle=True)
    updater = training.updaters.StandardUpdater(it, optimizer, device=device)
    folder = os.path.join(out, name)
    trainer = training.Trainer(updater, (epochs, "epoch"), out=folder)
    monitor = GradientMonitor(model, report_trigger=(report_every, "iteration"), on_nonfinite=policy,
                              alerts=AlertRules(explode_ceiling=1e3, jump_factor=10.0),
                              histogram=True, histogram_every=10)
    trainer.extend(monitor)
    trainer.extend(extensions.LogReport(trigger=(report_every, "iteration")))
    trainer.extend(GradientTable(monitor), trigger=(1, "epoch"))  # the latest report, once an epoch
    trainer.extend(GradientFlowPlot(monitor, title=f"{name}: {about}"), trigger=(1, "epoch"))
    trainer.extend(extensions.PrintReport(["epoch", "iteration", "main/loss", "main/accuracy",
                                           "grad/norm", "grad/nonfinite"]), trigger=(1, "epoch"))
    alerts = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GradientAlert)
        trainer.run()
    for w in caught:
        if issubclass(w.category, GradientAlert):
            alerts.append(str(w.message))
    with open(os.path.join(folder, "alerts.txt"), "w") as f:
        f.write("\n".join(alerts) + ("\n" if alerts else ""))
    kinds = {}
    for a in alerts:
        for k in ("vanishing", "exploding", "dead", "nonfinite", "skipped"):
            if f": {k} gradients" in a:
                kinds[k] = kinds.get(k, 0) + 1
    diagnosis = monitor.diagnosis()
    with open(os.path.join(folder, "alerts.txt"), "a") as f:
        f.write(f"diagnosis: {diagnosis}\n")
    print(f"--- {name}: {len(alerts)} alert(s) {kinds or ''}; files in {folder}/: "
          f"{', '.join(sorted(os.listdir(folder)))}")
    print(f"--- {name}: {diagnosis}")
    return kinds, diagnosis


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="@numpy", help="Chainer device: @numpy (default), @cupy:0, ...")
    p.add_argument("--out", default="result", help="output folder (default: result)")
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of " + ",".join(RUNS))
    args = p.parse_args(argv)
    device = chainer.get_device(args.device)
    device.use()
    t0 = time.perf_counter()
    dataset = load_digits()
    summary = {}
    for name in args.runs.split(","):
        summary[name] = run(name, dataset, device, args.out)
    return print_summary(summary, time.perf_counter() - t0, device)

if __name__ == "__main__":
    sys.exit(main())
