"""Arrow IPC / Feather files read as copies summarized behind the reads
(readers/tables.py::_read_batches): which batches are copied, and that every
path gives NumPy's statistics of the data, in order, in bounded memory."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fastmoments.readers import tables
from test_cli import assert_matches, reference, run_json

pa = pytest.importorskip("pyarrow")

RNG = np.random.default_rng(4321)
ROW_BYTES = 3 * 8 + 1  # two float64 columns, one int64, one bool (a byte as NumPy holds it)


def _write(path, sizes, compression=None, stream=False):
    """A file of batches of ``sizes`` rows: (data per column, file)."""
    parts = []
    for k, n in enumerate(sizes):
        # each batch far from the others: a batch summarized twice, or left
        # out, or merged out of place, moves the statistics
        parts.append({
            "a": RNG.normal(10.0 * k, 1 + k, n),
            "b": RNG.normal(-5.0, 0.1, n) * (1e6 if k % 3 == 0 else 1),
            "i": RNG.integers(-50, 50 + k, n),
            "t": RNG.random(n) < 0.25,
        })
    schema = pa.schema([("a", pa.float64()), ("b", pa.float64()), ("i", pa.int64()), ("t", pa.bool_())])
    opts = pa.ipc.IpcWriteOptions(compression=compression)
    new = pa.ipc.new_stream if stream else pa.ipc.new_file
    with pa.OSFile(str(path), "wb") as sink, new(sink, schema, options=opts) as w:
        for part in parts:
            w.write_batch(pa.record_batch([pa.array(part[c]) for c in "abit"], schema=schema))
    return {c: np.concatenate([p[c] for p in parts]) for c in "abit"}


def _check(got, data):
    names = list("abit")
    ref = {k: np.array([np.asarray(reference(data[c])[k]) for c in names]) for k in reference(data["a"])}
    assert_matches(got, ref, names)


@pytest.fixture
def spy(monkeypatch):
    """Counts the batches summarized behind (copies) and in turn (on the reader's thread)."""
    seen = {"behind": 0, "in_turn": 0}
    behind_add = tables._Behind.add_group
    columns_add = tables._Columns.add_group

    def add_behind(self, batches):
        seen["behind"] += len(batches)
        return behind_add(self, batches)

    def add_columns(self, batches):
        import threading

        if threading.current_thread() is threading.main_thread():
            seen["in_turn"] += len(batches)
        return columns_add(self, batches)

    monkeypatch.setattr(tables._Behind, "add_group", add_behind)
    monkeypatch.setattr(tables._Columns, "add_group", add_columns)
    return seen


SIZES = [100, 5000, 20, 3000, 40000, 1, 2600, 9000, 700, 2500]
CHUNK = 160_000  # copied: batches of at most 80,000 bytes, 3200 rows


def _copied(rows, chunk):
    """Whether a batch of the map is read again as a copy: at most half a
    chunk, and at least a page's worth a column (for fewer bytes, Arrow's
    per-column work for the second read outweighs the map's page touches)."""
    return tables.COPY_MIN_COLUMN * 4 <= rows * ROW_BYTES <= chunk // 2


def test_small_batches_are_copied_and_large_ones_summarized_in_turn(tmp_path, capsys, spy):
    """A batch of the map larger than a chunk is summarized a chunk of rows
    at a time (the map's pages dropped after each)."""
    p = tmp_path / "t.arrow"
    data = _write(p, SIZES)
    got, _ = run_json(capsys, p, "--chunk-size", CHUNK)
    _check(got, data)
    copied = [_copied(n, CHUNK) for n in SIZES]
    rows = CHUNK // ROW_BYTES
    pieces = sum(1 if n * ROW_BYTES <= CHUNK else -(-n // rows) for n, c in zip(SIZES, copied) if not c)
    assert pieces > copied.count(False)  # one batch in several pieces
    assert 0 < sum(copied) < len(SIZES)
    assert spy == {"behind": sum(copied), "in_turn": pieces}


def test_copied_with_the_default_chunk(tmp_path, capsys, spy):
    p = tmp_path / "t.arrow"
    data = _write(p, SIZES)
    got, _ = run_json(capsys, p)
    _check(got, data)
    copied = sum(_copied(n, 64 << 20) for n in SIZES)
    assert spy == {"behind": copied, "in_turn": len(SIZES) - copied}


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_compressed_batches_are_not_read_twice(tmp_path, capsys, spy, compression):
    """Arrow decompresses a compressed batch of the map into memory of its
    own: that copy is summarized, not a second read of the file."""
    p = tmp_path / "t.arrow"
    data = _write(p, SIZES, compression=compression)
    got, _ = run_json(capsys, p)
    _check(got, data)
    assert spy == {"behind": 0, "in_turn": len(SIZES)}


def test_a_stream_is_summarized_in_place(tmp_path, capsys, spy):
    p = tmp_path / "t.arrows"
    data = _write(p, SIZES, stream=True)
    got, _ = run_json(capsys, p)
    _check(got, data)
    assert spy == {"behind": 0, "in_turn": len(SIZES)}


@pytest.mark.parametrize("chunk", [CHUNK, None])
def test_without_a_map_copies_go_behind_too(tmp_path, capsys, spy, monkeypatch, chunk):
    monkeypatch.setattr(tables, "_mapped", lambda path: (None, None))
    p = tmp_path / "t.arrow"
    data = _write(p, SIZES)
    got, _ = run_json(capsys, p, *(["--chunk-size", chunk] if chunk else []))
    _check(got, data)
    small = sum(1 for n in SIZES if n * ROW_BYTES <= (chunk or 64 << 20) // 2)
    assert spy == {"behind": small, "in_turn": len(SIZES) - small}


def test_the_copies_agree_with_the_map(tmp_path, capsys):
    """The same file summarized from copies (default chunk) and from the map
    (a chunk below every batch): the same statistics, but for the order of
    the merges."""
    p = tmp_path / "t.arrow"
    _write(p, [30_000] * 8)
    copies, _ = run_json(capsys, p)
    mapped, _ = run_json(capsys, p, "--chunk-size", 4096)
    for c in "abit":
        for k in ("count", "nonfinite", "missing", "min", "max"):
            assert copies[c][k] == mapped[c][k]
        for k in ("mean", "std"):
            assert copies[c][k] == pytest.approx(mapped[c][k], rel=1e-13, abs=1e-13)


def test_a_file_cut_while_copies_are_read_is_one_error_line(tmp_path):
    """Batches of 8 kB, copied (64 kB chunks): the cut is met by the reads of
    the copies or by the map's check, never a crash or a wrong result."""
    from test_review_mapped_readers import _SHRINK_ARROW

    r = subprocess.run([sys.executable, "-c", _SHRINK_ARROW, str(tmp_path / "t.feather"), "1000"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastmoments: error: "), r.stderr


@pytest.mark.parametrize("chunk", [None, 4096])
def test_many_batches_are_merged_in_folds(tmp_path, capsys, chunk):
    """More batch states than one fold holds (FOLD_STATES): merged in
    several folds, each batch once, copied or in place."""
    sizes = list(RNG.integers(1, 40, 2 * tables.FOLD_STATES // 4 + 37))  # 4 columns
    p = tmp_path / "t.arrow"
    data = _write(p, sizes)
    got, _ = run_json(capsys, p, *(["--chunk-size", chunk] if chunk else []))
    _check(got, data)


def test_states_held_before_a_fold_are_small(tmp_path):
    """Review: the per-batch states were views of the kernel's larger
    output; hundreds of them on a wide table kept 3-4 times their size
    alive (5000 columns: 474 MiB peak against 248)."""
    ncols = 2000
    names = [f"c{j}" for j in range(ncols)]
    acc = tables._Columns(pa, names, [pa.float64()] * ncols)
    rows = RNG.normal(size=(300, ncols))
    peak = 0
    for r in rows:
        acc.add_group([pa.record_batch([pa.array(r[j:j + 1]) for j in range(ncols)], names=names)])
        held = {}
        for part in acc._parts:
            for f in part:
                base = f if f.base is None else f.base
                held[id(base)] = base.nbytes
        peak = max(peak, sum(held.values()))
    # the states themselves: 7 fields of 8 bytes a column state, at most one fold's worth and a batch
    assert peak <= 7 * 8 * (tables.FOLD_STATES + ncols)
    s = acc.result("t", []).state
    np.testing.assert_allclose(s.mean, rows.mean(axis=0), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(s.m2, ((rows - rows.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-12)
    assert (s.count == 300).all() and (s.min == rows.min(axis=0)).all() and (s.max == rows.max(axis=0)).all()


def test_a_file_replaced_while_read_is_an_error_not_a_mix(tmp_path, capsys, monkeypatch):
    """Review: a new file renamed over the path after the map was made and
    before the copies were read gave statistics of neither file (exit 0),
    or a traceback (exit 1)."""
    from test_cli import _bad

    p, q = tmp_path / "t.arrow", tmp_path / "new.arrow"
    _write(p, SIZES)
    _write(q, SIZES)
    numeric = tables._numeric_fields

    def replace_then(*a, **k):
        if q.exists():
            q.replace(p)
        return numeric(*a, **k)

    monkeypatch.setattr(tables, "_numeric_fields", replace_then)
    _bad(capsys, p, match="was replaced while it was read")


@pytest.mark.skipif(not hasattr(__import__("signal"), "pthread_kill"), reason="needs pthread_kill")
def test_an_interrupted_wait_still_waits_for_the_summary():
    """Review: Ctrl-C while the reader waited for the previous summary left
    that summary running on the worker after describe had returned. A real
    signal (as Ctrl-C), whose handler raises, interrupts the wait."""
    import signal
    import threading
    import time

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted

    go, done = threading.Event(), []

    class Slow:
        def add_group(self, batches):
            go.wait(10)
            done.extend(batches)

    def interrupt_then_release():
        time.sleep(0.3)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
        time.sleep(0.3)
        go.set()

    old = signal.signal(signal.SIGUSR1, handler)
    t = threading.Thread(target=interrupt_then_release)
    t.start()
    try:
        with pytest.raises(Interrupted):
            with tables._Behind(Slow()) as behind:
                behind.add(0)
                behind.add(1)  # waits for 0: interrupted there
        assert done == [0]  # finished before the reader's error went on, and 1 never handed over
    finally:
        go.set()
        t.join()
        signal.signal(signal.SIGUSR1, old)


_AT_EXIT = """
import atexit, sys
import numpy as np, pyarrow as pa, pyarrow.feather as feather
from fastmoments.cli import main
p = sys.argv[1]
feather.write_feather(pa.table({"f": np.arange(100_000.0)}), p, compression="uncompressed", chunksize=1000)
atexit.register(lambda: print("rc", main(["describe", p, "--no-progress", "--json"])))
"""


def test_describe_from_an_atexit_handler(tmp_path):
    """Review: no new thread work after interpreter shutdown; the summaries
    are then done in turn."""
    import json

    r = subprocess.run([sys.executable, "-c", _AT_EXIT, str(tmp_path / "t.feather")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stderr == "", r.stderr[-500:]
    out, rc = r.stdout.rsplit("rc", 1)
    assert rc.strip() == "0"
    got = json.loads(out)["f"]
    assert got["count"] == 100_000 and got["mean"] == pytest.approx(49_999.5, rel=1e-15)


@pytest.mark.skipif(not hasattr(__import__("os"), "register_at_fork"), reason="no fork on this platform")
def test_a_fork_while_the_worker_lock_is_held(tmp_path):
    """Review: a fork while another thread held the worker's lock left the
    child's lock held forever, and its first reader hung."""
    import multiprocessing

    from test_describe_behind import _in_child

    ctx = multiprocessing.get_context("fork")
    from fastmoments.readers import behind

    with behind._WORKER_LOCK:
        pool = ctx.Pool(1)
    try:
        assert pool.apply_async(_in_child).get(timeout=60) == list(range(5))
    finally:
        pool.terminate()


def test_a_batch_index_past_the_footer_is_an_input_error(tmp_path):
    """Review: a file rewritten in place (same inode) while it was read,
    with fewer batches, gave Arrow's ValueError 'Batch number N out of
    range' as a traceback and exit 1 (before the copies too)."""
    from fastmoments.readers import InputError

    p = tmp_path / "t.arrow"
    _write(p, [10, 20])
    with pa.OSFile(str(p)) as src:
        reader = pa.ipc.open_file(src)
        assert tables._batch(reader, 1, p).num_rows == 20
        with pytest.raises(InputError, match="changed while it was read"):
            tables._batch(reader, 2, p)


_WRITTEN = """
import sys
import numpy as np, pyarrow as pa, pyarrow.feather as feather
from fastmoments.readers import tables
from fastmoments.cli import main
p, chunk, how = sys.argv[1:4]
feather.write_feather(pa.table({"f": np.arange(400_000.0)}), p, compression="uncompressed",
                      chunksize=1000 if how == "rewrite" else 20_000)
orig = tables._Columns.add_group
def add_group(self, *a, **k):
    orig(self, *a, **k)
    tables._Columns.add_group = orig
    if how == "rewrite":  # the same inode, rewritten with fewer, larger batches
        feather.write_feather(pa.table({"f": np.arange(300_000.0)}), p, compression="uncompressed", chunksize=7777)
    else:  # the same inode and size, other values
        with open(p, "r+b") as f:
            f.seek(1 << 20)
            f.write(b"\\x7f" * 4096)
tables._Columns.add_group = add_group
sys.exit(main(["describe", p, "--no-progress", "--json", "--chunk-size", chunk]))
"""


def _written_while_read(tmp_path, chunk, how):
    r = subprocess.run([sys.executable, "-c", _WRITTEN, str(tmp_path / "t.feather"), chunk, how],
                       capture_output=True, text=True, timeout=300)
    return r.returncode, r.stderr.strip().splitlines(), r.stderr[-500:]


@pytest.mark.parametrize("chunk", ["64k", "8M"])
def test_a_file_rewritten_in_place_while_read(tmp_path, chunk):
    rc, lines, err = _written_while_read(tmp_path, chunk, "rewrite")
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("fastmoments: error: "), (rc, err)


def _wide(path, ncols, batches):
    rng = np.random.default_rng(5)
    schema = pa.schema([(f"c{j}", pa.float64()) for j in range(ncols)])
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
        for _ in range(batches):
            w.write_batch(pa.record_batch([pa.array(rng.random(1)) for _ in range(ncols)], schema=schema))


@pytest.mark.slow
def test_memory_on_a_wide_table_of_small_batches(tmp_path):
    """Review: 5000 columns in 600 one-row batches (a 168 MB file) peaked at
    1214 MiB (1662 before the copies): groups were capped by data bytes
    (40 kB a batch) and batch count, while each column of each batch costs
    its own Arrow and NumPy objects and 64 bytes of padded buffer. Groups
    are now capped by column arrays too, and such batches are not copied."""
    import json

    from test_cli import _exe, _peak_rss

    small, big = tmp_path / "small.arrow", tmp_path / "big.arrow"
    _wide(small, 3000, 2)
    _wide(big, 3000, 300)
    cmd = [*_exe(), "describe", "--json", "--chunk-size", "64M"]
    _peak_rss(cmd + [str(big)])  # Numba's cache filled
    _, base = _peak_rss(cmd + [str(small)])
    out, peak = _peak_rss(cmd + [str(big)])
    assert json.loads(out)["c7"]["count"] == 300
    assert big.stat().st_size > 40 * 2**20
    assert peak < base + 48 * 2**20, f"peak {peak / 2**20:.0f} MiB, baseline {base / 2**20:.0f} MiB"


def test_a_file_written_while_read_is_an_error(tmp_path):
    """Review: a file overwritten in place at the same size while it was
    read gave exit 0 and statistics mixing old and new data."""
    rc, lines, err = _written_while_read(tmp_path, "64M", "overwrite")
    assert rc == 2 and len(lines) == 1 and "changed while it was read" in lines[0], err
