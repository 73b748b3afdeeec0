"""Gradients of unusual kinds: complex (refused), negative/conjugate views, DTensor (FSDP2)."""

from __future__ import annotations

import math
import os

import pytest
import torch

from fastmoments_torch import GradientMonitor


class _Complex(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.b = torch.nn.Parameter(torch.zeros(2))
        self.w = torch.nn.Parameter(torch.zeros(4, dtype=torch.complex64))


def test_complex_gradient_is_a_type_error_naming_the_parameter():
    m = _Complex()
    m.b.grad = torch.ones(2)
    m.w.grad = torch.tensor([3 + 4j, 1j, 0j, 1j], dtype=torch.complex64)
    mon = GradientMonitor(m, report_every=None, warn=False)
    with pytest.raises(TypeError, match=r"'w'.*complex"):
        mon.observe()
