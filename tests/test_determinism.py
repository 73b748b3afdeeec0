"""Bit-identical results whatever the number of Numba threads (issue 3).

The CPU kernels split work into blocks fixed by the input's shape and merge
their states in a fixed tree, so the thread count must not change a single
bit. Each thread count runs in its own process (``NUMBA_NUM_THREADS`` is read
once, at Numba's start) on the same saved inputs; the results are compared
byte for byte, and checked against NumPy so that agreeing garbage cannot pass.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastmoments as fm

THREADS = [1, 2, 3]  # 3 > cores on the 2-core CI machines: uneven splits too

# Runs in a fresh process: reads inputs.npz, writes every result field to out.npz.
_CHILD = textwrap.dedent(
    """
    import sys
    import numba
    import numpy as np
    import fastmoments as fm

    want = int(sys.argv[3])
    assert numba.config.NUMBA_NUM_THREADS == want, numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == want

    inp = np.load(sys.argv[1])
    out = {}

    def put(name, state):
        for field, arr in zip(state._fields, state.fields):
            out[f"{name}.{field}"] = np.asarray(arr)

    v64, v32, nan64 = inp["v64"], inp["v32"], inp["nan64"]
    put("moments v64", fm.moments(v64))
    put("moments v32", fm.moments(v32))
    put("moments nan64 skipna", fm.moments(nan64, skipna=True))
    put("moments nan64", fm.moments(nan64))
    put("summarize nan64", fm.summarize(nan64))
    put("summarize v32", fm.summarize(v32))
    for key in ("wide64", "tall32", "short64", "cube64"):
        x = inp[key]
        axes = [None, 0, -1] + ([(0, 2)] if x.ndim == 3 else [])
        for axis in axes:
            put(f"moments {key} axis={axis}", fm.moments(x, axis=axis))
            put(f"summarize {key} axis={axis}", fm.summarize(x, axis=axis))
    put("reduce rows of wide64", fm.moments(inp["wide64"], axis=-1).reduce())
    each = [inp[k] for k in sorted(inp.files) if k.startswith("each")]
    put("summarize_each", fm.summarize_each(each))
    np.savez(sys.argv[2], **out)
    """
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    rng = np.random.default_rng(20240)
    n = 3_000_001  # hundreds of blocks, several parallel tasks, a ragged tail
    d = {
        "v64": rng.standard_normal(n) * 3 + 1e4,
        "v32": (rng.standard_normal(n) * 2 + 1).astype(np.float32),
        "wide64": rng.standard_normal((3001, 1001)) + 5,
        "tall32": rng.standard_normal((1_000_003, 3)).astype(np.float32),
        "short64": rng.standard_normal((7, 500_001)) - 2,
        "cube64": rng.standard_normal((64, 129, 257)),
    }
    nan64 = rng.standard_normal(n)
    nan64[rng.integers(0, n, 1000)] = np.nan
    nan64[rng.integers(0, n, 100)] = np.inf
    nan64[rng.integers(0, n, 3000)] = 0.0
    d["nan64"] = nan64
    # ResNet-like list: tiny, mid and multi-block arrays, mixed dtypes and ranks.
    sizes = [1, 3, 64, 8191, 8192, 8193, 100_000, 2_000_003, 65_536, 9]
    for i, s in enumerate(sizes):
        a = rng.standard_normal(s) * 0.05
        d[f"each{i:02d}"] = a.astype(np.float32) if i % 2 else a.reshape(-1, 1) if s % 2 else a
    path = tmp_path_factory.mktemp("det") / "inputs.npz"
    np.savez(path, **d)
    return path, d


@pytest.fixture(scope="module")
def results(inputs, tmp_path_factory):
    path, _ = inputs
    child = tmp_path_factory.mktemp("det") / "child.py"
    child.write_text(_CHILD)
    out = {}
    for t in THREADS:
        dest = path.parent / f"out{t}.npz"
        env = dict(os.environ, NUMBA_NUM_THREADS=str(t))
        proc = subprocess.run([sys.executable, str(child), str(path), str(dest), str(t)],
                              env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        with np.load(dest) as z:
            out[t] = {k: z[k] for k in z.files}
    return out


def test_same_bits_for_any_thread_count(results):
    base = results[THREADS[0]]
    assert len(base) > 100
    for t in THREADS[1:]:
        other = results[t]
        assert sorted(other) == sorted(base)
        differ = [k for k in base
                  if base[k].dtype != other[k].dtype or base[k].shape != other[k].shape
                  or base[k].tobytes() != other[k].tobytes()]
        assert not differ, f"{t} threads vs {THREADS[0]}: {differ}"


def test_results_match_numpy(results, inputs):
    _, d = inputs
    r = results[THREADS[-1]]
    np.testing.assert_allclose(r["moments v64.mean"], d["v64"].mean(), rtol=1e-15)
    np.testing.assert_allclose(r["moments v64.m2"], d["v64"].var() * d["v64"].size, rtol=1e-12)
    for axis in (0, -1):
        x = d["wide64"]
        np.testing.assert_allclose(r[f"moments wide64 axis={axis}.m2"], x.var(axis=axis) * x.shape[axis], rtol=1e-12)
        t = d["tall32"].astype(np.float64)
        np.testing.assert_allclose(r[f"summarize tall32 axis={axis}.mean"], t.mean(axis=axis), rtol=1e-12, atol=1e-15)
    x = d["cube64"]
    np.testing.assert_allclose(r["moments cube64 axis=(0, 2).m2"], x.var(axis=(0, 2)) * 64 * 257, rtol=1e-12)
    nan64 = d["nan64"]
    finite = nan64[np.isfinite(nan64)]
    assert r["summarize nan64.count"] == finite.size
    assert r["summarize nan64.n_nonfinite"] == nan64.size - finite.size
    assert r["summarize nan64.n_zero"] == np.count_nonzero(finite == 0)
    np.testing.assert_allclose(r["summarize nan64.m2"], finite.var() * finite.size, rtol=1e-12)
    assert np.isnan(r["moments nan64.mean"])
    each = [d[k] for k in sorted(d) if k.startswith("each")]
    np.testing.assert_array_equal(r["summarize_each.max"], [a.max() for a in each])
    np.testing.assert_allclose(r["summarize_each.mean"], [a.mean(dtype=np.float64) for a in each],
                               rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(r["reduce rows of wide64.m2"], d["wide64"].var() * d["wide64"].size, rtol=1e-12)


@pytest.mark.parametrize("n", [8192 * 5 + 3, 8192 * 100 + 77, 8192 * 700 + 1])
def test_task_size_does_not_change_results(n):
    # A single row is cut into smaller tasks than rows of a 2-D array are
    # (powers of two blocks each, chosen by size); the merge tree, and so every
    # bit of the result, must not depend on that choice.
    x = np.random.default_rng(n).standard_normal(n) * 1e3 + 1e6
    one = fm.moments(x)
    two = fm.moments(np.stack([x, x[::-1]]), axis=1)
    assert one.mean.tobytes() == two.mean[0].tobytes()
    assert one.m2.tobytes() == two.m2[0].tobytes()
    s_one, s_two = fm.summarize(x), fm.summarize(np.stack([x, x]), axis=1)
    assert s_one.m2.tobytes() == s_two.m2[0].tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_parallel_and_serial_kernels_agree_bit_for_bit(rng, dtype):
    # The CPU wing picks the serial or the parallel kernel by size alone, so a
    # result must not change at the threshold. Long rows over several tasks,
    # a narrow column set and an elementwise merge, against NumPy too.
    from fastmoments import cpu
    from fastmoments.cpu.base import MOMENTS, SUMMARY
    from fastmoments.cpu.columns import reduce_cols, reduce_cols_serial
    from fastmoments.cpu.merges import merge_moment_arrays, merge_moment_arrays_serial
    from fastmoments.cpu.origins import column_origins
    from fastmoments.cpu.rows import reduce_rows, reduce_rows_serial

    x = (rng.standard_normal((3, 300_007)) * 4 + 2).astype(dtype)
    for kind in (MOMENTS, SUMMARY):
        par = cpu._run(reduce_rows, kind, 3, x)
        ser = cpu._run(reduce_rows_serial, kind, 3, x)
        for p, s in zip(par, ser):
            np.testing.assert_array_equal(p, s)
        np.testing.assert_allclose(par[1][0], x.astype(np.float64).mean(axis=1), rtol=1e-12)
    cols = x.reshape(-1, 3)
    org = column_origins(cols)
    par = cpu._run(reduce_cols, MOMENTS, 3, cols, org)
    ser = cpu._run(reduce_cols_serial, MOMENTS, 3, cols, org)
    for p, s in zip(par, ser):
        np.testing.assert_array_equal(p, s)
    a = fm.moments(x, axis=0)
    y = x[::-1] * 3
    b = fm.moments(y, axis=0)
    fields = [f.reshape(-1) for f in a.fields], [f.reshape(-1) for f in b.fields]
    outs = []
    for kernel in (merge_moment_arrays, merge_moment_arrays_serial):
        out = [np.empty(a.size, np.int64), np.empty(a.size), np.empty(a.size)]
        kernel(*fields[0], *fields[1], *out)
        outs.append(out)
    for p, s in zip(*outs):
        np.testing.assert_array_equal(p, s)
    both = np.concatenate([x, y]).astype(np.float64)
    np.testing.assert_allclose(outs[0][2] / outs[0][0], both.var(axis=0), rtol=1e-12)
