"""Run the core CPU benchmark suite and write its comparison table.

Usage (from the repository root):

    .venv/bin/python bench/report.py                 # run bench/test_core_*.py, write the table
    .venv/bin/python bench/report.py --from-json F   # only render the table of a saved run
    .venv/bin/python bench/report.py -- -k 1d        # extra pytest arguments after --

A run saves pytest-benchmark's JSON (default ``bench/results/cpu.json``) and
writes ``bench/results/cpu.md``: machine, versions, date, one row per
benchmark (median time, GB/s of input read, fraction of the streaming bound
measured in the same run, how many times faster fastmoments is than each
baseline, the variance's error against NumPy in float64) and the issue's
targets, met or missed. Two saved runs compare with pytest-benchmark's own
tool: ``.venv/bin/pytest-benchmark compare $PWD/A.json $PWD/B.json --group-by=name``
(both paths absolute, or both relative: the tool refuses a mix).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import glob
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

CATEGORY_ORDER = ["1d", "2d", "merge", "summarize_each", "small", "scaling", "cold"]
ROLE_ORDER = {"fastmoments": 0, "baseline": 1, "bound": 2}


# -- machine -----------------------------------------------------------------------------


def _sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict:
    """CPU model and cores (lscpu, else /proc/cpuinfo), memory, library versions."""
    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    lscpu = _sh("lscpu")
    for key, name in (("Model name", "cpu_model"), ("Core(s) per socket", "cores_per_socket"),
                      ("Socket(s)", "sockets"), ("Thread(s) per core", "threads_per_core"),
                      ("L3 cache", "l3"), ("Hypervisor vendor", "hypervisor")):
        m = re.search(rf"^{re.escape(key)}:\s*(.+)$", lscpu, re.M)
        if m:
            info[name] = m.group(1).strip()
    if "cpu_model" not in info:
        try:
            m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
            info["cpu_model"] = m.group(1).strip() if m else "unknown"
        except OSError:
            info["cpu_model"] = "unknown"
    try:
        m = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        info["mem_gib"] = round(int(m.group(1)) / 2**20, 1)
    except (OSError, AttributeError):
        pass
    code = (
        "import json, numpy, numba, bottleneck, numbagg, cmomy, pytest_benchmark;"
        "print(json.dumps({m.__name__: m.__version__ for m in "
        "(numpy, numba, bottleneck, numbagg, cmomy, pytest_benchmark)}"
        " | {'numba_threads': numba.config.NUMBA_NUM_THREADS}))"
    )
    out = _sh(sys.executable, "-c", code)
    try:
        info["versions"] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        info["versions"] = {}
    return info


def _cpu_busy_s() -> float | None:
    """CPU seconds all processes have been busy since boot (/proc/stat, all CPUs)."""
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = f
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait_s: float, busy_limit=0.15, window_s=10.0):
    """Wait (at most ``max_wait_s``) until other processes use < ``busy_limit`` CPUs for ``window_s``."""
    t_end = time.monotonic() + max_wait_s
    while True:
        b0 = _cpu_busy_s()
        time.sleep(window_s)
        b1 = _cpu_busy_s()
        busy = (b1 - b0) / window_s if b0 is not None else 0.0
        if busy < busy_limit:
            print(f"machine quiet: {busy:.2f} CPUs busy over {window_s:.0f} s", flush=True)
            return busy
        if time.monotonic() > t_end:
            print(f"still busy ({busy:.2f} CPUs) after waiting; running anyway", flush=True)
            return busy
        print(f"waiting for a quiet machine: {busy:.2f} CPUs busy", flush=True)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


# -- running --------------------------------------------------------------------------------


def run_suite(json_path: Path, extra: list[str]) -> int:
    files = sorted(glob.glob(str(HERE / "test_core_*.py")))
    cmd = [sys.executable, "-m", "pytest", *files, "-p", "no:cacheprovider", "-q",
           f"--benchmark-json={json_path}", "--benchmark-sort=name",
           "--benchmark-columns=median,iqr,rounds", *extra]
    print("$", " ".join(os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c for c in cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


# -- rendering ------------------------------------------------------------------------------


def _fmt_time(s):
    if s is None:
        return ""
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} µs"


def _category(workload: str) -> int:
    for i, c in enumerate(CATEGORY_ORDER):
        if workload.startswith(c):
            return i
    return len(CATEGORY_ORDER)


def _rows(data):
    rows = []
    for b in data["benchmarks"]:
        e = dict(b.get("extra_info", {}))
        if "workload" not in e:
            continue
        e["median"] = b["stats"]["median"]
        e["rounds"] = b["stats"]["rounds"]
        e["name"] = b["name"]
        rows.append(e)
    return rows


def _workloads(rows):
    order, groups = [], {}
    for r in rows:
        if r["workload"] not in groups:
            groups[r["workload"]] = []
            order.append(r["workload"])
        groups[r["workload"]].append(r)
    first = {w: i for i, w in enumerate(order)}
    order.sort(key=lambda w: (_category(w), first[w]))
    for w in order:
        groups[w].sort(key=lambda r: (ROLE_ORDER.get(r["role"], 3), not r.get("primary"), r["variant"]))
    return order, groups


def render(data, meta, json_path="bench/results/cpu.json") -> tuple[str, list[tuple[str, bool | None]]]:
    rows = _rows(data)
    order, groups = _workloads(rows)
    m = meta["machine"]
    v = m.get("versions", {})
    lines = [
        "# fastmoments CPU benchmarks",
        "",
        f"Generated by `.venv/bin/python bench/report.py` on {meta['date']}.",
        "",
        f"- Machine: {m.get('cpu_model')} — {m.get('cpus')} logical CPUs "
        f"({m.get('sockets', '?')} socket × {m.get('cores_per_socket', '?')} cores × "
        f"{m.get('threads_per_core', '?')} threads), L3 {m.get('l3', '?')}, {m.get('mem_gib', '?')} GiB RAM"
        + (f", {m['hypervisor']} VM" if m.get("hypervisor") else ""),
        f"- Software: Python {m.get('python')}, NumPy {v.get('numpy')}, Numba {v.get('numba')} "
        f"({v.get('numba_threads')} threads), bottleneck {v.get('bottleneck')}, numbagg {v.get('numbagg')}, "
        f"cmomy {v.get('cmomy')}, pytest-benchmark {v.get('pytest_benchmark')}; {m.get('platform')}",
        f"- Commit: {meta.get('commit', '?')}; the run took {meta.get('wall_s', 0) / 60:.1f} min; "
        f"load average before / after: {meta.get('load_before', '?')} / {meta.get('load_after', '?')}; "
        + (f"other processes used {meta['foreign_cpus']:.2f} CPUs on average during the run "
           if "foreign_cpus" in meta else "")
        + "(a shared machine: absolute times are noisy, ratios to the bound measured in the same run "
        "much less so; a parallel kernel sharing a core with another process waits for it)",
        "",
        "Columns: median wall time; GB/s of input read (bytes of the input / median); "
        "× bound = the streaming bound's median time on the same bytes / this median "
        "(1.0 = as fast as one parallel read; the bound rows' own figure shows the "
        "run-to-run noise; 2-D workloads also have a read+write bound, which reads the input and "
        "writes two new float64 arrays of the output's size); fm × = how many times faster fastmoments' main variant of "
        "that workload is than this row; var err = the variance's largest error against NumPy in "
        "float64, relative to the typical variance.",
        "",
        "| Workload | Variant | Median | GB/s | × bound | fm × | var err | Rounds |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for w in order:
        g = groups[w]
        primary = next((r for r in g if r.get("primary")), None)
        if g[0]["role"] == "coldstart":
            continue
        for i, r in enumerate(g):
            speed = ""
            if primary is not None and r is not primary and r["role"] == "baseline":
                speed = f"{r['median'] / primary['median']:.2f}"
            frac = f"{r['frac_bound']:.2f}" if "frac_bound" in r else ""
            gbps = f"{r['gbps']:.2f}" if "gbps" in r else ""
            err = f"{r['var_rel_err']:.1e}" if r.get("var_rel_err") is not None else ""
            variant = f"**{r['variant']}**" if r.get("primary") else r["variant"]
            lines.append(f"| {w if i == 0 else ''} | {variant} | {_fmt_time(r['median'])} | {gbps} | "
                         f"{frac} | {speed} | {err} | {r['rounds']} |")

    checks: list[tuple[str, bool | None]] = []
    # Targets stated as a fraction of the bound, or as a speed ratio to a named row.
    for w in order:
        g = groups[w]
        for r in g:
            if "target" not in r:
                continue
            if r.get("target_vs"):
                base = next((b for b in g if b["variant"] == r["target_vs"]), None)
                if base is None:
                    continue
                ratio = base["median"] / r["median"]
                checks.append((f"{w}: {r['variant']} vs {r['target_vs']}: {ratio:.2f}× as fast "
                               f"(target ≥ {r['target']:.2f}×)", ratio >= r["target"]))
            elif "frac_bound" in r:
                rw = next((b for b in g if b["variant"] == "bound read+write"), None)
                rw_text = (f"; {rw['median'] / r['median']:.2f} of the read+write bound"
                           if rw is not None else "")
                checks.append((f"{w}: {r['variant']} at {r['frac_bound']:.2f} of the bound "
                               f"(target ≥ {r['target']:.2f}){rw_text}", r["frac_bound"] >= r["target"]))
    # Flat time per element from 1e6 to 1e8, read from memory with the code warm
    # ("flushed"); everything evicted ("cold") and data warm ("warm") shown too.
    mode_text = {
        "flushed": "the data flushed from the caches before each round",
        "cold": "everything evicted from the caches before each round, the interpreter's objects too "
                "(information)",
        "warm": "data warm (1e5 and 1e6 fit in L3, so they read faster than memory; information)",
    }
    for mode in ("flushed", "cold", "warm"):
        scal = {r["scaling_n"]: r for w in order for r in groups[w]
                if r.get("scaling_n") and r["role"] == "fastmoments" and "ns_per_elem" in r
                and r.get("scaling_mode", "warm") == mode}
        if not scal:
            continue
        pts = ", ".join(f"1e{len(str(n)) - 1}: {scal[n]['ns_per_elem']:.3f} ns/elem"
                        + (f" ({scal[n]['frac_bound']:.2f} of bound)" if "frac_bound" in scal[n] else "")
                        for n in sorted(scal))
        mid = [scal[n]["ns_per_elem"] for n in sorted(scal) if 10**6 <= n <= 10**8]
        # The bound's own spread says how flat a plain read is on this machine:
        # the part of the target that no reduction can beat.
        bounds = {r["scaling_n"]: r["ns_per_elem"] for w in order for r in groups[w]
                  if r.get("scaling_n") and r["role"] == "bound" and "ns_per_elem" in r
                  and r.get("scaling_mode", "warm") == mode and 10**6 <= r["scaling_n"] <= 10**8}
        bound_text = (f"; the bound's own spread {max(bounds.values()) / min(bounds.values()) - 1:.0%}"
                      if len(bounds) >= 2 else "")
        if len(mid) >= 2:
            spread = max(mid) / min(mid) - 1
            text = f"scaling, {mode_text[mode]}: {pts}; spread 1e6..1e8 {spread:.0%}{bound_text}"
            if mode == "flushed":
                checks.append((text + " (target ≤ 20%)", spread <= 0.20))
            else:
                checks.append((text, None))
    cold = [r for r in rows if r["role"] == "coldstart"]
    if cold:
        c = cold[0]
        checks.append((f"cold start: import fastmoments {c['import_s']:.3f} s incl. NumPy "
                       f"({c['import_after_numpy_s']:.3f} s after it) (target < 0.5 s)", c["import_s"] < 0.5))
        checks.append((f"cold start: first moments() call {c['first_moments_s']:.3f} s with Numba's cache warm "
                       f"(of which importing Numba alone takes ~{c['import_numba_s']:.3f} s"
                       + (f"; {c['first_moments_no_scipy_s']:.3f} s with SciPy absent, whose import by "
                          f"Numba's BLAS probe is part of the first figure"
                          if "first_moments_no_scipy_s" in c else "")
                       + "); then first "
                       f"summarize() {c['first_summarize_s'] * 1e3:.1f} ms (target < 1 s)", c["first_moments_s"] < 1.0))

    lines += ["", "## Targets (each workload's issue: see bench/README.md)", ""]
    for text, ok in checks:
        mark = "info" if ok is None else ("met" if ok else "MISSED")
        lines.append(f"- [{mark}] {text}")
    lines += [
        "",
        f"Saved JSON: `{json_path}`; compare two runs with "
        f"`.venv/bin/pytest-benchmark compare $PWD/{json_path} /abs/path/OTHER.json --group-by=name "
        "--columns=median`.",
        "",
    ]
    return "\n".join(lines), checks


def slim_json(path: Path):
    """Drop the raw per-round timings (tens of thousands for the small calls).

    The summary statistics stay, so ``pytest-benchmark compare`` still works;
    the file stays small enough to keep in the repository.
    """
    if not path.exists():
        return
    data = json.loads(path.read_text())
    for b in data.get("benchmarks", []):
        b.get("stats", {}).pop("data", None)
    path.write_text(json.dumps(data, indent=1))


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from-json", type=Path, help="render a saved run instead of running the suite")
    ap.add_argument("--json", type=Path, default=RESULTS / "cpu.json", help="where the run's JSON goes")
    ap.add_argument("--out", type=Path, default=RESULTS / "cpu.md", help="the Markdown table to write")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help="first wait up to S seconds until other processes leave the CPUs idle")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args(argv)

    meta_path = (args.from_json or args.json).with_suffix(".meta.json")
    rc = 0
    if args.from_json is None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"machine": machine_info()}
        if args.wait_quiet:
            wait_quiet(args.wait_quiet)
        meta["load_before"] = loadavg()
        busy0, own0, t0 = _cpu_busy_s(), _children_cpu_s(), time.monotonic()
        rc = run_suite(args.json, args.pytest_args)
        busy1, own1, wall = _cpu_busy_s(), _children_cpu_s(), time.monotonic() - t0
        meta["load_after"] = loadavg()
        meta["wall_s"] = wall
        if busy0 is not None:
            # CPU time of everything else on the machine during the run, in CPUs.
            meta["foreign_cpus"] = max(0.0, ((busy1 - busy0) - (own1 - own0)) / wall)
        meta["date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        meta_path.write_text(json.dumps(meta, indent=1))
        src = args.json
        slim_json(src)
    else:
        src = args.from_json
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"machine": machine_info()}
    if not src.exists():
        print(f"no benchmark JSON at {src} (pytest exit code {rc})", file=sys.stderr)
        return rc or 1
    data = json.loads(src.read_text())
    meta.setdefault("date", data.get("datetime", "?"))
    ci = data.get("commit_info", {})
    meta["commit"] = f"{ci.get('id', '?')[:10]}{' (dirty tree)' if ci.get('dirty') else ''}"
    text, _ = render(data, meta, os.path.relpath(src, ROOT))
    args.out.write_text(text)
    print()
    print(text)
    print(f"written: {os.path.relpath(args.out, ROOT)}, {os.path.relpath(src, ROOT)}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
