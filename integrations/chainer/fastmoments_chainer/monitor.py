"""GradientMonitor: the Chainer adapter of :mod:`fastmoments_monitor`.

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

What is Chainer's here: the optimizer hook and trainer extension, the skip of
an update with non-finite gradients, the reporter glue, snapshots through
Chainer's serializers, and the forward order of the layers (recorded by a
link hook during the first forward pass, then removed). Pooling, statistics,
alerts, history, tables and plots are :class:`fastmoments_monitor.MonitorCore`'s.

Cost per iteration: one :func:`fastmoments.summarize_each` call per device
holding parameters (one fused kernel launch on a GPU) and one merge of the
resulting small Summary into the interval's running Summary, on the same
device (on the CPU deferred and done for many iterations in one call).
Nothing is copied to the host until a report, except under
``on_nonfinite='raise'`` or ``'skip'``, which read the non-finite counts
(one small device-to-host copy, hence one synchronization, per iteration).
"""

from __future__ import annotations

import fnmatch
import itertools
import json

import numpy as np

import chainer
from chainer import reporter
from chainer.training import extension
from chainer.training import trigger as trigger_module

from fastmoments_monitor import alerts as alerts_mod
from fastmoments_monitor.core import MonitorCore, Report
from fastmoments_monitor.stats import STATS

__all__ = ["GradientMonitor", "Report"]

_POLICIES = ("warn", "raise", "skip")
_HOOK_IDS = itertools.count()
_DTYPE_NAMES = {}


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


class _ForwardOrder(chainer.LinkHook):
    """Records the order in which links run their forward (once; then removed)."""

    name = "fastmoments_forward_order"

    def __init__(self):
        self.seen = {}  # id(link) -> None, in first-call order (bounded by the number of links)

    def forward_preprocess(self, args):
        self.seen.setdefault(id(args.link), None)


class GradientMonitor(extension.Extension):
    """Per-parameter gradient statistics pooled exactly over report intervals.

    Reported keys are ``{prefix}/{path}/{stat}``, with ``path`` the
    parameter's path in ``target.namedparams()`` without the leading slash
    (e.g. ``grad/predictor/l1/W/norm``), and the totals ``{prefix}/norm``
    and ``{prefix}/nonfinite``. Alerts add ``{prefix}/alerts/vanishing``,
    ``/exploding`` and ``/dead`` (numbers of layers), ``{prefix}/{layer}/vanishing``,
    ``/exploding`` or ``/dead`` (1.0) for the layers that fired,
    ``{prefix}/nonfinite_first_iteration`` when NaN/Inf appeared, and,
    under 'skip', ``{prefix}/skipped`` (updates skipped in the interval).

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
        on_nonfinite: 'warn' (at the report, naming the first layer in
            backward order that had them and the iteration; no per-iteration
            cost), 'raise' (:class:`NonFiniteGradientError` at the update
            that has them) or 'skip' (that update is not applied:
            parameters, update-rule states and update-rule ``t`` are left
            untouched; ``optimizer.t`` still counts the iteration, as Chainer
            does when loss scaling skips one). 'raise' and 'skip' cost one
            host synchronization per iteration.
        alerts: an :class:`AlertRules`, or None for no vanishing, exploding
            or dead alerts.
        warn: emit alerts as :class:`GradientAlert` warnings (they are
            always reported as keys and kept in ``last_report.alerts``).
        history: how many reports to keep for plots.
        histogram: also count the gradients' magnitude histograms (same pass):
            reports gain per layer ``{prefix}/{layer}/fp16_flush`` (fraction
            of finite non-zero values below 2**-24, zero in float16) and
            ``fp16_subnormal`` ([2**-24, 2**-14)), and the plot a heatmap.
        histogram_every: count them every this many iterations (by number).
    """

    trigger = (1, "iteration")
    priority = extension.PRIORITY_WRITER
    default_name = "GradientMonitor"
    # As an optimizer hook: once per update, before the update rules run.
    timing = "pre"
    call_for_each_param = False

    def __init__(self, target, report_trigger=(1, "epoch"), *, stats=None, params=None,
                 prefix="grad", values=False, value_prefix="param", on_nonfinite="warn",
                 alerts=alerts_mod.AlertRules(), warn=True, history=1000, histogram=False,
                 histogram_every=1):
        if not isinstance(target, chainer.Link):
            raise TypeError(f"GradientMonitor watches a chainer.Link, got {type(target).__name__}")
        if on_nonfinite not in _POLICIES:
            raise ValueError(f"on_nonfinite must be one of {_POLICIES}, got {on_nonfinite!r}")
        if params is not None and not callable(params):
            if isinstance(params, str):
                params = (params,)
            patterns = tuple(params) if hasattr(params, "__iter__") else (params,)
            if not all(isinstance(p, str) for p in patterns):
                raise TypeError(f"params must be None, glob patterns or a callable, got {params!r}")
            params = lambda path, _p=patterns: any(fnmatch.fnmatchcase(path, q) for q in _p)  # noqa: E731
        self.core = MonitorCore(stats=stats, prefix=prefix, value_prefix=value_prefix,
                                nonfinite_alert=on_nonfinite == "warn", alerts=alerts, warn=warn,
                                history=history, histogram=histogram, histogram_every=histogram_every)
        self.target = target
        self.name = self.default_name
        self._report_trigger = trigger_module.get_trigger(report_trigger)
        self._stats = self.core.stats
        self._select = params
        self._prefix = {"grad": prefix, "param": value_prefix}
        self._kinds = ("grad", "param") if values else ("grad",)
        self.on_nonfinite = on_nonfinite
        self._entries = None          # [(kind, path, param)], as the core's entries
        self._sources = None          # [(param, is_grad)]
        self._optimizer = None
        self._reenable = None
        self._order_hook = None
        self._skipped = 0             # updates skipped in the interval ('skip')
        self._watch_forward()

    # -- the core's state, under the names of the first version ------------------
    rules = property(lambda self: self.core.rules)
    warn = property(lambda self: self.core.warn)
    last_report = property(lambda self: self.core.last_report)
    history = property(lambda self: self.core.history)
    _history_len = property(lambda self: self.core.history_len)
    _layer_norms = property(lambda self: self.core.layer_norms)
    _n_iter = property(lambda self: self.core.n_iter)

    def diagnosis(self) -> str:
        """One line saying what went wrong in the run so far ("no alerts" if nothing)."""
        return self.core.diagnosis()

    def plot_data(self):
        """What :func:`fastmoments_monitor.plot.plot_gradient_flow` draws."""
        return self.core.plot_data()

    # -- forward order -----------------------------------------------------------
    def _watch_forward(self):
        """Record the order of the links' forward calls until the first observation."""
        hook = _ForwardOrder()
        name = f"{hook.name}_{next(_HOOK_IDS)}"
        links = list(self.target.links())
        for link in links:
            link.add_hook(hook, name=name)
        self._order_hook = (hook, name, links)

    def _forward_order(self):
        """Layers in forward order as seen so far (None if no forward ran); stops watching."""
        if self._order_hook is None:
            return None
        hook, name, links = self._order_hook
        self._order_hook = None
        for link in links:
            if name in link.local_link_hooks:
                link.delete_hook(name)
        paths = {id(link): path.lstrip("/") or "(root)" for path, link in self.target.namedlinks()}
        owners = {alerts_mod.layer_of(path) for path, _ in self._selected_params()}
        order = []
        for i in hook.seen:  # links that own monitored parameters, in first-call order
            p = paths.get(i)
            if p in owners and p not in order:
                order.append(p)
        return order or None

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
        first = next(iter(nonfinite))  # backward order: closest to the loss first
        alert = alerts_mod.Alert(optimizer.t + 1, ", ".join(nonfinite), "skipped",
                                 float(sum(nonfinite.values())), 0.0,
                                 f"non-finite values, first in backward order in {first!r}; update skipped")
        self.core.add_alert(alert)

    def _setup_entries(self):
        entries = []
        for path, param in self._selected_params():
            for kind in self._kinds:
                entries.append((kind, path, param))
        if not entries:
            raise ValueError("GradientMonitor: no parameter matches the selection")
        self._entries = entries
        self._sources = [(param, kind == "grad") for kind, _, param in entries]
        self.core.set_entries([(k, p) for k, p, _ in entries], forward_order=self._forward_order())

    def _like(self, i):
        param = self._entries[i][2]
        arr = param.array
        if arr is not None and not isinstance(arr, np.ndarray) and _is_chainerx(arr):
            arr = chainer.backend.from_chx(arr)
        return arr

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
            gradient values (empty if none), in backward order (the layer
            closest to the loss first). Otherwise an empty dict, read from
            nothing (no synchronization).
        """
        if self._entries is None:
            self._setup_entries()
        elif self.core.n_iter == 0 and self.core.pool.host is None and not self._same_params():
            # Parameters added (or removed) since the entries were set: each
            # interval starts on the model as it is then.
            self._setup_entries()
        arrays = [p.grad if g else p.array for p, g in self._sources]
        for i, arr in enumerate(arrays):
            if arr is not None and type(arr) is not np.ndarray and _is_chainerx(arr):
                arrays[i] = chainer.backend.from_chx(arr)
        return self.core.observe(arrays, iteration, like=self._like, loss_scale=loss_scale,
                                 check=self.on_nonfinite != "warn")

    # -- report ---------------------------------------------------------------------
    def compute(self):
        """The statistics of the current interval, per monitored array, without reporting.

        Returns:
            (entries, stats, pooled): entries as ``[(kind, path, param)]``,
            stats a dict name -> array over the entries (see
            :func:`fastmoments_monitor.stats.derive`), pooled the host Summary.
        """
        if self._entries is None:
            self._setup_entries()
        st, pooled, _ = self.core.compute()
        return self._entries, st, pooled

    def report(self, iteration=None) -> dict:
        """Report the interval's statistics through ``chainer.reporter`` and start a new interval.

        Args:
            iteration: the iteration to name in messages (default: the last observed).

        Returns:
            The dict of reported values (empty if nothing was observed).
        """
        if self._entries is None or self.core.n_iter == 0:
            return {}
        skipped = self._skipped
        rep = self.core.report(iteration, describe=self._describe)
        if self.on_nonfinite == "skip":
            rep.values[f"{self._prefix['grad']}/skipped"] = float(skipped)
        self._skipped = 0
        reporter.report(rep.values)
        return rep.values

    def _describe(self, i):
        param = self._entries[i][2]
        if param.array is None:
            return None, None
        dtype = param.dtype
        name = _DTYPE_NAMES.get(dtype)
        if name is None:
            name = _DTYPE_NAMES[dtype] = str(dtype)  # str() of a dtype costs ~2 us, once per report and array
        return tuple(param.shape), name

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

    # -- snapshot / resume ------------------------------------------------------------------
    def serialize(self, serializer):
        """Save or restore the running interval, alert history and report trigger (snapshots)."""
        if hasattr(self._report_trigger, "serialize"):
            self._report_trigger.serialize(serializer["report_trigger"])
        if isinstance(serializer, chainer.serializer.Serializer):
            state = self.core.state()
            state["skipped"] = self._skipped
            blob = json.dumps(state).encode()
            serializer("state", np.frombuffer(blob, np.uint8).copy())
            return
        raw = serializer("state", None)
        if raw is None:
            return
        state = json.loads(np.asarray(raw, np.uint8).tobytes().decode())
        self.core.load_state(state)
        self._skipped = state.get("skipped", 0)


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
