"""`fastmoments describe` on the formats read through their own libraries (issue 22).

Every file is made here, in tmp_path, and every result compared with
NumPy/pandas float64 statistics of the same data: CSV/TSV plain and
compressed, Parquet, Arrow IPC/Feather, Zarr, HDF5; their bad and truncated
variants; the missing optional libraries; the memory bound on Parquet and
Zarr files several times the chunk size.
"""

from __future__ import annotations

import bz2
import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from fastmoments.cli import main
from test_cli import _bad, _exe, _peak_rss, assert_matches, reference, run, run_json

pa = pytest.importorskip("pyarrow")
pacsv = pytest.importorskip("pyarrow.csv")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")
zarr = pytest.importorskip("zarr")
h5py = pytest.importorskip("h5py")

RNG = np.random.default_rng(2222)


def table_reference(values, valid=None):
    """NumPy float64 statistics of one column: nulls (``~valid``) counted apart as missing."""
    values = np.asarray(values, dtype=np.float64)
    valid = np.ones(values.shape, bool) if valid is None else np.asarray(valid)
    return {**reference(values[valid]), "missing": (~valid).sum()}


def check_column(got, name, values, valid=None):
    assert_matches({name: got[name]}, table_reference(values, valid), [name])


def frame(n=5000):
    """A table of every kind of column: floats with NaN/Inf and nulls, ints with nulls, bools, strings."""
    f = RNG.normal(10.0, 3.0, n)
    f[::113] = np.nan
    f[7] = np.inf
    f_valid = np.arange(n) % 41 != 0  # nulls, apart from the NaNs above
    i = RNG.integers(-1000, 1000, n)
    i_valid = np.arange(n) % 29 != 3
    b = RNG.random(n) < 0.3
    g = RNG.normal(size=n).astype(np.float32)
    table = pa.table({
        "f": pa.array(f, mask=~f_valid),
        "i": pa.array(i, mask=~i_valid),
        "b": pa.array(b),
        "s": pa.array([f"row {k}" for k in range(n)]),
        "g": pa.array(g),
    })
    return table, {"f": (f, f_valid), "i": (i, i_valid), "b": (b, None), "g": (g, None)}


def check_frame(got, cols):
    assert list(got) == list(cols)
    for name, (values, valid) in cols.items():
        check_column(got, name, values, valid)


# -- CSV / TSV ------------------------------------------------------------------------------------


def _csv_bytes(sep=","):
    table, cols = frame(4000)
    out = pa.BufferOutputStream()
    pacsv.write_csv(table, out, pacsv.WriteOptions(delimiter=sep))
    return out.getvalue().to_pybytes(), cols


def _zstd(data):
    buf = pa.BufferOutputStream()
    with pa.CompressedOutputStream(buf, "zstd") as s:
        s.write(data)
    return buf.getvalue().to_pybytes()


@pytest.mark.parametrize("name, pack", [
    ("t.csv", lambda d: d),
    ("t.csv.gz", gzip.compress),
    ("t.csv.bz2", bz2.compress),
    ("t.csv.zst", _zstd),
    ("t.tsv.gz", gzip.compress),
    ("noext", gzip.compress),        # gzip told by its first bytes
    ("noext.bz2x", bz2.compress),    # bz2 told by its first bytes
    ("noext.zs", _zstd),             # zstd told by its first bytes
])
def test_csv_plain_and_compressed(tmp_path, capsys, name, pack):
    sep = "\t" if ".tsv" in name else ","
    data, cols = _csv_bytes(sep)
    (tmp_path / name).write_bytes(pack(data))
    got, err = run_json(capsys, tmp_path / name, "--chunk-size", "64k")
    assert "note: column 's' is not numeric" in err
    assert list(got) == ["f", "i", "b", "g"]
    # float64 and integers round-trip through the text exactly
    check_frame({k: got[k] for k in "fib"}, {k: cols[k] for k in "fib"})
    # float32 text is the float32's shortest decimal: pandas parses the same text independently
    g = pd.read_csv(pd.io.common.BytesIO(data), sep=sep)["g"].to_numpy()
    check_column(got, "g", g)


def test_csv_integer_column_with_a_late_float(tmp_path, capsys):
    n = 30_000
    v = RNG.integers(0, 1000, n).astype(np.float64)
    v[25_000] = 2.5  # Arrow typed the column int64 from the first block
    p = tmp_path / "late.csv"
    p.write_text("v,w\n" + "".join(f"{a:g},{k}\n" for k, a in enumerate(v)))
    got, err = run_json(capsys, p, "--chunk-size", "64k")
    assert err == ""
    check_column(got, "v", v)
    check_column(got, "w", np.arange(n))


def test_csv_null_spellings_and_nan(tmp_path, capsys):
    p = tmp_path / "n.csv"
    p.write_text("a\n1\nNA\n\nnan\nNaN\ninf\n-inf\nnull\n3\n")
    got, _ = run_json(capsys, p)
    # NA, null and the empty line's... (blank lines are skipped): 2 nulls; nan/NaN/inf/-inf: 4 non-finite
    assert got["a"] == {"count": 2, "mean": 2.0, "std": 1.0, "min": 1, "max": 3, "nonfinite": 4, "missing": 2}


def test_csv_gzip_cut_short(tmp_path, capsys):
    data, _ = _csv_bytes()
    z = gzip.compress(data)
    (tmp_path / "cut.csv.gz").write_bytes(z[: len(z) // 2])
    _bad(capsys, tmp_path / "cut.csv.gz", match="cut.csv.gz")
    (tmp_path / "junk.csv.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 100)
    _bad(capsys, tmp_path / "junk.csv.gz", match="junk.csv.gz")


# -- Parquet --------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", ["4096", "64k", "64MB"])
def test_parquet(tmp_path, capsys, chunk):
    table, cols = frame()
    p = tmp_path / "t.parquet"
    pq.write_table(table, p, row_group_size=1500)
    got, err = run_json(capsys, p, "--chunk-size", chunk)
    assert err.count("note:") == 1 and "'s' is not numeric" in err
    check_frame(got, cols)
    rc, out, _ = run(capsys, p)
    assert rc == 0 and "Parquet (4 row groups)" in out.splitlines()[0]


def test_parquet_against_pandas(tmp_path, capsys):
    df = pd.DataFrame({"x": RNG.normal(size=3000), "k": RNG.integers(0, 9, 3000), "t": ["a"] * 3000})
    df.loc[::7, "x"] = None
    df.to_parquet(tmp_path / "p.parquet")
    got, _ = run_json(capsys, tmp_path / "p.parquet")
    for c in ("x", "k"):
        s = df[c]
        assert got[c]["count"] == s.count() and got[c]["missing"] == s.isna().sum()
        assert got[c]["mean"] == pytest.approx(s.mean(), rel=1e-12)
        assert got[c]["std"] == pytest.approx(s.std(ddof=0), rel=1e-12)


def test_parquet_bad(tmp_path, capsys):
    table, _ = frame()
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=1000)
    b = (tmp_path / "t.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(b[: len(b) // 2])  # the footer is gone
    _bad(capsys, tmp_path / "cut.parquet", match="not a readable Parquet file")
    (tmp_path / "e.parquet").write_bytes(b"")
    _bad(capsys, tmp_path / "e.parquet", match="empty")
    mid = bytearray(b)
    mid[200:20000] = b"\xa5" * 19800  # pages overwritten, footer intact
    (tmp_path / "mid.parquet").write_bytes(bytes(mid))
    _bad(capsys, tmp_path / "mid.parquet", match="mid.parquet")
    pq.write_table(pa.table({"s": ["a", "b"]}), tmp_path / "s.parquet")
    rc, out, err = run(capsys, tmp_path / "s.parquet")
    assert rc == 2 and "'s' is not numeric" in err and "no numeric columns" in err
    _bad(capsys, tmp_path / "t.parquet", "--axis", "1", match="per column")
    _bad(capsys, f"{tmp_path / 't.parquet'}:f", match="only Zarr and HDF5 files have members")
    _bad(capsys, tmp_path / "t.parquet", "--scheduler", "tcp://127.0.0.1:1", match="not tables")


# -- Arrow IPC / Feather ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["feather", "file", "stream"])
def test_arrow_ipc(tmp_path, capsys, kind):
    table, cols = frame()
    if kind == "feather":
        import pyarrow.feather as feather

        p = tmp_path / "t.feather"
        feather.write_feather(table, p, chunksize=700, compression="zstd")
    else:
        p = tmp_path / ("t.arrow" if kind == "file" else "t.arrows")
        with pa.OSFile(str(p), "wb") as sink:
            new = pa.ipc.new_file if kind == "file" else pa.ipc.new_stream
            with new(sink, table.schema) as w:
                for batch in table.to_batches(max_chunksize=900):
                    w.write_batch(batch)
    got, err = run_json(capsys, p)
    assert "'s' is not numeric" in err
    check_frame(got, cols)
    # told by the first bytes too
    q = tmp_path / "noext"
    q.write_bytes(p.read_bytes())
    got2, _ = run_json(capsys, q)
    assert got2 == got


def test_arrow_bad(tmp_path, capsys):
    import pyarrow.feather as feather

    table, _ = frame()
    feather.write_feather(table, tmp_path / "t.feather")
    b = (tmp_path / "t.feather").read_bytes()
    (tmp_path / "cut.feather").write_bytes(b[: len(b) // 2])
    _bad(capsys, tmp_path / "cut.feather", match="not a readable Arrow IPC / Feather file")
    (tmp_path / "junk.arrow").write_bytes(b"ARROW1\x00\x00garbage")
    _bad(capsys, tmp_path / "junk.arrow", match="not a readable Arrow IPC")
    (tmp_path / "v1.feather").write_bytes(b"FEA1" + b"\x00" * 64)
    _bad(capsys, tmp_path / "v1.feather", match="version 1")


# -- Zarr ------------------------------------------------------------------------------------------


def _zarr_group(tmp_path, x, chunks=(700, 3), zarr_format=3):
    g = zarr.open_group(tmp_path / "g.zarr", mode="w", zarr_format=zarr_format)
    a = g.create_array("sub/x", shape=x.shape, chunks=chunks, dtype=x.dtype)
    a[:] = x
    g.create_array("names", shape=(2,), dtype=str if zarr_format == 3 else "U4")
    return tmp_path / "g.zarr"


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("chunk", ["4096", "64k"])
def test_zarr(tmp_path, capsys, zarr_format, chunk):
    x = RNG.normal(2.0, 5.0, (10_000, 3))
    x[::97, 1] = np.nan
    store = _zarr_group(tmp_path, x, zarr_format=zarr_format)
    got, _ = run_json(capsys, f"{store}:sub/x", "--chunk-size", chunk)
    assert_matches(got, reference(x), ["0", "1", "2"])
    a = zarr.open_array(tmp_path / "a.zarr", mode="w", shape=(40, 9, 5), chunks=(7, 9, 5), dtype="i2", zarr_format=zarr_format)
    y = RNG.integers(-500, 500, (40, 9, 5)).astype(np.int16)
    a[:] = y
    for axis, ax in (("0", 0), ("1", 1), ("0,2", (0, 2)), ("all", None)):
        got, _ = run_json(capsys, tmp_path / "a.zarr", "--axis", axis, "--chunk-size", chunk)
        ref = reference(y, ax)
        shape = np.asarray(ref["count"]).shape
        assert_matches(got, ref, ["all"] if not shape else [",".join(map(str, i)) for i in np.ndindex(shape)])


def test_zarr_bad(tmp_path, capsys):
    store = _zarr_group(tmp_path, RNG.normal(size=(100, 3)))
    _bad(capsys, store, match="is a Zarr group, not an array")
    _bad(capsys, f"{store}:nope", match="has no array 'nope'; it has: ")
    _bad(capsys, f"{store}:sub", match="is a Zarr group, not an array")
    _bad(capsys, f"{store}:names", match="only bool, integer and real float")
    (tmp_path / "plain").mkdir()
    _bad(capsys, tmp_path / "plain", match="is a directory")
    # a chunk overwritten with junk
    chunk_files = sorted(p for p in (store / "sub" / "x").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk_files[0].write_bytes(b"junk")
    _bad(capsys, f"{store}:sub/x", match="unreadable data")


# -- HDF5 ------------------------------------------------------------------------------------------


def test_hdf5(tmp_path, capsys):
    x = RNG.normal(size=(9000, 4)).astype(np.float32)
    x[5, 2] = np.inf
    y = RNG.integers(0, 255, (300, 6, 2)).astype(np.uint8)
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("/grp/x", data=x, chunks=(500, 4), compression="gzip")
        f.create_dataset("/y", data=y)  # contiguous
        f.create_dataset("/scalar", data=2.5)
        f.create_dataset("/s", data=np.array([b"ab", b"cd"]))
        f.create_dataset("/vs", data=["a", "bb"], dtype=h5py.string_dtype())
        f.create_dataset("/rec", data=np.zeros(3, dtype=[("a", "f8"), ("b", "i4")]))
    for chunk in ("4096", "64MB"):
        got, _ = run_json(capsys, f"{p}:/grp/x", "--chunk-size", chunk)
        assert_matches(got, reference(x), ["0", "1", "2", "3"])
        got, _ = run_json(capsys, f"{p}:/y", "--axis", "0,2", "--chunk-size", chunk)
        assert_matches(got, reference(y, (0, 2)), [str(i) for i in range(6)])
    got, _ = run_json(capsys, f"{p}:grp/x", "--axis", "1")  # without the leading slash
    assert_matches(got, reference(x, 1), [str(i) for i in range(9000)])
    got, _ = run_json(capsys, f"{p}:/scalar", "--axis", "all")
    assert got["all"]["mean"] == 2.5
    _bad(capsys, f"{p}:/s", match="dataset of strings")
    _bad(capsys, f"{p}:/vs", match="dataset of strings")
    _bad(capsys, f"{p}:/rec", match="structured")
    _bad(capsys, f"{p}:/nope", match="has no dataset '/nope'")
    _bad(capsys, f"{p}:/grp", match="is an HDF5 group, not a dataset")
    _bad(capsys, p, match="holds 6 datasets: name one")
    with h5py.File(tmp_path / "one.hdf5", "w") as f:
        f["only"] = x[:10]
    got, _ = run_json(capsys, tmp_path / "one.hdf5")  # one dataset needs no name
    assert_matches(got, reference(x[:10]), ["0", "1", "2", "3"])


def test_hdf5_bad_files(tmp_path, capsys):
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        f["x"] = RNG.normal(size=(20_000, 3))
    b = p.read_bytes()
    (tmp_path / "cut.h5").write_bytes(b[: len(b) // 3])
    _bad(capsys, f"{tmp_path / 'cut.h5'}:/x", match="cut.h5")
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    _bad(capsys, tmp_path / "junk.h5", match="not a readable HDF5 file")
    (tmp_path / "e.h5").write_bytes(b"")
    _bad(capsys, tmp_path / "e.h5", match="empty")
    _bad(capsys, f"{tmp_path / 'x.npy'}:/a", match="no such file")


def test_progress_bar_on_every_reader(tmp_path, capsys):
    pytest.importorskip("tqdm")
    table, cols = frame(3000)
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=1000)
    data, csv_cols = _csv_bytes()
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(data))
    import pyarrow.feather as feather

    feather.write_feather(table, tmp_path / "t.feather", chunksize=500)
    x = RNG.normal(size=(5000, 3))
    store = _zarr_group(tmp_path, x)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("x", data=x, chunks=(500, 3))
    for target in ("t.parquet", "t.csv.gz", "t.feather"):
        rc = main(["describe", str(tmp_path / target), "--progress", "--json", "--chunk-size", "4096"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        got = json.loads(out)
        if target == "t.csv.gz":  # float32 text aside (see test_csv_plain_and_compressed)
            check_frame({k: got[k] for k in "fib"}, {k: csv_cols[k] for k in "fib"})
        else:
            check_frame(got, cols)
    for target in (f"{store}:sub/x", f"{tmp_path / 'f.h5'}:/x"):
        rc = main(["describe", str(target), "--progress", "--json", "--chunk-size", "4096"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        assert_matches(json.loads(out), reference(x), ["0", "1", "2"])


# -- the optional libraries --------------------------------------------------------------------------


@pytest.mark.parametrize("module, name, make", [
    ("pyarrow", "t.csv", lambda p: p.write_text("a\n1\n")),
    ("pyarrow", "t.parquet", lambda p: pq.write_table(pa.table({"a": [1.0]}), p)),
    ("zarr", "a.zarr", lambda p: zarr.open_array(p, mode="w", shape=(2,), dtype="f8")),
    ("h5py", "f.h5", lambda p: h5py.File(p, "w").close()),
])
def test_missing_reader_names_the_extra(tmp_path, capsys, monkeypatch, module, name, make):
    make(tmp_path / name)
    for m in list(sys.modules):
        if m == module or m.startswith(module + "."):
            monkeypatch.setitem(sys.modules, m, None)  # as if not installed: import fails
    monkeypatch.setitem(sys.modules, module, None)
    _bad(capsys, tmp_path / name, match="pip install fastmoments[io]")


# -- the cluster path, through the fastmoments-dask plug-in --------------------------------------------


def test_scheduler_reads_zarr_and_hdf5_on_the_workers(tmp_path, capsys):
    pytest.importorskip("fastmoments_dask")
    distributed = pytest.importorskip("distributed")
    x = RNG.normal(size=(30_000, 3))
    store = _zarr_group(tmp_path, x, chunks=(1000, 3))
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("/g/x", data=x, chunks=(1000, 3))
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=2, dashboard_address=":0") as cluster:
        for target in (f"{store}:sub/x", f"{tmp_path / 'f.h5'}:/g/x"):
            got, _ = run_json(capsys, target, "--scheduler", cluster.scheduler_address, "--chunk-size", "64k")
            assert_matches(got, reference(x), ["0", "1", "2"])


# -- bounded memory on files several times the chunk size ---------------------------------------------

CHUNK = 8 * 1024 * 1024
ROWS, COLS = 8_000_000, 5  # 320 MB of float64: 40 chunks


def _big(step=1_000_000):
    for i in range(0, ROWS, step):
        yield np.random.default_rng(i).normal(size=(min(step, ROWS - i), COLS)) + np.arange(COLS)


def path_bytes(path):
    return sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())


def _check_bound(tmp_path, path, small, ref_cols):
    base_cmd = [*_exe(), "describe", str(small), "--json", "--chunk-size", str(CHUNK)]
    big_cmd = [*_exe(), "describe", str(path), "--json", "--chunk-size", str(CHUNK)]
    # Numba's cache filled for both files: the large one takes kernels the
    # small one does not (parallel ones), and compiling them held ~120 MiB
    # (a cold cache: peak 309 MiB against a baseline of 189).
    _peak_rss(big_cmd)
    _peak_rss(base_cmd)
    _, base = _peak_rss(base_cmd)
    out, peak = _peak_rss(big_cmd)
    got = json.loads(out)
    assert [got[c]["count"] for c in ref_cols] == [ROWS] * COLS
    # As for .npy (test_cli.py): the same process on a small file is the
    # baseline (Python, NumPy, Numba's kernels, the reader library and its
    # pools: 200-320 MiB here, mostly fixed); the large file may add two
    # chunks and little else, and the whole stays under 2 chunks + 400 MiB.
    msg = f"peak {peak / 2**20:.0f} MiB, baseline {base / 2**20:.0f} MiB"
    assert peak < base + 2 * CHUNK + 48 * 1024 * 1024, msg
    assert peak < 2 * CHUNK + 400 * 1024 * 1024, msg
    assert path_bytes(path) > 10 * CHUNK  # holding the file would break the bound
    return got


@pytest.mark.slow
def test_memory_bound_on_a_large_parquet(tmp_path):
    """A 320 MB Parquet file of one row group (the hard case) with 8 MB chunks."""
    p = tmp_path / "big.parquet"
    schema = pa.schema([(f"c{j}", pa.float64()) for j in range(COLS)])
    total = np.zeros(COLS)
    with pq.ParquetWriter(p, schema, compression="none") as w:
        for block in _big():
            total += block.sum(axis=0)
            w.write_table(pa.table({f"c{j}": block[:, j] for j in range(COLS)}), row_group_size=ROWS)
    small = tmp_path / "small.parquet"
    pq.write_table(pa.table({f"c{j}": RNG.normal(size=300_000) for j in range(COLS)}), small)
    got = _check_bound(tmp_path, p, small, [f"c{j}" for j in range(COLS)])
    np.testing.assert_allclose([got[f"c{j}"]["mean"] for j in range(COLS)], total / ROWS, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("compression", [None, "zstd"])
def test_memory_bound_on_a_large_feather(tmp_path, compression):
    """Uncompressed Feather batches of at most half a chunk (2.6 MB of 8 here) are
    copied and summarized behind the reads; compressed ones are summarized in
    turn, and each chunk's pages of the map dropped once summarized."""
    p = tmp_path / "big.feather"
    schema = pa.schema([(f"c{j}", pa.float64()) for j in range(COLS)])
    total = np.zeros(COLS)
    opts = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.OSFile(str(p), "wb") as sink, pa.ipc.new_file(sink, schema, options=opts) as w:
        for block in _big():
            total += block.sum(axis=0)
            w.write_table(pa.table({f"c{j}": block[:, j] for j in range(COLS)}), max_chunksize=1 << 16)
    small = tmp_path / "small.feather"
    import pyarrow.feather as feather

    feather.write_feather(pa.table({f"c{j}": RNG.normal(size=300_000) for j in range(COLS)}), small,
                          compression=compression or "uncompressed")
    got = _check_bound(tmp_path, p, small, [f"c{j}" for j in range(COLS)])
    np.testing.assert_allclose([got[f"c{j}"]["mean"] for j in range(COLS)], total / ROWS, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("batch_rows", [1638, ROWS])
def test_memory_bound_on_feather_batch_layouts(tmp_path, batch_rows):
    """Review: batches of 64 KiB, all copied, left the map's metadata pages
    (and the pages the kernel maps around them) in the process: memory grew
    with the file (751 MiB: peak 1001 MiB). One batch of the whole file was
    summarized in place whole, touching all of it."""
    p = tmp_path / "big.feather"
    schema = pa.schema([(f"c{j}", pa.float64()) for j in range(COLS)])
    total = np.zeros(COLS)
    with pa.OSFile(str(p), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
        if batch_rows == ROWS:
            data = np.concatenate(list(_big()))
            total = data.sum(axis=0)
            w.write_batch(pa.record_batch([pa.array(data[:, j]) for j in range(COLS)], schema=schema))
            del data
        else:
            for block in _big():
                total += block.sum(axis=0)
                w.write_table(pa.table({f"c{j}": block[:, j] for j in range(COLS)}), max_chunksize=batch_rows)
    small = tmp_path / "small.feather"
    import pyarrow.feather as feather

    feather.write_feather(pa.table({f"c{j}": RNG.normal(size=300_000) for j in range(COLS)}), small,
                          compression="uncompressed")
    got = _check_bound(tmp_path, p, small, [f"c{j}" for j in range(COLS)])
    np.testing.assert_allclose([got[f"c{j}"]["mean"] for j in range(COLS)], total / ROWS, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("chunks", [None, (100_000, COLS)])
def test_memory_bound_on_a_large_hdf5(tmp_path, chunks):
    """HDF5 stored as is is read through a memory map, each slice's pages dropped once summarized."""
    total = np.zeros(COLS)
    with h5py.File(tmp_path / "big.h5", "w") as f:
        ds = f.create_dataset("x", shape=(ROWS, COLS), chunks=chunks, dtype="f8")
        for i, block in zip(range(0, ROWS, 1_000_000), _big()):
            ds[i : i + len(block)] = block
            total += block.sum(axis=0)
    with h5py.File(tmp_path / "small.h5", "w") as f:
        f.create_dataset("x", data=RNG.normal(size=(300_000, COLS)), chunks=chunks)
    got = _check_bound(tmp_path, tmp_path / "big.h5", tmp_path / "small.h5", [str(j) for j in range(COLS)])
    np.testing.assert_allclose([got[str(j)]["mean"] for j in range(COLS)], total / ROWS, rtol=1e-12)


@pytest.mark.slow
def test_memory_bound_on_a_large_zarr(tmp_path):
    a = zarr.open_array(tmp_path / "big.zarr", mode="w", shape=(ROWS, COLS), chunks=(100_000, COLS), dtype="f8")
    total = np.zeros(COLS)
    for i, block in zip(range(0, ROWS, 1_000_000), _big()):
        a[i : i + len(block)] = block
        total += block.sum(axis=0)
    s = zarr.open_array(tmp_path / "small.zarr", mode="w", shape=(300_000, COLS), chunks=(100_000, COLS), dtype="f8")
    s[:] = RNG.normal(size=(300_000, COLS))
    got = _check_bound(tmp_path, tmp_path / "big.zarr", tmp_path / "small.zarr", [str(j) for j in range(COLS)])
    np.testing.assert_allclose([got[str(j)]["mean"] for j in range(COLS)], total / ROWS, rtol=1e-12)


def test_console_script_reads_parquet(tmp_path):
    pq.write_table(pa.table({"a": [1.0, None, 3.0]}), tmp_path / "t.parquet")
    r = subprocess.run([*_exe(), "describe", str(tmp_path / "t.parquet"), "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["a"] == {"count": 2, "mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "nonfinite": 0, "missing": 1}


# -- 0-d arrays: one value, described without --axis -------------------------------------------


def test_a_scalar_is_described_whole_by_default(tmp_path, capsys):
    """Without --axis a 0-d array is its own column (the default axis 0 does
    not exist there; it said "--axis 0 is out of range"); --axis 0 given by
    the user is still an error."""
    import h5py
    import zarr

    v = float(RNG.normal())
    np.save(tmp_path / "s.npy", np.float64(v))
    np.array(v).tofile(tmp_path / "s.bin")
    np.savez(tmp_path / "s.npz", a=np.float32(v), b=np.arange(4.0))
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("/v", data=v)
    z = zarr.open_array(tmp_path / "s.zarr", mode="w", shape=(), dtype="f8")
    z[...] = v
    one = {"count": 1, "mean": v, "std": 0.0, "min": v, "max": v, "nonfinite": 0, "missing": 0}
    for argv in ([tmp_path / "s.npy"], [tmp_path / "s.bin", "--dtype", "f8", "--shape=()"],
                 [f"{tmp_path / 's.h5'}:/v"], [tmp_path / "s.zarr"]):
        got, _ = run_json(capsys, *argv)
        assert got == {"all": one}, argv
        _bad(capsys, *argv, "--axis", "0", match="--axis 0 is out of range")
    got, _ = run_json(capsys, tmp_path / "s.npz")
    v32 = float(np.float32(v))
    assert got["a"] == {**one, "mean": v32, "min": v32, "max": v32}
    b = np.arange(4.0)  # a 1-D member beside it: over its axis 0 as before
    assert got["b"] == {"count": 4, "mean": b.mean(), "std": b.std(), "min": 0.0, "max": 3.0, "nonfinite": 0, "missing": 0}
