"""A compact per-parameter table of the monitor's last report, instead of raw arrays."""

from __future__ import annotations

import sys

from chainer.training import extension

__all__ = ["format_table", "GradientTable"]

_COLUMNS = ("mean", "std", "min", "max", "norm", "zeros")


def _num(v):
    if v != v:  # NaN: nothing finite was seen
        return "-"
    return f"{v:.3g}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"


def format_table(report, kinds=("grad",)) -> str:
    """Format a :class:`~fastmoments_chainer.monitor.Report` as a text table.

    One row per monitored array: parameter path, shape, mean, std, min, max,
    norm, fraction of zeros, non-finite count and the layer's alert flags
    (V vanishing, X exploding, N non-finite, S update skipped).

    Args:
        report: ``monitor.last_report``.
        kinds: which rows: 'grad' and/or 'param'.
    """
    rows = [r for r in report.rows if r["kind"] in kinds]
    head = ["parameter", "shape"] + list(_COLUMNS) + ["nonfin", "flags"]
    body = []
    for r in rows:
        name = r["path"] if len(kinds) == 1 else f"{r['kind']}:{r['path']}"
        shape = "?" if r["shape"] is None else ("x".join(map(str, r["shape"])) or "()")
        body.append([name, shape] + [_num(r[c]) for c in _COLUMNS]
                    + [str(int(r["nonfinite"])), report.flags(r["layer"])])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i < 2 or i == len(cells) - 1 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    title = (f"gradients, iterations {report.first_iteration}-{report.iteration} "
             f"({report.iterations} updates), total norm {_num(report.total_norm)}")
    lines = [title, fmt(head), fmt(["-" * w for w in widths])]
    lines += [fmt(b) for b in body]
    for a in report.alerts:
        lines.append(f"  ! {a.message()}")
    return "\n".join(lines)


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
