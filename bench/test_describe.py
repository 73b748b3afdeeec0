"""``fastmoments describe`` on a page-cached file vs simply reading it (issue 6).

The file (400 MB of float64, 8 columns, ``.npy``) is read once before timing so
it sits in the page cache. Baselines, timed in the same run with rounds
interleaved:

* ``read``: the file read start to end with ``readinto`` in chunks of the same
  size (64 MB) into one reused buffer: what any tool must at least do;
* ``read-1MiB``: the same with a 1 MiB buffer (stays in cache: the fastest
  plain read, like ``cat``).

``extra_info`` holds ``frac_read`` (read time / describe time; target 0.8) and
``frac_read_1mib``. ``describe`` runs in-process (``fastmoments.cli.main``), so
the interpreter's start-up (~2 s for NumPy + Numba) is not in the figure.

With ``--benchmark-disable`` the file is 4 MB and only the output is checked.
``FASTMOMENTS_DESCRIBE_BENCH_MB`` overrides the size.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import time

import numpy as np
import pytest

from fastmoments.cli import main

MB = 1_000_000
CHUNK = 64 * 1024 * 1024
ROUNDS = 5


@pytest.fixture(scope="module")
def npy_file(tmp_path_factory, timing):
    env = os.environ.get("FASTMOMENTS_DESCRIBE_BENCH_MB")
    nbytes = int(float(env) * MB) if env else (400 * MB if timing else 4 * MB)
    cols = 8
    rows = nbytes // (8 * cols)
    p = tmp_path_factory.mktemp("describe") / "data.npy"
    x = np.lib.format.open_memmap(p, mode="w+", dtype=np.float64, shape=(rows, cols))
    rng = np.random.default_rng(0)
    step = 1 << 20
    for i in range(0, rows, step):
        x[i : i + step] = rng.normal(size=(min(step, rows - i), cols)) * 3 + np.arange(cols)
    x.flush()
    ref_mean, ref_std = np.mean(x, axis=0), np.std(x, axis=0)
    del x
    return p, ref_mean, ref_std


def _read(path, bufsize):
    buf = bytearray(bufsize)
    view = memoryview(buf)
    n = 0
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(view):
            n += k
    return n


def _describe(path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["describe", str(path), "--json", "--no-progress", "--chunk-size", str(CHUNK)])
    assert rc == 0
    return out.getvalue()


def test_describe_vs_read(benchmark, npy_file, timing):
    path, ref_mean, ref_std = npy_file
    got = json.loads(_describe(path))  # warm-up: page cache, Numba cache
    np.testing.assert_allclose([got[str(i)]["mean"] for i in range(8)], ref_mean, rtol=1e-12)
    np.testing.assert_allclose([got[str(i)]["std"] for i in range(8)], ref_std, rtol=1e-12)
    size = os.path.getsize(path)
    assert _read(path, CHUNK) == size
    extra = {"nbytes": size, "chunk": CHUNK, "target": 0.8}
    if timing:
        t_d, t_r, t_r1 = [], [], []
        for _ in range(ROUNDS):
            t = time.perf_counter(); _describe(path); t_d.append(time.perf_counter() - t)
            t = time.perf_counter(); _read(path, CHUNK); t_r.append(time.perf_counter() - t)
            t = time.perf_counter(); _read(path, 1 << 20); t_r1.append(time.perf_counter() - t)
        d, r, r1 = map(statistics.median, (t_d, t_r, t_r1))
        extra.update(
            describe_s=d, read_s=r, read_1mib_s=r1, frac_read=r / d, frac_read_1mib=r1 / d,
            describe_gbps=size / d / 1e9, read_gbps=size / r / 1e9, read_1mib_gbps=size / r1 / 1e9,
        )
    benchmark.extra_info.update(extra)
    benchmark.group = "describe"
    benchmark.pedantic(_describe, args=(path,), rounds=ROUNDS if timing else 1, iterations=1)


# -- the formats read through their own libraries (issue 22) ---------------------------------------
#
# The same statistics of 8 float64 columns stored as CSV, Parquet, Feather,
# Zarr and HDF5 (about 150 MB of CSV text, 400 MB of binary when timing; 2-4
# MB under --benchmark-disable). Each is measured against the library's own
# streaming read of the same columns with the same block size and options,
# rounds interleaved: ``frac_lib`` = library read time / describe time
# (target 0.8). ``frac_lib_touch``: against the same read plus a NumPy sum
# of each column. CSV also has ``frac_lib_default``: Arrow's defaults (1 MB
# blocks, no newlines inside quoted values), which describe cannot assume.

COLS = 8


def _lib_sizes(timing):
    env = os.environ.get("FASTMOMENTS_DESCRIBE_BENCH_MB")
    binary = int(float(env) * MB) if env else (400 * MB if timing else 4 * MB)
    return binary // (8 * COLS), binary // (8 * COLS) * 150 // 400  # rows of binary, rows of CSV


def _blocks(rows, step=1 << 19):
    for i in range(0, rows, step):
        yield np.random.default_rng(i).normal(size=(min(step, rows - i), COLS)) * 3 + np.arange(COLS)


def _ref(rows):
    """float64 mean and std of the data, two passes, block by block."""
    n, s = 0, np.zeros(COLS)
    for b in _blocks(rows):
        s += b.sum(axis=0)
        n += len(b)
    mean = s / n
    q = sum(((b - mean) ** 2).sum(axis=0) for b in _blocks(rows))
    return mean, np.sqrt(q / n)


def _make(fmt, d, rows):
    import pyarrow as pa

    names = [f"c{j}" for j in range(COLS)]
    if fmt == "csv":
        import pyarrow.csv as pacsv

        p = d / "data.csv"
        with pacsv.CSVWriter(str(p), pa.schema([(n, pa.float64()) for n in names])) as w:
            for b in _blocks(rows):
                w.write_table(pa.table(dict(zip(names, b.T))))
    elif fmt in ("parquet", "feather"):
        import pyarrow.parquet as pq

        schema = pa.schema([(n, pa.float64()) for n in names])
        if fmt == "parquet":
            p = d / "data.parquet"
            with pq.ParquetWriter(p, schema) as w:  # snappy; a row group per block of 512 Ki rows
                for b in _blocks(rows):
                    w.write_table(pa.table(dict(zip(names, b.T))))
        else:
            p = d / "data.feather"
            with pa.OSFile(str(p), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
                for b in _blocks(rows):
                    w.write_table(pa.table(dict(zip(names, b.T))), max_chunksize=1 << 16)  # Feather's default batch
    elif fmt == "zarr":
        import zarr

        p = d / "data.zarr"
        a = zarr.open_array(p, mode="w", shape=(rows, COLS), chunks=(min(1 << 17, rows), COLS), dtype="f8")  # 8 MiB chunks, zstd
        for i, b in zip(range(0, rows, 1 << 19), _blocks(rows)):
            a[i : i + len(b)] = b
    else:
        import h5py

        p = d / "data.h5"
        with h5py.File(p, "w") as f:
            ds = f.create_dataset("x", shape=(rows, COLS), dtype="f8", chunks=(min(1 << 17, rows), COLS))
            for i, b in zip(range(0, rows, 1 << 19), _blocks(rows)):
                ds[i : i + len(b)] = b
    return p


def _lib_read(fmt, path, chunk, default=False, touch=False):
    """The library's own streaming read of the 8 columns, as describe asks for them.

    ``touch``: also sum each column with NumPy, the cheapest look at every
    value (an uncompressed Feather batch or HDF5 slice is little more than a
    copy from the page cache, which no statistic can keep pace with).
    """
    import pyarrow as pa

    def rows_of_batches(batches):
        n = 0
        for b in batches:
            n += b.num_rows
            if touch:
                for c in b.columns:
                    c.to_numpy(zero_copy_only=False).sum()
        return n

    def rows_of_slices(a, k):
        n = 0
        for i in range(0, a.shape[0], k):
            x = a[i : i + k]
            n += len(x)
            if touch:
                x.sum(axis=0)
        return n

    if fmt == "csv":
        import pyarrow.csv as pacsv

        if default:
            r = pacsv.open_csv(path)
        else:
            nulls = [v for v in pacsv.ConvertOptions().null_values if v not in ("NaN", "nan", "-NaN", "-nan")]
            r = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=chunk // 4),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(null_values=nulls),
            )
        return rows_of_batches(r)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
        return rows_of_batches(pf.iter_batches(batch_size=chunk // (8 * COLS), columns=pf.schema_arrow.names))
    if fmt == "feather":
        with pa.OSFile(str(path)) as src:
            r = pa.ipc.open_file(src)
            return rows_of_batches(r.get_batch(i) for i in range(r.num_record_batches))
    if fmt == "zarr":
        import zarr

        a = zarr.open_array(path, mode="r")
        return rows_of_slices(a, max(chunk // (8 * COLS) // a.chunks[0], 1) * a.chunks[0])
    import h5py

    with h5py.File(path, "r") as f:
        ds = f["x"]
        return rows_of_slices(ds, max(chunk // (8 * COLS) // ds.chunks[0], 1) * ds.chunks[0])


def _describe_target(fmt, path):
    return f"{path}:/x" if fmt == "hdf5" else path


@pytest.fixture(scope="module")
def lib_files(tmp_path_factory, timing):
    pytest.importorskip("pyarrow")
    pytest.importorskip("zarr")
    pytest.importorskip("h5py")
    rows, csv_rows = _lib_sizes(timing)
    d = tmp_path_factory.mktemp("describe-libs")
    return d, rows, csv_rows, {}


@pytest.mark.parametrize("fmt", ["csv", "parquet", "feather", "zarr", "hdf5"])
def test_describe_vs_library(benchmark, lib_files, timing, fmt):
    d, rows, csv_rows, cache = lib_files
    n = csv_rows if fmt == "csv" else rows
    path = _make(fmt, d, n)
    mean, std = _ref(n)
    got = json.loads(_describe(_describe_target(fmt, path)))  # warm-up: page cache, Numba cache
    keys = [f"c{j}" for j in range(COLS)] if fmt in ("csv", "parquet", "feather") else [str(j) for j in range(COLS)]
    np.testing.assert_allclose([got[k]["mean"] for k in keys], mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose([got[k]["std"] for k in keys], std, rtol=1e-12 if fmt != "csv" else 1e-9)
    assert _lib_read(fmt, path, CHUNK) == n == _lib_read(fmt, path, CHUNK, touch=True)
    size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    extra = {"format": fmt, "nbytes_file": size, "nbytes_values": n * COLS * 8, "chunk": CHUNK, "target": 0.8}
    if timing:
        t_d, t_l, t_l0, t_lt = [], [], [], []
        for _ in range(ROUNDS):
            t = time.perf_counter(); _describe(_describe_target(fmt, path)); t_d.append(time.perf_counter() - t)
            t = time.perf_counter(); _lib_read(fmt, path, CHUNK); t_l.append(time.perf_counter() - t)
            t = time.perf_counter(); _lib_read(fmt, path, CHUNK, touch=True); t_lt.append(time.perf_counter() - t)
            if fmt == "csv":
                t = time.perf_counter(); _lib_read(fmt, path, CHUNK, default=True); t_l0.append(time.perf_counter() - t)
        dm, lm, lt = statistics.median(t_d), statistics.median(t_l), statistics.median(t_lt)
        extra.update(describe_s=dm, lib_s=lm, frac_lib=lm / dm, describe_mbps=size / dm / 1e6, lib_mbps=size / lm / 1e6,
                     lib_touch_s=lt, frac_lib_touch=lt / dm)
        if t_l0:
            l0 = statistics.median(t_l0)
            extra.update(lib_default_s=l0, frac_lib_default=l0 / dm)
    benchmark.extra_info.update(extra)
    benchmark.group = "describe-" + fmt
    benchmark.pedantic(_describe, args=(_describe_target(fmt, path),), rounds=ROUNDS if timing else 1, iterations=1)
    path_rm = path
    if timing:  # the next format's file: keep /tmp small
        import shutil

        shutil.rmtree(path_rm) if path_rm.is_dir() else path_rm.unlink()
