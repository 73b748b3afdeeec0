"""Gradient alerts: moved to :mod:`fastmoments_monitor.alerts` (framework-free); re-exported here."""

from fastmoments_monitor.alerts import (  # noqa: F401
    Alert,
    AlertRules,
    GradientAlert,
    NonFiniteGradientError,
    evaluate,
    layer_of,
)

__all__ = ["Alert", "AlertRules", "GradientAlert", "NonFiniteGradientError", "layer_of", "evaluate"]
