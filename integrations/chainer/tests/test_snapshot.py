"""The monitor's running interval survives extensions.snapshot and resume."""

import chainer
import chainer.links as L
import numpy as np
from chainer import training
from chainer.training import extensions
from fmc_testlib import MLP, data

from fastmoments_chainer import GradientMonitor


def _trainer(out, stop):
    np.random.seed(0)
    model = L.Classifier(MLP())
    x, t = data(n=40, seed=3)
    it = chainer.iterators.SerialIterator(chainer.datasets.TupleDataset(x, t), 4, shuffle=False)
    opt = chainer.optimizers.Adam()
    opt.setup(model)
    trainer = training.Trainer(training.updaters.StandardUpdater(it, opt), (stop, "iteration"), out=out)
    mon = GradientMonitor(model, report_trigger=(5, "iteration"), warn=False)
    trainer.extend(mon)
    trainer.extend(extensions.snapshot(filename="snap_{.updater.iteration}"), trigger=(7, "iteration"))
    return trainer, mon


def test_resume_mid_interval_gives_the_same_reports(tmp_path):
    straight, mon_a = _trainer(str(tmp_path / "a"), 15)
    reports_a = []
    orig = mon_a.report
    mon_a.report = lambda iteration=None: reports_a.append(orig(iteration)) or reports_a[-1]
    straight.run()
    assert len(reports_a) == 3  # at 5, 10, 15

    first, _ = _trainer(str(tmp_path / "b"), 7)
    first.run()  # snapshot at 7: two iterations into the second interval

    resumed, mon_c = _trainer(str(tmp_path / "c"), 15)
    chainer.serializers.load_npz(str(tmp_path / "b" / "snap_7"), resumed)
    assert mon_c._n_iter == 2 and mon_c.last_report is None
    reports_c = []
    orig_c = mon_c.report
    mon_c.report = lambda iteration=None: reports_c.append(orig_c(iteration)) or reports_c[-1]
    resumed.run()
    assert len(reports_c) == 2  # at 10 and 15
    # Bit-identical: the loaded interval is where the resumed run's merges start.
    for got, want in zip(reports_c, reports_a[1:]):
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    # the alert history came along too: the running medians saw the first report
    assert len(mon_c._layer_norms["predictor/l1"]) == 3


def test_serialize_before_any_iteration(tmp_path):
    model = MLP()
    mon = GradientMonitor(model)
    path = str(tmp_path / "m.npz")
    chainer.serializers.save_npz(path, mon)
    fresh = GradientMonitor(model)
    chainer.serializers.load_npz(path, fresh)
    assert fresh.report() == {}
