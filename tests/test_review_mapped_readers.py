"""Review checks of three changes: Arrow IPC / Feather read through a memory map
with batches gathered to a chunk (``readers/tables.py::read_arrow``,
``_read_batches``), HDF5 datasets stored as is read through a memory map
(``readers/arrays.py::_MappedRows``), and ``summarize(x, axis=0)`` in one
shifted pass per tile (``cpu/tiles.py::_shifted_tile_summary``).

Every result is compared with an independent reference (pyarrow/h5py reads
and NumPy float64 statistics) or asserts a property the change must keep
(one-line errors with exit status 2, no crash, memory following the chunk,
the file left unchanged, bit-identical results for 1 and 2 threads).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastmoments as fm
from fastmoments.cli import main
from test_cli import _bad, _exe, _peak_rss, assert_matches, reference, run, run_json

pa = pytest.importorskip("pyarrow")
feather = pytest.importorskip("pyarrow.feather")
h5py = pytest.importorskip("h5py")

RNG = np.random.default_rng(20261207)
CHUNK = 8 << 20


# -- Arrow IPC / Feather ------------------------------------------------------------------------


def _table(n=20_000):
    f = RNG.normal(5, 2, n)
    f[::97] = np.nan
    f[5] = -np.inf
    valid = np.arange(n) % 13 != 0
    return pa.table({
        "f": pa.array(f, mask=~valid),
        "i": pa.array(RNG.integers(-100, 100, n).astype(np.int16)),
        "b": pa.array(RNG.random(n) < 0.3),
        "s": pa.array([str(k) for k in range(n)]),
        "dct": pa.array(["a", "b"] * (n // 2)).dictionary_encode(),
        "u": pa.array(RNG.integers(0, 2**63, n, dtype=np.uint64)),
        "nul": pa.nulls(n),
        "h": pa.array(RNG.normal(size=n).astype(np.float16)),
        "i8n": pa.array(RNG.integers(-128, 127, n).astype(np.int8), mask=RNG.random(n) < 0.5),
        "g": pa.array(RNG.normal(size=n).astype(np.float32)),
    })


def _arrow_reference(table):
    """NumPy statistics of each numeric/bool/null column; nulls counted as missing."""
    names, refs = [], []
    for name in table.column_names:
        c = table.column(name)
        t = c.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)):
            continue
        valid = np.ones(len(c), bool) if not c.null_count else c.is_valid().to_numpy(zero_copy_only=False)
        v = np.zeros(len(c)) if pa.types.is_null(t) else np.asarray(c.to_numpy(zero_copy_only=False), np.float64)
        names.append(name)
        refs.append({**reference(v[valid]), "missing": int((~valid).sum())})
    ref = {k: np.array([r[k] for r in refs]) for k in refs[0]}
    return names, ref


def _write(table, path, kind, **kw):
    if kind == "stream":
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
            for b in table.to_batches(max_chunksize=kw.get("chunksize", 333)):
                w.write_batch(b)
    else:
        feather.write_feather(table, path, compression=kind, chunksize=kw.get("chunksize", 1000))


@pytest.mark.parametrize("kind, batch", [
    ("uncompressed", 1000), ("lz4", 1000), ("zstd", 777), ("uncompressed", 10**9), ("stream", 333), ("stream", 1),
])
@pytest.mark.parametrize("chunk", ["4096", "100k", "64MB"])
def test_arrow_matches_reference(tmp_path, capsys, kind, batch, chunk):
    table = _table(3000 if batch == 1 else 20_000)
    p = tmp_path / ("t.arrows" if kind == "stream" else "t.feather")
    _write(table, p, kind, chunksize=batch)
    before = hashlib.sha256(p.read_bytes()).hexdigest()
    rc, out, err = run(capsys, p, "--json", "--chunk-size", chunk)
    assert rc == 0, err
    # the non-numeric columns are skipped with one note each
    assert "note: column 's' is not numeric" in err and "note: column 'dct' is not numeric" in err
    names, ref = _arrow_reference(table)
    assert_matches(json.loads(out), ref, names)
    assert hashlib.sha256(p.read_bytes()).hexdigest() == before  # the input is left as it was


@pytest.mark.parametrize("kind", ["file", "stream"])
def test_arrow_zero_batches(tmp_path, capsys, kind):
    schema = pa.schema([("f", pa.float64()), ("b", pa.bool_())])
    p = tmp_path / ("z.arrow" if kind == "file" else "z.arrows")
    with pa.OSFile(str(p), "wb") as sink:
        with (pa.ipc.new_file if kind == "file" else pa.ipc.new_stream)(sink, schema):
            pass
    got, _ = run_json(capsys, p)
    assert [got[c]["count"] for c in ("f", "b")] == [0, 0]
    assert got["f"]["mean"] is None and got["f"]["missing"] == 0


@pytest.mark.parametrize("kind", ["uncompressed", "lz4", "stream"])
def test_arrow_truncated_anywhere_is_one_error_line(tmp_path, capsys, kind):
    """Cut in the middle of any batch (every 37th length): a one-line error, never a crash.
    (A stream cut exactly between messages is a valid shorter stream.)"""
    table = pa.table({"f": RNG.normal(size=150), "b": RNG.random(150) < 0.5, "s": [str(i) for i in range(150)]})
    p = tmp_path / ("t.arrows" if kind == "stream" else "t.feather")
    _write(table, p, kind, chunksize=50)
    data = p.read_bytes()
    cut = tmp_path / ("cut.arrows" if kind == "stream" else "cut.feather")
    for n in range(1, len(data), 37):
        cut.write_bytes(data[:n])
        rc, out, err = run(capsys, cut, "--json", "--chunk-size", "4096")
        if rc == 0 and kind == "stream":
            continue
        lines = [line for line in err.strip().splitlines() if not line.startswith("note:")]
        assert rc == 2 and out == "", (n, rc, err)
        assert len(lines) == 1 and lines[0].startswith("fastmoments: error: "), (n, err)


def test_arrow_non_utf8_field_name_is_exit_2(tmp_path, capsys):
    p = tmp_path / "t.feather"
    feather.write_feather(pa.table({"fcol": RNG.normal(size=100)}), p, compression="uncompressed")
    p.write_bytes(p.read_bytes().replace(b"fcol", b"\xff\xfe\xfd\xfc"))
    _bad(capsys, p, match="the name of column 1 is not UTF-8")


def test_parquet_non_utf8_column_name_is_exit_2(tmp_path, capsys):
    import pyarrow.parquet as pq

    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"ok": RNG.normal(size=100), "fcol": RNG.normal(size=100)}), p)
    p.write_bytes(p.read_bytes().replace(b"fcol", b"\xff\xfe\xfd\xfc"))
    _bad(capsys, p, match="a column name is not UTF-8")


def _bounded(small, big, chunk=CHUNK):
    """Peak RSS of describing ``big`` against that of ``small`` (the fixed part):
    the big file may add two chunks and a little, as in test_describe_formats."""
    base_cmd = [*_exe(), "describe", str(small), "--json", "--chunk-size", str(chunk)]
    big_cmd = [*_exe(), "describe", str(big), "--json", "--chunk-size", str(chunk)]
    _peak_rss(big_cmd)  # Numba's cache holds the big file's kernels too (a cold compile held ~120 MiB)
    _peak_rss(base_cmd)
    _, base = _peak_rss(base_cmd)
    out, peak = _peak_rss(big_cmd)
    return json.loads(out), peak, base, f"peak {peak / 2**20:.0f} MiB, baseline {base / 2**20:.0f} MiB"


def test_arrow_compressed_memory_follows_the_chunk_not_the_skipped_columns(tmp_path):
    """A zstd Feather file with one float column (4.8 MB) and a wide string
    column (~190 MB decompressed). The string column is skipped, but with
    the map Arrow decompresses every column of each batch (no
    included_fields), and a group holds batches until their *numeric* bytes
    reach the chunk: here the whole file's strings at once."""
    n = 600_000
    s = pa.array(np.char.add(RNG.integers(0, 10**9, n).astype(str), "x" * 300).astype(object))
    f = RNG.normal(size=n)
    big = tmp_path / "big.feather"
    feather.write_feather(pa.table({"f": f, "s": s}), big, compression="zstd", chunksize=65536)
    small = tmp_path / "small.feather"
    feather.write_feather(pa.table({"f": f[:20_000], "s": s[:20_000]}), small, compression="zstd", chunksize=65536)
    got, peak, base, msg = _bounded(small, big)
    assert got["f"]["count"] == n
    assert abs(got["f"]["mean"] - f.mean()) <= 1e-12
    assert peak < base + 2 * CHUNK + 48 * 2**20, msg


def test_arrow_many_small_batches_memory_follows_the_chunk(tmp_path):
    """An Arrow stream of 150 000 one-row batches (1.2 MB of values): the
    group is flushed only when its column bytes reach the chunk, so every
    batch (and its Python objects, ~1.6 kB each) is held until the end."""
    x = RNG.normal(size=150_000)
    big = tmp_path / "big.arrows"
    small = tmp_path / "small.arrows"
    for p, v in ((big, x), (small, x[:1000])):
        t = pa.table({"f": v})
        with pa.OSFile(str(p), "wb") as sink, pa.ipc.new_stream(sink, t.schema) as w:
            for b in t.to_batches(max_chunksize=1):
                w.write_batch(b)
    got, peak, base, msg = _bounded(small, big)
    assert got["f"]["count"] == len(x)
    assert abs(got["f"]["mean"] - x.mean()) <= 1e-12
    assert peak < base + 2 * CHUNK + 48 * 2**20, msg


_SHRINK_ARROW = """
import os, sys
import numpy as np, pyarrow as pa, pyarrow.feather as feather
from fastmoments.readers import tables
from fastmoments.cli import main
p = sys.argv[1]
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000  # rows per batch
feather.write_feather(pa.table({"f": np.random.default_rng(0).normal(size=400_000)}), p,
                      compression="uncompressed", chunksize=rows)
orig = tables._Columns.add_group
calls = []
def add_group(self, *a, **k):
    orig(self, *a, **k)
    calls.append(1)
    if len(calls) == 1:
        os.truncate(p, 100_000)  # the file is rewritten by someone else meanwhile
tables._Columns.add_group = add_group
sys.exit(main(["describe", p, "--no-progress", "--chunk-size", "64k"]))
"""


def test_arrow_file_shrinking_while_read_is_an_error_not_a_crash(tmp_path):
    """Before the map, a file cut while being read gave 'not a readable Arrow
    IPC / Feather file (File too short ...)'; through the map the next batch
    touches pages past the end of the file: SIGBUS, no message."""
    r = subprocess.run([sys.executable, "-c", _SHRINK_ARROW, str(tmp_path / "t.feather")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastmoments: error: "), r.stderr


# -- HDF5 -----------------------------------------------------------------------------------------


def _h5_check(capsys, p, name, axis="0", chunk="4096"):
    with h5py.File(p, "r") as f:
        x = np.asarray(f[name][()], np.float64)
    got, _ = run_json(capsys, f"{p}:{name}", "--axis", axis, "--chunk-size", chunk)
    ax = None if axis == "all" else int(axis)
    ref = reference(x, ax)
    names = list(got)
    assert len(names) == np.asarray(ref["count"]).size
    assert_matches(got, ref, names)


def _h5_cases(p):
    """name -> how it was written; every dataset in one file."""
    with h5py.File(p, "w", userblock_size=4096, track_order=True) as f:
        f.create_dataset("contig", data=RNG.normal(size=(3001, 5)))
        ds = f.create_dataset("fill_partial", shape=(1000, 3), dtype="f8", chunks=(64, 3), fillvalue=42.5)
        ds[10:20] = RNG.normal(size=(10, 3))
        ds[500:700] = 1.0
        ds[999] = -3
        ds = f.create_dataset("fill_nan_first_unwritten", shape=(1000, 3), dtype="f4", chunks=(64, 3), fillvalue=np.nan)
        ds[100:300] = RNG.normal(size=(200, 3))
        ds = f.create_dataset("contig_fill", shape=(1000, 3), dtype="f8", fillvalue=-7.0)
        ds[300:310] = 5.0
        f.create_dataset("contig_unwritten", shape=(1000, 3), dtype="f8", fillvalue=-7.0)
        f.create_dataset("last_chunk_partial", data=RNG.normal(size=(1003, 7)), chunks=(100, 7))
        f.create_dataset("oned", data=RNG.normal(size=100_001))
        f.create_dataset("oned_chunked", data=RNG.normal(size=100_001), chunks=(999,))
        f.create_dataset("wide", data=RNG.normal(size=(3, 200_000)), chunks=(1, 200_000))
        f.create_dataset("threed", data=RNG.normal(size=(400, 3, 5)), chunks=(30, 3, 5))
        f.create_dataset("g/h/in_group", data=RNG.normal(size=(500, 3)), chunks=(50, 3))
        f.create_dataset("bigendian", data=RNG.normal(size=(300, 3)).astype(">f8"))
        ds = f.create_dataset("grown", data=RNG.normal(size=(100, 3)), maxshape=(None, 3), chunks=(40, 3))
        ds.resize((1000, 3))
        ds[500:600] = 2.0
        ds = f.create_dataset("shrunk", data=RNG.normal(size=(1000, 3)), maxshape=(None, None), chunks=(64, 3))
        ds.resize((333, 3))
        ds = f.create_dataset("shrunk_regrown", data=RNG.normal(size=(1000, 3)) + 100, maxshape=(None, 3),
                              chunks=(64, 3), fillvalue=0.0)
        ds.resize((330, 3))
        ds.resize((1000, 3))
        ds = f.create_dataset("cols_grown", data=RNG.normal(size=(1000, 3)), maxshape=(None, None), chunks=(64, 3))
        ds.resize((1000, 5))
        ds[:, 3:] = 1.5
        for dt in ("f2", "f4", "bool", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8"):
            if dt == "bool":
                v = RNG.random((2000, 3)) < 0.4
            elif dt[0] in "iu":
                v = RNG.integers(np.iinfo(dt).min, np.iinfo(dt).max, size=(2000, 3), dtype=dt, endpoint=True)
            else:
                v = (RNG.normal(size=(2000, 3)) * 50).astype(dt)
            f.create_dataset(f"dt_{dt}", data=v, chunks=(128, 3))
            f.create_dataset(f"dtc_{dt}", data=v)


H5_NAMES = ["contig", "fill_partial", "fill_nan_first_unwritten", "contig_fill", "contig_unwritten",
            "last_chunk_partial", "oned", "oned_chunked", "wide", "threed", "g/h/in_group", "bigendian", "grown",
            "shrunk", "shrunk_regrown", "cols_grown"] + [
            f"{p}_{dt}" for p in ("dt", "dtc") for dt in ("f2", "f4", "bool", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8")]


@pytest.fixture(scope="module")
def h5file(tmp_path_factory):
    p = tmp_path_factory.mktemp("h5") / "cases.h5"
    _h5_cases(p)
    return p


@pytest.mark.parametrize("name", H5_NAMES)
def test_hdf5_layouts_match_h5py(h5file, capsys, name):
    before = hashlib.sha256(h5file.read_bytes()).hexdigest()
    for chunk in ("4096", "64MB"):
        _h5_check(capsys, h5file, "/" + name, chunk=chunk)
    if name not in ("oned", "oned_chunked"):
        _h5_check(capsys, h5file, "/" + name, axis="1")
    _h5_check(capsys, h5file, "/" + name, axis="all")
    assert hashlib.sha256(h5file.read_bytes()).hexdigest() == before


def test_hdf5_refused_and_empty(tmp_path, capsys):
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("compound", data=np.zeros(10, dtype=[("a", "f8"), ("b", "i4")]))
        f.create_dataset("zero_len", shape=(0, 4), dtype="f8")
        f.create_dataset("zero_width", shape=(5, 0), dtype="f8")
    _bad(capsys, f"{p}:/compound", match="structured dtype")
    got, _ = run_json(capsys, f"{p}:/zero_len")
    assert [got[k]["count"] for k in got] == [0] * 4
    got, _ = run_json(capsys, f"{p}:/zero_width")
    assert got == {}


def test_hdf5_truncated_files_are_one_error_line(tmp_path, capsys):
    src = tmp_path / "src.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("c", data=RNG.normal(size=(2000, 3)))
        f.create_dataset("k", data=RNG.normal(size=(2000, 3)), chunks=(100, 3))
    data = src.read_bytes()
    cut = tmp_path / "cut.h5"
    for n in range(1, len(data), 997):
        cut.write_bytes(data[:n])
        for m in ("/c", "/k"):
            rc, out, err = run(capsys, f"{cut}:{m}", "--json", "--chunk-size", "4096")
            lines = err.strip().splitlines()
            assert rc == 2 and out == "" and len(lines) == 1 and lines[0].startswith("fastmoments: error: "), (n, m, err)


def test_hdf5_integer_type_with_bit_offset_is_not_read_raw(tmp_path, capsys):
    """A 32-bit little-endian integer type with precision 16 at bit offset 8
    (h5py reports int32, native): its stored bytes are not the values; HDF5
    converts them. The map's check looks at the first and last rows only,
    which are 0 here (0 stored as 0), so the raw bytes are summarized:
    means ~127 000 instead of ~500."""
    t = h5py.h5t.STD_I32LE.copy()
    t.set_precision(16)
    t.set_offset(8)
    x = (np.arange(2000, dtype=np.int32).reshape(1000, 2) % 1000)
    x[0] = x[-1] = 0
    p = tmp_path / "prec.h5"
    with h5py.File(p, "w") as f:
        ds = h5py.Dataset(h5py.h5d.create(f.id, b"x", t, h5py.h5s.create_simple(x.shape)))
        ds[...] = x
    with h5py.File(p, "r") as f:
        np.testing.assert_array_equal(f["x"][()], x)  # HDF5's own read is right
    got, _ = run_json(capsys, f"{p}:/x")
    assert_matches(got, reference(x), ["0", "1"])


_SHRINK_H5 = """
import os, sys
import numpy as np, h5py
import fastmoments.readers.arrays as A
from fastmoments.cli import main
p = sys.argv[1]
with h5py.File(p, "w") as f:
    f.create_dataset("x", data=np.random.default_rng(0).normal(size=(200_000, 4)))
orig = A._MappedRows.rows
calls = []
def rows(self, a, b):
    calls.append(1)
    if len(calls) == 4:  # after the two offset checks and the first slice
        os.truncate(p, 100_000)
    return orig(self, a, b)
A._MappedRows.rows = rows
sys.exit(main(["describe", p + ":/x", "--no-progress", "--chunk-size", "64k"]))
"""


def test_hdf5_file_shrinking_while_read_does_not_crash(tmp_path):
    """Through HDF5's read a shrunk file was read (as zeros past its end);
    through the map the next slice touches pages past the end: SIGBUS."""
    r = subprocess.run([sys.executable, "-c", _SHRINK_H5, str(tmp_path / "f.h5")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode >= 0, f"killed by signal {-r.returncode}"
    if r.returncode:
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("fastmoments: error: "), r.stderr


def test_hdf5_many_small_chunks_not_quadratic(tmp_path, capsys):
    """37 500 chunks of 16 whole rows: _MappedRows._piece asks
    get_chunk_info_by_coord once per chunk, and each call walks the chunk
    index (0.05 ms at 4 000 chunks, 0.2 ms at 25 000, 0.6 ms at 62 500),
    so the read is quadratic in the chunks (1M rows: 40 s against 1.5 s
    before the map). HDF5's own read of the whole dataset is the yardstick."""
    x = RNG.normal(size=(600_000, 4))
    p = tmp_path / "small_chunks.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", data=x, chunks=(16, 4))
    with h5py.File(tmp_path / "warm.h5", "w") as f:
        f.create_dataset("x", data=x[:1000], chunks=(16, 4))
    run_json(capsys, f"{tmp_path / 'warm.h5'}:/x")  # kernels compiled/loaded
    t = time.perf_counter()
    with h5py.File(p, "r") as f:
        f["x"][()]
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    got, _ = run_json(capsys, f"{p}:/x")
    t_describe = time.perf_counter() - t
    assert_matches(got, reference(x), ["0", "1", "2", "3"])
    assert t_describe < 10 * t_read + 2.0, (t_describe, t_read)


# -- summarize(x, axis=0): the shifted one-pass tile -----------------------------------------------


def _col_reference(x):
    x = np.asarray(x, np.float64)
    out = {k: [] for k in ("count", "mean", "m2", "min", "max", "n_nonfinite", "n_zero")}
    for j in range(x.shape[1]):
        col = x[:, j]
        fin = col[np.isfinite(col)]
        n = fin.size
        out["count"].append(n)
        out["n_nonfinite"].append(col.size - n)
        out["n_zero"].append(int(np.count_nonzero(col == 0)))
        if n:
            mean = float(fin[0]) if np.all(fin == fin[0]) else math.fsum(fin / n)
            out["mean"].append(mean)
            with np.errstate(over="ignore"):
                d2 = (fin - mean) ** 2
            out["m2"].append(math.fsum(d2) if np.all(np.isfinite(d2)) else np.inf)
            out["min"].append(fin.min())
            out["max"].append(fin.max())
        else:
            for k, v in (("mean", np.nan), ("m2", 0.0), ("min", np.nan), ("max", np.nan)):
                out[k].append(v)
    return {k: np.array(v) for k, v in out.items()}


def _check_cols(x, rtol=1e-12):
    s = fm.summarize(x, axis=0)
    ref = _col_reference(x)
    for k in ("count", "n_nonfinite", "n_zero"):
        np.testing.assert_array_equal(getattr(s, k), ref[k], err_msg=k)
    for k in ("min", "max"):
        np.testing.assert_array_equal(getattr(s, k), ref[k], err_msg=k)
    have = ref["count"] > 0
    spread = np.sqrt(np.where(have, ref["m2"], 0) / np.maximum(ref["count"], 1))
    err = np.abs(s.mean - ref["mean"])
    assert np.all(err[have] <= rtol * (np.abs(ref["mean"]) + spread)[have]), ("mean", s.mean, ref["mean"])
    with np.errstate(invalid="ignore"):
        ok = (np.abs(s.m2 - ref["m2"]) <= rtol * 10 * ref["m2"]) | (s.m2 == ref["m2"])
    assert np.all(ok), ("m2", s.m2[~ok], ref["m2"][~ok])
    # the 2-D path agrees with the 1-D path of each column, signs of zeros included
    for j in range(x.shape[1]):
        c = fm.summarize(np.ascontiguousarray(x[:, j]))
        for k in ("min", "max"):
            a, b = np.float64(getattr(s, k)[j]), np.float64(getattr(c, k))
            assert (np.isnan(a) and np.isnan(b)) or (a == b and np.signbit(a) == np.signbit(b)), (j, k, a, b)
        assert getattr(s, "count")[j] == c.count and s.n_zero[j] == c.n_zero
    return s


def _col_cases():
    c = {}
    k = 200_000
    x = np.zeros((k, 4))
    x[:, 0] = -0.0
    x[: k // 2, 1] = -0.0
    x[k // 2 :, 2] = -0.0
    x[::2, 3] = -0.0
    c["signed_zeros"] = x
    for v in (0.1, 1e300, -3.3333333333333335, 1e-310, 3e154):
        x = np.full((300_000, 2), v)
        x[:, 1] = -v
        c[f"const_{v}"] = x
    c["const_f32"] = np.full((400_000, 5), np.float32(0.1), np.float32)
    x = np.full((300_000, 3), 2.5)
    x[:140_000] = np.nan
    x[::7, 2] = np.inf
    c["const_after_nan_tiles"] = x
    x = RNG.uniform(1e307, 1.7e308, size=(300_000, 3))
    x[:, 1] *= -1
    x[::2, 2] *= -1
    c["huge"] = x
    x = RNG.normal(size=(300_000, 4))
    x[::3, 0] = np.nan
    x[::5, 1] = np.inf
    x[::11, 1] = -np.inf
    x[:, 2] = np.nan
    x[200_000:, 3] = np.nan
    c["nonfinite"] = x
    c["drift"] = RNG.normal(size=(400_000, 3)) + np.linspace(0, 1e9, 400_000)[:, None]
    x = RNG.normal(size=(400_000, 3))
    x[200_000:] += 1e12
    c["step"] = x
    for dt in ("int8", "uint16", "int32", "uint64"):
        ii = np.iinfo(dt)
        c[f"int_{dt}"] = RNG.integers(ii.min, ii.max, size=(300_000, 3), dtype=dt, endpoint=True)
    c["int64_extremes"] = np.tile(np.array([[2**63 - 1], [-2**63]], np.int64), (150_000, 3))
    c["bool"] = RNG.random((300_000, 5)) < 0.3
    c["f16"] = RNG.normal(size=(300_000, 7)).astype(np.float16)
    for shp in [(1, 1), (1, 2000), (2, 3), (1023, 1025), (300, 2000)]:
        c[f"shape_{shp}"] = RNG.normal(size=shp) + 3
    c["fortran"] = np.asfortranarray(RNG.normal(size=(300_000, 6)))
    c["strided"] = RNG.normal(size=(400_000, 6))[::2, ::2]
    return c


COL_CASES = _col_cases()


@pytest.mark.parametrize("name", list(COL_CASES))
def test_column_summary_matches_numpy_and_the_1d_path(name):
    s = _check_cols(COL_CASES[name])
    if name.startswith("const"):
        x = COL_CASES[name]
        np.testing.assert_array_equal(s.m2, 0.0)
        first = [np.float64(x[:, j][np.isfinite(x[:, j])][0]) for j in range(x.shape[1])]
        np.testing.assert_array_equal(s.mean, first)  # exactly the constant


@pytest.mark.parametrize("m", [3, 16, 200])
def test_column_summary_far_shift_near_overflow(m):
    """Tile 1 of each column all 0, tile 2 all 1e151: the second tile's
    shift (0) is far from its mean. s*s (8e154^2) and 0.5*n*q both overflow
    to inf, inf > inf is False, so the one-pass result is kept:
    m2 = q - s*s/n = -inf, std NaN. Before 048ea14 (two passes per tile):
    m2 = 4.096e305 for m = 16, as NumPy and the 1-D path have it."""
    rows = 8192 * (16 // m if m < 16 else 1) if m <= 16 else (1 << 20) // (m * 8)
    x = np.zeros((2 * rows, m))
    x[rows:] = 1e151
    s = fm.summarize(x, axis=0)
    one = fm.summarize(np.ascontiguousarray(x[:, 0]))
    np.testing.assert_allclose(s.m2, one.m2, rtol=1e-12)
    np.testing.assert_allclose(s.m2, rows * 2 * (0.5e151) ** 2, rtol=1e-12)


def test_column_moments_far_shift_near_overflow():
    """Fixed with the summary's check: _shifted_tile_state (moments) had the same overflow-blind far test."""
    x = np.zeros((16384, 16))
    x[8192:] = 1e151
    np.testing.assert_allclose(fm.moments(x, axis=0).m2, 16384 * (0.5e151) ** 2, rtol=1e-12)


_THREADS = """
import hashlib, numpy as np, fastmoments as fm
rng = np.random.default_rng(3)
xs = [rng.normal(size=(600_000, 3)) + np.linspace(0, 1e6, 600_000)[:, None], rng.normal(size=(2000, 1500)),
      (rng.normal(size=(600_000, 5)) * 1e3).astype(np.float32),
      rng.integers(0, 2**64 - 1, size=(300_000, 3), dtype=np.uint64, endpoint=True)]
xs[0][::17, 1] = np.nan
h = hashlib.sha256()
for x in xs:
    for f in fm.summarize(x, axis=0).fields:
        h.update(np.ascontiguousarray(f).tobytes())
print(h.hexdigest())
"""


def test_column_summary_same_bits_for_1_and_2_threads():
    out = []
    for n in ("1", "2"):
        env = {**os.environ, "NUMBA_NUM_THREADS": n}
        r = subprocess.run([sys.executable, "-c", textwrap.dedent(_THREADS)], capture_output=True, text=True,
                           timeout=600, env=env)
        assert r.returncode == 0, r.stderr
        out.append(r.stdout.strip())
    assert out[0] == out[1]
