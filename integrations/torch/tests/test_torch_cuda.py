"""CUDA: gradients as CuPy arrays through DLPack on torch's current stream (skipped without a GPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fmt_testlib import RecordingWriter, frexp_counts, reference

from fastmoments_torch import GradientMonitor, NonFiniteGradientError, as_array

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)")


@pytest.fixture
def cupy():
    return pytest.importorskip("cupy", reason="CuPy is needed for CUDA gradients")


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 5)).cuda()


def test_as_array_is_zero_copy(cupy):
    g = torch.randn(7, 5, device="cuda")
    a = as_array(g)
    assert isinstance(a, cupy.ndarray) and a.data.ptr == g.data_ptr()


@pytest.mark.parametrize("on_side_stream", [False, True])
def test_statistics_on_cuda(cupy, on_side_stream):
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = RecordingWriter()
    mon = GradientMonitor(model, report_every=None, histogram=True, writer=w, warn=False).attach(opt)
    kept = []
    stream = torch.cuda.Stream() if on_side_stream else torch.cuda.current_stream()
    with torch.cuda.stream(stream):
        for _ in range(3):
            x = torch.randn(16, 32, device="cuda")
            opt.zero_grad()
            model(x).square().mean().backward()
            kept.append({n: p.grad.double().clone() for n, p in model.named_parameters()})
            opt.step()
        values = mon.report()
    for n in kept[0]:
        ref = reference(kept, n)
        for s in ("mean", "std", "min", "max", "norm", "zeros"):
            assert math.isclose(values[f"grad/{n.replace('.', '/')}/{s}"], ref[s], rel_tol=1e-9, abs_tol=1e-12)
    rec = w.histograms["grad/0/magnitude"][0][1]
    counts = frexp_counts([g[n] for g in kept for n in ("0.weight", "0.bias")])
    used = np.flatnonzero(counts)
    assert rec["bucket_counts"] == counts[used[0]:used[-1] + 1].tolist()


def test_raise_on_cuda(cupy):
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    GradientMonitor(model, on_nonfinite="raise", report_every=None, warn=False).attach(opt)
    model(torch.randn(4, 32, device="cuda")).sum().backward()
    model[2].bias.grad[1] = float("nan")
    with pytest.raises(NonFiniteGradientError, match="2.bias"):
        opt.step()

