"""Test helpers: small models, a gradient-capturing hook and the NumPy reference."""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

import fastmoments_chainer  # noqa: E402,F401  (shims before chainer)
import chainer  # noqa: E402
import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402
import numpy as np  # noqa: E402


class MLP(chainer.Chain):
    def __init__(self, sizes=(6, 5, 4, 3), dtype=None):
        super().__init__()
        with self.init_scope():
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                setattr(self, f"l{i + 1}", L.Linear(a, b))
        self.n = len(sizes) - 1

    def forward(self, x):
        for i in range(1, self.n + 1):
            x = getattr(self, f"l{i}")(x)
            if i < self.n:
                x = F.relu(x)
        return x


class Capture:
    """Optimizer hook that copies every gradient it sees (as float64)."""

    timing = "pre"
    call_for_each_param = False
    name = "capture"

    def __init__(self, link):
        self.link = link
        self.steps = []

    def __call__(self, optimizer):
        self.steps.append({p.lstrip("/"): None if v.grad is None else np.array(v.grad, np.float64)
                           for p, v in self.link.namedparams()})


def reference(steps, path):
    """NumPy float64 reference statistics of one parameter's gradients over ``steps``."""
    per = [s[path] for s in steps if s[path] is not None]
    allv = np.concatenate([g.ravel() for g in per])
    fin = allv[np.isfinite(allv)]
    sq = [float(np.sum(np.where(np.isfinite(g), g, 0.0) ** 2)) for g in per]
    return {
        "mean": fin.mean() if fin.size else np.nan,
        "std": fin.std() if fin.size else np.nan,
        "min": fin.min() if fin.size else np.nan,
        "max": fin.max() if fin.size else np.nan,
        "norm": np.sqrt(np.mean(sq)),
        "zeros": np.mean(allv == 0),
        "nonfinite": float(np.sum(~np.isfinite(allv))),
    }


def data(n=16, d=6, classes=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.integers(0, classes, n).astype(np.int32)
