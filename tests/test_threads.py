"""Calls from several Python threads at once, as dask's threaded scheduler makes them.

Numba's workqueue threading layer (its fallback where neither TBB nor OpenMP
is installed) aborts the whole process when two threads enter parallel
regions at once; the CPU wing then runs serial kernels off the main thread.
Each case runs in a fresh process, as the layer is fixed when Numba's threads
start.
"""

import os
import subprocess
import sys
import textwrap

import pytest

_CHILD = textwrap.dedent(
    """
    import threading
    import numba
    import numpy as np
    import fastmoments as fm

    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 1 << 20)) * 3 + 1          # long rows: parallel from 2^17 values
    cols = rng.standard_normal((1 << 16, 16)).astype(np.float32)  # column sets: from 2^19
    got = {}

    def work(i):
        for _ in range(5):
            m = fm.moments(x[i])
            s = fm.summarize(cols, axis=0)
            both = m.merge(fm.moments(x[(i + 1) % 6]))
        got[i] = (m.var(), s.var(), both.var())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    work_main = fm.moments(x)  # the main thread too, meanwhile
    for t in threads:
        t.join()
    for i in range(6):
        v, sv, bv = got[i]
        np.testing.assert_allclose(v, x[i].var(), rtol=1e-12)
        np.testing.assert_allclose(sv, cols.astype(np.float64).var(axis=0), rtol=1e-10)
        pair = np.concatenate([x[i], x[(i + 1) % 6]])
        np.testing.assert_allclose(bv, pair.var(), rtol=1e-12)
    np.testing.assert_allclose(work_main.var(), x.var(), rtol=1e-12)
    print("layer", numba.threading_layer())
    """
)


@pytest.mark.parametrize("layer", ["workqueue", "default"])
def test_concurrent_calls_from_threads(layer):
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    if layer != "default":
        env["NUMBA_THREADING_LAYER"] = layer
    proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if layer != "default":
        assert f"layer {layer}" in proc.stdout
