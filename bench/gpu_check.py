"""One command for a GPU machine: GPU tests, GPU benchmarks, a results table.

    python bench/gpu_check.py                # tests + benchmarks (< 4 min on an H100/H200)
    python bench/gpu_check.py --sanitize     # also every kernel under compute-sanitizer memcheck
    python bench/gpu_check.py --skip-tests   # benchmarks only

Needs CuPy and a CUDA device; no network. Timings are ratios to bounds and
baselines measured in the same run on the same device (CONTRIBUTING.md):

- moments on 1 GiB float32 / float64: bytes read per second against the
  device-to-device copy's (bytes read + written) per second; and the time of
  ``cupy.mean`` + ``cupy.var`` over the time of ``fastmoments.moments``.
- weighted / order-4 moments on 1 GiB of float32 (data, or data and float32
  weights): bytes read per second against the copy's (no target yet).
- merge of two 100M-element Moments: (bytes read + written) per second
  against the copy's.
- summarize_each on ResNet-50's ~161 parameter arrays (~25.6M float32): a
  Python loop of cupy mean/std/min/max/count_nonzero per array over
  summarize_each (wall time per call, host overhead included); and bytes read
  per second against the copy's.

- group_moments (also with float64 weights at order 4) / group_summarize of
  10^8 float64 values with int64 labels
  (random in 10 and 1,000 groups, sorted in 1,000; issue 20): bytes read
  (values and labels) per second against the copy's, and the time of the
  alternatives over ours: the ``bincount`` array code (``group_moments``'
  path for more slots than the one-pass kernel holds) and the sort-based
  ``summarize_each`` path of ``group_summarize``. Whichever is faster for
  which number of slots decides ``fastmoments.gpu.grouped.plan``'s limit.

The table (device, date, versions, figures) is printed and written to
bench/results/gpu-<date>-<device>.md. Targets from issue 4 are shown next to
each ratio; the script reports, it does not assert.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

GiB = 1 << 30


def _cupy():
    try:
        import cupy
    except ImportError as e:
        sys.exit(f"gpu_check: CuPy is not installed ({e}); nothing to check")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no device")
    except Exception as e:
        sys.exit(f"gpu_check: no usable CUDA device ({e})")
    return cupy


# -- timing -----------------------------------------------------------------------------


def gpu_time(cupy, fn, repeat=10, warmup=2):
    """Median device time of ``fn()`` in seconds, from CUDA events."""
    for _ in range(warmup):
        fn()
    cupy.cuda.Device().synchronize()
    times = []
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    for _ in range(repeat):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) * 1e-3)
    return float(np.median(times))


def wall_time(cupy, fn, repeat=20, warmup=3):
    """Wall time per call of ``fn()`` with the device drained: host overhead included."""
    for _ in range(warmup):
        fn()
    cupy.cuda.Device().synchronize()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        cupy.cuda.Device().synchronize()
        best = min(best, (time.perf_counter() - t0) / repeat)
    return best


def copy_bandwidth(cupy, nbytes):
    """(bytes read + bytes written) per second of one large device-to-device copy."""
    src = cupy.empty(nbytes, cupy.uint8)
    dst = cupy.empty_like(src)
    src.fill(1)

    def run():
        dst.data.copy_from_device_async(src.data, nbytes)

    t = gpu_time(cupy, run)
    del src, dst
    return 2 * nbytes / t


# -- workloads ----------------------------------------------------------------------------


def resnet50_shapes():
    """Parameter shapes of torchvision's ResNet-50 (161 arrays, 25,557,032 values)."""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    cin = 64
    for width, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        for b in range(blocks):
            cout = 4 * width
            shapes += [(width, cin, 1, 1), (width,), (width,)]
            shapes += [(width, width, 3, 3), (width,), (width,)]
            shapes += [(cout, width, 1, 1), (cout,), (cout,)]
            if b == 0:
                shapes += [(cout, cin, 1, 1), (cout,), (cout,)]
            cin = cout
    shapes += [(1000, 2048), (1000,)]
    return shapes


def bench_moments(cupy, fm, dtype, copy_bw):
    n = GiB // np.dtype(dtype).itemsize
    x = cupy.random.standard_normal(n, dtype=np.float32).astype(dtype, copy=False)
    x += 3
    t = gpu_time(cupy, lambda: fm.moments(x))
    t_ref = gpu_time(cupy, lambda: (cupy.mean(x), cupy.var(x)))
    # the answer must match while we are here
    got = fm.moments(x)
    rel = abs(float(got.var().get()) / float(cupy.var(x.astype(np.float64)).get()) - 1)
    del x
    return {
        "time_ms": t * 1e3,
        "read_GBps": GiB / t / 1e9,
        "vs_copy": (GiB / t) / copy_bw,
        "cupy_mean_var_ms": t_ref * 1e3,
        "speedup_vs_cupy": t_ref / t,
        "var_rel_err_vs_float64": rel,
    }


def bench_weighted(cupy, fm, copy_bw, weighted, order=4):
    """Order-``order`` moments of float32 data (with float32 weights when
    ``weighted``), 1 GiB read in all: bytes read per second against the copy's."""
    n = GiB // (8 if weighted else 4)
    x = cupy.random.standard_normal(n, dtype=np.float32)
    x += 3
    w = cupy.random.random_sample(n, dtype=np.float32) if weighted else None
    t = gpu_time(cupy, lambda: fm.moments(x, weights=w, order=order))
    # its mean and variance against a float64 reference while we are here
    got = fm.moments(x, weights=w, order=order)
    x64 = x.astype(np.float64)
    w64 = cupy.ones_like(x64) if w is None else w.astype(np.float64)
    mean = float((w64 * x64).sum().get() / w64.sum().get())
    var = float((w64 * (x64 - mean) ** 2).sum().get() / w64.sum().get())
    rel = abs(float(got.var().get()) / var - 1)
    del x, w, x64, w64
    return {"time_ms": t * 1e3, "read_GBps": GiB / t / 1e9, "vs_copy": (GiB / t) / copy_bw, "var_rel_err": rel}


def bench_merge(cupy, fm, copy_bw, n=100_000_000):
    def state(seed):
        rs = cupy.random.RandomState(seed)
        count = rs.randint(1, 1000, size=n, dtype=np.int64)
        mean = rs.standard_normal(n)
        m2 = rs.random_sample(n) * count
        return fm.Moments.from_fields(count=count, mean=mean, m2=m2)

    a, b = state(1), state(2)
    t = gpu_time(cupy, lambda: fm.merge(a, b))
    moved = 3 * n * 24  # read two states, write one: 3 x (int64 + 2 float64)
    del a, b
    return {"time_ms": t * 1e3, "GBps": moved / t / 1e9, "vs_copy": (moved / t) / copy_bw}


def bench_summarize_each(cupy, fm, copy_bw):
    rs = cupy.random.RandomState(0)
    arrays = [rs.standard_normal(s, dtype=np.float32) for s in resnet50_shapes()]
    nvals = sum(a.size for a in arrays)
    nbytes = 4 * nvals

    def loop():
        out = []
        for a in arrays:
            out.append((cupy.mean(a), cupy.std(a), cupy.min(a), cupy.max(a), cupy.count_nonzero(a)))
        return out

    t_each_dev = gpu_time(cupy, lambda: fm.summarize_each(arrays), repeat=20)
    t_each = wall_time(cupy, lambda: fm.summarize_each(arrays))
    t_loop = wall_time(cupy, loop, repeat=3, warmup=1)
    return {
        "arrays": len(arrays),
        "values": nvals,
        "wall_ms": t_each * 1e3,
        "device_ms": t_each_dev * 1e3,
        "loop_wall_ms": t_loop * 1e3,
        "speedup_vs_loop": t_loop / t_each,
        "vs_copy": (nbytes / t_each_dev) / copy_bw,
    }


def bench_groups(cupy, fm, copy_bw, G, sort, n=100_000_000):
    """group_moments and group_summarize of ``n`` float64 values in ``G``
    groups (int64 labels, random or sorted) against the bincount array code
    and the sort-based summaries; results checked against a bincount
    reference in float64."""
    from fastmoments import grouped as api
    from fastmoments.gpu import grouped as gg

    rs = cupy.random.RandomState(7)
    x = rs.standard_normal(n) * 2 + 1
    lab = rs.randint(0, G, size=n, dtype=np.int64)
    if sort:
        lab.sort()
    nbytes = x.nbytes + lab.nbytes
    t = gpu_time(cupy, lambda: fm.group_moments(x, lab, ngroups=G))
    t_bc = gpu_time(cupy, lambda: api._group_weighted(cupy, x, lab, 0, G, None, False, 2, plain=True), repeat=3)
    t_sum = gpu_time(cupy, lambda: fm.group_summarize(x, lab, ngroups=G))
    x2 = x.reshape(n, 1)
    t_sorted = gpu_time(cupy, lambda: gg._sorted_summaries(x2, lab, G, (), 0), repeat=3)
    w = rs.random_sample(n)
    t_w4 = gpu_time(cupy, lambda: fm.group_moments(x, lab, ngroups=G, weights=w, order=4))
    t_w4_bc = gpu_time(cupy, lambda: api._group_weighted(cupy, x, lab, 0, G, w, False, 4), repeat=3)
    del w
    got = fm.group_moments(x, lab, ngroups=G)
    count = cupy.bincount(lab, minlength=G)
    mean = cupy.bincount(lab, x, minlength=G) / count
    var = cupy.bincount(lab, (x - mean[lab]) ** 2, minlength=G) / count
    rel = float(cupy.max(cupy.abs(got.var() / var - 1)).get())
    ok = bool((got.count == count).all().get())
    del x, lab, x2
    return {"time_ms": t * 1e3, "vs_copy": (nbytes / t) / copy_bw, "bincount_ms": t_bc * 1e3,
            "speedup_vs_bincount": t_bc / t, "summary_ms": t_sum * 1e3, "sorted_summary_ms": t_sorted * 1e3,
            "summary_vs_sorted": t_sorted / t_sum, "var_rel_err": rel, "counts_ok": ok,
            "weighted4_ms": t_w4 * 1e3, "weighted4_vs_copy": ((nbytes + n * 8) / t_w4) / copy_bw,
            "weighted4_bincount_ms": t_w4_bc * 1e3}


def sanitize_workload(cupy, fm):
    """Small calls that reach every kernel and code path, for compute-sanitizer."""
    cupy.cuda.set_allocator(None)  # no pool: out-of-bounds accesses hit unowned memory
    rs = np.random.default_rng(0)
    dtypes = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
              np.float16, np.float32, np.float64]
    for dt in dtypes:
        for shape, axes in [((), None), ((37,), None), ((5000,), None), ((70000,), None), ((33, 300), 0),
                            ((33, 300), 1), ((4, 1500, 3), 1), ((3, 4, 5), (0, 2)), ((2, 3), ())]:
            x = cupy.asarray((rs.standard_normal(shape) * 3).astype(dt))
            fm.moments(x, axis=axes)
            fm.moments(x, axis=axes, skipna=True)
            fm.summarize(x, axis=axes)
        fm.moments(cupy.asarray(rs.standard_normal((100, 80)).astype(dt))[::3, ::-2], axis=0)
    arrays = [cupy.asarray(rs.standard_normal(int(n)).astype(np.float32)) for n in (0, 1, 8191, 8192, 8193, 100000)]
    arrays += [cupy.zeros((7, 9), np.float16)[:, ::2], cupy.ones((), np.int64)]
    fm.summarize_each(arrays)
    fm.summarize_each(arrays)  # cached table
    s = fm.summarize(cupy.asarray(rs.standard_normal((40, 50))), axis=1)
    s.merge(s).reduce()
    m = fm.moments(cupy.asarray(rs.standard_normal((300, 40))), axis=1)
    m.merge(m[:1]).reduce(0)
    fm.Moments(*(cupy.asarray(f) for f in fm.moments(rs.standard_normal((64, 700)), axis=0).fields)).reduce()
    # weighted and higher-order moments: each kernel path, weight dtypes, broadcast weights
    for dt, wdt in [(np.float64, np.float64), (np.float32, None), (np.int8, np.float32), (np.float16, np.bool_),
                    (np.float64, np.int32), (np.uint64, np.float16)]:
        for shape, axes in [((), None), ((37,), None), ((5000,), None), ((70000,), None), ((33, 300), 0),
                            ((33, 300), 1), ((4, 1500, 3), 1), ((3, 4, 5), (0, 2)), ((2, 3), ())]:
            x = cupy.asarray((rs.standard_normal(shape) * 3).astype(dt))
            w = None if wdt is None else cupy.asarray((rs.random(shape) * 2).astype(wdt))
            for order in (2, 4):
                fm.moments(x, axis=axes, weights=w, order=order)
            fm.moments(x, axis=axes, weights=w, order=3, skipna=True)
    x = cupy.asarray(rs.standard_normal((300, 4000)))
    wm = fm.moments(x, axis=1, weights=cupy.asarray(rs.random(4000)), order=4)
    wm.merge(wm[:1]).reduce(0)
    fm.moments(x[::3, ::-2], axis=0, weights=cupy.asarray(rs.random((300, 4000)))[::3, ::-2], order=3)
    # grouped: the one-pass kernel (every dtype, kinds, columns, ragged ends), the sort path
    for dt in dtypes:
        for shape, axis, G in [((37,), 0, 3), ((70001,), 0, 10), ((3000, 5), 0, 40), ((4, 2500), 1, 3),
                               ((30, 200, 3), 1, 9), ((6000,), 0, 1536)]:
            x = cupy.asarray((rs.standard_normal(shape) * 3).astype(dt))
            lab = cupy.asarray(rs.integers(-1, G, shape[axis]))
            fm.group_moments(x, lab, axis=axis, ngroups=G)
            fm.group_moments(x, lab, axis=axis, ngroups=G, skipna=True)
            fm.group_summarize(x, lab, axis=axis, ngroups=G)
            for order in (2, 4):
                fm.group_moments(x, lab, axis=axis, ngroups=G, weights=cupy.asarray(rs.random(shape)), order=order)
            fm.group_moments(x, lab, axis=axis, ngroups=G, order=3, skipna=True)
    cupy.cuda.Device().synchronize()


# -- driver -------------------------------------------------------------------------------


def run_tests(timeout):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py",
           "tests/test_gpu_weighted.py", "tests/test_gpu_layout.py", "tests/test_gpu_histogram.py",
           "tests/test_gpu_groups.py", "tests/test_gpu_group_moments.py"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = e.stdout if isinstance(e.stdout, str) else "", "timeout"
    summary = [ln for ln in out.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)", ln)]
    print(out[-6000:])
    return {"rc": rc, "summary": summary[-1] if summary else "(no summary)", "seconds": time.perf_counter() - t0}


def run_sanitizer(timeout):
    cs = shutil.which("compute-sanitizer")
    if cs is None:
        for cand in ("/usr/local/cuda/bin/compute-sanitizer", "/usr/local/cuda/compute-sanitizer/compute-sanitizer"):
            if os.path.exists(cand):
                cs = cand
    if cs is None:
        return {"rc": "n/a", "summary": "compute-sanitizer not found"}
    cmd = [cs, "--tool", "memcheck", "--leak-check", "no", sys.executable, __file__, "--sanitize-child"]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired:
        return {"rc": "timeout", "summary": f"memcheck did not finish in {timeout} s"}
    m = re.findall(r"ERROR SUMMARY: (\d+) error", out)
    print(out[-4000:])
    return {"rc": rc, "summary": f"ERROR SUMMARY: {m[-1]} errors" if m else "(no ERROR SUMMARY line)"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-tests", action="store_true", help="benchmarks only")
    ap.add_argument("--skip-bench", action="store_true", help="tests (and sanitizer) only")
    ap.add_argument("--sanitize", action="store_true", help="run every kernel under compute-sanitizer memcheck")
    ap.add_argument("--sanitize-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help="results file (default bench/results/gpu-<date>-<device>.md)")
    args = ap.parse_args(argv)

    cupy = _cupy()
    import fastmoments as fm

    if args.sanitize_child:
        sanitize_workload(cupy, fm)
        print("sanitize workload done")
        return 0

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    device = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    now = _dt.datetime.now().astimezone()
    head = [
        f"# fastmoments GPU check, {now:%Y-%m-%d %H:%M %Z}",
        "",
        f"- device: {device} (compute capability {props['major']}.{props['minor']}, "
        f"{props['totalGlobalMem'] / GiB:.0f} GiB)",
        f"- CuPy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
        f"driver {cupy.cuda.runtime.driverGetVersion()}, NumPy {np.__version__}, Python {sys.version.split()[0]}",
        f"- commit: {_git_rev()}",
        "",
    ]
    rows = []
    t_start = time.perf_counter()
    if not args.skip_tests:
        tr = run_tests(timeout=300)
        rows.append(("GPU tests (tests/test_gpu.py, test_gpu_weighted.py, test_gpu_layout.py, test_gpu_histogram.py,"
                     " test_gpu_groups.py, test_gpu_group_moments.py)", str(tr["summary"]), f"rc {tr['rc']}",
                     f"{tr['seconds']:.0f} s"))
    if args.sanitize:
        sr = run_sanitizer(timeout=150)
        rows.append(("compute-sanitizer memcheck, every kernel", str(sr["summary"]), "0 errors", f"rc {sr['rc']}"))
    if not args.skip_bench:
        copy_bw = copy_bandwidth(cupy, GiB)
        rows.append(("D2D copy of 1 GiB, (read+written)/s", f"{copy_bw / 1e9:.0f} GB/s", "bound", ""))
        for dt in (np.float32, np.float64):
            r = bench_moments(cupy, fm, dt, copy_bw)
            name = np.dtype(dt).name
            rows.append((f"moments 1 GiB {name}: read/s vs copy", f"{r['vs_copy']:.2f}", ">= 0.8",
                         f"{r['time_ms']:.3f} ms, {r['read_GBps']:.0f} GB/s"))
            rows.append((f"moments 1 GiB {name}: cupy.mean+var time / ours", f"{r['speedup_vs_cupy']:.1f}x", ">= 3x",
                         f"cupy {r['cupy_mean_var_ms']:.3f} ms; var rel. err {r['var_rel_err_vs_float64']:.1e}"))
            cupy.get_default_memory_pool().free_all_blocks()
        for weighted in (False, True):
            r = bench_weighted(cupy, fm, copy_bw, weighted)
            what = "float32 + float32 weights" if weighted else "float32, unweighted"
            rows.append((f"moments order 4, 1 GiB {what}: read/s vs copy", f"{r['vs_copy']:.2f}", "(no target yet)",
                         f"{r['time_ms']:.3f} ms, {r['read_GBps']:.0f} GB/s; var rel. err {r['var_rel_err']:.1e}"))
            cupy.get_default_memory_pool().free_all_blocks()
        r = bench_merge(cupy, fm, copy_bw)
        rows.append(("merge 100M-element Moments: (read+written)/s vs copy", f"{r['vs_copy']:.2f}", ">= 0.8",
                     f"{r['time_ms']:.3f} ms, {r['GBps']:.0f} GB/s"))
        cupy.get_default_memory_pool().free_all_blocks()
        r = bench_summarize_each(cupy, fm, copy_bw)
        rows.append((f"summarize_each ResNet-50 ({r['arrays']} arrays, {r['values'] / 1e6:.1f}M f32): loop / ours",
                     f"{r['speedup_vs_loop']:.0f}x", ">= 20x",
                     f"ours {r['wall_ms']:.3f} ms wall, loop {r['loop_wall_ms']:.2f} ms wall"))
        rows.append(("summarize_each ResNet-50: read/s vs copy", f"{r['vs_copy']:.2f}", ">= 0.5",
                     f"{r['device_ms']:.3f} ms device time"))
        cupy.get_default_memory_pool().free_all_blocks()
        for G, sort in ((10, False), (1000, False), (1000, True)):
            r = bench_groups(cupy, fm, copy_bw, G, sort)
            what = f"{'sorted' if sort else 'random'} labels in {G} groups, 1e8 float64"
            rows.append((f"group_moments {what}: read/s vs copy", f"{r['vs_copy']:.2f}", "(issue 20: none on GPU)",
                         f"{r['time_ms']:.3f} ms; var rel. err {r['var_rel_err']:.1e}; counts "
                         f"{'exact' if r['counts_ok'] else 'WRONG'}"))
            rows.append((f"group_moments {what}: bincount array code / ours", f"{r['speedup_vs_bincount']:.1f}x", "> 1",
                         f"bincount {r['bincount_ms']:.3f} ms"))
            rows.append((f"group_summarize {what}: sort path / one pass", f"{r['summary_vs_sorted']:.1f}x", "> 1",
                         f"one pass {r['summary_ms']:.3f} ms, sort {r['sorted_summary_ms']:.3f} ms"))
            rows.append((f"group_moments weights, order 4, {what}: read/s vs copy", f"{r['weighted4_vs_copy']:.2f}",
                         "(none)", f"{r['weighted4_ms']:.3f} ms; bincount array code {r['weighted4_bincount_ms']:.3f} ms"))
            cupy.get_default_memory_pool().free_all_blocks()
    table = ["| check | result | target | detail |", "|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    text = "\n".join(head + table + ["", f"total {time.perf_counter() - t_start:.0f} s", ""])
    print(text)
    out = args.out
    if out is None:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", device).strip("-").lower()
        out = ROOT / "bench" / "results" / f"gpu-{now:%Y-%m-%d}-{slug}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")
    return 0


def _git_rev():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except Exception:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
