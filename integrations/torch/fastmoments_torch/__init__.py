"""fastmoments_torch: cheap, always-on gradient monitoring for PyTorch.

::

    from fastmoments_torch import GradientMonitor
    monitor = GradientMonitor(model, report_every=100, writer=SummaryWriter())
    monitor.attach(optimizer)            # then train as usual

Every observed step, all gradients of a device go through one
:func:`fastmoments.summarize_each` call (NumPy views on the CPU, CuPy
through DLPack on CUDA) and are merged on the device; nothing is copied to
the host until a report. Reports carry the Chainer monitor's keys
(``grad/{name}/{mean,std,min,max,norm,zeros,nonfinite}``, ``grad/norm``,
``grad/nonfinite``, alerts), with ``histogram=True`` TensorBoard raw
histograms per layer from the same pass. Pooling, alerts, tables and plots
are :mod:`fastmoments_monitor`'s.
"""

from fastmoments_monitor import (
    Alert,
    AlertRules,
    GradientAlert,
    NonFiniteGradientError,
    format_table,
    plot_gradient_flow,
)

from .monitor import GradientMonitor, Report, as_array

__version__ = "0.1.0"

__all__ = [
    "GradientMonitor",
    "Report",
    "Alert",
    "AlertRules",
    "GradientAlert",
    "NonFiniteGradientError",
    "as_array",
    "format_table",
    "plot_gradient_flow",
]
