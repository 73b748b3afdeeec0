"""Gradient alerts: vanishing, exploding and dead layers, non-finite values.

Alerts are judged per *layer* (the link that owns the parameters, e.g.
``predictor/l1`` for ``predictor/l1/W`` and ``predictor/l1/b``) from the
pooled norms of a report interval, on the host, at report time only, so they
cost nothing per iteration. A layer's norm is the root of the sum of its
parameters' squared norms; small bias vectors therefore do not raise false
vanishing alarms on their own.

A layer whose gradient values are (almost) all exact zeros is *dead* (say,
ReLUs that no longer fire after an explosion), which is a different problem
with a different fix than small but live gradients: it is reported as
``dead``, with its zero fraction, instead of ``vanishing``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Sequence

import numpy as np

__all__ = [
    "Alert",
    "AlertRules",
    "GradientAlert",
    "NonFiniteGradientError",
    "layer_of",
    "evaluate",
]


class GradientAlert(UserWarning):
    """Warning category of the monitor's alerts (filter it with :mod:`warnings`)."""


class NonFiniteGradientError(FloatingPointError):
    """Raised under ``on_nonfinite='raise'`` when a gradient holds NaN or Inf.

    Attributes:
        iteration: the optimizer update at which it was found.
        layers: the parameter paths with non-finite values, mapped to their count.
    """

    def __init__(self, iteration, layers):
        self.iteration = iteration
        self.layers = dict(layers)
        names = ", ".join(f"{k} ({v})" for k, v in self.layers.items())
        super().__init__(f"iteration {iteration}: non-finite gradient values in {names}")


@dataclasses.dataclass(frozen=True)
class Alert:
    """One alert.

    Attributes:
        iteration: the iteration of the report (or of the update, for
            ``nonfinite`` under 'raise'/'skip' and for ``skipped``).
        layer: the layer (or parameter paths, for ``nonfinite`` and ``skipped``,
            in backward order: the one closest to the loss first).
        kind: 'vanishing', 'exploding', 'dead', 'nonfinite' or 'skipped'.
        value: the measured value (a norm, a zero fraction or a count).
        threshold: the bound it crossed.
        reason: a short human-readable explanation.
    """

    iteration: int
    layer: str
    kind: str
    value: float
    threshold: float
    reason: str

    def message(self) -> str:
        return f"iteration {self.iteration}: {self.kind} gradients in {self.layer!r} ({self.reason})"


@dataclasses.dataclass
class AlertRules:
    """Thresholds of the alerts.

    Args:
        vanish_floor: a layer whose gradient norm is below this is vanishing.
        vanish_ratio: ... or whose norm is below this fraction of the total norm.
        explode_ceiling: a layer whose norm is above this is exploding (None: no ceiling).
        jump_factor: ... or whose norm exceeds this many times the median of
            its norms at the previous ``window`` reports.
        window: how many past reports the running median looks at.
        min_history: reports needed before the jump rule applies.
        dead_fraction: a layer at least this fraction of whose gradient
            values (over the report interval) are exact zeros is dead, and
            reported as such instead of vanishing (None: no dead rule).
    """

    vanish_floor: float = 1e-8
    vanish_ratio: float = 1e-3
    explode_ceiling: float | None = 1e3
    jump_factor: float = 10.0
    window: int = 10
    min_history: int = 3
    dead_fraction: float | None = 0.99

    def __post_init__(self):
        for name in ("vanish_floor", "vanish_ratio", "jump_factor"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"AlertRules.{name} must be a non-negative number, got {v!r}")
        if self.explode_ceiling is not None and not self.explode_ceiling > 0:
            raise ValueError(f"AlertRules.explode_ceiling must be positive or None, got {self.explode_ceiling!r}")
        if not (isinstance(self.window, int) and self.window >= 1):
            raise ValueError(f"AlertRules.window must be a positive int, got {self.window!r}")
        if not (isinstance(self.min_history, int) and 1 <= self.min_history <= self.window):
            raise ValueError("AlertRules.min_history must be an int in [1, window]")
        df = self.dead_fraction
        if df is not None and not (isinstance(df, (int, float)) and 0 < df <= 1):
            raise ValueError(f"AlertRules.dead_fraction must be in (0, 1] or None, got {df!r}")


def layer_of(path: str) -> str:
    """The layer owning a parameter path: ``'predictor/l1/W'`` -> ``'predictor/l1'``."""
    head, sep, _ = path.rpartition("/")
    return head if sep else "(root)"


def evaluate(
    iteration: int,
    layers: Sequence[str],
    norms: np.ndarray,
    nonfinite: np.ndarray,
    total_norm: float,
    history: dict,
    rules: AlertRules,
    *,
    zeros: np.ndarray | None = None,
    dead_since: dict | None = None,
    after: str = "",
) -> list[Alert]:
    """Judge one report's layer norms.

    Args:
        iteration: the report's iteration.
        layers: layer names.
        norms: each layer's gradient norm over the interval (finite values).
        nonfinite: each layer's count of non-finite gradient values.
        total_norm: the norm of all monitored gradients.
        history: layer -> list of its norms at earlier reports (read only).
        rules: the thresholds.
        zeros: each layer's fraction of exact zeros among its gradient values
            (None: the dead rule is not applied).
        dead_since: layer -> the iteration from which it has been dead, for
            the message (optional).
        after: what preceded, for the dead alerts' message (e.g.
            ``"after exploding gradients at iterations 1-14"``).

    Returns:
        The alerts: dead, vanishing, then exploding ones. A layer gets at most
        one of them; a layer with non-finite values gets none (they are
        reported as such).
    """
    out, dead = [], []
    exploding = _exploding(iteration, layers, norms, nonfinite, history, rules)
    hot = {a.layer for a in exploding}
    for i, (name, norm, bad) in enumerate(zip(layers, norms, nonfinite)):
        if bad or not math.isfinite(norm) or name in hot:
            continue  # non-finite: reported as such; exploding: small only next to a huger total
        z = None if zeros is None else float(zeros[i])
        if rules.dead_fraction is not None and z is not None and z >= rules.dead_fraction:
            since = (dead_since or {}).get(name)
            text = f"{z:.1%} of its gradient values are exactly zero (>= {rules.dead_fraction:.0%})"
            if since is not None:
                text += f", dead since iteration {since}"
            if after:
                text += f", {after}"
            dead.append(Alert(iteration, name, "dead", z, float(rules.dead_fraction), text))
        elif norm < rules.vanish_floor:
            out.append(Alert(iteration, name, "vanishing", float(norm), rules.vanish_floor,
                             f"norm {norm:.3g} < floor {rules.vanish_floor:.3g}"))
        elif total_norm > 0 and norm < rules.vanish_ratio * total_norm:
            out.append(Alert(iteration, name, "vanishing", float(norm), rules.vanish_ratio * total_norm,
                             f"norm {norm:.3g} < {rules.vanish_ratio:g} x total norm {total_norm:.3g}"))
    return dead + out + exploding


def _exploding(iteration, layers, norms, nonfinite, history, rules):
    out = []
    for name, norm, bad in zip(layers, norms, nonfinite):
        if bad or not math.isfinite(norm):
            continue
        if rules.explode_ceiling is not None and norm > rules.explode_ceiling:
            out.append(Alert(iteration, name, "exploding", float(norm), rules.explode_ceiling,
                             f"norm {norm:.3g} > ceiling {rules.explode_ceiling:.3g}"))
            continue
        past = [v for v in history.get(name, [])[-rules.window:] if math.isfinite(v)]
        if len(past) >= rules.min_history:
            median = float(statistics.median(past))  # NumPy's median, in 1/25 of its time
            if median > 0 and norm > rules.jump_factor * median:
                out.append(Alert(iteration, name, "exploding", float(norm), rules.jump_factor * median,
                                 f"norm {norm:.3g} > {rules.jump_factor:g} x running median {median:.3g}"))
    return out
