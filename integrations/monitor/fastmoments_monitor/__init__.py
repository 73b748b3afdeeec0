"""fastmoments_monitor: the framework-free core of fastmoments' gradient monitors.

Interval pooling (:class:`IntervalPool`), statistics, alert rules (vanishing,
exploding, dead layers, where NaN/Inf started), per-layer tables and
gradient-flow plots, with no deep-learning framework imported. A framework
adapter (``fastmoments_chainer``; a PyTorch one would do the same) brings
only an update hook that calls :meth:`MonitorCore.observe` with NumPy/CuPy
arrays and a reporter that logs :attr:`Report.values`. Plots need Matplotlib,
imported only when drawing.
"""

from .alerts import Alert, AlertRules, GradientAlert, NonFiniteGradientError, evaluate, layer_of
from .core import MonitorCore, Report
from .plot import plot_gradient_flow
from .pool import IntervalPool
from .stats import STATS, derive, sum_of_squares
from .table import format_table

__version__ = "0.1.0"

__all__ = [
    "MonitorCore",
    "Report",
    "IntervalPool",
    "Alert",
    "AlertRules",
    "GradientAlert",
    "NonFiniteGradientError",
    "evaluate",
    "layer_of",
    "STATS",
    "derive",
    "sum_of_squares",
    "format_table",
    "plot_gradient_flow",
]
