"""GradientTable: the trainer extension printing :func:`fastmoments_monitor.format_table`."""

from __future__ import annotations

import sys

from chainer.training import extension

from fastmoments_monitor.table import format_table

__all__ = ["format_table", "GradientTable"]


class GradientTable(extension.Extension):
    """Trainer extension printing :func:`format_table` at each report of a monitor.

    Args:
        monitor: the :class:`GradientMonitor` (registered with the trainer too).
        out: a text stream (default: ``sys.stdout`` at print time).
        kinds: rows to show, as in :func:`format_table`.
    """

    trigger = (1, "iteration")
    priority = extension.PRIORITY_READER
    default_name = "GradientTable"

    def __init__(self, monitor, out=None, kinds=("grad",)):
        self.monitor = monitor
        self.out = out
        self.kinds = kinds
        self._shown = 0

    def __call__(self, trainer):
        report = self.monitor.last_report
        if report is None or report.serial == self._shown:
            return
        self._shown = report.serial
        out = self.out if self.out is not None else sys.stdout
        print(format_table(report, self.kinds), file=out, flush=True)
