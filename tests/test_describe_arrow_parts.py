"""Arrow IPC files read in parts (readers/tables.py::_Parts): with a column
to skip every batch, and a compressed batch larger than the chunk also where
all columns are ours (told by its header, readers/ipc_footer.py). A batch
larger than the chunk is read a few columns at a time, so memory holds at
most one column and half a chunk of others, not the whole batch (Arrow
decompresses or copies a batch whole)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastmoments.readers import tables
from test_cli import _exe, _peak_rss, assert_matches, reference, run_json

pa = pytest.importorskip("pyarrow")

RNG = np.random.default_rng(97)
NAMES = ["a", "b", "i", "t", "f"]  # the numeric columns; "s" (strings) is skipped
ROW_BYTES = 8 + 8 + 8 + 1 + 4


def _write(path, sizes, compression=None):
    """A file of batches of ``sizes`` rows with a string column between ours;
    "b" has nulls. Returns the data of our columns, nulls as NaN-free lists."""
    schema = pa.schema([("a", pa.float64()), ("s", pa.string()), ("b", pa.float64()), ("i", pa.int64()),
                        ("t", pa.bool_()), ("f", pa.float32())])
    cols = {c: [] for c in NAMES}
    nulls = 0
    opts = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema, options=opts) as w:
        for k, n in enumerate(sizes):
            a = RNG.normal(10.0 * k, 1 + k, n)  # batches far apart: one left out or read twice shows
            b = RNG.normal(-5.0, 0.1, n) * (1e6 if k % 2 else 1)
            mask = RNG.random(n) < 0.1
            nulls += int(mask.sum())
            i = RNG.integers(-50, 50 + k, n)
            t = RNG.random(n) < 0.25
            f = RNG.normal(3.0, 2.0, n).astype(np.float32)
            s = pa.array(np.char.mod("x%d", np.arange(n)).astype(object))
            w.write_batch(pa.record_batch([pa.array(a), s, pa.array(b, mask=mask), pa.array(i), pa.array(t),
                                           pa.array(f)], schema=schema))
            for c, v in zip(NAMES, (a, b[~mask], i, t, f)):
                cols[c].append(v)
    return {c: np.concatenate(v) for c, v in cols.items()}, nulls


def _check(got, data, nulls):
    ref = {}
    for c in NAMES:
        r = reference(data[c])
        for k, v in r.items():
            ref.setdefault(k, []).append(np.asarray(v))
    ref = {k: np.array(v) for k, v in ref.items()}
    ref["missing"] = np.array([0, nulls, 0, 0, 0])
    assert_matches(got, ref, NAMES)


@pytest.fixture(autouse=True)
def small_parts(monkeypatch):
    """Batches of any size above the chunk read in parts (in process), so
    that small files show the paths of large ones."""
    monkeypatch.setattr(tables, "PARTS_MIN", 0)


@pytest.fixture
def reads(monkeypatch):
    """Every part read: (rows, columns, bytes Arrow holds for it)."""
    seen = []
    batch = tables._Parts.batch

    def spy(self, i, fields, keep_open=True):
        b = batch(self, i, fields, keep_open)
        seen.append((b.num_rows, b.num_columns, b.get_total_buffer_size()))
        return b

    monkeypatch.setattr(tables._Parts, "batch", spy)
    return seen


CHUNK = 200_000
SIZES = [1000, 30_000, 3000, 7000, 20_000, 1]  # 30,000 and 20,000 rows: over a chunk


@pytest.mark.parametrize("compression", [None, "zstd", "lz4"])
def test_batches_over_a_chunk_are_read_a_few_columns_at_a_time(tmp_path, capsys, reads, compression):
    p = tmp_path / "t.arrow"
    data, nulls = _write(p, SIZES, compression)
    got, _ = run_json(capsys, p, "--chunk-size", CHUNK)
    _check(got, data, nulls)
    big = [n for n in SIZES if n * ROW_BYTES > CHUNK]
    assert big and len(big) < len(SIZES)
    for rows, ncols, nbytes in reads:
        if rows * ROW_BYTES > CHUNK:
            # one column (the first, which tells the size), or columns of at most half a chunk
            assert ncols == 1 or nbytes <= CHUNK // 2 + 64 * ncols, (rows, ncols, nbytes)
    # every column of a large batch read once: the first, then one part per column here
    for n in big:
        assert sum(c for r, c, _ in reads if r == n) == len(NAMES)


def test_the_same_statistics_whole_or_in_parts(tmp_path, capsys):
    """One file, a chunk above every batch (whole batches) and below (parts):
    the same statistics but for the order of the merges."""
    p = tmp_path / "t.arrow"
    _write(p, [40_000, 25_000, 9000], "zstd")
    whole, _ = run_json(capsys, p)
    parts, _ = run_json(capsys, p, "--chunk-size", 100_000)
    for c in NAMES:
        for k in ("count", "nonfinite", "missing", "min", "max"):
            assert whole[c][k] == parts[c][k]
        for k in ("mean", "std"):
            assert whole[c][k] == pytest.approx(parts[c][k], rel=1e-13, abs=1e-13)


def test_one_column_of_ours(tmp_path, capsys):
    p = tmp_path / "t.arrow"
    schema = pa.schema([("s", pa.string()), ("x", pa.float64())])
    x = RNG.normal(size=50_000)
    with pa.OSFile(str(p), "wb") as sink, pa.ipc.new_file(sink, schema,
                                                          options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_batch(pa.record_batch([pa.array(["a"] * x.size), pa.array(x)], schema=schema))
    got, _ = run_json(capsys, p, "--chunk-size", 65536)
    ref = {k: np.asarray(v).reshape(1) for k, v in reference(x).items()}
    assert_matches(got, ref, ["x"])


def _numeric_file(path, sizes, compression):
    schema = pa.schema([("a", pa.float64()), ("i", pa.int32()), ("t", pa.bool_())])
    data = {c: [] for c in "ait"}
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(
            sink, schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as w:
        for k, n in enumerate(sizes):
            cols = [RNG.normal(100.0 * k, 1.0 + k, n), RNG.integers(-9, 9 + k, n).astype(np.int32), RNG.random(n) < 0.5]
            w.write_batch(pa.record_batch([pa.array(c) for c in cols], schema=schema))
            for c, v in zip("ait", cols):
                data[c].append(v)
    return {c: np.concatenate(v) for c, v in data.items()}


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_all_columns_ours_parts_only_for_large_compressed_batches(tmp_path, capsys, reads, compression):
    """A file whose columns are all ours is mapped: batches are opened whole
    but for a compressed one larger than the chunk (its header tells), read
    a column at a time; an uncompressed one is a view of the map."""
    p = tmp_path / "t.arrow"
    sizes = [500, 20_000, 40, 7000]
    data = _numeric_file(p, sizes, compression)
    chunk = 100_000  # row bytes 8 + 4 + 1: 20,000 rows are over it, 7000 not
    got, _ = run_json(capsys, p, "--chunk-size", chunk)
    ref = {}
    for c in "ait":
        for k, v in reference(data[c]).items():
            ref.setdefault(k, []).append(np.asarray(v))
    assert_matches(got, {k: np.array(v) for k, v in ref.items()}, list("ait"))
    if compression is None:
        assert reads == []
    else:
        assert sorted(r for r, _, _ in reads) == [20_000] * 3  # its three columns, one at a time
        assert all(c == 1 for _, c, _ in reads)


def test_a_damaged_batch_header_reads_batches_whole(tmp_path, capsys, monkeypatch):
    """Headers that cannot be read (here: none) leave the batches opened whole, as before."""
    p = tmp_path / "t.arrow"
    data = _numeric_file(p, [20_000, 300], "zstd")
    monkeypatch.setattr(tables, "batch_blocks", lambda buf: None)
    got, _ = run_json(capsys, p, "--chunk-size", 100_000)
    assert got["a"]["count"] == 20_300 and got["a"]["mean"] == pytest.approx(data["a"].mean(), rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("skip", [True, False])
def test_memory_bound_on_one_compressed_batch(tmp_path, skip):
    """One zstd batch of 320 MB (40 columns of 8 MB; with or without a
    string column to skip, read without or with the map) with 8 MB chunks:
    memory follows a chunk, not the batch. Before the parts, Arrow
    decompressed the whole batch (peak 838 MiB against a baseline of 237)."""
    rows, cols, chunk = 1_000_000, 40, 8 * 1024 * 1024
    names = [f"c{j}" for j in range(cols)]
    lead = [("s", pa.string())] if skip else []
    schema = pa.schema(lead + [(c, pa.float64()) for c in names])
    p = tmp_path / "big.arrow"
    sums = np.zeros(cols)
    arrays = [pa.array(np.full(rows, "ab", dtype=object))] if skip else []
    for j in range(cols):
        x = np.random.default_rng(j).normal(j, 1.0, rows)
        sums[j] = x.sum()
        arrays.append(pa.array(x))
    with pa.OSFile(str(p), "wb") as sink, pa.ipc.new_file(sink, schema,
                                                          options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_batch(pa.record_batch(arrays, schema=schema))
    del arrays, x
    small = tmp_path / "small.arrow"
    with pa.OSFile(str(small), "wb") as sink, pa.ipc.new_file(sink, schema,
                                                              options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_batch(pa.record_batch([pa.array(["ab"] * 1000)] * skip + [pa.array(np.arange(1000.0))] * cols,
                                      schema=schema))
    cmd = lambda path: [*_exe(), "describe", str(path), "--json", "--chunk-size", str(chunk)]  # noqa: E731
    _peak_rss(cmd(p))  # Numba's cache filled for both
    _peak_rss(cmd(small))
    _, base = _peak_rss(cmd(small))
    out, peak = _peak_rss(cmd(p))
    got = json.loads(out)
    assert [got[c]["count"] for c in names] == [rows] * cols
    np.testing.assert_allclose([got[c]["mean"] for c in names], sums / rows, rtol=1e-12)
    msg = f"peak {peak / 2**20:.0f} MiB, baseline {base / 2**20:.0f} MiB"
    assert peak < base + 2 * chunk + 48 * 1024 * 1024, msg


def test_batches_just_above_a_tiny_chunk_are_read_whole(tmp_path, capsys, reads, monkeypatch):
    """Review: with a chunk of a few kB, batches just above it were read a
    column slice at a time, 2-3x slower; parts only from PARTS_MIN bytes."""
    monkeypatch.setattr(tables, "PARTS_MIN", 1 << 22)
    p = tmp_path / "t.arrow"
    data, nulls = _write(p, [3000, 5000, 200], "zstd")
    got, _ = run_json(capsys, p, "--chunk-size", 4096)
    _check(got, data, nulls)
    assert reads == []


def test_the_batch_positions_are_not_held_per_batch(tmp_path):
    """Review: a list of every batch's (offset, length) held ~130 bytes a
    batch for the whole read (300,000 batches: 37 MiB)."""
    import tracemalloc

    from fastmoments.readers.ipc_footer import batch_blocks, batch_head

    p = tmp_path / "t.arrow"
    schema = pa.schema([("x", pa.float64())])
    with pa.OSFile(str(p), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
        one = pa.record_batch([pa.array([1.0])], schema=schema)
        for _ in range(20_000):
            w.write_batch(one)
    buf = p.read_bytes()
    tracemalloc.start()
    blocks = batch_blocks(buf)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(blocks) == 20_000 and size < 20_000  # bytes: not per batch
    assert batch_head(buf, blocks[19_999]) == (1, False)


_SHRINK = r"""
import os, sys
from fastmoments.readers import tables
from fastmoments import cli
orig, calls = tables._batch, [0]
def cut(reader, i, path):
    b = orig(reader, i, path)
    calls[0] += 1
    if calls[0] == 3:  # another process truncates the file while it is read
        os.truncate(path, os.path.getsize(path) // 4)
    return b
tables._batch = cut
sys.exit(cli.main(["describe", sys.argv[1], "--no-progress"]))
"""


def test_a_file_cut_while_heads_are_read_is_one_error_line(tmp_path):
    """Review: with a column to skip, each batch's head is read from the map;
    a file cut meanwhile killed the process (SIGBUS) instead of one line."""
    import subprocess
    import sys

    p = tmp_path / "t.arrow"
    schema = pa.schema([("x", pa.float64()), ("s", pa.string())])
    with pa.OSFile(str(p), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
        for _ in range(50):
            w.write_batch(pa.record_batch([pa.array(RNG.random(20_000)), pa.array(["ab"] * 20_000)], schema=schema))
    r = subprocess.run([sys.executable, "-c", _SHRINK, str(p)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert r.stderr.count("\n") == 1 and "shrank while it was read" in r.stderr and "Traceback" not in r.stderr
