"""Shared machinery of the core benchmark suite (``bench/test_core_*.py``).

Every figure is reported against the *streaming bound*, measured on the same
bytes interleaved with the workload's own rounds (see ``run_big``): a parallel Numba kernel that only reads the data (a sum)
or, for merges, reads six arrays and writes three. Absolute times on shared
2-core machines are noisy; ratios taken minutes apart on the same machine are
much less so.

With ``--benchmark-disable`` (the CI mode) each benchmark body runs once as a
plain test on small arrays and its result is checked against NumPy; the big
sizes below are used only when timing.

Nothing here is autouse: the other suites in ``bench/`` (Chainer, Dask, GPU)
share this directory and must not pay for it.
"""

from __future__ import annotations

import math
import types
import statistics
import time

import numpy as np
import pytest
from numba import njit, prange

# -- sizes -------------------------------------------------------------------------

MB = 1_000_000
#: Bytes of each 2-D workload when timing (the issue: "about 400 MB each").
BYTES_2D = 400 * MB
#: Elements of each 1-D workload when timing (the issue: at least 50 million).
N_1D = 50_000_000
#: Rounds of the big workloads (each ~0.02-0.6 s): few, so the suite stays short;
#: 7 rather than 5 steadies the medians on these shared VMs.
ROUNDS_BIG = 7


@pytest.fixture(scope="session")
def timing(request) -> bool:
    """True when pytest-benchmark measures; False under ``--benchmark-disable``."""
    cfg = request.config
    disabled = cfg.getoption("benchmark_disable", False) or cfg.getoption("benchmark_skip", False)
    return not disabled


# -- the streaming bounds -----------------------------------------------------------

_CHUNK = 1 << 16  # elements per parallel task of the merge bound
_SEG_BYTES = 1 << 16  # bytes per stream segment of the read bounds


@njit(fastmath=True, cache=True)
def _sum(y):
    s = y.dtype.type(0)
    for i in range(y.size):
        s += y[i]
    return s


@njit(fastmath=True, cache=True)
def _sum4(a, b, c, d):
    s0 = s1 = s2 = s3 = a.dtype.type(0)
    for i in range(a.size):
        s0 += a[i]
        s1 += b[i]
        s2 += c[i]
        s3 += d[i]
    return (s0 + s1) + (s2 + s3)


@njit(fastmath=True, cache=True)
def _read_range(x, g0, g1, seg):
    """Sum of groups g0..g1 of ``x``: each group is four adjacent segments of
    ``seg`` values, read in one loop as four streams."""
    s = 0.0
    for g in range(g0, g1):
        o = g * 4 * seg
        s += _sum4(x[o : o + seg], x[o + seg : o + 2 * seg], x[o + 2 * seg : o + 3 * seg], x[o + 3 * seg : o + 4 * seg])
    return s


@njit(cache=True)
def _read_plan(n, itemsize):
    """(values per segment, groups, groups per task, tasks) for reading ``n`` values."""
    seg = max(1, _SEG_BYTES // itemsize)
    ng = n // (4 * seg)
    per_task = max(1, min(8, ng // 16))  # at least 16 tasks where there are 16 groups
    return seg, ng, per_task, (ng + per_task - 1) // per_task


@njit(parallel=True, fastmath=True, cache=True)
def stream_sum(x):
    """Sum of a contiguous 1-D array: one read of its bytes at full speed.

    A core reading one stream keeps too few cache misses in flight to reach the
    memory's bandwidth: each task reads four adjacent 64 KiB segments in one
    loop, four streams for the hardware prefetchers (measured at 400 MB on 2
    threads: 7-16% faster than one stream). The inner loops run over slices
    with a non-negative index so that LLVM vectorizes them; the accumulators
    have the input's dtype (the cheapest read).
    """
    seg, ng, per_task, nt = _read_plan(x.size, x.itemsize)
    parts = np.zeros(nt + 1)
    for t in prange(nt):
        parts[t] = _read_range(x, t * per_task, min(ng, (t + 1) * per_task), seg)
    parts[nt] = _sum(x[ng * 4 * seg :])
    return parts.sum()


@njit(parallel=True, fastmath=True, cache=True)
def _merge9_into(n1, m1, q1, n2, m2, q2, on, om, oq):
    n = n1.size
    nchunk = (n + _CHUNK - 1) // _CHUNK
    for c in prange(nchunk):
        lo = c * _CHUNK
        hi = min(lo + _CHUNK, n)
        a, b, d, e, f, g = n1[lo:hi], m1[lo:hi], q1[lo:hi], n2[lo:hi], m2[lo:hi], q2[lo:hi]
        xn, xm, xq = on[lo:hi], om[lo:hi], oq[lo:hi]
        for i in range(a.size):
            xn[i] = a[i] + e[i]
            xm[i] = b[i] + f[i]
            xq[i] = d[i] + g[i]


def stream_merge9(n1, m1, q1, n2, m2, q2):
    """Read six arrays, write three new ones: the traffic of an elementwise merge.

    The outputs are new arrays, as any merge returning them must allocate; their
    first touch is part of the cost. They are allocated by NumPy, which asks the
    kernel for transparent huge pages on big arrays (``madvise``); ``np.empty``
    inside a Numba function does not, and its 4 KiB page faults alone cost ~4x
    this whole kernel on these VMs.
    """
    on, om, oq = np.empty_like(n1), np.empty_like(m1), np.empty_like(q1)
    _merge9_into(n1, m1, q1, n2, m2, q2, on, om, oq)
    return on, om, oq


@njit(parallel=True, fastmath=True, cache=True)
def _read_write_into(x, out_a, out_b):
    seg, ng, per_task, nt = _read_plan(x.size, x.itemsize)
    m = out_a.size
    parts = np.zeros(nt + 1)
    for t in prange(nt + 1):
        if t < nt:
            s = _read_range(x, t * per_task, min(ng, (t + 1) * per_task), seg)
        else:
            s = _sum(x[ng * 4 * seg :])
        parts[t] = s
        # This task's share of the outputs, so reads and writes stream together.
        a = out_a[t * m // (nt + 1) : (t + 1) * m // (nt + 1)]
        b = out_b[t * m // (nt + 1) : (t + 1) * m // (nt + 1)]
        for j in range(a.size):
            a[j] = s
            b[j] = s
    return parts.sum()


def stream_read_write(x, n_out):
    """Read all of ``x`` once and write two new float64 arrays of ``n_out``
    values: the least traffic of any reduction returning a mean and a variance.

    Where the output is as large as the input (short rows over the last axis)
    the read-only bound cannot be reached by any such reduction; this one can.
    Outputs are allocated by NumPy (huge pages), their first touch included.
    """
    out_a, out_b = np.empty(n_out), np.empty(n_out)
    _read_write_into(x.reshape(-1), out_a, out_b)
    return out_a, out_b


def bound_of_array(x):
    """The bound kernel applied to all of ``x``'s bytes (C-contiguous, any shape)."""
    return stream_sum(x.reshape(-1))


# -- recording -------------------------------------------------------------------------


class Recorder:
    """Fills ``benchmark.extra_info``.

    ``extra_info`` keys (read by ``bench/report.py``):
        workload, variant, role ("fastmoments" | "baseline" | "bound"),
        bytes (input bytes read per call), gbps, frac_bound (bound time /
        this median), bound_s, ns_per_elem (where elements are given),
        target (the issue's target fraction of the bound, if any), primary
        (the fastmoments row that baselines are compared with), var_rel_err
        (relative error of the variance against NumPy in float64).
    """

    def __init__(self, timing: bool):
        self.timing = timing

    def record(self, benchmark, *, workload, variant, role, nbytes, bound_s=None,
               elements=None, target=None, primary=False, var_rel_err=None):
        info = benchmark.extra_info
        info.update(workload=workload, variant=variant, role=role, bytes=int(nbytes))
        if var_rel_err is not None:
            info["var_rel_err"] = var_rel_err
        if target is not None:
            info["target"] = target
        if primary:
            info["primary"] = True
        benchmark.group = workload
        stats = getattr(benchmark, "stats", None)
        if stats is None:  # --benchmark-disable: nothing was timed
            return
        med = stats.stats.median
        info["median_s"] = med
        info["gbps"] = nbytes / med / 1e9
        if elements:
            info["ns_per_elem"] = med / elements * 1e9
        if bound_s is not None:
            info["bound_s"] = bound_s
            info["frac_bound"] = bound_s / med




def run_big(benchmark, fn, *args, bound=None, rounds=ROUNDS_BIG):
    """Time a big workload: one warm-up (JIT compile, page faults), then ``rounds`` runs.

    ``bound`` is ``(bound_fn, bound_args)``: the bound kernel is timed right
    before every round (in pedantic's untimed ``setup``), so workload and bound
    are measured interleaved, under the same conditions, even when the load of
    a shared machine drifts. Returns ``(result, median bound seconds or None)``.
    """
    times = []
    setup = None
    if bound is not None and not benchmark.disabled:
        bound_fn, bound_args = bound

        def setup():
            t0 = time.perf_counter()
            bound_fn(*bound_args)
            times.append(time.perf_counter() - t0)

    result = benchmark.pedantic(fn, args=args, setup=setup, rounds=rounds, warmup_rounds=1, iterations=1)
    return result, (statistics.median(times[1:]) if len(times) > 1 else None)  # [0]: warm-up


# -- data and references ----------------------------------------------------------------


def normal(shape, dtype, seed=0):
    """Normal values with mean 1 and std 2 (a non-zero mean exercises the centring)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape, dtype=np.dtype(dtype))
    x *= 2
    x += 1
    return x


def reference_moments(x, axis=None):
    """(count, mean, m2) from NumPy in float64 (independent of fastmoments)."""
    mean = np.mean(x, axis=axis, dtype=np.float64)
    var = np.var(x, axis=axis, dtype=np.float64)
    count = x.size if axis is None else x.shape[axis]
    return count, mean, var * count


def _rel_err(got, want):
    """Largest error relative to the typical size of ``want`` (rows may be tiny)."""
    got = np.asarray(got, dtype=np.float64)
    return float(np.max(np.abs(got - want)) / np.mean(np.abs(want)))


def check_moments(m, x, axis=None, ref=None):
    """Assert a fastmoments Moments equals NumPy's float64 figures; return m2's error."""
    count, mean, m2 = ref if ref is not None else reference_moments(x, axis)
    np.testing.assert_array_equal(m.count, count)
    scale = float(np.max(np.abs(mean))) + 1.0
    np.testing.assert_allclose(m.mean, mean, rtol=1e-10, atol=1e-12 * scale)
    np.testing.assert_allclose(m.m2, m2, rtol=1e-9, atol=1e-9 * float(np.mean(m2)))
    return _rel_err(m.m2, m2)


def check_var(var, x, axis=None, rtol=1e-9, ref=None):
    """Assert a baseline's population variance against NumPy's float64 one.

    Returns the error relative to the typical variance, recorded as
    ``var_rel_err`` (baselines that accumulate float32 in float32 lose digits
    on big arrays; that is part of the comparison, not hidden by a loose check).
    """
    count, _, m2 = ref if ref is not None else reference_moments(x, axis)
    want = m2 / count
    got = np.asarray(var, dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.mean(want)))
    return _rel_err(got, want)


def check_sum(total, x, rtol):
    np.testing.assert_allclose(total, np.sum(x, dtype=np.float64), rtol=rtol,
                               atol=rtol * math.sqrt(x.size) * 10)


# -- ResNet-50 parameter shapes ---------------------------------------------------------


def resnet50_param_shapes():
    """Shapes of torchvision's ResNet-50 parameters (161 tensors, 25,557,032 values).

    Conv weights are (out, in, kh, kw) without bias; each BatchNorm has a weight
    and a bias of its width; bottleneck blocks [3, 4, 6, 3] with expansion 4,
    a 1x1 downsample conv + BatchNorm in each stage's first block; fc 2048->1000.
    """
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    inplanes = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            shapes += [(planes, inplanes, 1, 1), (planes,), (planes,),
                       (planes, planes, 3, 3), (planes,), (planes,),
                       (planes * 4, planes, 1, 1), (planes * 4,), (planes * 4,)]
            if b == 0:
                shapes += [(planes * 4, inplanes, 1, 1), (planes * 4,), (planes * 4,)]
            inplanes = planes * 4
    shapes += [(1000, 2048), (1000,)]
    return shapes


# -- the one fixture the test modules use ------------------------------------------------


class Clock:
    """Wraps a callable and adds up the seconds spent in it and the calls
    (the overhead benchmarks: where a monitor's time goes)."""

    def __init__(self, fn):
        self.fn = fn
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


@pytest.fixture(scope="session")
def kit(timing):
    """Helpers of this file, handed out as a fixture (no ``import conftest``).

    Attributes: timing, recorder, run_big, normal, reference_moments,
    check_moments, check_var, check_sum, stream_sum, stream_merge9, stream_read_write,
    bound_of_array, resnet50_param_shapes, N_1D, BYTES_2D, ROUNDS_BIG, Clock.
    """
    return types.SimpleNamespace(
        timing=timing,
        recorder=Recorder(timing),
        run_big=run_big,
        normal=normal,
        reference_moments=reference_moments,
        check_moments=check_moments,
        check_var=check_var,
        check_sum=check_sum,
        stream_sum=stream_sum,
        stream_merge9=stream_merge9,
        stream_read_write=stream_read_write,
        bound_of_array=bound_of_array,
        resnet50_param_shapes=resnet50_param_shapes,
        N_1D=N_1D,
        BYTES_2D=BYTES_2D,
        ROUNDS_BIG=ROUNDS_BIG,
        Clock=Clock,
    )
