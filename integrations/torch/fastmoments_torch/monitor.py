"""GradientMonitor: the PyTorch adapter of :mod:`fastmoments_monitor`.

Three lines in a training loop::

    monitor = GradientMonitor(model, report_every=100, writer=SummaryWriter())
    monitor.attach(optimizer)          # an optimizer step pre-hook
    for x, y in batches:               # the loop itself is unchanged
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()               # the hook sees the gradients first; reports every 100 steps

Without an optimizer (or to observe at another point), call
:meth:`GradientMonitor.observe` after ``backward()`` instead of attaching.

What is PyTorch's here: the step pre-hook (it runs after ``GradScaler.unscale_``
when AMP is used, so it sees unscaled gradients), the zero-copy views of the
gradients (``tensor.numpy()`` on the CPU, ``cupy.from_dlpack`` on CUDA, on
the tensor's current stream), the skip of a step with non-finite gradients,
the backward order of the parameters (the order autograd accumulates their
gradients in during the first backward the monitor sees, recorded by
``register_post_accumulate_grad_hook`` hooks removed at the first observation:
right for modules used through functionals, such as MultiheadAttention's
``out_proj``, ParameterList entries and a container's own parameters used
after its children), TensorBoard output and ``state_dict``.
Pooling, statistics, alerts, history, tables and plots are
:class:`fastmoments_monitor.MonitorCore`'s, shared with the Chainer monitor.

Cost per observed step: one :func:`fastmoments.summarize_each` call per
device holding gradients (one fused launch on a GPU) and one merge of the
small result into the interval's running Summary, on that device. Nothing is
copied to the host until a report, except under ``on_nonfinite='raise'`` or
``'skip'``, which read the non-finite counts (one small device-to-host copy,
hence one synchronization, per observed step).
"""

from __future__ import annotations

import contextlib
import fnmatch

import numpy as np
import torch

from fastmoments_monitor import alerts as alerts_mod
from fastmoments_monitor.core import MonitorCore, Report
from fastmoments_monitor.plot import plot_gradient_flow
from fastmoments_monitor.table import format_table

from . import _tensorboard

__all__ = ["GradientMonitor", "Report"]

_POLICIES = ("warn", "raise", "skip")

#: torch dtypes NumPy can view without a copy.
_NUMPY_DTYPES = {torch.float16, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32,
                 torch.int64, torch.uint8, torch.bool}


def _path(name: str) -> str:
    """torch's ``layers.0.weight`` -> the monitor's ``layers/0/weight`` (layer ``layers/0``)."""
    return name.replace(".", "/")


def _dtype_name(p) -> str:
    return str(p.dtype).removeprefix("torch.")


def as_array(grad: torch.Tensor):
    """A NumPy (CPU) or CuPy (CUDA) view of a gradient tensor, without a copy where possible.

    CPU tensors of a dtype NumPy has become NumPy views (``tensor.numpy()``);
    bfloat16 (which NumPy lacks) and sparse gradients are converted (one
    copy). A DTensor (FSDP2) gives its local shard: statistics per rank. CUDA tensors become CuPy arrays through DLPack (zero-copy), on the
    current CuPy stream (the monitor makes it torch's current stream).
    """
    if grad.requires_grad:
        grad = grad.detach()
    if hasattr(grad, "to_local"):
        # A DTensor (FSDP2, tensor parallel): this rank's shard, a plain tensor (no copy, no
        # communication). Statistics are per rank.
        grad = grad.to_local()
    if grad.layout != torch.strided:
        grad = grad.to_dense()
    # A lazily negated (or conjugated) view: NumPy and DLPack refuse it; one copy makes it plain.
    grad = grad.resolve_neg().resolve_conj()
    if grad.device.type == "cpu":
        if grad.dtype not in _NUMPY_DTYPES:
            grad = grad.float()
        return grad.numpy()
    if grad.device.type == "cuda":
        import cupy

        if grad.dtype == torch.bfloat16:
            grad = grad.float()
        return cupy.from_dlpack(grad)
    raise TypeError(f"GradientMonitor supports CPU and CUDA tensors, got a gradient on {grad.device}")


class _BackwardOrder:
    """The torch names of parameters in the order autograd accumulated their gradients."""

    def __init__(self):
        self.names = {}


class _Accumulated:
    """A parameter's post-accumulate-grad hook noting its name (a class: picklable with the model)."""

    def __init__(self, order, name):
        self.order = order
        self.name = name

    def __call__(self, param):
        self.order.names.setdefault(self.name, None)


class _CudaStreams:
    """Makes CuPy launch on torch's current stream of each CUDA device used (no-op on the CPU)."""

    def __init__(self, devices):
        self.devices = sorted(devices)
        self.stack = None

    def __enter__(self):
        if not self.devices:
            return self
        import cupy

        self.stack = contextlib.ExitStack()
        for d in self.devices:
            ptr = torch.cuda.current_stream(d).cuda_stream
            self.stack.enter_context(cupy.cuda.Device(d))
            self.stack.enter_context(cupy.cuda.ExternalStream(ptr))
        return self

    def __exit__(self, *exc):
        if self.stack is not None:
            self.stack.close()
            self.stack = None


class GradientMonitor:
    """Per-parameter gradient statistics of a ``torch.nn.Module``, pooled exactly over report intervals.

    Reported keys (the Chainer monitor's): ``{prefix}/{path}/{stat}`` for
    each parameter, with ``path`` its name in ``model.named_parameters()``
    with ``/`` for ``.`` (``grad/layers/0/weight/norm``; the layer is the
    path without its last part, ``layers/0``), the totals
    ``{prefix}/norm`` and ``{prefix}/nonfinite``; alerts add
    ``{prefix}/alerts/vanishing|exploding|dead`` (numbers of layers),
    ``{prefix}/{layer}/vanishing|exploding|dead`` (1.0) for the layers that
    fired and ``{prefix}/nonfinite_first_iteration``; with ``histogram=True``
    ``{prefix}/{layer}/fp16_flush|fp16_subnormal``; under 'skip'
    ``{prefix}/skipped`` (steps skipped in the interval). Iterations are
    optimizer steps (or :meth:`observe` calls), counted from 1.

    Args:
        model: the module whose parameters to watch.
        every: observe every this many steps (1: all).
        report_every: report every this many steps (None: only when
            :meth:`report` is called).
        stats: statistic names to report (default: all of
            ``mean, std, min, max, norm, zeros, nonfinite``).
        params: which parameters: None (all that require gradients), glob
            patterns matched against torch's names (``'layers.0.*'``), or a
            callable ``name -> bool``; a pattern matching no parameter, or a
            selection of none, is a ValueError. Parameters without a gradient in a
            step are left out of that step (and of the report if they never
            had one in the interval).
        histogram: also count the gradients' magnitude histograms (same
            pass): reports gain per layer the float16 flush/subnormal
            fractions, the table two columns, the plot a heatmap, and
            ``writer`` one raw histogram per layer.
        histogram_every: count them every this many steps (by number).
        on_nonfinite: 'warn' (alert at the report, naming the first layer in
            backward order that had NaN/Inf and the step; no per-step cost),
            'raise' (:class:`~fastmoments_monitor.NonFiniteGradientError`
            before the step that has them: parameters untouched) or 'skip'
            (that optimizer step does nothing: parameters and optimizer state
            untouched, as ``GradScaler`` does; needs :meth:`attach`). 'raise'
            and 'skip' cost one host synchronization per observed step.
        alerts: an :class:`~fastmoments_monitor.AlertRules`, or None for no
            vanishing, exploding or dead alerts.
        writer: a ``torch.utils.tensorboard.SummaryWriter`` (or anything with
            ``add_scalar`` and ``add_histogram_raw``) receiving each report.
        prefix: key prefix.
        warn: emit alerts as :class:`~fastmoments_monitor.GradientAlert` warnings.
        history: how many reports to keep for plots.
    """

    def __init__(self, model, *, every=1, report_every=100, stats=None, params=None, histogram=False,
                 histogram_every=1, on_nonfinite="warn", alerts=alerts_mod.AlertRules(), writer=None,
                 prefix="grad", warn=True, history=1000):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"GradientMonitor watches a torch.nn.Module, got {type(model).__name__}")
        if on_nonfinite not in _POLICIES:
            raise ValueError(f"on_nonfinite must be one of {_POLICIES}, got {on_nonfinite!r}")
        for name, v in (("every", every), ("report_every", report_every), ("history", history)):
            if v is None and name == "report_every":
                continue
            what = f"an int >= {0 if name == 'history' else 1}{' or None' if name == 'report_every' else ''}"
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be {what}, got {v!r}")
            if v < (0 if name == "history" else 1):
                raise ValueError(f"{name} must be {what}, got {v!r}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {prefix!r}")
        if writer is not None and not hasattr(writer, "add_scalar"):
            raise TypeError("writer must have add_scalar (and add_histogram_raw for histograms)")
        if writer is not None and histogram and not hasattr(writer, "add_histogram_raw"):
            raise TypeError(f"with histogram=True the writer must have add_histogram_raw; "
                            f"{type(writer).__name__} has none")
        names = [n for n, _ in model.named_parameters()]
        if params is not None and not callable(params):
            patterns = (params,) if isinstance(params, str) else tuple(params)
            if not all(isinstance(p, str) for p in patterns):
                raise TypeError(f"params must be None, glob patterns or a callable, got {params!r}")
            for q in patterns:
                if not any(fnmatch.fnmatchcase(n, q) for n in names):
                    raise ValueError(f"params pattern {q!r} matches no parameter of the model "
                                     f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})")
            params = lambda name, _p=patterns: any(fnmatch.fnmatchcase(name, q) for q in _p)  # noqa: E731
        if not any(p.requires_grad and (params is None or params(n)) for n, p in model.named_parameters()):
            raise ValueError("GradientMonitor: no parameter (requiring gradients) matches the selection")
        self.core = MonitorCore(stats=stats, prefix=prefix, nonfinite_alert=on_nonfinite == "warn",
                                alerts=alerts, warn=warn, history=history, histogram=histogram,
                                histogram_every=histogram_every)
        self.model = model
        self.every = int(every)
        self.report_every = None if report_every is None else int(report_every)
        self.on_nonfinite = on_nonfinite
        self.writer = writer
        self.prefix = prefix
        self._select = params
        self._params = None           # [(torch name, param)] of the entries
        self._cuda = set()            # CUDA device indices holding monitored gradients
        self._step = 0                # steps seen (observed or not)
        self._skipped = 0             # steps skipped in the interval ('skip')
        self._stash = None            # gradients hidden from a skipped step
        self._bad_paths = {}          # the last observation's non-finite counts, by path
        self._optimizer = None
        self._handles = []
        self._order = None            # backward order recorder: (_BackwardOrder, handles)
        self._rank = {}               # torch name -> position in backward order (closest to the loss: 0)
        self._watch_backward()

    # -- the core's state ------------------------------------------------------------------
    last_report = property(lambda self: self.core.last_report)
    history = property(lambda self: self.core.history)

    @property
    def iteration(self) -> int:
        """Steps seen so far (the iteration of the next report)."""
        return self._step

    def diagnosis(self) -> str:
        """One line saying what went wrong in the run so far ("no alerts" if nothing)."""
        return self.core.diagnosis()

    def plot_data(self):
        """What :func:`fastmoments_monitor.plot_gradient_flow` draws."""
        return self.core.plot_data()

    def table(self, kinds=("grad",)) -> str:
        """The latest report as a per-parameter text table (:func:`fastmoments_monitor.format_table`)."""
        if self.core.last_report is None:
            return "no report yet"
        return format_table(self.core.last_report, kinds)

    def plot(self, path, title="gradient flow"):
        """Write the gradient-flow PNG (:func:`fastmoments_monitor.plot_gradient_flow`) to ``path``."""
        plot_gradient_flow(self.core, path, title=title)
        return path

    # -- backward order --------------------------------------------------------------------
    def _watch_backward(self):
        rec = _BackwardOrder()
        handles = [p.register_post_accumulate_grad_hook(_Accumulated(rec, name))
                   for name, p in self.model.named_parameters() if p.requires_grad]
        self._order = (rec, handles)

    def _stop_watching_backward(self):
        if self._order is not None:
            for h in self._order[1]:
                h.remove()
            self._order = None

    def _take_backward_order(self):
        """Once a backward has run since :meth:`_watch_backward`: keep its order, remove the hooks.

        Returns the layers in forward order (the reverse of the order backward
        first reached them) for the core, or None while no backward was seen.
        """
        if self._order is None or not self._order[0].names:
            return None
        names = list(self._order[0].names)
        self._stop_watching_backward()
        self._rank = {n: i for i, n in enumerate(names)}
        layers = {}
        for n in names:  # a layer ranks where backward first reaches one of its parameters
            layers.setdefault(alerts_mod.layer_of(_path(n)), None)
        return list(reversed(list(layers)))

    # -- registration --------------------------------------------------------------------
    def attach(self, optimizer):
        """Observe before each ``optimizer.step()`` (a step pre-hook; and a post-hook under 'skip').

        Attach to the one optimizer that steps once per iteration; with
        ``GradScaler`` the hook runs after its ``unscale_`` and not at all for
        the steps the scaler skips (their gradients held NaN/Inf).
        """
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"attach takes a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self._remove_step_hooks()
        self._handles.append(optimizer.register_step_pre_hook(self._pre_step))
        if self.on_nonfinite == "skip":
            self._handles.append(optimizer.register_step_post_hook(self._post_step))
        self._optimizer = optimizer
        return self

    def detach(self):
        """Remove every hook of the monitor's: :meth:`attach`'s and the backward-order recorder's.

        After it the monitor still observes through :meth:`observe`, in the
        backward order recorded so far (if none was: the parameters' order).
        """
        self._remove_step_hooks()
        self._stop_watching_backward()

    def _remove_step_hooks(self):
        for h in self._handles:
            h.remove()
        self._handles = []
        self._optimizer = None

    def _pre_step(self, optimizer, args, kwargs):
        bad = self.step()
        if bad and self.on_nonfinite == "skip":
            # Hide every gradient from this step: torch's optimizers leave a
            # parameter without a gradient (and its state) untouched. The
            # post-hook puts the gradients back.
            stash = []
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        stash.append((p, p.grad))
                        p.grad = None
            self._stash = stash
            self._skipped += 1
            paths = self._bad_paths  # the core's names: the table flags their layers 'S'
            first = next(iter(bad))  # backward order: closest to the loss first
            self.core.add_alert(alerts_mod.Alert(
                self._step, ", ".join(paths), "skipped", float(sum(paths.values())), 0.0,
                f"non-finite values, first in backward order in {first!r}; step skipped"))
        if self.report_every is not None and self._step % self.report_every == 0:
            self.report()

    def _post_step(self, optimizer, args, kwargs):
        if self._stash is not None:
            for p, g in self._stash:
                p.grad = g
            self._stash = None

    # -- per step --------------------------------------------------------------------------
    def step(self):
        """Count one step and observe it if it is an observed one (``every``); no report.

        Returns the non-finite counts of :meth:`observe` (empty if not observed).
        """
        self._step += 1
        if self._step % self.every:
            return {}
        bad = self._observe(self._step)
        if bad and self.on_nonfinite == "raise":
            raise alerts_mod.NonFiniteGradientError(self._step, bad)
        return bad

    def observe(self):
        """Count one step, observe the current gradients and report when due.

        For loops without :meth:`attach`: call it after ``backward()``.
        Under 'raise' it raises :class:`~fastmoments_monitor.NonFiniteGradientError`
        for non-finite gradients.

        Returns:
            Under 'raise' and 'skip': a dict name -> count of non-finite
            values (empty if none), in backward order (closest to the loss
            first): under 'skip' it is for the caller to skip its update.
            Otherwise an empty dict, read from nothing (no synchronization).
        """
        bad = self.step()
        if self.report_every is not None and self._step % self.report_every == 0:
            self.report()
        return bad

    def _setup_entries(self):
        chosen = []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            if self._select is None or self._select(name):
                chosen.append((name, p))
        if not chosen:
            raise ValueError("GradientMonitor: no parameter (requiring gradients) matches the selection")
        self._params = chosen
        self._paths = {_path(n): n for n, _ in chosen}
        self.core.set_entries([("grad", _path(n)) for n, _ in chosen], forward_order=self._take_backward_order())

    def _same_params(self):
        now = [(n, id(p)) for n, p in self.model.named_parameters()
               if p.requires_grad and (self._select is None or self._select(n))]
        return now == [(n, id(p)) for n, p in self._params]

    def _like(self, i):
        p = self._params[i][1]
        if p.device.type == "cuda":
            import cupy

            with cupy.cuda.Device(p.device.index):
                return cupy.empty(0, np.float32)
        return np.empty(0, np.float32)

    def _observe(self, iteration):
        if self._params is None:
            self._setup_entries()
        elif (self.core.n_iter == 0 and self.core.pool.host is None and self.core._pending_state is None
              and not self._same_params()):
            # Parameters added or removed since: each interval starts on the model as it is.
            self._setup_entries()
        arrays = []
        for name, p in self._params:
            g = p.grad
            if g is None:
                arrays.append(None)
                continue
            if g.is_complex():
                raise TypeError(f"GradientMonitor: the gradient of parameter {name!r} is complex ({g.dtype}), "
                                f"which it does not summarize; leave the parameter out with params=")
            if g.device.type == "cuda":
                self._cuda.add(g.device.index)
            arrays.append(g)
        if self._order is not None:  # no backward was seen before the entries were set
            order = self._take_backward_order()
            if order is not None:
                self.core.forward_order = order
        with _CudaStreams(self._cuda):
            arrays = [None if g is None else as_array(g) for g in arrays]
            bad = self.core.observe(arrays, iteration, like=self._like,
                                    check=self.on_nonfinite != "warn")
        self._bad_paths = bad
        # The core ranks layers; within a layer (a ParameterList, a container's own
        # parameters) the parameters follow the order backward reached them.
        named = [(self._paths.get(k, k), v) for k, v in bad.items()]
        last = len(self._rank)
        named = sorted(enumerate(named), key=lambda t: (self._rank.get(t[1][0], last), t[0]))
        return {n: v for _, (n, v) in named}

    # -- report ----------------------------------------------------------------------------
    def report(self, iteration=None) -> dict:
        """Close the interval: statistics, alerts, history; send them to ``writer``.

        Args:
            iteration: the step to name in messages and give the writer
                (default: the steps counted so far, :attr:`iteration`).

        Returns:
            The dict of reported values (empty if nothing was observed).
        """
        if self._params is None or self.core.n_iter == 0:
            return {}
        skipped = self._skipped
        if iteration is None:
            iteration = self._step
        with _CudaStreams(self._cuda):
            hist = None
            if self.writer is not None and self.core.histogram_every and hasattr(self.writer, "add_histogram_raw"):
                hist = _tensorboard.layer_histograms(self.core)  # before the report resets the interval
            rep = self.core.report(iteration, describe=self._describe)
        if rep is None:
            return {}
        if self.on_nonfinite == "skip":
            rep.values[f"{self.prefix}/skipped"] = float(skipped)
        self._skipped = 0
        if self.writer is not None:
            step = rep.iteration
            for k, v in rep.values.items():
                self.writer.add_scalar(k, v, step)
            for layer, h in (hist or {}).items():
                self.writer.add_histogram_raw(f"{self.prefix}/{layer}/magnitude", global_step=step, **h)
        return rep.values

    def _describe(self, i):
        p = self._params[i][1]
        return tuple(p.shape), str(p.dtype).removeprefix("torch.")

    def _check_params(self, saved):
        """The saved statistics are merged by name: each name must be the same parameter (size, dtype)."""
        if self._params is not None:
            now = dict(self._params)
        else:
            now = {n: p for n, p in self.model.named_parameters()
                   if p.requires_grad and (self._select is None or self._select(n))}
        for name, (numel, dtype) in saved.items():
            p = now.get(name)
            if p is None:
                raise ValueError(f"the saved GradientMonitor state has parameter {name!r}, which this monitor's "
                                 f"model does not have (or does not monitor): a state of another model?")
            if p.numel() != int(numel) or _dtype_name(p) != dtype:
                raise ValueError(f"parameter {name!r} has {p.numel()} elements of dtype {_dtype_name(p)} here but "
                                 f"{int(numel)} of dtype {dtype} in the saved GradientMonitor state: a state of "
                                 f"another model?")

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs (plain Python values: ``torch.save``/JSON-able)."""
        with _CudaStreams(self._cuda):
            core = self.core.state()
        params = {n: [p.numel(), _dtype_name(p)] for n, p in self._params or ()}
        return {"version": 1, "core": core, "step": self._step, "skipped": self._skipped,
                "backward_order": sorted(self._rank, key=self._rank.get), "params": params}

    def load_state_dict(self, state: dict):
        """Restore :meth:`state_dict`: the next reports are those an uninterrupted run gives."""
        if not isinstance(state, dict) or not isinstance(state.get("core"), dict) or "step" not in state:
            got = f"a dict with keys {sorted(map(str, state))[:5]}" if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"load_state_dict takes what GradientMonitor.state_dict() returned, got {got}")
        if int(state.get("version", 1)) != 1:
            raise ValueError(f"unknown GradientMonitor state version {state.get('version')!r}")
        self._check_params(state.get("params") or {})
        self.core.load_state(state["core"])
        self._step = int(state["step"])
        self._skipped = int(state.get("skipped", 0))
        self._rank = {n: i for i, n in enumerate(state.get("backward_order", ()))} or self._rank
