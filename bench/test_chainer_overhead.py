"""Time per training iteration of an 8-layer, 512-wide MLP on the CPU, with and without monitoring.

Variants (issue 5): no monitoring; ``fastmoments_chainer.GradientMonitor`` at
every iteration (all statistics, reported each epoch); Chainer's
``extensions.ParameterStatistics`` on the gradients with its default
statistics and with mean/std only; and the seed's way, an updater that prints
every ``param.grad`` (here to a null stream); and (issue 21) the monitor with
magnitude histograms every 10 iterations (``histogram=True,
histogram_every=10``: float16 flush/subnormal fractions and the heatmap).
Targets: the monitor adds at most 5% per iteration, with the histograms at
most 7%.

Each ``test_iteration[...]`` times one variant with pytest-benchmark. Because
a 2-core VM drifts over minutes, ``test_overhead_ratios`` also measures all
variants *interleaved* (round-robin blocks of iterations, medians over
blocks) and records the ratios to no monitoring in ``extra_info``; those are
the numbers to quote. Under ``--benchmark-disable`` every body runs a few
iterations as a plain test and checks what each variant reported.

``test_monitor_overhead`` is the issue's figure: the monitor against no
monitoring only, ABBA-interleaved in blocks of one report interval, with
the median of paired block ratios (robust to a drifting load) and where the
monitor's time goes (its hook; inside it, the core's ``summarize_each``;
reports). ``test_monitor_overhead_histogram`` is the same measurement of the
monitor with ``histogram=True, histogram_every=10`` (each 20-iteration block
counts histograms twice). Run them as three separate processes and quote the
medians::

    for i in 1 2 3; do python -m pytest bench/test_chainer_overhead.py -k monitor_overhead -s -q; done
"""

from __future__ import annotations

import io
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import pytest

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
fastmoments_chainer = pytest.importorskip("fastmoments_chainer")  # before chainer: shims
chainer = pytest.importorskip("chainer")

import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402
from chainer import training  # noqa: E402
from chainer.training import extensions  # noqa: E402

DEPTH, WIDTH, CLASSES = 8, 512, 10
BATCH = 128
EPOCH_ITERS = 20  # the dataset holds this many batches: monitors report once per 20 iterations
TARGET = 1.05     # GradientMonitor: at most +5% per iteration
HISTOGRAM_EVERY = 10       # GradientMonitor(histogram=True, histogram_every=10) (issue 21) ...
TARGET_HISTOGRAM = 1.07    # ... at most +7% per iteration

VARIANTS = ("none", "gradient_monitor", "gradient_monitor_histogram", "parameter_statistics",
            "parameter_statistics_mean_std", "print_updater")


class MLP(chainer.ChainList):
    """DEPTH Linear layers, WIDTH wide, ReLU between them."""

    def __init__(self, width=WIDTH):
        layers = [L.Linear(width, width) for _ in range(DEPTH - 1)] + [L.Linear(width, CLASSES)]
        super().__init__(*layers)

    def forward(self, x):
        for link in list(self)[:-1]:
            x = F.relu(link(x))
        return self[-1](x)


class PrintingUpdater(training.updaters.StandardUpdater):
    """The seed: after each update, print every gradient array."""

    def __init__(self, *args, stream, **kwargs):
        super().__init__(*args, **kwargs)
        self.stream = stream

    def update_core(self):
        super().update_core()
        for name, param in self.get_optimizer("main").target.namedparams():
            print(name, param.grad, file=self.stream)


class Harness:
    """One model, optimizer, updater and extensions; ``step()`` is one trainer iteration."""

    def __init__(self, variant, seed=0, full=True):
        # Untimed (CI) runs use a narrow net and 2-iteration epochs: same code paths, fast.
        width, batch, self.epoch_iters = (WIDTH, BATCH, EPOCH_ITERS) if full else (32, 16, 2)
        rng = np.random.default_rng(seed)
        n = batch * self.epoch_iters
        x = rng.standard_normal((n, width), dtype=np.float32)
        t = rng.integers(0, CLASSES, n).astype(np.int32)
        chainer.config.train = True
        np.random.seed(seed)  # Chainer's initializers draw from NumPy's global RNG
        self.model = L.Classifier(MLP(width))
        opt = chainer.optimizers.Adam()
        opt.setup(self.model)
        opt.add_hook(chainer.optimizer_hooks.GradientClipping(5.0))
        it = chainer.iterators.SerialIterator(chainer.datasets.TupleDataset(x, t), batch)
        self.stream = open(os.devnull, "w")
        if variant == "print_updater":
            updater = PrintingUpdater(it, opt, stream=self.stream)
        else:
            updater = training.updaters.StandardUpdater(it, opt)
        self.out = tempfile.mkdtemp(prefix="fm_bench_")
        self.trainer = training.Trainer(updater, (10**9, "iteration"), out=self.out)
        self.reported = {}
        exts = []
        if variant == "gradient_monitor":
            exts.append(fastmoments_chainer.GradientMonitor(self.model, report_trigger=(1, "epoch"), warn=False))
        elif variant == "gradient_monitor_histogram":
            # Untimed runs: every 2nd iteration, so each 2-iteration report interval counts histograms.
            exts.append(fastmoments_chainer.GradientMonitor(
                self.model, report_trigger=(1, "epoch"), warn=False, histogram=True,
                histogram_every=HISTOGRAM_EVERY if full else 2))
        elif variant == "parameter_statistics":
            exts.append(extensions.ParameterStatistics(self.model, report_params=False))
        elif variant == "parameter_statistics_mean_std":
            exts.append(extensions.ParameterStatistics(
                self.model, report_params=False,
                statistics={"mean": lambda a: a.mean(), "std": lambda a: a.std()}))
        self.exts = []
        for ext in exts:
            ext.initialize(self.trainer)
            self.exts.append((ext, training.get_trigger(ext.trigger)))

    def step(self):
        trainer = self.trainer
        rep = chainer.Reporter()
        rep.add_observer("main", self.model)
        with rep.scope(self.reported):
            trainer.updater.update()
            for ext, trigger in self.exts:
                if trigger(trainer):
                    ext(trainer)

    def run(self, n):
        for _ in range(n):
            self.step()

    def close(self):
        self.stream.close()


_MEDIANS: dict[str, float] = {}


def _check_reported(variant, h):
    keys = set(h.reported)
    if variant.startswith("gradient_monitor"):
        assert "grad/norm" in keys and "grad/predictor/0/W/std" in keys
        histogram = {"grad/predictor/0/fp16_flush", "grad/predictor/7/fp16_subnormal"}
        assert histogram <= keys if variant == "gradient_monitor_histogram" else not histogram & keys
    elif variant.startswith("parameter_statistics"):
        assert any(k.endswith("/grad/std") for k in keys)
    else:
        assert not any(k.startswith("grad/") for k in keys)


@pytest.mark.parametrize("variant", VARIANTS)
def test_iteration(benchmark, timing, variant):
    h = Harness(variant, full=timing)
    try:
        h.run(h.epoch_iters)  # warm: JIT, allocations, first report
        rounds = 3 * EPOCH_ITERS if timing else 1
        benchmark.group = "chainer 8x512 MLP iteration (CPU)"
        benchmark.pedantic(h.step, rounds=rounds, iterations=1, warmup_rounds=0)
        _check_reported(variant, h)
        stats = getattr(benchmark, "stats", None)
        benchmark.extra_info.update(variant=variant, batch=BATCH, depth=DEPTH, width=WIDTH)
        if stats is not None:
            med = stats.stats.median
            _MEDIANS[variant] = med
            benchmark.extra_info["median_s"] = med
            if "none" in _MEDIANS and variant != "none":
                benchmark.extra_info["ratio_to_none"] = med / _MEDIANS["none"]
    finally:
        h.close()


def interleaved(blocks, block_iters, full=True, variants=VARIANTS):
    """Median seconds per iteration of each variant, measured round-robin in blocks.

    The order of the variants is reversed every other round (ABBA...), so a
    drifting machine load favours none of them.
    """
    harnesses = {v: Harness(v, full=full) for v in variants}
    try:
        for h in harnesses.values():
            h.run(block_iters)  # warm
        times = {v: [] for v in variants}
        for b in range(blocks):
            order = list(harnesses.items())
            for v, h in (order if b % 2 == 0 else order[::-1]):
                t0 = time.perf_counter()
                h.run(block_iters)
                times[v].append((time.perf_counter() - t0) / block_iters)
        for v, h in harnesses.items():
            _check_reported(v, h)
        return {v: statistics.median(ts) for v, ts in times.items()}, times
    finally:
        for h in harnesses.values():
            h.close()


class _Timed:
    """A module whose ``summarize_each`` is timed (``clock``, the ``kit.Clock``
    of conftest.py); everything else passes through."""

    def __init__(self, module, clock):
        self._module = module
        self.summarize_each = clock(module.summarize_each)

    def __getattr__(self, name):
        return getattr(self._module, name)


def monitor_overhead(kit, rounds, block_iters, full=True, histogram=False):
    """GradientMonitor against no monitoring on *one* model, interleaved ABBA in
    blocks of one report interval, and where the monitor's time goes
    (``histogram``: the monitor with ``histogram=True, histogram_every=10``).

    One harness serves both: for the unmonitored blocks the monitor's hook is
    detached and its extension skipped. Two separate harnesses (as in
    :func:`interleaved`) differ by more than the monitor: on this VM the one
    built first ran up to 9% faster or slower, by where its arrays landed in
    memory (x1.13 with the unmonitored harness built first, x1.05 the other
    way round, same code).

    Returns a dict: ``none_s`` and ``monitor_s`` (median seconds per iteration
    over blocks), ``ratio`` (of those medians), ``paired_ratio`` (median over
    rounds of monitor block / adjacent unmonitored block: robust to load
    drift), the same two in CPU seconds of the process (``cpu_ratio``,
    ``cpu_paired_ratio``), and per monitored iteration ``hook_s`` (the whole
    optimizer hook, ``observe``), ``kernel_s`` (inside
    ``fastmoments.summarize_each``, the core's pass over the values),
    ``report_s`` (reports, amortized) and ``load`` (the 1-minute load average
    before and after).
    """
    import fastmoments
    import fastmoments_monitor.pool as pool

    load0 = os.getloadavg()[0]
    variant = "gradient_monitor_histogram" if histogram else "gradient_monitor"
    h = Harness(variant, full=full)
    monitor = h.exts[0][0]
    opt = h.trainer.updater.get_optimizer("main")
    exts = h.exts
    try:
        h.run(2 * block_iters)
        hook = monitor.observe = kit.Clock(monitor.observe)
        report = monitor.report = kit.Clock(monitor.report)
        kernel = pool.fastmoments = _Timed(fastmoments, kit.Clock)  # the pool's view of fastmoments, timed

        def monitored(on):
            if on:
                monitor.attach(opt)
                h.exts = exts
            else:
                monitor.detach()
                h.exts = []

        t_none, t_mon, c_none, c_mon = [], [], [], []
        for r in range(rounds):
            pair = [(False, t_none, c_none), (True, t_mon, c_mon)]
            for on, out, cpu in (pair if r % 2 == 0 else pair[::-1]):
                monitored(on)
                t0, c0 = time.perf_counter(), time.process_time()
                h.run(block_iters)
                out.append((time.perf_counter() - t0) / block_iters)
                cpu.append((time.process_time() - c0) / block_iters)
        monitored(True)
        _check_reported(variant, h)
        n = rounds * block_iters
        none_s, mon_s = statistics.median(t_none), statistics.median(t_mon)
        return {
            "none_s": none_s, "monitor_s": mon_s, "ratio": mon_s / none_s,
            "paired_ratio": statistics.median(m / b for m, b in zip(t_mon, t_none)),
            # CPU seconds of this process (all its threads): what the monitor
            # costs, less sensitive to other jobs' load than wall time.
            "cpu_ratio": statistics.median(c_mon) / statistics.median(c_none),
            "cpu_paired_ratio": statistics.median(m / b for m, b in zip(c_mon, c_none)),
            "hook_s": hook.seconds / n, "kernel_s": kernel.summarize_each.seconds / n,
            "report_s": report.seconds / n, "load": (load0, os.getloadavg()[0]),
        }
    finally:
        pool.fastmoments = fastmoments
        h.close()


def _monitor_overhead_test(benchmark, kit, histogram):
    timing = kit.timing
    rounds, block_iters = (24, EPOCH_ITERS) if timing else (2, 2)
    target = TARGET_HISTOGRAM if histogram else TARGET
    result = {}
    benchmark.group = "chainer 8x512 MLP, monitor vs none"
    benchmark.pedantic(lambda: result.update(monitor_overhead(kit, rounds, block_iters, timing, histogram)),
                       rounds=1, iterations=1)
    benchmark.extra_info.update({k: v for k, v in result.items()}, target_ratio=target,
                                histogram_every=HISTOGRAM_EVERY if histogram else 0)
    r = result
    label = f"monitor (histogram_every={HISTOGRAM_EVERY})" if histogram else "monitor"
    print(f"\nnone {r['none_s'] * 1e3:.2f} ms/iter, {label} {r['monitor_s'] * 1e3:.2f} "
          f"(x{r['ratio']:.3f}, paired x{r['paired_ratio']:.3f}; CPU time x{r['cpu_ratio']:.3f}, "
          f"paired x{r['cpu_paired_ratio']:.3f}; target x{target:.2f}); per iteration: hook "
          f"{r['hook_s'] * 1e6:.0f} us, of which summarize_each {r['kernel_s'] * 1e6:.0f} us; "
          f"reports {r['report_s'] * 1e6:.0f} us; load {r['load'][0]:.2f} -> {r['load'][1]:.2f}")
    assert r["hook_s"] > 0 and r["kernel_s"] > 0
    assert r["kernel_s"] <= r["hook_s"] + r["report_s"]


def test_monitor_overhead(benchmark, kit):
    """The issue's figure: the monitor's cost per iteration and where it goes."""
    _monitor_overhead_test(benchmark, kit, histogram=False)


def test_monitor_overhead_histogram(benchmark, kit):
    """The same with magnitude histograms every 10 iterations (issue 21: at most +7%)."""
    _monitor_overhead_test(benchmark, kit, histogram=True)


def test_overhead_ratios(benchmark, timing):
    blocks, block_iters = (12, EPOCH_ITERS) if timing else (1, 2)
    result = {}
    benchmark.group = "chainer 8x512 MLP, interleaved"
    benchmark.pedantic(lambda: result.update(interleaved(blocks, block_iters, timing)[0]), rounds=1, iterations=1)
    base = result["none"]
    info = benchmark.extra_info
    info.update(batch=BATCH, depth=DEPTH, width=WIDTH, blocks=blocks, block_iters=block_iters,
                target_ratio=TARGET, target_ratio_histogram=TARGET_HISTOGRAM, histogram_every=HISTOGRAM_EVERY)
    for v, s in result.items():
        info[f"{v}_s_per_iter"] = s
        info[f"{v}_ratio"] = s / base
    buf = io.StringIO()
    for v, s in result.items():
        print(f"{v:32s} {s * 1e3:8.2f} ms/iter  x{s / base:.3f}", file=buf)
    print("\n" + buf.getvalue())
    assert all(s > 0 for s in result.values())
