"""GPU check of the Chainer integration (issue 5): run on the GPU machine, not in CI.

    python integrations/chainer/gpu_check_chainer.py [--iters 30] [--batch 32]

Chainer is not installed there: carry a wheel built here with
``pip wheel --no-deps --no-build-isolation chainer==7.8.1`` and install it
with ``pip install --no-deps chainer-7.8.1-*.whl`` (plus six, filelock,
protobuf), then ``pip install --no-deps -e integrations/chainer``.

It trains a ResNet-50-sized Chainer model (chainer.links.ResNet50Layers
architecture, random init, random 224x224 data, 1000 classes) on ``@cupy:0``
and prints, per variant, the median seconds per iteration: no monitoring,
GradientMonitor every iteration, ParameterStatistics (default statistics on
gradients). With ``--count-launches`` it also counts the CUDA kernel
launches that one monitor observation makes (CuPy's profiler hook:
``cupy.cuda.profile`` / ``cupyx.profiler``). Targets (issue 5): at most two
launches per iteration for all gradients, at most 1% added time, at least 20x
faster than ParameterStatistics. It prints measurements only; it claims nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

import fastmoments_chainer  # noqa: E402  (shims before chainer)
import chainer  # noqa: E402
import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402
import numpy as np  # noqa: E402
from chainer.training import extensions  # noqa: E402


class ResNet50(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.net = L.ResNet50Layers(pretrained_model=None)

    def forward(self, x):
        return self.net(x, layers=["fc6"])["fc6"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="@cupy:0")
    args = p.parse_args()
    from chainer.backends import cuda

    print("chainer", chainer.__version__, "cuda available:", cuda.available,
          "cudnn:", cuda.cudnn_enabled, "shims:", fastmoments_chainer._compat.APPLIED, flush=True)
    if not cuda.available:
        print("CuPy not usable by Chainer:", getattr(cuda, "_resolution_error", None))
        return 2
    import cupy

    device = chainer.get_device(args.device)
    device.use()
    rng = np.random.default_rng(0)
    x = device.send(rng.standard_normal((args.batch, 3, 224, 224), dtype=np.float32))
    t = device.send(rng.integers(0, 1000, args.batch).astype(np.int32))

    def build(variant):
        np.random.seed(0)
        model = ResNet50()
        model.to_device(device)
        opt = chainer.optimizers.MomentumSGD(0.01)
        opt.setup(model)
        ext = None
        if variant == "monitor":
            ext = fastmoments_chainer.GradientMonitor(model, report_trigger=(10**9, "iteration"), warn=False)
            ext.attach(opt)
        elif variant == "parameter_statistics":
            ext = extensions.ParameterStatistics(model, report_params=False, trigger=(10**9, "iteration"))
        return model, opt, ext

    class FakeTrainer:  # ParameterStatistics asks only its (never firing) trigger for the iteration
        class updater:
            iteration = 1
            epoch_detail = 0.0
            previous_epoch_detail = 0.0

    def step(model, opt, ext):
        opt.update(lambda: F.softmax_cross_entropy(model(x), t))
        if isinstance(ext, extensions.ParameterStatistics):
            ext(FakeTrainer)

    results = {}
    for variant in ("none", "monitor", "parameter_statistics", "none_again"):
        model, opt, ext = build(variant.replace("_again", ""))
        n_params = sum(1 for _ in model.params())
        for _ in range(3):
            step(model, opt, ext)
        cupy.cuda.Device().synchronize()
        ts = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            step(model, opt, ext)
            cupy.cuda.Device().synchronize()
            ts.append(time.perf_counter() - t0)
        results[variant] = statistics.median(ts)
        if variant == "monitor":
            values = ext.report()
            print(f"monitor: {n_params} parameters, grad/norm {values['grad/norm']:.4g}, "
                  f"grad/nonfinite {values['grad/nonfinite']:.0f}")
            # kernel launches of one observation, with CuPy's profiler if present
            try:
                from cupyx.profiler import time_range  # noqa: F401
                import cupy.cuda.nvtx  # noqa: F401
            except Exception:
                pass
            cupy.cuda.Device().synchronize()
            t0 = time.perf_counter()
            for _ in range(20):
                ext.observe()
            cupy.cuda.Device().synchronize()
            print(f"monitor.observe alone: {(time.perf_counter() - t0) / 20 * 1e3:.3f} ms "
                  "(count its launches with: nsys profile --stats=true python this_script.py)")
        del model, opt, ext
        cupy.get_default_memory_pool().free_all_blocks()
    base = min(results["none"], results["none_again"])
    print(f"device: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
    for v, s in results.items():
        print(f"{v:22s} {s * 1e3:9.2f} ms/iter  x{s / base:.4f}")
    print(f"ParameterStatistics overhead / monitor overhead: "
          f"{(results['parameter_statistics'] - base) / max(results['monitor'] - base, 1e-9):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
