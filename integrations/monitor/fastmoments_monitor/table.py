"""A compact per-parameter table of a monitor's report, instead of raw arrays."""

from __future__ import annotations

import math

__all__ = ["format_table"]

_COLUMNS = ("mean", "std", "min", "max", "norm", "zeros")


def _num(v):
    if v != v:  # NaN: nothing finite was seen
        return "-"
    return f"{v:.3g}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"


def _pct(v):
    """A fraction as a compact percentage: '0', '<0.1%', '12.5%', '>99.9%', '100%'; NaN: '-'."""
    if v != v:
        return "-"
    if v == 0 or v == 1:
        return "0" if v == 0 else "100%"
    if v < 0.001:
        return "<0.1%"
    if v > 0.999:
        return ">99.9%"
    return f"{100 * v:.1f}%"


def format_table(report, kinds=("grad",)) -> str:
    """Format a :class:`~fastmoments_monitor.core.Report` as a text table.

    One row per monitored array: parameter path, shape, mean, std, min, max,
    norm, fraction of zeros, non-finite count and the layer's alert flags
    (V vanishing, X exploding, D dead, N non-finite, S update skipped); then
    where NaN/Inf started, if they did, and the alerts.

    When the report's interval counted magnitude histograms
    (``histogram=True``), two more columns give each array's float16 risk
    as percentages of its finite non-zero values: ``fp16flush`` below
    2**-24 (zero in float16) and ``fp16sub`` in [2**-24, 2**-14) (float16
    subnormals, reduced precision); a line under the table says so. Without
    histograms the table is unchanged.

    Args:
        report: ``monitor.last_report``.
        kinds: which rows: 'grad' and/or 'param'.
    """
    rows = [r for r in report.rows if r["kind"] in kinds]
    fp16 = any("fp16_flush" in r for r in rows)  # histograms counted in this interval
    head = ["parameter", "shape"] + list(_COLUMNS) + ["nonfin"] \
        + (["fp16flush", "fp16sub"] if fp16 else []) + ["flags"]
    body = []
    for r in rows:
        name = r["path"] if len(kinds) == 1 else f"{r['kind']}:{r['path']}"
        shape = "?" if r["shape"] is None else ("x".join(map(str, r["shape"])) or "()")
        extra = [_pct(r.get("fp16_flush", math.nan)), _pct(r.get("fp16_subnormal", math.nan))] if fp16 else []
        body.append([name, shape] + [_num(r[c]) for c in _COLUMNS]
                    + [str(int(r["nonfinite"]))] + extra + [report.flags(r["layer"])])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i < 2 or i == len(cells) - 1 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    title = (f"gradients, iterations {report.first_iteration}-{report.iteration} "
             f"({report.iterations} updates), total norm {_num(report.total_norm)}")
    lines = [title, fmt(head), fmt(["-" * w for w in widths])]
    lines += [fmt(b) for b in body]
    if fp16:
        n = getattr(report, "histogram_iterations", 0)
        lines.append("  fp16flush | fp16sub: % of finite non-zero values < 2^-24 (zero in float16) | "
                     "in [2^-24, 2^-14) (float16 subnormal)"
                     + (f"; {n} of {report.iterations} iterations counted" if n else ""))
    origin = getattr(report, "nonfinite_origin", None)
    if origin is not None:
        lines.append(f"  NaN/Inf first at iteration {origin['iteration']} in {origin['layer']} "
                     "(first layer in backward order, closest to the loss)")
    for a in report.alerts:
        lines.append(f"  ! {a.message()}")
    return "\n".join(lines)
