"""Watch gradients vanish and explode while three small PyTorch nets train.

Run ``python -m fastmoments_torch.demo [--device cpu|cuda] [--out result/torch]``.

On scikit-learn's bundled digits (1,797 8x8 images, no download) it trains,
as the Chainer demo does:

1. ``healthy``: a 2x64 ReLU MLP with Adam. No alerts.
2. ``vanishing``: a 10-layer sigmoid MLP with SGD: the early layers'
   gradients shrink by ~4x per layer and the vanishing alerts fire.
3. ``exploding``: a ReLU MLP with a far too large SGD learning rate: the
   gradient norms blow past the ceiling, then the hidden ReLUs die (their
   gradients are exactly zero from then on) and the monitor says "dead"
   (after the explosion), not "vanishing". It runs with
   ``on_nonfinite='skip'``: a step whose gradients hold NaN/Inf is skipped.

The monitors count magnitude histograms (``histogram=True``): the table
gains the float16 columns, the PNG a heatmap, and TensorBoard one raw
histogram per layer and report. Each run prints the per-layer gradient
table once an epoch and writes, under ``<out>/<name>/``, TensorBoard event
files (``tensorboard --logdir <out>``; the ``grad/...`` scalars and the
``grad/<layer>/magnitude`` histograms), ``gradient_flow.png`` and
``alerts.txt``, and ends with each run's one-line diagnosis.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
import warnings

import torch

from fastmoments_monitor.demo import digits, print_summary

from . import AlertRules, GradientAlert, GradientMonitor


class MLP(torch.nn.Module):
    """``depth`` hidden layers named h0, h1, ... and an output layer ``out``."""

    def __init__(self, depth, width, activation):
        super().__init__()
        self.depth = depth
        self.activation = activation
        for i in range(depth):
            setattr(self, f"h{i}", torch.nn.Linear(64 if i == 0 else width, width))
        self.out = torch.nn.Linear(width, 10)

    def forward(self, x):
        for i in range(self.depth):
            x = self.activation(getattr(self, f"h{i}")(x))
        return self.out(x)


RUNS = {
    # name: (depth, width, activation, optimizer, epochs, on_nonfinite, description)
    "healthy": (2, 64, torch.relu, lambda p: torch.optim.Adam(p, 1e-3), 4, "warn",
                "2x64 ReLU MLP, Adam(1e-3)"),
    "vanishing": (10, 32, torch.sigmoid, lambda p: torch.optim.SGD(p, 0.1), 4, "warn",
                  "10x32 sigmoid MLP, SGD(0.1): early layers' gradients vanish"),
    "exploding": (3, 64, torch.relu, lambda p: torch.optim.SGD(p, 5.0), 4, "skip",
                  "3x64 ReLU MLP, SGD(lr=5): gradients explode"),
}


def load_digits():
    x, t = digits()
    return torch.from_numpy(x), torch.from_numpy(t)


def _writer(folder):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: the demo still prints and plots
        print("(tensorboard is not installed: no event files; pip install tensorboard)")
        return None
    for old in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        os.remove(old)  # one run's events per folder
    return SummaryWriter(log_dir=folder)


def run(name, data, device, out, batch=64, report_every=7):
    depth, width, act, make_opt, epochs, policy, about = RUNS[name]
    print(f"\n=== {name}: {about} ===", flush=True)
    seed = {"healthy": 0, "vanishing": 1, "exploding": 2}[name]
    torch.manual_seed(seed)
    model = MLP(depth, width, act).to(device)
    optimizer = make_opt(model.parameters())
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    writer = _writer(folder)
    monitor = GradientMonitor(model, report_every=report_every, on_nonfinite=policy, histogram=True,
                              alerts=AlertRules(explode_ceiling=1e3, jump_factor=10.0), writer=writer)
    monitor.attach(optimizer)                                   # the monitor's one line in the loop
    x_all, t_all = (a.to(device) for a in data)
    g = torch.Generator().manual_seed(seed)
    alerts = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GradientAlert)
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(x_all), generator=g).to(device)
            correct = total_loss = 0.0
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]
                logits = model(x_all[idx])
                loss = torch.nn.functional.cross_entropy(logits, t_all[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(idx)
                correct += (logits.argmax(1) == t_all[idx]).sum().item()
            rep = monitor.last_report
            norm = rep.values["grad/norm"] if rep else float("nan")
            print(f"epoch {epoch}  iteration {monitor.iteration}  loss {total_loss / len(order):.4g}  "
                  f"accuracy {correct / len(order):.3f}  grad/norm {norm:.3g}")
            if writer is not None:
                writer.add_scalar("main/loss", total_loss / len(order), monitor.iteration)
                writer.add_scalar("main/accuracy", correct / len(order), monitor.iteration)
            print(monitor.table(), flush=True)
        monitor.report()  # the last, partial interval
    if writer is not None:
        writer.close()
    for w in caught:
        if issubclass(w.category, GradientAlert):
            alerts.append(str(w.message))
    diagnosis = monitor.diagnosis()
    monitor.plot(os.path.join(folder, "gradient_flow.png"), title=f"{name}: {about}")
    with open(os.path.join(folder, "alerts.txt"), "w") as f:
        f.write("\n".join(alerts) + ("\n" if alerts else ""))
        f.write(f"diagnosis: {diagnosis}\n")
    kinds = {}
    for a in alerts:
        for k in ("vanishing", "exploding", "dead", "nonfinite", "skipped"):
            if f": {k} gradients" in a:
                kinds[k] = kinds.get(k, 0) + 1
    print(f"--- {name}: {len(alerts)} alert(s) {kinds or ''}; files in {folder}/: "
          f"{', '.join(sorted(os.listdir(folder)))}")
    print(f"--- {name}: {diagnosis}")
    return kinds, diagnosis


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:1 ...")
    p.add_argument("--out", default=os.path.join("result", "torch"), help="output folder (default: result/torch)")
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of " + ",".join(RUNS))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    t0 = time.perf_counter()
    data = load_digits()
    summary = {}
    for name in args.runs.split(","):
        summary[name] = run(name, data, device, args.out)
    status = print_summary(summary, time.perf_counter() - t0, device)
    print(f"TensorBoard: tensorboard --logdir {args.out}")
    return status

if __name__ == "__main__":
    sys.exit(main())
