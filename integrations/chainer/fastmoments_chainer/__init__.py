"""fastmoments_chainer: cheap, always-on gradient monitoring for Chainer.

The Chainer adapter of :mod:`fastmoments_monitor` (the framework-free core:
pooling, statistics, alerts, tables, plots): this package holds only the
optimizer hook and trainer extension, the reporter glue, the trainer
extensions that print and draw, and the compatibility shims.

Importing this package first applies the compatibility shims that let
Chainer 7.8.1 load on current stacks (see :mod:`._compat`), so import it
before ``chainer``.

- :class:`GradientMonitor` summarizes every parameter gradient each iteration
  in one fused pass per device and reports pooled statistics through
  ``chainer.reporter``; a trainer extension and an optimizer hook.
- :class:`GradientTable` prints a per-layer table at each report.
- :class:`GradientFlowPlot` writes a gradient-flow PNG at each report.
- :class:`GradientAlert`, :class:`NonFiniteGradientError`: what the alerts raise or warn.
- :func:`format_table`, :func:`plot_gradient_flow`, :class:`AlertRules`: from :mod:`fastmoments_monitor`.
"""

from . import _compat

_compat.install()

from fastmoments_monitor import Alert, AlertRules, GradientAlert, NonFiniteGradientError  # noqa: E402
from .monitor import GradientMonitor  # noqa: E402
from .plot import GradientFlowPlot, plot_gradient_flow  # noqa: E402
from .table import GradientTable, format_table  # noqa: E402

_compat.cudnn_shim()

__version__ = "0.1.0"

__all__ = [
    "GradientMonitor",
    "GradientTable",
    "GradientFlowPlot",
    "format_table",
    "plot_gradient_flow",
    "Alert",
    "AlertRules",
    "GradientAlert",
    "NonFiniteGradientError",
]
