"""Gradient-flow PNG that tells the story of a run.

Left, per layer (input at the top, the loss side at the bottom): the norm
of its latest report without NaN/Inf as a bar, the largest norm of the run
as a diamond, and the layer's state in its label (dead since, NaN/Inf from,
vanishing, exploding), coloured. Right: every layer's norm at each report;
a report whose norm is 0 (a dead layer) is drawn on a "0" floor line
instead of being left out, reports with NaN/Inf get a star, and vertical
lines mark where the run's explosion, first NaN/Inf and dead layers began.
The figure's subtitle is the monitor's one-line diagnosis.

Panels are a list (:func:`panels_for`): the magnitude-histogram heatmap
(layers by power of two of |g|, float16's flush and subnormal thresholds
2**-24 and 2**-14 marked) joins them when reports carry histograms
(``MonitorCore(histogram=True)``); it draws the latest report that has them.
"""

from __future__ import annotations

import math
import os

__all__ = ["plot_gradient_flow", "panels_for", "draw_magnitude_heatmap", "STATUS_COLOURS"]

STATUS_COLOURS = {"ok": "tab:blue", "vanishing": "tab:orange", "exploding": "tab:red",
                  "dead": "dimgray", "nonfinite": "darkviolet"}


def _normalize(source, alerts):
    """Plot data from a monitor (``plot_data()``) or a bare history list."""
    if hasattr(source, "plot_data"):
        return source.plot_data()
    history = []
    for h in source:
        if not isinstance(h, dict):  # (iteration, norms, maxabs): the first format
            it, norms, maxabs = h
            h = {"iteration": it, "norm": dict(norms), "maxabs": dict(maxabs), "zeros": {},
                 "nonfinite": {}, "first_bad": {}, "status": {}, "histogram": None}
        history.append(h)
    layers, worst, last = [], {}, {}
    for h in history:
        for n, v in h["norm"].items():
            if n not in layers:
                layers.append(n)
            if math.isfinite(v) and not h["nonfinite"].get(n):
                last[n] = (h["iteration"], v, h["maxabs"].get(n, math.nan))
                if n not in worst or v > worst[n][0]:
                    worst[n] = (v, h["iteration"])
    return {"layers": layers, "history": history, "worst": worst, "last_finite": last,
            "dead_since": {}, "events": {}, "alerts": list(alerts), "diagnosis": ""}


def _status(data):
    """layer -> (state, label suffix) for the latest report."""
    out = {}
    last = data["history"][-1] if data["history"] else None
    for n in data["layers"]:
        state, text = "ok", ""
        if last is not None:
            if last["nonfinite"].get(n):
                state = "nonfinite"
                fb = last["first_bad"].get(n)
                text = f"NaN/Inf from it {fb}" if fb is not None else "NaN/Inf"
            else:
                state = last["status"].get(n, "ok")
                if state == "dead":
                    since = data["dead_since"].get(n)
                    z = last["zeros"].get(n)
                    text = "dead" + (f" since it {since}" if since is not None else "") \
                        + (f", {z:.0%} zeros" if z is not None else "")
                elif state != "ok":
                    text = state
        for a in data["alerts"]:
            if a.layer == n and a.kind in STATUS_COLOURS and state == "ok":
                state, text = a.kind, a.kind
        ev = data["events"].get("nonfinite")
        if ev and ev["layer"] == n:
            first = f"first NaN/Inf of the run at it {ev['iteration']}"
            text = first if state == "nonfinite" else (text + "; " if text else "") + first
        out[n] = (state, text)
    return out


def _span(a, b):
    return f"{a}" if a == b else f"{a}-{b}"


def _pos(v):
    return v if v is not None and v > 0 and math.isfinite(v) else math.nan


def _draw_layers(ax, data, status):
    import numpy as np

    layers = data["layers"]
    y = np.arange(len(layers))
    last = [data["last_finite"].get(n) for n in layers]
    worst = [data["worst"].get(n) for n in layers]
    vals = [_pos(v[1]) if v else math.nan for v in last] + [_pos(w[0]) if w else math.nan for w in worst]
    finite = [v for v in vals if v == v]
    lo = min(finite) if finite else 1e-8
    hi = max(finite) if finite else 1.0
    floor = lo / 30
    ax.set_xscale("log")
    ax.set_xlim(floor / 3, hi * 30)
    for i, n in enumerate(layers):
        state, _ = status[n]
        colour = STATUS_COLOURS.get(state, "tab:blue")
        v = last[i]
        w = worst[i]
        w_ok = w is not None and _pos(w[0]) == _pos(w[0])
        far = w_ok and (v is None or w[0] > 3 * max(v[1], 1e-300))
        if w_ok:
            ax.plot([w[0]], [i], marker="D", color="black", ms=5, zorder=3)
        if v is not None and _pos(v[1]) == _pos(v[1]):
            ax.barh(i, v[1] - floor / 3, left=floor / 3, height=0.6, color=colour, alpha=0.85)
            text = f"{v[1]:.2g} @ it {v[0]}"
            if w_ok and not far:  # one label, right of the diamond
                text += " (the run's max)" if w[1] == v[0] else f" (max {w[0]:.2g} @ it {w[1]})"
            ax.annotate(text, (max(v[1], w[0]) if w_ok and not far else v[1], i), xytext=(5, 0),
                        textcoords="offset points", va="center", fontsize=7)
        elif v is not None:  # latest finite norm is 0: a dead layer
            ax.plot([floor], [i], marker="x", color=colour, ms=8, mew=2)
            ax.annotate(f"0 @ it {v[0]}", (floor, i), xytext=(6, 0), textcoords="offset points",
                        va="center", fontsize=7, color=colour)
        else:  # never finite
            ax.annotate("no finite report", (floor, i), xytext=(6, 0), textcoords="offset points",
                        va="center", fontsize=7, color=colour)
        if far:
            ax.annotate(f"max {w[0]:.2g} @ it {w[1]}", (w[0], i), xytext=(0, 6),
                        textcoords="offset points", ha="center", fontsize=7)
    labels = [n + (f"  [{status[n][1]}]" if status[n][1] else "") for n in layers]
    ax.set_yticks(y, labels, fontsize=8)
    for tick, n in zip(ax.get_yticklabels(), layers):
        if status[n][0] != "ok":
            tick.set_color(STATUS_COLOURS.get(status[n][0], "black"))
            tick.set_fontweight("bold")
    ax.set_ylim(len(layers) - 0.5, -0.5)  # input at the top, loss side at the bottom
    ax.set_xlabel("gradient norm: bar latest finite report, \u25c6 largest of the run", fontsize=8)
    ax.set_title("per layer (forward order, top to bottom)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)


def _draw_lines(ax, data, status):
    from matplotlib import colormaps

    history = data["history"]
    layers = data["layers"]
    its = [h["iteration"] for h in history]
    positive = [v for h in history for v in h["norm"].values() if _pos(v) == _pos(v)]
    floor = (min(positive) / 30) if positive else 1e-8
    colours = colormaps["tab20"].colors
    styles = ("-", "--", ":", "-.")
    any_zero = False
    for i, n in enumerate(layers):
        colour = colours[i % len(colours)]
        style = styles[(i // len(colours)) % len(styles)]
        ys = [h["norm"].get(n, math.nan) for h in history]
        ax.plot(its, [_pos(v) for v in ys], label=n, lw=1.4, color=colour, linestyle=style, marker=".", ms=3)
        # Reports whose norm is 0 (dead): on the floor line, joined to the last live point.
        zero = [j for j, v in enumerate(ys) if v == 0]
        if zero:
            any_zero = True
            xs, zs = [], []
            for j in zero:
                if j > 0 and _pos(ys[j - 1]) == _pos(ys[j - 1]):
                    ax.plot([its[j - 1], its[j]], [ys[j - 1], floor], color=colour, lw=1, linestyle=":")
                xs.append(its[j])
                zs.append(floor)
            ax.plot(xs, zs, color=colour, lw=0, marker="x", ms=6, mew=1.5)
        bad = [j for j, h in enumerate(history) if h["nonfinite"].get(n)]
        for j in bad:
            yv = _pos(ys[j])
            ax.plot([its[j]], [yv if yv == yv else floor], marker="*", color="darkviolet", ms=11, zorder=4)
    ax.set_yscale("log")
    if any_zero:
        ax.axhline(floor, color="dimgray", lw=0.8, linestyle="--")
        ax.annotate("norm 0 (dead)", (0, floor), xycoords=("axes fraction", "data"), xytext=(3, 3),
                    textcoords="offset points", fontsize=7, color="dimgray")
    ev = data["events"]
    marks = []
    if "exploding" in ev:
        a, b = ev["exploding"]
        ax.axvspan(a, b, color="tab:red", alpha=0.10, lw=0)
        marks.append((a, "tab:red", f"exploding gradients (it {_span(a, b)})"))
    if "nonfinite" in ev:
        marks.append((ev["nonfinite"]["iteration"], "darkviolet",
                      f"first NaN/Inf: it {ev['nonfinite']['iteration']}, {ev['nonfinite']['layer']}"))
    if data["dead_since"]:
        since = min(data["dead_since"].values())
        marks.append((since, "dimgray", f"{len(data['dead_since'])} layer(s) dead from it {since}"))
    lo, hi = ax.get_xlim()
    for k, (x, colour, text) in enumerate(marks):
        ax.axvline(x, color=colour, lw=1, linestyle="--", alpha=0.8)
        right = x > lo + 0.6 * (hi - lo)  # label on the inner side of its line, inside the axes
        ax.annotate(text, (x, 1), xycoords=("data", "axes fraction"), xytext=(-3 if right else 3, -12 - 11 * k),
                    textcoords="offset points", fontsize=7, color=colour, fontweight="bold",
                    ha="right" if right else "left")
    ax.set_xlabel("iteration (report)")
    ax.set_ylabel("gradient norm")
    ax.set_title("layer norms at each report", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


#: float16's thresholds on |g|: (log2, colour, label). Below 2**-24 a value
#: rounds to zero; in [2**-24, 2**-14) it is subnormal (fewer bits); from 2**16 it overflows.
FP16_MARKS = ((-24, "tab:red", "fp16 flush"), (-14, "darkorange", "fp16 subnormal"),
              (16, "tab:red", "fp16 overflow"))


def _pow2_ticks(lo, hi):
    """A few whole powers of two between lo and hi (log2 units), as (positions, labels)."""
    span = max(hi - lo, 1)
    step = next(s for s in (2, 4, 8, 16, 32, 64, 128, 256) if span / s <= 7)
    first = int(math.ceil(lo / step)) * step
    ticks = list(range(first, int(math.floor(hi)) + 1, step))
    return ticks, [f"$2^{{{t}}}$" for t in ticks]


def draw_magnitude_heatmap(ax, layers, exponents, counts, notes=None, title=None):
    """Heatmap of per-layer counts of |g| per power of two (layers by binary exponent).

    The x axis is log2 |g|, labelled with powers of two; column ``e`` spans
    ``[2**(e-1), 2**e)``. Colour: the fraction of the layer's finite non-zero
    values in the column (log scale); blank: none. float16's thresholds
    2**-24 (flush to zero below) and 2**-14 (subnormal below), and 2**16
    (overflow) when in range, are marked, with the flushed and subnormal
    ranges shaded. The range shown is the one holding values, widened to
    keep 2**-24 and 2**-14 in view.

    Args:
        ax: a Matplotlib Axes.
        layers: row names, in forward order.
        exponents: the binary exponent of each column (``e`` counts ``2**(e-1) <= |g| < 2**e``,
            as ``numpy.frexp``), consecutive.
        counts: array of shape ``(len(layers), len(exponents))``.
        notes: optional ``{layer: text}`` written across rows (e.g. "all zero: dead").
        title: the panel's title.
    """
    import numpy as np
    from matplotlib.colors import LogNorm

    exponents = np.asarray(exponents)
    counts = np.asarray(counts, np.float64).reshape(len(layers), len(exponents))
    frac = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    used = np.flatnonzero(counts.sum(axis=0) > 0)
    if used.size:  # log2 range of the values, widened to show 2**-24 and 2**-14
        lo = min(int(exponents[used[0]]) - 1, -24) - 2
        hi = max(int(exponents[used[-1]]), -14) + 2
    else:
        lo, hi = -26, -12
    lo, hi = max(lo, int(exponents[0]) - 1), min(hi, int(exponents[-1]))
    positive = frac[frac > 0]
    norm = LogNorm(vmin=max(float(positive.min()), 1e-6) if positive.size else 1e-3, vmax=1.0)
    # Shade what float16 flushes to zero, and its subnormals.
    ax.axvspan(lo, -24, color="tab:red", alpha=0.08, lw=0, zorder=0)
    ax.axvspan(-24, -14, color="orange", alpha=0.08, lw=0, zorder=0)
    img = ax.imshow(np.where(frac > 0, frac, np.nan), aspect="auto", cmap="viridis", norm=norm,
                    interpolation="nearest", zorder=1,
                    extent=(exponents[0] - 1, exponents[-1], len(layers) - 0.5, -0.5))
    ax.set_xlim(lo, hi)
    ax.set_ylim(len(layers) - 0.5, -0.5)
    ax.set_yticks(range(len(layers)), layers, fontsize=8)
    ticks, labels = _pow2_ticks(lo, hi)
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.set_xlabel("|g|   (dashed: float16 flushes to 0 below 2$^{-24}$, subnormal below 2$^{-14}$)",
                  fontsize=8)
    marks = [(x, colour, text) for x, colour, text in FP16_MARKS if lo < x < hi]
    for x, colour, _ in marks:
        ax.axvline(x, color=colour, lw=1.2, linestyle="--", zorder=2)
    top = ax.secondary_xaxis("top")  # the thresholds named above the panel, clear of the data
    top.set_xticks([x for x, _, _ in marks], [t for _, _, t in marks], fontsize=7, fontweight="bold")
    for tick, (_, colour, _) in zip(top.get_xticklabels(), marks):
        tick.set_color(colour)
    for i, n in enumerate(layers):
        if notes and notes.get(n):
            ax.annotate(notes[n], (0.5, i), xycoords=("axes fraction", "data"), ha="center", va="center",
                        fontsize=8, color="dimgray", fontweight="bold", zorder=3,
                        bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.9))
    ax.figure.colorbar(img, ax=ax, label="fraction of the layer's non-zero values", pad=0.02)
    ax.set_title(title or "gradient magnitudes per layer", fontsize=9)


def _draw_histograms(ax, data, status):
    entry = next(h for h in reversed(data["history"]) if h.get("histogram"))
    hist = entry["histogram"]
    layers = [n for n in data["layers"] if n in hist["counts"]]
    notes = {}
    for n in layers:
        if not any(hist["counts"][n]):  # no finite non-zero value: say why the row is blank
            if (entry.get("zeros") or {}).get(n, 0) >= 0.99:
                notes[n] = "all zero (dead)"
            elif (entry.get("nonfinite") or {}).get(n):
                notes[n] = "only zeros and NaN/Inf"
            else:
                notes[n] = "no finite non-zero values"
    latest = data["history"][-1]["iteration"]
    when = f"report at it {entry['iteration']}" + ("" if entry["iteration"] == latest else
                                                   " (latest with histograms)")
    draw_magnitude_heatmap(ax, layers, hist["exponents"], [hist["counts"][n] for n in layers], notes=notes,
                           title=f"gradient magnitudes per layer, {when}")


def panels_for(data):
    """The panels to draw, as ``[(draw, width ratio)]``; ``draw(ax, data, status)``."""
    panels = [(_draw_layers, 1.0), (_draw_lines, 1.25)]
    if any(h.get("histogram") for h in data["history"]):  # the latest report with histograms
        panels.append((_draw_histograms, 1.0))
    return panels


def plot_gradient_flow(source, path, title="gradient flow", alerts=()):
    """Write the gradient-flow figure of a monitor to ``path`` (PNG).

    Args:
        source: a monitor (anything with ``plot_data()``: :class:`MonitorCore`,
            the framework adapters' monitors) or its ``history`` list.
        path: the file to write.
        title: the figure's title.
        alerts: alerts of the last report (used with a bare history).
    """
    # The object-oriented API with the Agg canvas: no pyplot, no global backend change.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = _normalize(source, alerts)
    if not data["history"]:
        raise ValueError("nothing to plot: the monitor has not reported yet")
    status = _status(data)
    panels = panels_for(data)
    height = max(4.8, 1.6 + 0.32 * len(data["layers"]))
    fig = Figure(figsize=(6.5 * len(panels), height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), width_ratios=[w for _, w in panels])
    for ax, (draw, _) in zip(axes, panels):
        draw(ax, data, status)
    diagnosis = data.get("diagnosis") or ""
    fig.suptitle(title + (f"\n{diagnosis}" if diagnosis else ""), fontsize=10,
                 color="black" if diagnosis in ("", "no alerts") else "darkred")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=90)
