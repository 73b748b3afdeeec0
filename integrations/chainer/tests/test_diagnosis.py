"""Diagnoses on real networks: dead layers, where NaN/Inf started, a clean log."""

import os
import subprocess
import sys
import textwrap
import warnings

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
import pytest
from fmc_testlib import MLP, data

from fastmoments_chainer import GradientAlert, GradientMonitor, format_table


def _dead_mlp():
    """l1 -> relu -> l2 -> relu -> l3 with l2's weights and bias zeroed: relu(0) passes no
    gradient, so l1 and l2 get exactly zero gradients for good (SGD never revives them)."""
    model = MLP((6, 5, 4, 3))
    model.l2.W.array[...] = 0
    model.l2.b.array[...] = 0
    return model


def test_a_layer_with_zeroed_weights_is_dead_not_vanishing(rng_seed):
    model = _dead_mlp()
    opt = chainer.optimizers.SGD(0.1)
    opt.setup(model)
    mon = GradientMonitor(model)
    mon.attach(opt)
    x, t = data()
    for _ in range(3):
        opt.update(lambda: F.softmax_cross_entropy(model(x), t))
    with pytest.warns(GradientAlert, match=r"dead gradients in 'l1' \(100.0% of its gradient values are exactly zero"):
        values = mon.report()
    kinds = {(a.layer, a.kind) for a in mon.last_report.alerts}
    assert ("l1", "dead") in kinds and ("l2", "dead") in kinds
    assert not any(a.kind == "vanishing" for a in mon.last_report.alerts)
    assert ("l3", "dead") not in kinds  # its bias still learns: 12 of 15 values zero
    assert values["grad/alerts/dead"] == 2 and values["grad/l1/dead"] == 1.0
    assert values["grad/alerts/vanishing"] == 0
    assert values["grad/l1/W/zeros"] == 1.0
    assert "D" in mon.last_report.flags("l1")
    assert "dead" in mon.diagnosis() and "l1" in mon.diagnosis()


def test_dead_rule_off_gives_vanishing(rng_seed):
    from fastmoments_chainer import AlertRules

    model = _dead_mlp()
    opt = chainer.optimizers.SGD(0.1)
    opt.setup(model)
    mon = GradientMonitor(model, alerts=AlertRules(dead_fraction=None), warn=False)
    mon.attach(opt)
    x, t = data()
    opt.update(lambda: F.softmax_cross_entropy(model(x), t))
    mon.report()
    assert {a.kind for a in mon.last_report.alerts} == {"vanishing"}


class _Unsorted(chainer.Chain):
    """Forward runs z_in then a_out; namedparams() lists a_out first (Chainer sorts by name)."""

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.z_in = L.Linear(6, 5)
            self.a_out = L.Linear(5, 3)

    def forward(self, x):
        return self.a_out(F.relu(self.z_in(x)))


def _run_poisoned(policy, poison):
    """Train 4 updates; ``poison``: iteration -> layers whose W.grad gets a NaN and an Inf."""
    model = _Unsorted()
    assert [p for p, _ in model.namedparams()][0].startswith("/a_out")
    opt = chainer.optimizers.SGD(0.01)
    opt.setup(model)
    mon = GradientMonitor(model, on_nonfinite=policy)
    mon.attach(opt)
    x, t = data()
    caught = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", GradientAlert)
        for it in range(1, 5):
            model.cleargrads()
            F.softmax_cross_entropy(model(x), t).backward()
            for name in poison.get(it, ()):
                getattr(model, name).W.grad[0, 0] = np.nan
                getattr(model, name).W.grad[1, 1] = np.inf
            opt.update()
        mon.report()
        caught = [str(m.message) for m in w if issubclass(m.category, GradientAlert)]
    return mon, caught


def test_first_nonfinite_layer_in_backward_order_is_named_with_its_iteration(rng_seed):
    # Both layers at iteration 3: the one closest to the loss is a_out, though
    # namedparams() lists it first and so a reversed parameter order would say z_in.
    mon, caught = _run_poisoned("warn", {3: ("z_in", "a_out")})
    rep = mon.last_report
    assert rep.nonfinite_origin["layer"] == "a_out" and rep.nonfinite_origin["iteration"] == 3
    assert rep.values["grad/nonfinite_first_iteration"] == 3
    msg = next(m for m in caught if "nonfinite gradients" in m)
    assert "NaN/Inf first at iteration 3 in 'a_out'" in msg and "closest to the loss" in msg
    assert "NaN/Inf first at iteration 3 in a_out" in format_table(rep)
    assert "from iteration 3, first in a_out" in mon.diagnosis()
    # The forward order was recorded and the recording hook removed.
    assert mon.core.forward_order == ["z_in", "a_out"]
    assert not any(link.local_link_hooks for link in mon.target.links())


def test_the_earliest_iteration_wins_over_backward_order(rng_seed):
    mon, _ = _run_poisoned("warn", {2: ("z_in",), 3: ("a_out",), 4: ("z_in", "a_out")})
    origin = mon.last_report.nonfinite_origin
    assert (origin["layer"], origin["iteration"]) == ("z_in", 2)
    assert origin["order"] == [("z_in", 2), ("a_out", 3)]


def test_skip_names_the_first_layer_in_backward_order(rng_seed):
    mon, caught = _run_poisoned("skip", {2: ("z_in", "a_out")})
    skipped = [m for m in caught if "update skipped" in m]
    assert len(skipped) == 1
    assert "iteration 2" in skipped[0] and "first in backward order in 'a_out/W'" in skipped[0]
    assert mon.last_report.nonfinite_origin["layer"] == "a_out"
    assert mon.last_report.nonfinite_origin["iteration"] == 2


def test_raise_lists_the_layer_closest_to_the_loss_first(rng_seed):
    from fastmoments_chainer import NonFiniteGradientError

    with pytest.raises(NonFiniteGradientError, match=r"iteration 2: non-finite gradient values in a_out/W \(2\), z_in/W"):
        _run_poisoned("raise", {2: ("z_in", "a_out")})


_TRAIN = textwrap.dedent("""
    import sys
    import fastmoments_chainer as fmc
    import chainer, chainer.links as L, numpy as np
    from chainer import training
    from chainer.training import extensions
    np.random.seed(0)
    x = np.random.rand(16, 4).astype(np.float32); t = np.random.randint(0, 3, 16).astype(np.int32)
    model = L.Classifier(L.Linear(4, 3))
    opt = chainer.optimizers.SGD(0.1); opt.setup(model)
    it = chainer.iterators.SerialIterator(chainer.datasets.TupleDataset(x, t), 8)
    trainer = training.Trainer(training.updaters.StandardUpdater(it, opt), (2, "iteration"), out=sys.argv[1])
    trainer.extend(fmc.GradientMonitor(model, report_trigger=(1, "iteration")))
    trainer.extend(extensions.LogReport(trigger=(1, "iteration")))
    trainer.extend(extensions.PrintReport(["iteration", "main/loss", "grad/norm"]), trigger=(1, "iteration"))
    trainer.run()
""")


def test_no_escape_codes_and_no_warnings_when_not_a_terminal(tmp_path):
    # stdout and stderr are pipes here, as in a log file or CI.
    proc = subprocess.run([sys.executable, "-W", "default", "-c", _TRAIN, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x1b" not in proc.stderr
    assert "grad/norm" in proc.stdout and len(proc.stdout.splitlines()) == 3
    # No third-party deprecation warnings at start (pkg_resources from Chainer's environment check).
    assert "pkg_resources" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr


def test_escape_codes_still_go_to_a_terminal(tmp_path):
    code = _TRAIN.replace('["iteration", "main/loss", "grad/norm"])',
                          '["iteration"], out=tty)').replace(
        "trainer.run()", "trainer.run(); print(repr(tty.getvalue()))")
    code = "import io\nclass T(io.StringIO):\n    def isatty(self): return True\ntty = T()\n" + code
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\\x1b[J") == 2  # one per printed line, as Chainer does on a terminal


def test_envcheck_shim_is_chosen_whenever_chainer_imports_pkg_resources():
    from fastmoments_chainer import _compat

    assert _compat._envcheck_imports_pkg_resources("import os\nimport pkg_resources\n")
    assert not _compat._envcheck_imports_pkg_resources("import os\nfrom importlib import metadata\n")
    assert _compat.needed()["environment_check"] is _compat._envcheck_imports_pkg_resources() or \
        _compat.needed()["environment_check"]


def test_demo_tells_each_story(tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="default")
    proc = subprocess.run([sys.executable, "-m", "fastmoments_chainer.demo", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "\x1b" not in proc.stdout
    assert proc.stdout.startswith("\n=== healthy"), proc.stdout[:300]
    assert "Warning" not in proc.stderr, proc.stderr[:2000]
    healthy = (tmp_path / "healthy" / "alerts.txt").read_text()
    vanishing = (tmp_path / "vanishing" / "alerts.txt").read_text()
    exploding = (tmp_path / "exploding" / "alerts.txt").read_text()
    assert healthy.strip() == "diagnosis: no alerts"
    assert "vanishing gradients in 'predictor/h0'" in vanishing and "dead" not in vanishing
    assert "exploding gradients" in exploding and "dead gradients in 'predictor/h0'" in exploding
    assert "vanishing" not in exploding  # dead layers are no longer called vanishing
    assert "after exploding gradients" in exploding
    for run in ("healthy", "vanishing", "exploding"):
        assert (tmp_path / run / "gradient_flow.png").read_bytes()[:4] == b"\x89PNG"
