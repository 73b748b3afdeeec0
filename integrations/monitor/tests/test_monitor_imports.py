"""The monitor core imports and runs without Chainer (or any other framework)."""

import subprocess
import sys
import textwrap


def test_core_runs_without_chainer(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        for name in ("chainer", "torch", "cupy"):
            sys.modules[name] = None          # any import of them would raise
        import numpy as np
        import fastmoments_monitor as fm
        from fastmoments_monitor import alerts, core, plot, pool, stats, table
        c = fm.MonitorCore(warn=False)
        c.set_entries([("grad", "l1/W"), ("grad", "l2/W")])
        rng = np.random.default_rng(0)
        for it in range(1, 4):
            c.observe([rng.standard_normal((4, 3)).astype(np.float32), np.zeros(5, np.float32)], it)
        rep = c.report()
        print(fm.format_table(rep))
        fm.plot_gradient_flow(c, {str(tmp_path / "flow.png")!r})
        loaded = sorted(m for m in sys.modules
                        if m.split(".")[0] in ("chainer", "torch", "cupy") and sys.modules[m] is not None)
        print("FRAMEWORKS", loaded, [a.kind for a in rep.alerts])
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "FRAMEWORKS [] ['dead']" in proc.stdout
    assert (tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"


def test_import_loads_no_framework_and_no_matplotlib():
    code = ("import sys, fastmoments_monitor\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('chainer', 'torch', 'cupy', 'matplotlib')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
