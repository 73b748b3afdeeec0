"""`fastmoments describe`: every format against NumPy, every bad input, the memory bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from fastmoments.cli import main

RNG = np.random.default_rng(1234)
KEYS = {"count", "mean", "std", "min", "max", "nonfinite", "missing"}


def run(capsys, *argv):
    rc = main(["describe", *map(str, argv), "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys, *argv):
    rc, out, err = run(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out), err


def reference(x, axis=0, ddof=0):
    """NumPy float64 statistics over ``axis``, finite values only, as the CLI's JSON has them."""
    x = np.asarray(x, dtype=np.float64)
    axis = tuple(range(x.ndim)) if axis is None else axis
    finite = np.isfinite(x)
    xf = np.where(finite, x, np.nan)
    with np.errstate(all="ignore"), _quiet():
        stats = {
            "count": finite.sum(axis=axis),
            "mean": np.nanmean(xf, axis=axis),
            "std": np.nanstd(xf, axis=axis, ddof=ddof),
            "min": np.nanmin(xf, axis=axis) if x.size else np.full(finite.sum(axis=axis).shape, np.nan),
            "max": np.nanmax(xf, axis=axis) if x.size else np.full(finite.sum(axis=axis).shape, np.nan),
            "nonfinite": (~finite).sum(axis=axis),
        }
    return stats


class _quiet:
    def __enter__(self):
        import warnings

        self._c = warnings.catch_warnings()
        self._c.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *a):
        self._c.__exit__(*a)


def assert_matches(got: dict, ref: dict, names):
    assert list(got) == list(names)
    flat = {k: np.asarray(v).reshape(-1) for k, v in ref.items()}
    for i, name in enumerate(names):
        g = got[name]
        assert set(g) == KEYS
        assert g["count"] == flat["count"][i]
        assert g["nonfinite"] == flat["nonfinite"][i]
        assert g["missing"] == (flat["missing"][i] if "missing" in flat else 0)
        for k in ("mean", "std", "min", "max"):
            r = flat[k][i]
            if np.isnan(r):
                assert g[k] is None, (name, k)
            else:
                scale = abs(r) + (flat["std"][i] if k == "mean" else 0.0)
                assert abs(g[k] - r) <= 1e-12 * scale, (name, k, g[k], r)


# -- formats -----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", ["4096", "64k", "64MB"])
def test_npy_2d_per_column(tmp_path, capsys, chunk):
    x = RNG.normal(5.0, 3.0, size=(20_000, 7))
    x[::101, 2] = np.nan
    x[5, 4] = np.inf
    p = tmp_path / "x.npy"
    np.save(p, x)
    got, _ = run_json(capsys, p, "--chunk-size", chunk)
    assert_matches(got, reference(x, 0), [str(i) for i in range(7)])


@pytest.mark.parametrize("axis", ["0", "1", "2", "0,2", "-1", "all"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_npy_axes_and_orders(tmp_path, capsys, axis, order):
    x = np.asarray(RNG.normal(size=(60, 9, 5)), order=order)
    p = tmp_path / "x.npy"
    np.save(p, x)
    ax = None if axis == "all" else tuple(int(a) for a in axis.split(","))
    got, _ = run_json(capsys, p, "--axis", axis, "--chunk-size", "4096")  # rows split over blocks
    ref = reference(x, ax if ax is None else (ax if len(ax) > 1 else ax[0]))
    shape = np.asarray(ref["count"]).shape
    names = ["all"] if not shape else [",".join(map(str, i)) for i in np.ndindex(shape)]
    assert_matches(got, ref, names)


@pytest.mark.parametrize("dtype", ["float32", "int16", "uint8", "bool", ">f8", "float16"])
def test_npy_dtypes(tmp_path, capsys, dtype):
    x = (RNG.normal(size=(3000, 3)) * 50).astype(dtype)
    p = tmp_path / "x.npy"
    np.save(p, x)
    got, _ = run_json(capsys, p, "--chunk-size", "4096")
    assert_matches(got, reference(x), ["0", "1", "2"])
    if np.dtype(dtype).kind in "biu":
        assert all(isinstance(v["min"], int) for v in got.values())


def test_npy_1d_and_0d_and_zero_rows(tmp_path, capsys):
    x = RNG.normal(size=12345)
    np.save(tmp_path / "a.npy", x)
    got, _ = run_json(capsys, tmp_path / "a.npy", "--chunk-size", "4096")
    assert_matches(got, reference(x, 0), ["all"])
    np.save(tmp_path / "b.npy", np.float32(2.5))
    got, _ = run_json(capsys, tmp_path / "b.npy", "--axis", "all")
    assert got == {"all": {"count": 1, "mean": 2.5, "std": 0.0, "min": 2.5, "max": 2.5, "nonfinite": 0, "missing": 0}}
    np.save(tmp_path / "c.npy", np.zeros((0, 2)))
    got, _ = run_json(capsys, tmp_path / "c.npy")
    assert got["1"] == {"count": 0, "mean": None, "std": None, "min": None, "max": None, "nonfinite": 0, "missing": 0}


def test_huge_rows_are_split(tmp_path, capsys):
    # one row (2 x 40,000 float64 = 640 kB) is far above the chunk: blocks split inside rows
    x = RNG.normal(size=(3, 2, 40_000))
    np.save(tmp_path / "x.npy", x)
    got, _ = run_json(capsys, tmp_path / "x.npy", "--axis", "0,2", "--chunk-size", "4096")
    assert_matches(got, reference(x, (0, 2)), ["0", "1"])


@pytest.mark.parametrize("compressed", [False, True])
def test_npz(tmp_path, capsys, compressed):
    a = RNG.normal(size=(5000, 3))
    b = RNG.integers(-9, 9, size=700)
    p = tmp_path / "x.npz"
    (np.savez_compressed if compressed else np.savez)(p, a=a, b=b)
    got, _ = run_json(capsys, p, "--chunk-size", "4096")
    ref_a, ref_b = reference(a), reference(b)
    assert_matches({k: v for k, v in got.items() if k.startswith("a")}, ref_a, ["a[0]", "a[1]", "a[2]"])
    assert_matches({"b": got["b"]}, ref_b, ["b"])
    got, _ = run_json(capsys, p, "--key", "b")
    assert list(got) == ["b"]


def test_raw(tmp_path, capsys):
    x = RNG.normal(size=(4000, 6)).astype(np.float32)
    p = tmp_path / "x.bin"
    x.tofile(p)
    got, _ = run_json(capsys, p, "--dtype", "float32", "--shape", "4000,6", "--chunk-size", "4096")
    assert_matches(got, reference(x), [str(i) for i in range(6)])
    got2, _ = run_json(capsys, p, "--dtype", "float32", "--shape=-1,6")
    assert_matches(got2, reference(x), [str(i) for i in range(6)])
    got3, _ = run_json(capsys, p, "--dtype", "f4", "--shape", "6x4000", "--order", "F", "--axis", "1")
    assert_matches(got3, reference(x), [str(i) for i in range(6)])
    got4, _ = run_json(capsys, p, "--dtype", "<f4")  # 1-D by default
    assert_matches(got4, reference(x.ravel()), ["all"])
    # a header of 16 bytes to skip
    q = tmp_path / "y.dat"
    q.write_bytes(b"H" * 16 + x.tobytes())
    got5, _ = run_json(capsys, q, "--dtype", "float32", "--shape=-1x6", "--offset", "16")
    assert_matches(got5, reference(x), [str(i) for i in range(6)])


def test_csv(tmp_path, capsys):
    n = 3000
    x = RNG.normal(size=n)
    y = RNG.integers(0, 100, size=n).astype(float)
    lines = ["x,name,y,z"]
    for i in range(n):
        ys = "" if i % 97 == 0 else f"{y[i]:.0f}"
        zs = "nan" if i % 50 == 0 else repr(float(x[i] * 2))
        lines.append(f"{float(x[i])!r},item {i},{ys},{zs}")
    p = tmp_path / "t.csv"
    p.write_text("\n".join(lines) + "\n")
    got, err = run_json(capsys, p, "--chunk-size", "4096")  # many blocks
    assert "note: column 'name' is not numeric" in err
    empty = np.arange(n) % 97 == 0  # empty fields are missing (nulls), not NaN
    zz = np.where(np.arange(n) % 50 == 0, np.nan, x * 2)  # "nan" is a value: non-finite
    assert list(got) == ["x", "y", "z"]
    assert_matches({"x": got["x"]}, reference(x), ["x"])
    assert_matches({"y": got["y"]}, {**reference(y[~empty]), "missing": empty.sum()}, ["y"])
    assert_matches({"z": got["z"]}, reference(zz), ["z"])
    assert got["y"]["missing"] == 31 and got["z"]["nonfinite"] == 60
    rc, out, _ = run(capsys, p)
    assert rc == 0 and out.splitlines()[1].split() == ["column", "count", "mean", "std", "min", "max", "nonfinite", "missing"]


def test_csv_without_header_tsv_and_late_words(tmp_path, capsys):
    x = RNG.normal(size=(20_000, 2))
    p = tmp_path / "t.tsv"
    rows = [f"{a}\t{b}" for a, b in x.tolist()]
    rows[15_000] = f"{x[15_000, 0].item()}\toops"  # a word far past the first block: the read starts over
    p.write_text("\n".join(rows) + "\n")
    got, err = run_json(capsys, p, "--chunk-size", "4096")
    assert "column '1' is not numeric ('oops')" in err
    assert_matches(got, reference(x[:, :1]), ["0"])


def test_table_output(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.arange(10.0).reshape(5, 2))
    rc, out, err = run(capsys, tmp_path / "x.npy")
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert "shape (5, 2) float64" in lines[0]
    assert lines[2].split() == ["0", "5", "4", "2.82843", "0", "8", "0", "0"]


def test_ddof(tmp_path, capsys):
    x = RNG.normal(size=(100, 2))
    np.save(tmp_path / "x.npy", x)
    got, _ = run_json(capsys, tmp_path / "x.npy", "--ddof", "1")
    assert_matches(got, reference(x, ddof=1), ["0", "1"])


# -- bad input: one line on stderr, non-zero exit, no traceback -------------------------------


def _bad(capsys, *argv, match):
    rc, out, err = run(capsys, *argv)
    assert rc != 0
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastmoments: error: "), err
    assert "Traceback" not in err
    assert match in lines[0], lines[0]


def test_missing_file(tmp_path, capsys):
    _bad(capsys, tmp_path / "nope.npy", match="no such file")


def test_truncated_npy(tmp_path, capsys):
    np.save(tmp_path / "x.npy", RNG.normal(size=(1000, 4)))
    b = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(b[:5000])
    _bad(capsys, tmp_path / "t.npy", match="truncated")
    (tmp_path / "h.npy").write_bytes(b[:40])  # cut inside the header
    _bad(capsys, tmp_path / "h.npy", match="header")


@pytest.mark.parametrize(
    "content, match",
    [
        (b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f8', 'shape': (3,), 'fo\n" + b"x" * 64, "corrupt .npy header"),
        (b"\x93NUMPY\x01\x00\x30\x00{'descr': '<f8', 'shape': 'abc', 'fortran_order': False}\n", "corrupt .npy header"),
        (b"\x93NUMPY\x07\x00" + b"x" * 64, "unknown .npy format version"),
        (b"not a numpy file at all", "not a .npy file"),
    ],
)
def test_corrupt_npy(tmp_path, capsys, content, match):
    (tmp_path / "c.npy").write_bytes(content)
    _bad(capsys, tmp_path / "c.npy", match=match)


def test_object_arrays_are_refused_unread(tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "o.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "o.npz", ok=np.ones(3), bad=np.array([None], dtype=object))
    import pickle

    def boom(*a, **k):  # pragma: no cover - the point is that it never runs
        raise AssertionError("unpickled")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    _bad(capsys, tmp_path / "o.npy", match="refused")
    _bad(capsys, tmp_path / "o.npz", match="refused")
    got, _ = run_json(capsys, tmp_path / "o.npz", "--key", "ok")  # the numeric member alone is fine
    assert got["ok"]["count"] == 3


def test_other_non_numeric_dtypes(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.ones(3, complex))
    _bad(capsys, tmp_path / "c.npy", match="complex")
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    _bad(capsys, tmp_path / "s.npy", match="string")
    np.save(tmp_path / "r.npy", np.zeros(3, dtype=[("a", "f8"), ("b", "i4")]))
    _bad(capsys, tmp_path / "r.npy", match="structured")


@pytest.mark.parametrize("name, extra", [("e.npy", ()), ("e.npz", ()), ("e.csv", ()), ("e.bin", ("--dtype", "f8"))])
def test_empty_files(tmp_path, capsys, name, extra):
    (tmp_path / name).write_bytes(b"")
    _bad(capsys, tmp_path / name, *extra, match="empty")


def test_csv_bad_inputs(tmp_path, capsys):
    (tmp_path / "h.csv").write_text("a,b\n")
    _bad(capsys, tmp_path / "h.csv", match="no data rows")
    (tmp_path / "w.csv").write_text("a,b\nx,y\n")
    rc, out, err = run(capsys, tmp_path / "w.csv")
    assert rc == 2 and "note: column 'a' is not numeric" in err and "no numeric columns" in err
    (tmp_path / "r.csv").write_text("a,b\n1,2\n3\n")
    _bad(capsys, tmp_path / "r.csv", match="Expected 2 columns, got 1")
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe,b\n1,2\n")
    _bad(capsys, tmp_path / "b.csv", match="not UTF-8")
    (tmp_path / "c.csv").write_bytes(b"a,b\n1,2\n\xff\xfe,3\n")  # bytes in a column: not numeric
    rc, out, err = run(capsys, tmp_path / "c.csv", "--json")
    assert rc == 0 and "column 'a' is not numeric" in err and list(json.loads(out)) == ["b"]
    (tmp_path / "ok.csv").write_text("a,b\n1,2\n")
    _bad(capsys, tmp_path / "ok.csv", "--axis", "1", match="per column")


def test_wrong_shape_and_dtype(tmp_path, capsys):
    RNG.normal(size=(50, 3)).tofile(tmp_path / "x.bin")
    _bad(capsys, tmp_path / "x.bin", "--dtype", "f8", "--shape", "7,3", match="--shape 7,3 of float64 is 168 bytes")
    _bad(capsys, tmp_path / "x.bin", "--dtype", "f8", "--shape=-1,7", match="do not divide")
    _bad(capsys, tmp_path / "x.bin", "--dtype", "float33", match="not a dtype")
    _bad(capsys, tmp_path / "x.bin", "--dtype", "O", match="refused")
    _bad(capsys, tmp_path / "x.bin", match="cannot tell the format")
    _bad(capsys, tmp_path / "x.bin", "--dtype", "f8", "--offset", "99999", match="outside")
    np.save(tmp_path / "x.npy", np.ones((4, 2)))
    _bad(capsys, tmp_path / "x.npy", "--shape", "8", match="raw binary")
    _bad(capsys, tmp_path / "x.npy", "--axis", "2", match="out of range")
    _bad(capsys, tmp_path / "x.npy", "--axis", "0,-2", match="repeats")


def test_bad_npz(tmp_path, capsys):
    (tmp_path / "z.npz").write_bytes(b"PK\x03\x04 this is no zip")
    _bad(capsys, tmp_path / "z.npz", match="not a valid .npz")
    with zipfile.ZipFile(tmp_path / "n.npz", "w") as z:
        z.writestr("readme.txt", "hello")
    _bad(capsys, tmp_path / "n.npz", match="no arrays")
    np.savez(tmp_path / "k.npz", a=np.ones(2))
    _bad(capsys, tmp_path / "k.npz", "--key", "zz", match="no array 'zz'")


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["describe", "x.npy", "--chunk-size", "12"])
    assert e.value.code == 2
    assert "at least 4096" in capsys.readouterr().err


# -- Dask ------------------------------------------------------------------------------------


def test_scheduler_without_fastmoments_dask(tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "x.npy", np.ones((4, 2)))
    for m in [m for m in sys.modules if m.startswith("fastmoments_dask.")]:
        monkeypatch.setitem(sys.modules, m, None)  # submodules an earlier test imported, too
    monkeypatch.setitem(sys.modules, "fastmoments_dask", None)  # import fails
    _bad(capsys, tmp_path / "x.npy", "--scheduler", "tcp://127.0.0.1:8786", match="needs the fastmoments-dask package")
    # the core finds the cluster path through an entry point, never by importing the integration
    src = open(os.path.join(os.path.dirname(__import__('fastmoments').__file__), 'cli.py')).read()
    assert 'fastmoments_dask' not in src.replace('needs the fastmoments-dask', '')


def test_scheduler_runs_on_a_cluster(tmp_path, capsys):
    pytest.importorskip("fastmoments_dask")
    distributed = pytest.importorskip("distributed")
    x = RNG.normal(size=(30_000, 3))
    np.save(tmp_path / "c.npy", x)
    np.asfortranarray(x).T.tofile(tmp_path / "f.bin")  # C bytes of x.T = F bytes of x
    with distributed.LocalCluster(
        n_workers=1, processes=False, threads_per_worker=2, dashboard_address=":0"
    ) as cluster:
        got, _ = run_json(capsys, tmp_path / "c.npy", "--scheduler", cluster.scheduler_address, "--chunk-size", "64k")
        assert_matches(got, reference(x), ["0", "1", "2"])
        got, _ = run_json(
            capsys, tmp_path / "f.bin", "--dtype", "f8", "--shape", "30000,3", "--order", "F",
            "--scheduler", cluster.scheduler_address, "--chunk-size", "64k",
        )
        assert_matches(got, reference(x), ["0", "1", "2"])
        _bad(capsys, tmp_path / "c.npy", "--scheduler", cluster.scheduler_address, "--axis", "5", match="out of range")
        # a 0-d array holds one value, which the workers must not replace by 0
        np.save(tmp_path / "s.npy", np.float64(3.5))
        np.array(-2.25).tofile(tmp_path / "s.bin")
        for argv in ([tmp_path / "s.npy"], [tmp_path / "s.bin", "--dtype", "f8", "--shape=()"]):
            got, _ = run_json(capsys, *argv, "--axis", "all", "--scheduler", cluster.scheduler_address)
            v = np.load(tmp_path / "s.npy") if argv[0].suffix == ".npy" else -2.25
            assert got["all"] == {"count": 1, "mean": v, "std": 0.0, "min": v, "max": v, "nonfinite": 0, "missing": 0}


# -- the console script and the memory bound --------------------------------------------------


def _exe():
    exe = os.path.join(os.path.dirname(sys.executable), "fastmoments")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "fastmoments.cli"]


def test_console_script(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(6.0).reshape(3, 2))
    r = subprocess.run([*_exe(), "describe", str(tmp_path / "x.npy"), "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["1"]["mean"] == 3.0
    r = subprocess.run([*_exe(), "describe", str(tmp_path / "missing.npy")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


_PEAK = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(r.stderr)
sys.stdout.write(r.stdout)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, file=sys.stderr)
sys.exit(r.returncode)
"""


def _peak_rss(argv):
    """Run ``argv`` in a fresh process; return (stdout, peak RSS in bytes) of that process alone."""
    r = subprocess.run([sys.executable, "-c", _PEAK, *argv], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout, int(r.stderr.strip().splitlines()[-1])


def test_memory_bound_on_a_large_npy(tmp_path):
    """A 320 MB .npy with 8 MB chunks peaks within 2 x 8 MB + 32 MB of a 10 MB file's run."""
    rows, cols = 10_000_000, 4  # 320 MB of float64
    p = tmp_path / "big.npy"
    x = np.lib.format.open_memmap(p, mode="w+", dtype=np.float64, shape=(rows, cols))
    step = 1_000_000
    for i in range(0, rows, step):
        x[i : i + step] = RNG.normal(size=(step, cols)) + np.arange(cols)
    x.flush()
    ref = {
        "count": np.full(cols, rows),
        "mean": np.mean(x, axis=0),
        "std": np.std(x, axis=0),
        "min": np.min(x, axis=0),
        "max": np.max(x, axis=0),
        "nonfinite": np.zeros(cols, int),
    }
    del x
    chunk = 8 * 1024 * 1024
    # first a smaller file of the same kind and chunk size, so Numba's on-disk
    # cache holds every kernel the measured run uses (the parallel ones for
    # full chunks, the serial ones for the last): a cold compile is not what
    # the bound is about.
    np.save(tmp_path / "small.npy", RNG.normal(size=(300_000, cols)))
    small = [*_exe(), "describe", str(tmp_path / "small.npy"), "--json", "--chunk-size", str(chunk)]
    _peak_rss(small)
    # The baseline: the same process on a 10 MB file (Python, NumPy, Numba and
    # its loaded kernels, one chunk): ~167 MiB here, but it moves with Numba's
    # code footprint, so the bound is relative to it.
    _, base = _peak_rss(small)
    out, peak = _peak_rss([*_exe(), "describe", str(p), "--json", "--chunk-size", str(chunk)])
    assert_matches(json.loads(out), ref, [str(i) for i in range(cols)])
    bound = base + 2 * chunk + 32 * 1024 * 1024
    assert peak < bound, f"peak RSS {peak / 2**20:.0f} MiB >= {bound / 2**20:.0f} MiB (baseline {base / 2**20:.0f})"
    assert peak < 2 * chunk + 300 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MiB"
    # the bound means something: holding the whole file would exceed it
    assert p.stat().st_size > bound - base


def test_json_keeps_repeated_names_and_stays_valid(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("a,a,,column 2,x\n1,2,3,4,5\n6,7,8,9,10\n")
    got, _ = run_json(capsys, tmp_path / "d.csv")
    assert list(got) == ["a", "a (2)", "column 2", "column 2 (2)", "x"]
    assert [got[k]["max"] for k in got] == [6, 7, 8, 9, 10]
    # JSON has no infinities: a std past float64's range is the string "inf"
    np.save(tmp_path / "b.npy", np.array([1e308, -1e308]))
    rc, out, err = run(capsys, tmp_path / "b.npy", "--json")
    got = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert got["all"]["std"] == "inf" and got["all"]["mean"] == 0.0


def test_csv_quoted_newlines_at_any_chunk_size(tmp_path, capsys):
    rows = "".join(f'{i},"line\nbreak, {i}",{2 * i}\n' for i in range(2000))
    (tmp_path / "q.csv").write_text("n,text,v\n" + rows)
    n = np.arange(2000.0)
    for chunk in ("4096", "5000", "64MB"):
        got, err = run_json(capsys, tmp_path / "q.csv", "--chunk-size", chunk)
        assert_matches(got, {"count": [2000, 2000], "mean": [n.mean(), 2 * n.mean()], "std": [n.std(), 2 * n.std()],
                             "min": [0, 0], "max": [1999, 3998], "nonfinite": [0, 0]}, ["n", "v"])
        assert "'text' is not numeric" in err


def test_dtype_and_chunk_size_mistakes(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.ones(4))
    _bad(capsys, tmp_path / "c.npy", "--dtype", "f4", match="--dtype and --shape are for raw binary files")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    got, _ = run_json(capsys, tmp_path / "t.csv", "--chunk-size", "100G")  # not allocated
    assert got["b"]["mean"] == 2.0
    with pytest.raises(SystemExit) as e:
        main(["describe", str(tmp_path / "t.csv"), "--chunk-size", "99999999999999999999999T"])
    assert e.value.code == 2 and "at most" in capsys.readouterr().err


def test_npy_headers_that_no_array_has(tmp_path, capsys):
    def npy(name, header):
        with open(tmp_path / name, "wb") as fp:
            np.lib.format.write_array_header_1_0(fp, header)
            fp.write(b"\0" * 64)
        return tmp_path / name

    for shape in [(-5,), (1, -5)]:
        rc, out, err = run(capsys, npy("neg.npy", {"descr": "<f8", "fortran_order": False, "shape": shape}))
        assert rc == 2 and "corrupt .npy header" in err, err
    if np.dtype(np.longdouble).itemsize > 8:
        np.save(tmp_path / "ld.npy", np.ones(3, np.longdouble))
        rc, out, err = run(capsys, tmp_path / "ld.npy")
        assert rc == 2 and "extended-precision" in err, err


def test_integer_extremes_are_not_printed_rounded(tmp_path, capsys):
    np.save(tmp_path / "u.npy", np.array([2**64 - 1, 7], np.uint64))
    np.save(tmp_path / "i.npy", np.array([2**63 - 1, -(2**53)], np.int64))
    got, _ = run_json(capsys, tmp_path / "u.npy")
    assert got["all"]["min"] == 7 and isinstance(got["all"]["min"], int)
    assert isinstance(got["all"]["max"], float)  # float64 of 2**64 - 1 is 2**64: not an exact integer
    got, _ = run_json(capsys, tmp_path / "i.npy")
    assert got["all"]["min"] == -(2**53) and isinstance(got["all"]["min"], int)
    assert isinstance(got["all"]["max"], float)
