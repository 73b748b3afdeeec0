"""GradientFlowPlot: the trainer extension drawing :func:`fastmoments_monitor.plot_gradient_flow`."""

from __future__ import annotations

import os

from chainer.training import extension

from fastmoments_monitor.plot import plot_gradient_flow

__all__ = ["plot_gradient_flow", "GradientFlowPlot"]


class GradientFlowPlot(extension.Extension):
    """Trainer extension writing the gradient-flow PNG of a monitor under ``trainer.out``.

    The figure shows per layer the latest finite report and the largest norm
    of the run, where layers became dead or non-finite, and the monitor's
    diagnosis (see :mod:`fastmoments_monitor.plot`).

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
        plot_gradient_flow(self.monitor, os.path.join(trainer.out, self.filename), self.title)

    def finalize(self):
        pass
