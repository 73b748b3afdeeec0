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


def test_negative_and_conjugate_views():
    m = torch.nn.Linear(3, 2)
    g = torch.randn(2, 3)
    m.weight.grad = torch._neg_view(g)
    m.bias.grad = torch.tensor([1.0, -2.0])
    mon = GradientMonitor(m, report_every=None, warn=False)
    mon.observe()
    r = mon.report()
    assert math.isclose(r["grad/weight/mean"], (-g).double().mean().item(), rel_tol=1e-6)
    assert math.isclose(r["grad/weight/min"], (-g).min().item(), rel_tol=1e-6)


def test_fsdp2_dtensor_gradients_per_rank(tmp_path):
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("no gloo backend")
    from torch.distributed.fsdp import fully_shard

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"file://{tmp_path}/rendezvous")
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
        fully_shard(model)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        mon = GradientMonitor(model, report_every=1, warn=False).attach(opt)
        model(torch.randn(3, 4)).sum().backward()
        local = {n: p.grad.to_local().double() for n, p in model.named_parameters()}
        opt.step()
        r = mon.last_report.values
        for n, g in local.items():
            path = n.replace(".", "/")
            assert math.isclose(r[f"grad/{path}/norm"], g.norm().item(), rel_tol=1e-6)
            assert math.isclose(r[f"grad/{path}/max"], g.max().item(), rel_tol=1e-6)
    finally:
        dist.destroy_process_group()
