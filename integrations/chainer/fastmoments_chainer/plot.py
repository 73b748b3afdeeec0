"""Gradient-flow PNG: per-layer norms and max |g| as bars, norms over time as lines."""

from __future__ import annotations

import os

from chainer.training import extension

__all__ = ["plot_gradient_flow", "GradientFlowPlot"]


def plot_gradient_flow(history, path, title="gradient flow", alerts=()):
    """Write the gradient-flow figure of a monitor's history to ``path`` (PNG).

    Left: the last report's per-layer gradient norm and max |g| as bars (log
    scale), layers in the order of the model's ``namedparams()`` (Chainer
    sorts a Chain's children by name), alerting layers marked. Right: every
    layer's norm at each report as lines (log scale).

    Args:
        history: ``monitor.history``: ``[(iteration, {layer: norm}, {layer: maxabs})]``.
        path: the file to write.
        title: the figure's title.
        alerts: alerts of the last report, to mark their layers.
    """
    # The object-oriented API with the Agg canvas: no pyplot, no global backend change.
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    import numpy as np

    if not history:
        raise ValueError("nothing to plot: the monitor has not reported yet")
    fig = Figure(figsize=(12, 4.8))
    FigureCanvasAgg(fig)
    ax_bar, ax_line = fig.subplots(1, 2, width_ratios=(1, 1.3))
    iteration, norms, maxabs = history[-1]
    layers = list(norms)
    x = np.arange(len(layers))
    pos = lambda v: v if v and v > 0 and np.isfinite(v) else np.nan  # noqa: E731  (log axes)
    ax_bar.bar(x - 0.2, [pos(norms[n]) for n in layers], 0.4, label="norm")
    ax_bar.bar(x + 0.2, [pos(maxabs[n]) for n in layers], 0.4, label="max |g|")
    ax_bar.set_yscale("log")
    ax_bar.set_xticks(x, layers, rotation=60, ha="right", fontsize=7)
    ax_bar.set_title(f"iteration {iteration}")
    flagged = {}
    for a in alerts:
        flagged.setdefault(a.layer, a.kind)
    for i, n in enumerate(layers):
        if n in flagged:
            top = np.nanmax([pos(norms[n]), pos(maxabs[n]), 1e-12])
            ax_bar.annotate(flagged[n][0].upper(), (i, top), ha="center", va="bottom",
                            color="red", fontsize=9)
    ax_bar.legend(fontsize=8)
    its = [h[0] for h in history]
    # 20 colours, then the same colours dashed, dotted...: no two lines alike.
    colours = colormaps["tab20"].colors
    styles = ("-", "--", ":", "-.")
    for i, n in enumerate(layers):
        ys = [h[1].get(n, np.nan) for h in history]
        ax_line.plot(its, [pos(y) for y in ys], label=n, lw=1.2, color=colours[i % len(colours)],
                     linestyle=styles[(i // len(colours)) % len(styles)])
    ax_line.set_yscale("log")
    ax_line.set_xlabel("iteration")
    ax_line.set_ylabel("gradient norm")
    ax_line.legend(fontsize=6, ncol=2)
    fig.suptitle(title)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.25, top=0.88, wspace=0.2)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=90)


class GradientFlowPlot(extension.Extension):
    """Trainer extension writing the gradient-flow PNG of a monitor under ``trainer.out``.

    Args:
        monitor: the :class:`GradientMonitor` (registered with the trainer too).
        filename: the PNG's name, relative to ``trainer.out``.
        trigger: when to redraw (default: each epoch); it draws only after a
            new report.
        title: the figure's title.
    """

    priority = extension.PRIORITY_READER
    default_name = "GradientFlowPlot"

    def __init__(self, monitor, filename="gradient_flow.png", trigger=(1, "epoch"), title="gradient flow"):
        if getattr(monitor, "_history_len", None) == 0:
            raise ValueError("GradientFlowPlot draws the monitor's history of reports, and this "
                             "monitor keeps none (history=0)")
        self.monitor = monitor
        self.filename = filename
        self.trigger = trigger
        self.title = title
        self._drawn = 0

    def __call__(self, trainer):
        report = self.monitor.last_report
        if report is None or report.serial == self._drawn:
            return
        self._drawn = report.serial
        plot_gradient_flow(self.monitor.history, os.path.join(trainer.out, self.filename),
                           self.title, report.alerts)

    def finalize(self):
        pass
