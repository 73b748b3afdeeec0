"""MonitorCore: the framework-free part of a gradient monitor.

An adapter for a framework (``fastmoments_chainer``, a PyTorch one...) needs
only two things of its own:

- a *hook* that, once per update, hands :meth:`MonitorCore.observe` the
  current gradients (and values) as NumPy or CuPy arrays, in the order of the
  entries given to :meth:`MonitorCore.set_entries`;
- a *reporter* that sends :attr:`Report.values` where the framework's logs
  go, after :meth:`MonitorCore.report`.

Everything else lives here: interval pooling (:class:`~.pool.IntervalPool`),
the statistics (:mod:`.stats`), the alert rules (:mod:`.alerts`) including
dead layers and where non-finite values started, the history for plots, and
a JSON-able state for snapshots::

    core = MonitorCore(prefix="grad")
    core.set_entries([("grad", "l1/W"), ("grad", "l1/b"), ...], forward_order=["l1", "l2"])
    for it, batch in enumerate(batches, 1):
        ...backward...
        core.observe([p.grad for p in params], iteration=it)
        if it % 100 == 0:
            report = core.report(it)          # a Report; report.values is a flat dict
            log(report.values)
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings

import numpy as np

import fastmoments

from . import alerts as alerts_mod
from .pool import NONE, IntervalPool, empty_summary
from .stats import STATS, derive, sum_of_squares

HISTOGRAM_EXPONENTS = np.asarray(fastmoments.HISTOGRAM_EXPONENTS)
# Bins of fastmoments' histogram (bin 1 + E - HISTOGRAM_EXPONENTS[0] holds
# 2**E <= |g| < 2**(E+1)): the first of float16's subnormals (2**-24; all
# bins below flush to zero), of its normal numbers (2**-14), and past its range (2**16).
_FP16_MIN_BIN = 1 - 24 - int(HISTOGRAM_EXPONENTS[0])
_FP16_NORMAL_BIN = 1 - 14 - int(HISTOGRAM_EXPONENTS[0])
_FP16_MAX_BIN = 1 + 16 - int(HISTOGRAM_EXPONENTS[0])
_N_BINS = HISTOGRAM_EXPONENTS.size + 2  # with the under- and overflow bins

__all__ = ["MonitorCore", "Report", "STATE_VERSION"]

STATE_VERSION = 2

#: Alert kind -> the letter of :meth:`Report.flags`.
FLAGS = {"vanishing": "V", "exploding": "X", "dead": "D", "nonfinite": "N", "skipped": "S"}


class Report:
    """What one report saw, kept as ``last_report`` for tables and plots.

    Attributes:
        serial: 1 for the first report, then 2, ...
        iteration: the iteration of the report.
        first_iteration: the first iteration of its interval.
        iterations: how many iterations the interval held.
        rows: one dict per monitored array: ``path``, ``kind`` ('grad' or
            'param'), ``layer``, ``shape``, ``dtype`` and every statistic of
            :data:`fastmoments_monitor.stats.STATS`; when the interval
            counted magnitude histograms (``histogram=True``) also the
            array's own ``fp16_flush`` and ``fp16_subnormal`` (fractions of
            its finite non-zero values below 2**-24 and in [2**-24, 2**-14);
            NaN if it had none).
        layers: per gradient layer, in forward order where known: ``layer``,
            ``norm``, ``maxabs``, ``zeros`` (fraction of exact zeros),
            ``nonfinite`` (count), ``first_bad`` (first iteration of the
            interval with NaN/Inf, or None), ``fp16_flush`` and
            ``fp16_subnormal`` (the layer's gradients; NaN without histograms).
        histogram_iterations: how many iterations of the interval counted
            magnitude histograms (0: none, or ``histogram=False``).
        total_norm: the norm of all monitored gradients.
        nonfinite_origin: None, or where this interval's NaN/Inf started:
            ``{'layer', 'iteration', 'order'}``, ``layer`` the first layer
            that had them in backward order (closest to the loss) at
            ``iteration``, the first iteration that had any; ``order`` all
            affected layers as ``(layer, first iteration)`` in that order.
        alerts: the :class:`~fastmoments_monitor.alerts.Alert` s raised.
        values: the flat dict of reported values.
    """

    def __init__(self, **kw):
        self.nonfinite_origin = None
        self.histogram_iterations = 0
        self.__dict__.update(kw)

    def flags(self, layer: str) -> str:
        """Letters for a layer's alerts: V vanishing, X exploding, D dead, N non-finite, S skipped."""
        got = set()
        for a in self.alerts:
            if a.kind in ("nonfinite", "skipped"):
                hit = any(alerts_mod.layer_of(p) == layer for p in a.layer.split(", "))
            else:
                hit = a.layer == layer
            if hit and a.kind in FLAGS:
                got.add(FLAGS[a.kind])
        return "".join(sorted(got))


@dataclasses.dataclass
class _Entry:
    kind: str
    path: str
    layer: str


class MonitorCore:
    """Per-array statistics pooled exactly over report intervals, alerts and history.

    Reported keys are ``{prefix}/{path}/{stat}`` and the totals
    ``{prefix}/norm`` and ``{prefix}/nonfinite`` (per kind: ``prefix`` for
    gradients, ``value_prefix`` for parameter values); with alert rules also
    ``{prefix}/alerts/vanishing|exploding|dead`` (numbers of layers) and
    ``{prefix}/{layer}/vanishing|exploding|dead`` (1.0) for the layers that
    fired, and ``{prefix}/nonfinite_first_iteration`` when NaN/Inf appeared.

    Args:
        stats: statistic names to report (default: all of :data:`STATS`).
        prefix: key prefix of gradient statistics.
        value_prefix: key prefix of value statistics.
        nonfinite_alert: add a 'nonfinite' alert at each report whose
            interval had NaN/Inf (adapters that skip or raise per update say False).
        alerts: an :class:`~.alerts.AlertRules`, or None for no vanishing,
            exploding or dead alerts.
        warn: emit alerts as :class:`~.alerts.GradientAlert` warnings.
        history: how many reports to keep for plots (0: none).
        histogram: also count the magnitude histograms of the gradients
            (``fastmoments.summarize_each(..., histogram=True)``, the same
            pass): each report then gives per layer ``fp16_flush``, the
            fraction of its finite non-zero gradient values below 2**-24
            (they would flush to zero in float16), and ``fp16_subnormal``,
            the fraction in [2**-24, 2**-14) (float16 subnormals), also as
            keys ``{prefix}/{layer}/fp16_flush|fp16_subnormal``; the plot
            draws the histograms as a heatmap.
        histogram_every: count them only in iterations whose number is a
            multiple of this (1: every iteration).
    """

    def __init__(self, *, stats=None, prefix="grad", value_prefix="param", nonfinite_alert=True,
                 alerts=alerts_mod.AlertRules(), warn=True, history=1000, histogram=False, histogram_every=1):
        stats = STATS if stats is None else (stats,) if isinstance(stats, str) else tuple(stats)
        bad = [s for s in stats if s not in STATS]
        if bad or not stats:
            raise ValueError(f"unknown statistics {bad}; choose from {STATS}")
        if alerts is not None and not isinstance(alerts, alerts_mod.AlertRules):
            raise TypeError("alerts must be an AlertRules or None")
        if int(history) < 0:
            raise ValueError(f"history must be >= 0, got {history}")
        if not isinstance(histogram, (bool, np.bool_)):
            raise TypeError(f"histogram must be True or False, got {histogram!r}")
        if isinstance(histogram_every, bool) or not isinstance(histogram_every, (int, np.integer)) \
                or histogram_every < 1:
            raise ValueError(f"histogram_every must be an int >= 1, got {histogram_every!r}")
        self.histogram_every = int(histogram_every) if histogram else 0
        self.stats = stats
        self.prefix = {"grad": prefix, "param": value_prefix}
        self.nonfinite_alert = nonfinite_alert
        self.rules = alerts
        self.warn = warn
        self.history_len = int(history)
        self.entries = None           # [_Entry]
        self.pool = None
        self.forward_order = None     # layers in forward order, if the adapter knows it
        self._pending_state = None
        self.last_report = None
        self.history = []             # [dict]: see _history_entry
        self.layer_norms = {}         # layer -> past report norms (running median)
        self.worst = {}               # layer -> [largest finite norm of the run, its report's iteration]
        self.last_finite = {}         # layer -> [iteration, norm, maxabs] of its latest report without NaN/Inf
        self.dead_since = {}          # layer -> first iteration of its current dead streak
        self.events = {}              # 'nonfinite': {iteration, layer}; 'exploding': [first, last]
        self.iteration = 0
        self.serial = 0
        self._interval_alerts = []
        self.first_iteration = None

    # -- entries ------------------------------------------------------------------
    def set_entries(self, entries, forward_order=None):
        """Declare the monitored arrays: ``[(kind, path)]``, kind 'grad' or 'param'.

        ``path`` names the array (``'predictor/l1/W'``); its layer is the path
        without the last component. ``forward_order`` lists layers in the
        order the forward pass runs them (backward runs them in reverse); when
        None, the order of the entries is taken for it.

        Starts a new interval; a saved state loaded before is applied now.
        """
        entries = [_Entry(k, p, alerts_mod.layer_of(p)) for k, p in entries]
        if not entries:
            raise ValueError("no parameter matches the selection")
        self.entries = entries
        if forward_order is not None:
            self.forward_order = list(forward_order)
        self.pool = IntervalPool(len(entries), scale_mask=[e.kind == "grad" for e in entries],
                                 histogram_every=self.histogram_every)
        self.first_iteration = None
        if self._pending_state is not None:
            self._load_interval(self._pending_state)
            self._pending_state = None

    @property
    def n_iter(self):
        """Iterations observed in the current interval (a loaded, not yet applied state's too)."""
        if self._pending_state is not None:
            return int(self._pending_state["n_iter"])
        return self.pool.n_iter if self.pool is not None else 0

    def layer_rank(self):
        """layer -> its position in forward order (entries' order for layers not in ``forward_order``)."""
        rank = {}
        for name in self.forward_order or ():
            rank.setdefault(name, len(rank))
        base = len(rank)
        for e in self.entries or ():
            if e.layer not in rank:
                rank[e.layer] = base + len(rank)
        return rank

    # -- per iteration ---------------------------------------------------------------
    def observe(self, arrays, iteration=None, *, like=None, loss_scale=None, check=False):
        """Summarize this iteration's arrays (one per entry, None if missing).

        Args:
            arrays: NumPy or CuPy arrays in the order of the entries.
            iteration: the iteration number (default: count of calls).
            like: ``i -> array`` on the device of missing array ``i`` (optional).
            loss_scale: divide the gradients' statistics by this.
            check: read the non-finite counts to the host (one synchronization).

        Returns:
            Under ``check``: a dict path -> count of non-finite gradient
            values (empty if none). Otherwise an empty dict, read from nothing.
        """
        self.iteration = self.iteration + 1 if iteration is None else int(iteration)
        if self.first_iteration is None:
            self.first_iteration = self.iteration
        counts = self.pool.add(arrays, self.iteration, like=like, loss_scale=loss_scale, check=check)
        if counts is None or not counts.any():
            return {}
        bad = {}
        for j in self.backward_sorted(np.flatnonzero(counts)):
            e = self.entries[j]
            if e.kind == "grad":
                bad[e.path] = int(counts[j])
        return bad

    def backward_sorted(self, indices):
        """Entry indices sorted in backward order: the layer closest to the loss first."""
        rank = self.layer_rank()
        return sorted((int(i) for i in indices), key=lambda i: (-rank[self.entries[i].layer], i))

    def add_alert(self, alert):
        """An alert of the adapter's (e.g. a skipped update), kept with the interval."""
        self._interval_alerts.append(alert)
        if self.warn:
            warnings.warn(alert.message(), alerts_mod.GradientAlert, stacklevel=3)

    # -- report ----------------------------------------------------------------------
    def compute(self):
        """The current interval's pooled Summary and derived statistics, without reporting."""
        pooled, first_bad = self.pool.collect()
        return derive(pooled, self.pool.n_obs), pooled, first_bad

    def report(self, iteration=None, describe=None):
        """Close the interval: statistics, alerts, history; start a new interval.

        Args:
            iteration: the iteration to name in messages (default: the last observed).
            describe: ``i -> (shape, dtype)`` of entry ``i`` for the table (optional).

        Returns:
            The :class:`Report` (also ``last_report``), or None if nothing was observed.
        """
        if self.entries is None or self.n_iter == 0:
            return None
        pool = self.pool
        iteration = self.iteration if iteration is None else int(iteration)
        st, pooled, first_bad = self.compute()
        sq = sum_of_squares(pooled)
        hcounts = pool.histograms()  # None unless some iteration of the interval counted them
        values, rows = {}, []
        # Python lists, read per entry: indexing NumPy arrays element by
        # element was most of a report's time.
        cols = {name: st[name].tolist() for name in STATS}
        n_obs = pool.n_obs.tolist()
        for e, ent in enumerate(self.entries):
            if not n_obs[e]:
                continue  # never present all interval: nothing to report
            pre = self.prefix[ent.kind]
            for name in self.stats:
                values[f"{pre}/{ent.path}/{name}"] = float(cols[name][e])
            shape, dtype = describe(e) if describe is not None else (None, None)
            row = {"path": ent.path, "kind": ent.kind, "layer": ent.layer, "shape": shape, "dtype": dtype}
            row.update({name: float(cols[name][e]) for name in STATS})
            if hcounts is not None:  # this array's own fractions (parameter values too)
                row["fp16_flush"], row["fp16_subnormal"] = _fp16_fractions(hcounts[e])
            rows.append(row)
        kinds = []
        for e in self.entries:
            if e.kind not in kinds:
                kinds.append(e.kind)
        for kind in kinds:
            mask = np.array([e.kind == kind for e in self.entries])
            pre = self.prefix[kind]
            values[f"{pre}/norm"] = math.sqrt(float(sq[mask].sum()) / pool.n_iter)
            values[f"{pre}/nonfinite"] = float(pooled.n_nonfinite[mask].sum())
        layers, total_norm = self._layers(st, sq, pooled, first_bad)
        gp = self.prefix["grad"]
        hist = self._layer_histograms(layers, hcounts)
        for x in layers:
            if hist is not None and x["layer"] in hist["counts"]:
                for key in ("fp16_flush", "fp16_subnormal"):
                    values[f"{gp}/{x['layer']}/{key}"] = x[key]
        origin = self._origin(layers)
        found = list(self._interval_alerts)
        if origin is not None:
            values[f"{gp}/nonfinite_first_iteration"] = float(origin["iteration"])
            self.events.setdefault("nonfinite", {"iteration": origin["iteration"], "layer": origin["layer"]})
            if self.nonfinite_alert:
                found.append(self._nonfinite_alert(iteration, rows, origin))
        if self.rules is not None:
            since = {x["layer"]: self.dead_since.get(x["layer"], self.first_iteration) for x in layers}
            found += alerts_mod.evaluate(
                iteration, [x["layer"] for x in layers], np.array([x["norm"] for x in layers]),
                np.array([x["nonfinite"] for x in layers]), total_norm, self.layer_norms, self.rules,
                zeros=np.array([x["zeros"] for x in layers]), dead_since=since,
                after=self._what_preceded())
            dead = {a.layer for a in found if a.kind == "dead"}
            self.dead_since = {n: since[n] for n in dead}  # the current dead streaks
            for kind in ("vanishing", "exploding", "dead"):
                hit = [a for a in found if a.kind == kind]
                values[f"{gp}/alerts/{kind}"] = float(len(hit))
                for a in hit:
                    values[f"{gp}/{a.layer}/{kind}"] = 1.0
            if any(a.kind == "exploding" for a in found):
                span = self.events.setdefault("exploding", [self.first_iteration, iteration])
                span[1] = iteration
        else:
            self.dead_since = {}
        window = max(self.rules.window if self.rules else 1, 1)
        for x in layers:
            past = self.layer_norms.setdefault(x["layer"], [])
            past.append(x["norm"])
            del past[:-window]
            if math.isfinite(x["norm"]) and x["nonfinite"] == 0:
                self.last_finite[x["layer"]] = [iteration, x["norm"], x["maxabs"]]
                w = self.worst.get(x["layer"])
                if w is None or x["norm"] > w[0]:
                    self.worst[x["layer"]] = [x["norm"], iteration]
        if self.history_len:
            self.history.append(self._history_entry(iteration, layers, found, hist))
            del self.history[: max(len(self.history) - self.history_len, 0)]
        self.serial += 1
        self.last_report = Report(serial=self.serial, iteration=iteration,
                                  first_iteration=self.first_iteration, iterations=pool.n_iter,
                                  rows=rows, layers=layers, total_norm=total_norm,
                                  nonfinite_origin=origin, alerts=found, values=values,
                                  histogram_iterations=pool.n_hist if hcounts is not None else 0)
        if self.warn:
            for a in found:
                if a.kind != "skipped":  # warned at the update already
                    warnings.warn(a.message(), alerts_mod.GradientAlert, stacklevel=3)
        self.reset_interval()
        return self.last_report

    def reset_interval(self):
        if self.pool is not None:
            self.pool.reset()
        self.first_iteration = None
        self._interval_alerts = []

    def _layers(self, st, sq, pooled, first_bad):
        order, acc = [], {}
        n_obs = self.pool.n_obs.tolist()
        sq, lows, highs = sq.tolist(), st["min"].tolist(), st["max"].tolist()
        bad, zeros, count = pooled.n_nonfinite.tolist(), pooled.n_zero.tolist(), pooled.count.tolist()
        first_bad = first_bad.tolist()
        for e, ent in enumerate(self.entries):
            if ent.kind != "grad" or not n_obs[e]:
                continue
            name = ent.layer
            if name not in acc:
                order.append(name)
                acc[name] = [0.0, 0.0, 0, 0, 0, 0, NONE]
            a = acc[name]
            a[0] += sq[e]
            lo, hi = lows[e], highs[e]
            if math.isfinite(lo):
                a[1] = max(a[1], abs(lo), abs(hi))
            a[2] += bad[e]
            a[3] = max(a[3], n_obs[e])
            a[4] += zeros[e]
            a[5] += count[e] + bad[e]
            a[6] = min(a[6], first_bad[e])
        rank = self.layer_rank()
        order.sort(key=lambda n: rank[n])
        layers = [{"layer": n, "norm": math.sqrt(acc[n][0] / acc[n][3]) if acc[n][3] else math.nan,
                   "maxabs": acc[n][1], "nonfinite": acc[n][2],
                   "zeros": acc[n][4] / acc[n][5] if acc[n][5] else math.nan,
                   "first_bad": None if acc[n][6] == NONE else acc[n][6]} for n in order]
        total = math.sqrt(sum(acc[n][0] for n in order) / max(self.pool.n_iter, 1))
        return layers, total

    def _origin(self, layers):
        """Where this interval's NaN/Inf started: first iteration, then the layer closest to the loss."""
        rank = self.layer_rank()
        hit = [x for x in layers if x["nonfinite"] and x["first_bad"] is not None]
        if not hit:
            return None
        hit.sort(key=lambda x: (x["first_bad"], -rank[x["layer"]]))
        return {"layer": hit[0]["layer"], "iteration": hit[0]["first_bad"],
                "order": [(x["layer"], x["first_bad"]) for x in hit]}

    def _nonfinite_alert(self, iteration, rows, origin):
        rank = self.layer_rank()
        bad = [r for r in rows if r["kind"] == "grad" and r["nonfinite"]]
        bad.sort(key=lambda r: -rank[r["layer"]])
        counts = ", ".join(f"{r['path']} ({int(r['nonfinite'])})" for r in bad)
        then = [f"{name} (iteration {it})" for name, it in origin["order"][1:]]
        text = (f"NaN/Inf first at iteration {origin['iteration']} in {origin['layer']!r}, the first "
                f"layer in backward order (closest to the loss)")
        if then:
            text += "; then " + ", ".join(then)
        text += f"; iterations {self.first_iteration}-{iteration}: {counts}"
        return alerts_mod.Alert(iteration, ", ".join(r["path"] for r in bad), "nonfinite",
                                float(sum(r["nonfinite"] for r in bad)), 0.0, text)

    def _what_preceded(self):
        said = []
        if "exploding" in self.events:
            a, b = self.events["exploding"]
            said.append(f"exploding gradients at {_iterations(a, b)}")
        if "nonfinite" in self.events:
            ev = self.events["nonfinite"]
            said.append(f"NaN/Inf from iteration {ev['iteration']} (first in {ev['layer']!r})")
        return ("after " + " and ".join(said)) if said else ""

    def _layer_histograms(self, layers, counts):
        """Per layer: the gradient histograms summed, fp16_flush and
        fp16_subnormal set in ``layers`` (NaN without values); returns the
        history's ``{"exponents", "counts"}`` (frexp's exponents, the range
        that holds values), or None when no histogram was counted."""
        for x in layers:
            x["fp16_flush"] = x["fp16_subnormal"] = math.nan
        if counts is None:
            return None
        per = {}
        for e, ent in enumerate(self.entries):
            if ent.kind == "grad" and self.pool.n_obs[e]:
                per[ent.layer] = per.get(ent.layer, 0) + counts[e]
        for x in layers:
            h = per.get(x["layer"])
            if h is not None:
                x["fp16_flush"], x["fp16_subnormal"] = _fp16_fractions(h)
        inner = {n: np.asarray(h[1:-1]) for n, h in per.items()}  # exponents MIN..MAX
        used = np.flatnonzero(sum(inner.values()) > 0) if inner else np.array([], np.int64)
        lo, hi = (int(used[0]), int(used[-1])) if used.size else (0, 0)
        # Keep float16's thresholds in view: 2**-24, 2**-14, 2**16.
        lo = min(lo, _FP16_MIN_BIN - 1 - 2)
        hi = max(hi, _FP16_NORMAL_BIN - 1, _FP16_MAX_BIN - 1)
        exps = HISTOGRAM_EXPONENTS[lo : hi + 1] + 1  # frexp: 2**(e-1) <= |g| < 2**e
        return {"exponents": [int(e) for e in exps],
                "counts": {n: [int(c) for c in h[lo : hi + 1]] for n, h in inner.items()}}

    def _history_entry(self, iteration, layers, found, hist=None):
        status = {}
        for a in found:
            if a.kind in ("vanishing", "exploding", "dead"):
                status.setdefault(a.layer, a.kind)
        return {
            "iteration": iteration,
            "first": self.first_iteration,
            "norm": {x["layer"]: x["norm"] for x in layers},
            "maxabs": {x["layer"]: x["maxabs"] for x in layers},
            "zeros": {x["layer"]: x["zeros"] for x in layers},
            "nonfinite": {x["layer"]: x["nonfinite"] for x in layers},
            "first_bad": {x["layer"]: x["first_bad"] for x in layers if x["first_bad"] is not None},
            "status": status,
            # With histogram=True: {"exponents": [e], "counts": {layer: [count]}}
            # (frexp's e: 2**(e-1) <= |g| < 2**e); plot.py draws it as a heatmap.
            "histogram": hist,
        }

    def diagnosis(self) -> str:
        """One line saying what went wrong in the run so far ("no alerts" if nothing)."""
        parts = []
        if "exploding" in self.events:
            a, b = self.events["exploding"]
            worst = max(self.worst.items(), key=lambda kv: kv[1][0], default=None)
            w = f" (largest norm {worst[1][0]:.3g} in {worst[0]} at iteration {worst[1][1]})" if worst else ""
            parts.append(f"exploding gradients at {_iterations(a, b)}{w}")
        if "nonfinite" in self.events:
            ev = self.events["nonfinite"]
            parts.append(f"NaN/Inf from iteration {ev['iteration']}, first in {ev['layer']}")
        if self.dead_since:
            names = sorted(self.dead_since, key=lambda n: self.layer_rank().get(n, 0))
            parts.append(f"dead: {', '.join(names)} (since iteration {min(self.dead_since.values())})")
        last = self.last_report
        if last is not None:
            van = [a.layer for a in last.alerts if a.kind == "vanishing"]
            if van:
                parts.append(f"vanishing: {', '.join(van)}")
        return "; ".join(parts) if parts else "no alerts"

    def plot_data(self):
        """What :func:`fastmoments_monitor.plot.plot_gradient_flow` draws."""
        rank = self.layer_rank()
        seen = []
        for h in self.history:
            for n in h["norm"]:
                if n not in seen:
                    seen.append(n)
        seen.sort(key=lambda n: rank.get(n, len(rank)))
        return {"layers": seen, "history": list(self.history),
                "worst": {k: tuple(v) for k, v in self.worst.items()},
                "last_finite": {k: tuple(v) for k, v in self.last_finite.items()},
                "dead_since": dict(self.dead_since), "events": dict(self.events),
                "alerts": list(self.last_report.alerts) if self.last_report else [],
                "diagnosis": self.diagnosis()}

    # -- snapshot / resume ------------------------------------------------------------
    def state(self) -> dict:
        """A JSON-able dict of everything a resumed run needs (the running
        interval included): a snapshot, which later training leaves as it is."""
        return copy.deepcopy(self._state())

    def _state(self) -> dict:
        interval = {}
        if self.entries is not None:
            pooled, first_bad = self.pool.collect()
            interval = {
                "entries": [[e.kind, e.path] for e in self.entries],
                "fields": {f: getattr(pooled, f).tolist() for f in type(pooled)._fields},
                "n_obs": self.pool.n_obs.tolist(),
                "n_iter": self.pool.n_iter,
                "first_bad": first_bad.tolist(),
            }
            hist = self.pool.histograms()
            if hist is not None:
                # Only the bins that hold counts: most of the 279 are empty.
                rows, cols = np.nonzero(hist)
                interval["histograms"] = {"n_bins": int(hist.shape[1]), "n_iter": self.pool.n_hist,
                                          "at": [rows.tolist(), cols.tolist()],
                                          "counts": hist[rows, cols].tolist()}
        return {
            "version": STATE_VERSION,
            **interval,
            "first_iteration": self.first_iteration,
            "iteration": self.iteration,
            "serial": self.serial,
            "layer_norms": self.layer_norms,
            "history": self.history,
            "worst": self.worst,
            "last_finite": self.last_finite,
            "dead_since": self.dead_since,
            "events": self.events,
            "forward_order": self.forward_order,
            "alerts": [dataclasses.astuple(a) for a in self._interval_alerts],
        }

    def load_state(self, state: dict):
        """Restore :meth:`state` (version 1, the Chainer monitor's first format, too).
        The dict is copied: the monitor never changes it afterwards."""
        state = copy.deepcopy(state)
        self.first_iteration = state["first_iteration"]
        self.iteration = state["iteration"]
        self.serial = state["serial"]
        self.layer_norms = {k: list(v) for k, v in state["layer_norms"].items()}
        self.history = [h if isinstance(h, dict) else _history_v1(h) for h in state["history"]]
        self.worst = {k: list(v) for k, v in state.get("worst", {}).items()}
        self.last_finite = {k: list(v) for k, v in state.get("last_finite", {}).items()}
        self.dead_since = dict(state.get("dead_since", {}))
        self.events = dict(state.get("events", {}))
        if state.get("forward_order"):
            self.forward_order = list(state["forward_order"])
        self._interval_alerts = [alerts_mod.Alert(*a) for a in state.get("alerts", [])]
        if "entries" not in state or not state["entries"]:
            return
        if self.entries is None:
            self._pending_state = state
        else:
            self._load_interval(state)

    def _load_interval(self, state):
        n = len(self.entries)
        where = {(k, p): i for i, (k, p) in enumerate(state["entries"])}
        template = empty_fields = [np.array(f, copy=True) for f in empty_summary(n).fields]
        names = fastmoments.Summary._fields
        n_obs = np.zeros(n, np.int64)
        first_bad = np.full(n, NONE, np.int64)
        saved_fb = state.get("first_bad")
        for e, ent in enumerate(self.entries):
            i = where.get((ent.kind, ent.path))
            if i is None:
                continue
            for f, name in zip(empty_fields, names):
                if name in state["fields"]:
                    f[e] = state["fields"][name][i]
            n_obs[e] = state["n_obs"][i]
            if saved_fb is not None:
                first_bad[e] = saved_fb[i]
        hist, n_hist = None, 0
        saved_h = state.get("histograms")
        if saved_h is not None and self.histogram_every:
            if saved_h["n_bins"] != _N_BINS:
                raise ValueError(f"saved histograms have {saved_h['n_bins']} bins, this fastmoments "
                                 f"counts {_N_BINS}")
            hist = np.zeros((n, saved_h["n_bins"]), np.int64)
            ours = [where.get((ent.kind, ent.path)) for ent in self.entries]
            row_of = {i: e for e, i in enumerate(ours) if i is not None}
            for r, c, v in zip(*saved_h["at"], saved_h["counts"]):
                if r in row_of:
                    hist[row_of[r], c] = v
            n_hist = saved_h["n_iter"]
        self.pool.load(fastmoments.Summary._wrap(tuple(template)), n_obs, state["n_iter"], first_bad,
                       hist, n_hist)
        self.first_iteration = state["first_iteration"]


def _fp16_fractions(h):
    """(flush, subnormal): the fractions of the finite non-zero values counted
    in histogram ``h`` below 2**-24 and in [2**-24, 2**-14); NaN for none."""
    total = int(h.sum())
    if not total:
        return math.nan, math.nan
    return (float(h[:_FP16_MIN_BIN].sum()) / total,
            float(h[_FP16_MIN_BIN:_FP16_NORMAL_BIN].sum()) / total)


def _iterations(a, b):
    return f"iteration {a}" if a == b else f"iterations {a}-{b}"


def _history_v1(entry):
    it, norms, maxabs = entry
    return {"iteration": it, "first": None, "norm": dict(norms), "maxabs": dict(maxabs), "zeros": {},
            "nonfinite": {}, "first_bad": {}, "status": {}, "histogram": None}
