"""Shared helpers of fastmoments_torch's tests: a small MLP, a loop that keeps every gradient
(a plain module, not conftest.py: other test folders have a conftest of their own)."""

from __future__ import annotations

import numpy as np
import torch

N_BINS = 279  # fastmoments' histogram: one bin per exponent -149..127, under- and overflow


class MLP(torch.nn.Module):
    """``depth`` Linear layers named ``layers.0``, ``layers.1``, ... with ReLU between them."""

    def __init__(self, sizes=(8, 16, 12, 3)):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def make(seed=0, sizes=(8, 16, 12, 3), lr=0.05, opt="sgd"):
    torch.manual_seed(seed)
    model = MLP(sizes)
    if opt == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return model, optimizer


def batches(n, seed=1, dim=8, classes=3, size=16):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, dim, generator=g), torch.randint(0, classes, (size,), generator=g))
            for _ in range(n)]


def train(model, optimizer, data, *, poison=None, keep=True, after_backward=None):
    """Train on ``data``; returns per step the gradients as float64 clones (name -> tensor).

    ``poison``: step (1-based) -> (parameter name, value) written into that
    gradient's first element after backward.
    """
    kept = []
    for step, (x, y) in enumerate(data, 1):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        if poison and step in poison:
            name, value = poison[step]
            with torch.no_grad():
                dict(model.named_parameters())[name].grad.view(-1)[0] = value
        if after_backward is not None:
            after_backward(step)
        if keep:
            kept.append({n: p.grad.detach().to(torch.float64).clone()
                         for n, p in model.named_parameters() if p.grad is not None})
        optimizer.step()
    return kept


def reference(grads_per_step, name):
    """The monitor's statistics of one parameter over steps, from torch's own float64 ops."""
    per = [g[name] for g in grads_per_step if name in g]
    allv = torch.cat([t.reshape(-1) for t in per])
    fin = allv[torch.isfinite(allv)]
    lo, hi = torch.aminmax(fin)
    sq = torch.stack([torch.linalg.vector_norm(torch.where(torch.isfinite(t), t, 0.0)) ** 2 for t in per])
    return {"mean": fin.mean().item(), "std": fin.std(unbiased=False).item(), "min": lo.item(),
            "max": hi.item(), "norm": torch.sqrt(sq.mean()).item(),
            "zeros": (allv == 0).double().mean().item(),
            "nonfinite": float((~torch.isfinite(allv)).sum().item())}


def frexp_counts(tensors):
    """NumPy's reference of fastmoments' magnitude histogram: frexp exponents of the finite non-zero |v|."""
    v = np.concatenate([np.abs(t.detach().cpu().numpy().astype(np.float64).ravel()) for t in tensors])
    v = v[np.isfinite(v) & (v != 0)]
    _, e = np.frexp(v)  # 2**(e-1) <= v < 2**e: bin 1 + (e - 1) + 149
    return np.bincount(np.clip(e + 149, 0, N_BINS - 1), minlength=N_BINS).astype(np.int64)


class RecordingWriter:
    """Any object with add_scalar and add_histogram_raw will do as a writer."""

    def __init__(self):
        self.scalars = {}
        self.histograms = {}

    def add_scalar(self, tag, value, global_step=None):
        self.scalars.setdefault(tag, []).append((global_step, value))

    def add_histogram_raw(self, tag, min, max, num, sum, sum_squares, bucket_limits, bucket_counts,  # noqa: A002
                          global_step=None):
        self.histograms.setdefault(tag, []).append((global_step, dict(
            min=min, max=max, num=num, sum=sum, sum_squares=sum_squares, bucket_limits=list(bucket_limits),
            bucket_counts=list(bucket_counts))))
