"""GradientMonitor: every parameter gradient summarized each iteration in one fused pass.

Use it as a trainer extension, like ``extensions.ParameterStatistics``::

    trainer.extend(GradientMonitor(model, report_trigger=(1, 'epoch')))
    trainer.extend(extensions.LogReport())          # 'grad/...' keys appear

It then registers itself as the first 'pre' hook of the optimizer that
updates ``model``, so it sees the gradients as backward produced them (before
clipping or weight decay). In a custom training loop, attach it to the
optimizer and report when you like::

    monitor = GradientMonitor(model)
    monitor.attach(optimizer)          # or optimizer.add_hook(monitor)
    for batch in batches:
        optimizer.update(lossfun, *batch)
        if end_of_epoch:
            values = monitor.report()  # also sent to chainer.reporter

Cost per iteration: one :func:`fastmoments.summarize_each` call per device
holding parameters (one fused kernel launch on a GPU) and one merge of the
resulting small Summary into the interval's running Summary, on the same
device. Nothing is copied to the host until a report, except under
``on_nonfinite='raise'`` or ``'skip'``, which read the non-finite counts
(one small device-to-host copy, hence one synchronization, per iteration).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import warnings

import numpy as np

import chainer
from chainer import reporter
from chainer.training import extension
from chainer.training import trigger as trigger_module

import fastmoments

from . import alerts as alerts_mod
from .stats import STATS, derive, sum_of_squares

__all__ = ["GradientMonitor", "Report"]

_POLICIES = ("warn", "raise", "skip")
_FIELDS = ("count", "mean", "m2", "min", "max", "n_nonfinite", "n_zero")


class Report:
    """What one report saw, kept as ``monitor.last_report`` for tables and plots.

    Attributes:
        serial: 1 for the first report, then 2, ...
        iteration: the iteration of the report.
        first_iteration: the first iteration of its interval.
        iterations: how many iterations the interval held.
        rows: one dict per monitored array: ``path``, ``kind`` ('grad' or
            'param'), ``layer``, ``shape``, ``dtype`` and every statistic of
            :data:`fastmoments_chainer.stats.STATS`.
        layers: per gradient layer: ``layer``, ``norm``, ``maxabs``, ``nonfinite``.
        total_norm: the norm of all monitored gradients.
        alerts: the :class:`~fastmoments_chainer.alerts.Alert` s raised.
        values: the dict sent to ``chainer.reporter``.
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def flags(self, layer: str) -> str:
        """Letters for a layer's alerts: V vanishing, X exploding, N non-finite, S skipped."""
        letters = {"vanishing": "V", "exploding": "X", "nonfinite": "N", "skipped": "S"}
        got = set()
        for a in self.alerts:
            if a.kind in ("nonfinite", "skipped"):
                hit = any(alerts_mod.layer_of(p) == layer for p in a.layer.split(", "))
            else:
                hit = a.layer == layer
            if hit:
                got.add(letters[a.kind])
        return "".join(sorted(got))


class _Group:
    """The monitored arrays living on one device and their running Summary."""

    __slots__ = ("key", "indices", "acc", "empty")

    def __init__(self, key, indices, like):
        self.key = key
        self.indices = np.asarray(indices, np.intp)
        self.acc = None
        # Stands in for a missing gradient: an empty array contributes the
        # identity state, so the group's Summary keeps its shape every iteration.
        self.empty = like.ravel()[:0]  # ravel first: 0-d parameters have no [:0]


def _device_key(arr):
    if type(arr) is np.ndarray:
        return "cpu"
    dev = getattr(arr, "device", None)
    return (type(arr).__module__.split(".", 1)[0], getattr(dev, "id", dev))


def _empty_host(n):
    return fastmoments.Summary.from_fields(
        count=np.zeros(n, np.int64), mean=np.nan, m2=0.0, min=np.nan, max=np.nan,
        n_nonfinite=0, n_zero=0)


class _Reenable:
    """Post-update hook that turns back on the update rules a skip turned off."""

    timing = "post"
    call_for_each_param = False

    def __init__(self, name):
        self.name = name
        self.rules = []

    def __call__(self, optimizer):
        for rule in self.rules:
            rule.enabled = True
        self.rules = []


class GradientMonitor(extension.Extension):
    """Per-parameter gradient statistics pooled exactly over report intervals.

    Reported keys are ``{prefix}/{path}/{stat}``, with ``path`` the
    parameter's path in ``target.namedparams()`` without the leading slash
    (e.g. ``grad/predictor/l1/W/norm``), and the totals ``{prefix}/norm``
    and ``{prefix}/nonfinite``. Alerts add ``{prefix}/alerts/vanishing`` and
    ``{prefix}/alerts/exploding`` (numbers of layers), ``{prefix}/{layer}/vanishing``
    or ``/exploding`` (1.0) for the layers that fired, and, under 'skip',
    ``{prefix}/skipped`` (updates skipped in the interval).

    Args:
        target: the :class:`chainer.Link` whose parameters to watch.
        report_trigger: when to report, as a trigger or ``(n, 'iteration'|'epoch')``
            (trainer use); in a custom loop call :meth:`report` instead.
        stats: statistic names to report (default: all of
            ``mean, std, min, max, norm, zeros, nonfinite``).
        params: which parameters: None (all), glob patterns matched against
            the path (``'predictor/l1/*'``), or a callable ``path -> bool``.
        prefix: key prefix of gradient statistics.
        values: also summarize parameter values, under ``value_prefix``.
        value_prefix: key prefix of value statistics.
        on_nonfinite: 'warn' (at the report, naming the parameters; no
            per-iteration cost), 'raise' (:class:`NonFiniteGradientError` at
            the update that has them) or 'skip' (that update is not applied:
            parameters, update-rule states and update-rule ``t`` are left
            untouched; ``optimizer.t`` still counts the iteration, as Chainer
            does when loss scaling skips one). 'raise' and 'skip' cost one
            host synchronization per iteration.
        alerts: an :class:`AlertRules`, or None for no vanishing/exploding alerts.
        warn: emit alerts as :class:`GradientAlert` warnings (they are
            always reported as keys and kept in ``last_report.alerts``).
        history: how many reports of layer norms to keep for plots.
    """

    trigger = (1, "iteration")
    priority = extension.PRIORITY_WRITER
    default_name = "GradientMonitor"
    # As an optimizer hook: once per update, before the update rules run.
    timing = "pre"
    call_for_each_param = False

    def __init__(self, target, report_trigger=(1, "epoch"), *, stats=None, params=None,
                 prefix="grad", values=False, value_prefix="param", on_nonfinite="warn",
                 alerts=alerts_mod.AlertRules(), warn=True, history=1000):
        if not isinstance(target, chainer.Link):
            raise TypeError(f"GradientMonitor watches a chainer.Link, got {type(target).__name__}")
        stats = STATS if stats is None else (stats,) if isinstance(stats, str) else tuple(stats)
        bad = [s for s in stats if s not in STATS]
        if bad or not stats:
            raise ValueError(f"unknown statistics {bad}; choose from {STATS}")
        if on_nonfinite not in _POLICIES:
            raise ValueError(f"on_nonfinite must be one of {_POLICIES}, got {on_nonfinite!r}")
        if alerts is not None and not isinstance(alerts, alerts_mod.AlertRules):
            raise TypeError("alerts must be an AlertRules or None")
        if params is not None and not callable(params):
            if isinstance(params, str):
                params = (params,)
            patterns = tuple(params) if hasattr(params, "__iter__") else (params,)
            if not all(isinstance(p, str) for p in patterns):
                raise TypeError(f"params must be None, glob patterns or a callable, got {params!r}")
            params = lambda path, _p=patterns: any(fnmatch.fnmatchcase(path, q) for q in _p)  # noqa: E731
        self.target = target
        self.name = self.default_name
        self._report_trigger = trigger_module.get_trigger(report_trigger)
        self._stats = stats
        self._select = params
        self._prefix = {"grad": prefix, "param": value_prefix}
        self._kinds = ("grad", "param") if values else ("grad",)
        self.on_nonfinite = on_nonfinite
        self.rules = alerts
        self.warn = warn
        if int(history) < 0:
            raise ValueError(f"history must be >= 0, got {history}")
        self._history_len = int(history)
        self._entries = None          # [(kind, path, param)]: set at the first observation,
        #                               and again at an interval's start if the parameters changed
        self._groups = None           # device key -> _Group
        self._host = None             # host Summary carried over (resume, device change)
        self._pending_state = None    # loaded before the entries were known
        self._optimizer = None
        self._reenable = None
        self._observed_by_hook = False
        self.last_report = None
        self.history = []             # [(iteration, {layer: norm}, {layer: maxabs})]
        self._layer_norms = {}        # layer -> past report norms (running median)
        self._reset_interval()
        self._iteration = 0
        self._serial = 0

    # -- registration ----------------------------------------------------------
    def attach(self, optimizer, first=True):
        """Register as a 'pre' update hook of ``optimizer`` (custom loops; the trainer does this).

        Args:
            optimizer: a set-up :class:`chainer.Optimizer` whose target holds
                the monitored parameters.
            first: run before the hooks already registered (clipping, decay),
                so the raw gradients are seen.
        """
        if not isinstance(optimizer, chainer.Optimizer):
            raise TypeError(f"attach takes a chainer.Optimizer, got {type(optimizer).__name__}")
        if optimizer.target is None:
            raise ValueError("the optimizer is not set up: call optimizer.setup(model) before attaching")
        hooks = optimizer._hookable._pre_update_hooks
        self._check_distinct_keys(hooks.values())
        if not any(h is self for h in hooks.values()):
            optimizer.add_hook(self, name=_free_hook_name(optimizer, self.name), timing="pre")
        if first:
            for name, h in list(hooks.items()):
                if h is self:
                    hooks.move_to_end(name, last=False)
        self._optimizer = optimizer
        self._ensure_reenable(optimizer)

    def detach(self):
        """Remove this monitor's hooks from the optimizer it is attached to
        (say, before attaching a fresh monitor under the same prefix)."""
        opt = self._optimizer
        if opt is not None:
            hookable = opt._hookable
            for hooks in (hookable._pre_update_hooks, hookable._post_update_hooks):
                for name, h in list(hooks.items()):
                    if h is self or h is self._reenable:
                        del hooks[name]
        self._optimizer = None
        self._reenable = None

    def _ensure_reenable(self, optimizer):
        if self.on_nonfinite != "skip" or self._reenable is not None:
            return
        name = _free_hook_name(optimizer, self.name, "/reenable")
        self._reenable = _Reenable(name)
        optimizer.add_hook(self._reenable, name=name, timing="post")

    def _check_distinct_keys(self, others):
        """Refuse a second monitor reporting under one of our prefixes: the
        last to report would overwrite the other's totals (``grad/norm``)
        and, for monitors of sibling links, its per-parameter keys."""
        mine = {self._prefix[k] for k in self._kinds}
        for other in others:
            if other is self or not isinstance(other, GradientMonitor):
                continue
            clash = mine & {other._prefix[k] for k in other._kinds}
            if clash:
                raise ValueError(
                    f"two GradientMonitors would report under the key prefix {sorted(clash)[0]!r} "
                    "and overwrite each other's values: give each its own prefix= (and "
                    "value_prefix=), or detach() the other one first")

    def initialize(self, trainer):
        self._check_distinct_keys(entry.extension for entry in trainer._extensions.values())
        ours = {id(p) for p in self.target.params()}
        for opt in trainer.updater.get_all_optimizers().values():
            theirs = {id(p) for p in opt.target.params()}
            if ours <= theirs:
                self.attach(opt)
                return
        if self.on_nonfinite == "skip":
            raise ValueError("on_nonfinite='skip' needs an optimizer whose target holds "
                             "all the monitored parameters")
        # No single optimizer updates them all: observe after each update instead.

    # -- per iteration ------------------------------------------------------------
    def __call__(self, arg):
        if isinstance(arg, chainer.Optimizer):
            self._on_update(arg)
            return
        trainer = arg
        if self._optimizer is None:
            # No optimizer hook (see initialize): the update has already been
            # applied, so 'raise' can only stop training right after it.
            nonfinite = self.observe(iteration=trainer.updater.iteration)
            if nonfinite and self.on_nonfinite == "raise":
                raise alerts_mod.NonFiniteGradientError(trainer.updater.iteration, nonfinite)
        if self._report_trigger(trainer):
            self.report(iteration=trainer.updater.iteration)

    def _on_update(self, optimizer):
        if self._optimizer is None:
            self._optimizer = optimizer
            self._ensure_reenable(optimizer)
        scale = getattr(optimizer, "_loss_scale", None)
        nonfinite = self.observe(iteration=optimizer.t + 1, loss_scale=scale)
        if not nonfinite:
            return
        if self.on_nonfinite == "raise":
            raise alerts_mod.NonFiniteGradientError(optimizer.t + 1, nonfinite)
        # 'skip': turn the update rules off for this update; _Reenable turns them back on.
        for param in optimizer.target.params():
            rule = param.update_rule
            if rule is not None and rule.enabled:
                rule.enabled = False
                self._reenable.rules.append(rule)
        self._skipped += 1
        alert = alerts_mod.Alert(optimizer.t + 1, ", ".join(nonfinite), "skipped",
                                 float(sum(nonfinite.values())), 0.0,
                                 "non-finite values; update skipped")
        self._interval_alerts.append(alert)
        if self.warn:
            warnings.warn(alert.message(), alerts_mod.GradientAlert, stacklevel=2)

    def _setup_entries(self):
        entries = []
        for path, param in self._selected_params():
            for kind in self._kinds:
                entries.append((kind, path, param))
        if not entries:
            raise ValueError("GradientMonitor: no parameter matches the selection")
        self._entries = entries
        self._n_obs = np.zeros(len(entries), np.int64)
        if self._pending_state is not None:
            self._load_state(self._pending_state)
            self._pending_state = None

    def _regroup(self, arrays):
        """(Re)build the device groups from this iteration's arrays."""
        if self._groups:
            self._host = self._collect()
        keys = {}
        for i, arr in enumerate(arrays):
            if arr is None:
                param = self._entries[i][2]
                arr = param.array if param.array is not None else np.empty(0, np.float32)
            keys.setdefault(_device_key(arr), ([], arr))[0].append(i)
        self._groups = {k: _Group(k, idx, like) for k, (idx, like) in keys.items()}
        self._where = {}
        for g in self._groups.values():
            for i in g.indices:
                self._where[int(i)] = g
        if self._host is not None:
            # The carried-over interval (resume, device change) becomes the
            # groups' starting state, so later iterations merge into it in the
            # order an uninterrupted run uses: resumed results are bit-identical.
            for g in self._groups.values():
                with _on_device(g.key):
                    g.acc = fastmoments.Summary._wrap(  # f[indices] is a copy: ours
                        tuple(_to_device(f[g.indices], g.empty) for f in self._host.fields))
            self._host = None

    def _same_devices(self, arrays):
        where = self._where
        for i, a in enumerate(arrays):
            if a is not None and where[i].key != _device_key(a):
                return False
        return True

    def observe(self, iteration=None, loss_scale=None):
        """Summarize the current gradients (and values) into the running interval.

        The optimizer hook and the trainer call this; call it yourself only
        when using neither.

        Args:
            iteration: the iteration number, for messages (default: count of calls).
            loss_scale: divide the gradients' statistics by this (Chainer's
                loss scaling multiplies gradients by it).

        Returns:
            Under 'raise' and 'skip': a dict path -> count of non-finite
            gradient values (empty if none). Otherwise an empty dict, read
            from nothing (no synchronization).
        """
        if self._entries is None:
            self._setup_entries()
        elif self._n_iter == 0 and self._host is None and not self._same_params():
            # Parameters added (or removed) since the entries were set: each
            # interval starts on the model as it is then.
            self._setup_entries()
            self._groups = None
        self._iteration = self._iteration + 1 if iteration is None else int(iteration)
        if self._first_iteration is None:
            self._first_iteration = self._iteration
        arrays = []
        for kind, _, param in self._entries:
            arr = param.grad if kind == "grad" else param.array
            if arr is not None and not isinstance(arr, np.ndarray) and _is_chainerx(arr):
                arr = chainer.backend.from_chx(arr)
            arrays.append(arr)
        if self._groups is None or not self._same_devices(arrays):
            self._regroup(arrays)
        present = np.fromiter((a is not None for a in arrays), bool, len(arrays))
        self._n_obs += present
        self._n_iter += 1
        check = self.on_nonfinite in ("raise", "skip")
        bad = {}
        for g in self._groups.values():
            batch = [arrays[i] if arrays[i] is not None else g.empty for i in g.indices]
            with _on_device(g.key):
                s = fastmoments.summarize_each(batch)
                if loss_scale is not None and loss_scale != 1:
                    s = _unscale(s, g.indices, self._entries, loss_scale)
                # Unchecked: counts grow by the parameter count per iteration,
                # far from int64's range, and the check would synchronize a GPU.
                g.acc = s if g.acc is None else g.acc._merge(s, checked=False)
            if check:
                counts = _to_host(s.n_nonfinite)
                for j, c in zip(g.indices, counts):
                    if c and self._entries[j][0] == "grad":
                        bad[self._entries[j][1]] = int(c)
        return bad

    # -- report ---------------------------------------------------------------------
    def _reset_interval(self):
        self._groups_reset()
        self._n_iter = 0
        self._skipped = 0
        self._first_iteration = None
        self._interval_alerts = []

    def _groups_reset(self):
        if getattr(self, "_groups", None):
            for g in self._groups.values():
                g.acc = None
        self._host = None
        if getattr(self, "_entries", None) is not None:
            self._n_obs = np.zeros(len(self._entries), np.int64)

    def _collect(self):
        """The interval's pooled Summary over all entries, on the host (copies from devices)."""
        n = len(self._entries)
        total = self._host if self._host is not None else _empty_host(n)
        for g in (self._groups or {}).values():
            if g.acc is None:
                continue
            part = g.acc.to_numpy()
            fields = [np.array(f, copy=True) for f in _empty_host(n).fields]
            for f, v in zip(fields, part.fields):
                f[g.indices] = v
            total = total.merge(fastmoments.Summary.from_fields(**dict(zip(_FIELDS, fields))))
        return total

    def compute(self):
        """The statistics of the current interval, per monitored array, without reporting.

        Returns:
            (entries, stats): entries as ``[(kind, path, param)]`` and stats a
            dict name -> array over the entries (see :func:`stats.derive`).
        """
        if self._entries is None:
            self._setup_entries()
        pooled = self._collect()
        return self._entries, derive(pooled, self._n_obs), pooled

    def report(self, iteration=None) -> dict:
        """Report the interval's statistics through ``chainer.reporter`` and start a new interval.

        Args:
            iteration: the iteration to name in messages (default: the last observed).

        Returns:
            The dict of reported values (empty if nothing was observed).
        """
        if self._entries is None or self._n_iter == 0:
            return {}
        iteration = self._iteration if iteration is None else int(iteration)
        entries, st, pooled = self.compute()
        sq = sum_of_squares(pooled)
        values = {}
        rows = []
        for e, (kind, path, param) in enumerate(entries):
            if not self._n_obs[e]:
                continue  # no gradient all interval (grad None): nothing to report
            pre = self._prefix[kind]
            for name in self._stats:
                values[f"{pre}/{path}/{name}"] = float(st[name][e])
            row = {"path": path, "kind": kind, "layer": alerts_mod.layer_of(path),
                   "shape": tuple(param.shape) if param.array is not None else None,
                   "dtype": str(param.dtype) if param.array is not None else None}
            row.update({name: float(st[name][e]) for name in STATS})
            rows.append(row)
        for kind in self._kinds:
            mask = np.array([k == kind for k, _, _ in entries])
            pre = self._prefix[kind]
            values[f"{pre}/norm"] = math.sqrt(float(sq[mask].sum()) / self._n_iter)
            values[f"{pre}/nonfinite"] = float(pooled.n_nonfinite[mask].sum())
        layers, total_norm = self._layers(entries, st, sq, pooled)
        found = list(self._interval_alerts)
        if self.on_nonfinite == "warn":
            bad = {r["path"]: int(r["nonfinite"]) for r in rows if r["kind"] == "grad" and r["nonfinite"]}
            if bad:
                names = ", ".join(f"{k} ({v})" for k, v in bad.items())
                first = self._first_iteration
                found.append(alerts_mod.Alert(iteration, ", ".join(bad), "nonfinite",
                                              float(sum(bad.values())), 0.0,
                                              f"iterations {first}-{iteration}: NaN/Inf values in {names}"))
        if self.rules is not None:
            found += alerts_mod.evaluate(iteration, [x["layer"] for x in layers],
                                         np.array([x["norm"] for x in layers]),
                                         np.array([x["nonfinite"] for x in layers]),
                                         total_norm, self._layer_norms, self.rules)
            gp = self._prefix["grad"]
            for kind in ("vanishing", "exploding"):
                hit = [a for a in found if a.kind == kind]
                values[f"{gp}/alerts/{kind}"] = float(len(hit))
                for a in hit:
                    values[f"{gp}/{a.layer}/{kind}"] = 1.0
        if self.on_nonfinite == "skip":
            values[f"{self._prefix['grad']}/skipped"] = float(self._skipped)
        for x in layers:
            self._layer_norms.setdefault(x["layer"], []).append(x["norm"])
            del self._layer_norms[x["layer"]][:-max(self.rules.window if self.rules else 1, 1)]
        self.history.append((iteration, {x["layer"]: x["norm"] for x in layers},
                             {x["layer"]: x["maxabs"] for x in layers}))
        if len(self.history) > self._history_len:  # [:-0] would keep everything
            del self.history[: len(self.history) - self._history_len]
        self._serial += 1
        self.last_report = Report(serial=self._serial, iteration=iteration,
                                  first_iteration=self._first_iteration, iterations=self._n_iter,
                                  rows=rows, layers=layers, total_norm=total_norm,
                                  alerts=found, values=values)
        if self.warn:
            for a in found:
                if a.kind in ("vanishing", "exploding", "nonfinite"):
                    warnings.warn(a.message(), alerts_mod.GradientAlert, stacklevel=2)
        reporter.report(values)
        self._reset_interval()
        return values

    def _selected_params(self):
        for path, param in self.target.namedparams():
            path = path.lstrip("/")
            if self._select is None or self._select(path):
                yield path, param

    def _same_params(self):
        """Whether the entries still cover exactly the target's selected parameters."""
        now = [(path, id(param)) for path, param in self._selected_params()]
        ours = [(path, id(param)) for kind, path, param in self._entries if kind == self._kinds[0]]
        return now == ours

    def _layers(self, entries, st, sq, pooled):
        order, acc = [], {}
        for e, (kind, path, _) in enumerate(entries):
            if kind != "grad" or not self._n_obs[e]:
                continue
            name = alerts_mod.layer_of(path)
            if name not in acc:
                order.append(name)
                acc[name] = [0.0, 0.0, 0, 0]
            a = acc[name]
            a[0] += float(sq[e])
            lo, hi = st["min"][e], st["max"][e]
            if np.isfinite(lo):
                a[1] = max(a[1], abs(float(lo)), abs(float(hi)))
            a[2] += int(pooled.n_nonfinite[e])
            a[3] = max(a[3], int(self._n_obs[e]))
        layers = [{"layer": n, "norm": math.sqrt(acc[n][0] / acc[n][3]) if acc[n][3] else math.nan,
                   "maxabs": acc[n][1], "nonfinite": acc[n][2]} for n in order]
        total = math.sqrt(sum(acc[n][0] for n in order) / max(self._n_iter, 1))
        return layers, total

    # -- snapshot / resume ------------------------------------------------------------------
    def _state(self):
        pooled = self._collect() if self._entries is not None else None
        return {
            "version": 1,
            "entries": [[k, p] for k, p, _ in self._entries] if self._entries else [],
            "fields": {f: getattr(pooled, f).tolist() for f in _FIELDS} if pooled is not None else {},
            "n_obs": self._n_obs.tolist() if self._entries is not None else [],
            "n_iter": self._n_iter,
            "skipped": self._skipped,
            "first_iteration": self._first_iteration,
            "iteration": self._iteration,
            "serial": self._serial,
            "layer_norms": self._layer_norms,
            "history": self.history,
            "alerts": [dataclasses.astuple(a) for a in self._interval_alerts],
        }

    def _load_state(self, state):
        n = len(self._entries)
        where = {(k, p): i for i, (k, p) in enumerate(state["entries"])}
        fields = [np.array(f, copy=True) for f in _empty_host(n).fields]
        n_obs = np.zeros(n, np.int64)
        for e, (kind, path, _) in enumerate(self._entries):
            i = where.get((kind, path))
            if i is None:
                continue
            for f, name in zip(fields, _FIELDS):
                f[e] = state["fields"][name][i]
            n_obs[e] = state["n_obs"][i]
        self._host = fastmoments.Summary.from_fields(**dict(zip(_FIELDS, fields)))
        self._groups = None
        self._n_obs = n_obs

    def serialize(self, serializer):
        """Save or restore the running interval, alert history and report trigger (snapshots)."""
        if hasattr(self._report_trigger, "serialize"):
            self._report_trigger.serialize(serializer["report_trigger"])
        if isinstance(serializer, chainer.serializer.Serializer):
            blob = json.dumps(self._state()).encode()
            serializer("state", np.frombuffer(blob, np.uint8).copy())
            return
        raw = serializer("state", None)
        if raw is None:
            return
        state = json.loads(np.asarray(raw, np.uint8).tobytes().decode())
        self._n_iter = state["n_iter"]
        self._skipped = state["skipped"]
        self._first_iteration = state["first_iteration"]
        self._iteration = state["iteration"]
        self._serial = state["serial"]
        self._layer_norms = {k: list(v) for k, v in state["layer_norms"].items()}
        self.history = [(it, dict(n), dict(m)) for it, n, m in state["history"]]
        self._interval_alerts = [alerts_mod.Alert(*a) for a in state.get("alerts", [])]
        if self._entries is None:
            self._pending_state = state
        else:
            self._load_state(state)


def _free_hook_name(optimizer, base, suffix=""):
    """``base + suffix``, or ``base_1 + suffix``... if taken: two monitors on one
    optimizer (say, for two parts of a model) get distinct hook names, as a
    Trainer names its extensions."""
    taken = optimizer._hookable._pre_update_hooks.keys() | optimizer._hookable._post_update_hooks.keys()
    name, k = base + suffix, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}{suffix}"
    return name


def _is_chainerx(arr) -> bool:
    return type(arr).__module__.split(".", 1)[0] == "chainerx"


def _to_device(a, like):
    """Host array ``a`` on the device of ``like``."""
    return a if isinstance(like, np.ndarray) else chainer.backend.get_array_module(like).asarray(a)


def _to_host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


class _on_device:
    """Makes the group's GPU current while its kernels are launched (no-op on the CPU)."""

    def __init__(self, key):
        self.key = key
        self.ctx = None

    def __enter__(self):
        if self.key != "cpu" and self.key[0] == "cupy":
            import cupy

            self.ctx = cupy.cuda.Device(self.key[1])
            self.ctx.__enter__()

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


def _unscale(s, indices, entries, loss_scale):
    """Undo loss scaling on the gradient entries of a per-iteration Summary."""
    xp = chainer.backend.get_array_module(s.mean)
    is_grad = xp.asarray(np.array([entries[i][0] == "grad" for i in indices]))
    k = xp.where(is_grad, 1.0 / loss_scale, 1.0)
    # _wrap, not from_fields: these fields come from a valid state, and
    # from_fields' checks would synchronize a GPU every iteration.
    return fastmoments.Summary._wrap((
        s.count, s.mean * k, s.m2 * k * k, s.min * k, s.max * k, s.n_nonfinite, s.n_zero))
