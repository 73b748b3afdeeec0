"""Tables through Apache Arrow: CSV/TSV (plain or compressed), Parquet, Arrow IPC / Feather.

Each reader streams record batches of about one chunk and hands them to
:class:`_Columns`, which keeps one Summary per numeric or boolean column and
counts its nulls (``missing``) apart from NaN/Inf (``nonfinite``, which the
Summary counts). Other columns are skipped with one note each, and are not
even converted where the format lets us leave them out (every format here).
"""

from __future__ import annotations

import mmap
import os
import re
import sys

import numpy as np

from ..reductions import summarize_each
from ..state import Summary
from ._base import InputError, TableStats, require
from .behind import _Behind
from .detect import compression_of, inner_name
from .ipc_footer import batch_blocks, batch_head

#: Arrow's default null spellings minus those of NaN: "nan" is a value (non-finite), not a missing one.
_NAN_SPELLINGS = {"NaN", "nan", "-NaN", "-nan"}
_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'", re.S)


def _msg(e):
    return " ".join(str(e).split())[:300] or type(e).__name__


def _is_numeric(pa, t):
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)


class _Columns:
    """Running per-column Summary and null count of the numeric columns of a table."""

    def __init__(self, pa, names, types):
        self.pa = pa
        self.names = list(names)
        self.integral = [pa.types.is_integer(t) or pa.types.is_boolean(t) for t in types]
        self.state = None
        self.missing = np.zeros(len(names), np.int64)
        self.nrows = 0
        self._parts = []  # per batch states (fields of shape (batches, columns)) not yet merged
        self._held = 0  # column states in _parts
        self._empty = None  # fields of empty states, one per column (add_column)

    def add(self, batch):
        """Fold in a record batch whose columns are ours, in order."""
        self.add_group([batch])

    def add_group(self, batches):
        """Fold in record batches whose columns are ours, in order: one
        ``summarize_each`` over all their columns. All columns in one call:
        one parallel pass over the batches, not one per column or batch (on
        a busy 2-core machine each parallel region can wait a time slice for
        its second thread: 8 columns took 6x the time of one call). The
        batches' states are merged about FOLD_STATES column states at a
        time, in one call, not one merge per call (~20 us each, as long as
        a sixth of the summary of a 4 MB batch)."""
        values = []
        for batch in batches:
            self.nrows += batch.num_rows
            for j in range(batch.num_columns):
                col = batch.column(j)
                if self.pa.types.is_null(col.type):  # a column with no value at all
                    self.missing[j] += len(col)
                    values.append(np.empty(0))
                    continue
                if col.null_count:
                    self.missing[j] += col.null_count
                    col = col.drop_null()
                # zero-copy for numbers without nulls; booleans are unpacked from bits
                values.append(col.to_numpy(zero_copy_only=False))
        if not values:
            return
        k = len(batches)
        s = summarize_each(values)
        # copies: the fields are views of the kernel's larger output, which
        # kept alive by hundreds of states cost 3-4 times their size
        self._parts.append(tuple(f.reshape((k, len(self.names)) + f.shape[1:]).copy() for f in s.fields))
        self._held += k * len(self.names)
        if self._held >= FOLD_STATES:
            self._fold()

    def add_column(self, j, col):
        """Fold in values of column ``j`` alone (an Arrow array), for a batch
        read a few columns at a time; its rows are counted by add_rows."""
        if self.pa.types.is_null(col.type):
            self.missing[j] += len(col)
            return
        if col.null_count:
            self.missing[j] += col.null_count
            col = col.drop_null()
        one = summarize_each([col.to_numpy(zero_copy_only=False)])
        if self._empty is None:
            self._empty = summarize_each([np.empty(0)] * len(self.names)).fields
        # the other columns' states empty: merge's identity
        fields = []
        for e, f in zip(self._empty, one.fields):
            row = e.copy()
            row[j] = f[0]
            fields.append(row.reshape((1,) + row.shape))
        self._parts.append(tuple(fields))
        self._held += len(self.names)
        if self._held >= FOLD_STATES:
            self._fold()

    def add_rows(self, n):
        self.nrows += n

    def _fold(self):
        if not self._parts:
            return
        fields = tuple(np.concatenate([p[i] for p in self._parts]) for i in range(len(self._parts[0])))
        s = Summary._wrap(fields).reduce(0)
        self.state = s if self.state is None else self.state.merge(s)
        self._parts, self._held = [], 0

    def result(self, kind, notes):
        self._fold()
        state = self.state if self.state is not None else summarize_each([np.empty(0)] * len(self.names))
        return TableStats(self.names, state, self.missing, self.integral, kind, self.nrows, notes)


#: Column states kept before they are merged (see _Columns.add_group):
#: 256 batches of 16 columns, ~230 kB.
FOLD_STATES = 4096


def _numeric_fields(pa, schema, notes, path, what="column"):
    """Indices of the numeric/boolean top-level fields; a note for each other one."""
    keep = []
    for i, f in enumerate(schema):
        try:
            f.name  # Arrow decodes names when asked: a name that is not UTF-8 raises there
        except UnicodeDecodeError:
            raise InputError(f"{path}: the name of {what} {i + 1} is not UTF-8") from None
        if _is_numeric(pa, f.type):
            keep.append(i)
        else:
            notes.append(f"note: {what} {f.name!r} is not numeric ({f.type}); skipped")
    return keep


def _no_numeric(path, notes):
    # the notes say why each column was skipped: they come before the error line
    for n in notes:
        print(n, file=sys.stderr)
    raise InputError(f"{path} has no numeric columns")


def _row_bytes(pa, types):
    n = 0
    for t in types:
        try:
            n += max(1, t.bit_width // 8)
        except ValueError:  # variable width
            n += 8
    return max(n, 1)


# -- CSV -------------------------------------------------------------------------------


def _is_number(text):
    t = text.strip()
    if not t:
        return False
    try:
        float(t)
        return True
    except ValueError:
        return False


def _first_line(pa, open_stream, path):
    """The first non-blank line of the (decompressed) text, to tell a header from data."""
    raw, stream = open_stream()
    try:
        buf = b""
        while b"\n" not in buf.lstrip(b"\r\n") and len(buf) < (16 << 20):
            data = stream.read(1 << 16)
            if not data:
                break
            buf += data
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path}: unreadable compressed data ({_msg(e)})") from None
    finally:
        stream.close()
        raw.close()
    text = buf.lstrip(b"\r\n").split(b"\n", 1)[0]
    if not text.strip():
        raise InputError(f"{path} is empty")
    try:
        return text.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; is it a CSV file?") from None


def read_csv(path, args, bar) -> TableStats:
    """Numeric columns of a CSV/TSV file, plain or gzip/bz2/zstd, streamed in blocks.

    Arrow infers each column's type from the first block; a later block can
    prove it wrong (an integer column with a 2.5, a number column with a
    word). Then the read starts over with that column read as float64, or
    left out with a note: each column restarts the read at most twice.
    """
    import csv

    pa = require("pyarrow", "CSV files")
    pacsv = require("pyarrow.csv", "CSV files")
    with open(path, "rb") as fp:
        head = fp.read(8)
    if not head:
        raise InputError(f"{path} is empty")
    codec = compression_of(path, head)
    inner = os.path.splitext(inner_name(path))[1].lower()
    delim = args.delimiter or ("\t" if inner in (".tsv", ".tab") else ",")
    if len(delim) != 1:
        raise InputError(f"--delimiter must be one character, got {delim!r}")

    def open_stream():
        raw = pa.OSFile(path)
        return raw, (pa.CompressedInputStream(raw, codec) if codec else raw)

    first = _first_line(pa, open_stream, path)
    fields = next(csv.reader([first], delimiter=delim))
    ncol = len(fields)
    has_header = not all(_is_number(f) or not f.strip() for f in fields)
    names = [f.strip() or f"column {i}" for i, f in enumerate(fields)] if has_header else [str(i) for i in range(ncol)]
    # Arrow sees its own names: repeated or empty header fields must not clash.
    internal = [f"c{i}" for i in range(ncol)]
    nulls = [v for v in pacsv.ConvertOptions().null_values if v not in _NAN_SPELLINGS]
    # The text block and its converted columns are both alive while a block
    # is summarized (and Arrow reads one block ahead): a quarter of the chunk each.
    block = int(min(max(args.chunk_size // 4, 1 << 16), 1 << 30))
    forced, excluded, notes = {}, set(), []
    while True:
        include = [internal[i] for i in range(ncol) if i not in excluded]
        if not include:
            _no_numeric(path, notes)
        raw, stream = open_stream()
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=internal, skip_rows=1 if has_header else 0, block_size=block),
                parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(include_columns=include, column_types=forced, null_values=nulls),
            )
            schema = reader.schema
            cols = [int(f.name[1:]) for f in schema]
            bad = [c for c, f in zip(cols, schema) if not _is_numeric(pa, f.type)]
            if bad:  # known from the first block: leave them out unconverted
                for c in bad:
                    notes.append(f"note: column {names[c]!r} is not numeric ({schema.field(internal[c]).type}); skipped")
                excluded.update(bad)
                continue
            acc = _Columns(pa, [names[c] for c in cols], [f.type for f in schema])
            last = 0
            for batch in reader:
                acc.add(batch)
                if bar is not None:
                    pos = raw.tell()
                    bar.update(pos - last)
                    last = pos
            break
        except pa.ArrowInvalid as e:
            m = _CONVERSION.match(str(e))
            if m is None:
                text = _msg(e)
                if "straddling" in text or "straddles" in text:
                    raise InputError(f"{path}: a row is longer than a block of {block} bytes; use a larger --chunk-size") from None
                raise InputError(f"{path}: {text}") from None
            c, to, value = int(m.group(1)), m.group(2), m.group(3)
            if to != "double" and c not in forced:  # int, bool or all-null so far: numbers after all?
                forced[internal[c]] = pa.float64()
            else:
                notes.append(f"note: column {names[c]!r} is not numeric ({value[:30]!r}); skipped")
                excluded.add(c)
                forced.pop(internal[c], None)
            if bar is not None:
                bar.reset()
        except (pa.ArrowException, OSError, EOFError) as e:
            # a compressed stream cut short or corrupt
            raise InputError(f"{path}: unreadable data ({_msg(e)})") from None
        finally:
            stream.close()
            raw.close()
    if acc.nrows == 0:
        raise InputError(f"{path} has a header but no data rows" if has_header else f"{path} has no data rows")
    kind = ("TSV" if delim == "\t" else "CSV") + (f" ({codec})" if codec else "")
    return acc.result(kind, notes)


# -- Parquet ---------------------------------------------------------------------------------


def read_parquet(path, args, bar) -> TableStats:
    """Numeric columns of a Parquet file, in record batches of about one chunk.

    Only those columns' pages are read. Without pre-buffering and with a
    buffered stream, Arrow decodes a row group page by page into batches of
    ``batch_size`` rows, so memory follows the batch, not the row group.
    """
    pa = require("pyarrow", "Parquet files")
    pq = require("pyarrow.parquet", "Parquet files")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path} is empty")
    try:
        pf = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path}: not a readable Parquet file ({_msg(e)})") from None
    except UnicodeDecodeError:  # Arrow decodes the column paths as it opens the file
        raise InputError(f"{path}: a column name is not UTF-8") from None
    notes = []
    schema = pf.schema_arrow
    keep = _numeric_fields(pa, schema, notes, path)
    if not keep:
        _no_numeric(path, notes)
    types = [schema.field(i).type for i in keep]
    rows = max(1, args.chunk_size // _row_bytes(pa, types))
    acc = _Columns(pa, [schema.field(i).name for i in keep], types)
    total = max(pf.metadata.num_rows, 1)
    size = os.path.getsize(path)
    try:
        with _Behind(acc) as behind:
            for batch in pf.iter_batches(batch_size=rows, columns=[schema.field(i).name for i in keep], use_threads=True):
                behind.add(batch)
                if bar is not None:
                    bar.update(batch.num_rows * size / total)
    except (pa.ArrowException, OSError, EOFError) as e:
        raise InputError(f"{path}: unreadable Parquet data ({_msg(e)})") from None
    return acc.result(f"Parquet ({pf.num_row_groups} row group{'s' * (pf.num_row_groups != 1)})", notes)


# -- Arrow IPC / Feather ---------------------------------------------------------------------------


def _mapped(path):
    """The file as a read-only shared memory map whose pages can be dropped
    (``MADV_DONTNEED``) and the (device, inode, size, mtime) of what it
    maps, or (None, None) where this platform or file has none."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return None, None
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), _identity(st)
    except (OSError, ValueError):
        return None, None


def _identity(st):
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class _Copier:
    """Batch ``i`` of the mapped Arrow IPC file read again by plain file
    reads (a copy), through a reader opened on first use: a file whose
    batches are all compressed or large never opens it. It must be the file
    the map holds: one replaced since (a new file renamed over the path) is
    an error, not a mix of the two."""

    def __init__(self, pa, path, ident, nbatches):
        self.pa, self.path, self.ident, self.nbatches = pa, path, ident, nbatches
        self._src = self._reader = None

    def get_batch(self, i):
        if self._reader is None:
            self._src = self.pa.OSFile(self.path)
            st = os.fstat(self._src.fileno())
            self._reader = self.pa.ipc.open_file(self._src)
            if _identity(st)[:2] != self.ident[:2] or self._reader.num_record_batches != self.nbatches:
                raise InputError(f"{self.path} was replaced while it was read")
        return _batch(self._reader, i, self.path)

    def close(self):
        if self._src is not None:
            self._src.close()
        self._src = self._reader = None


def _open_ipc(pa, mm, path, stream, options=None):
    """(source, reader) of an IPC file or stream: on the map ``mm``, or by plain reads."""
    src = pa.BufferReader(pa.py_buffer(mm)) if mm is not None else pa.OSFile(path)
    try:
        return src, (pa.ipc.open_stream if stream else pa.ipc.open_file)(src, options=options)
    except BaseException:
        src.close()
        raise


class _Parts:
    """Batches of an IPC file read some of our columns at a time, through
    readers opened with ``included_fields`` (Arrow then decompresses, or
    copies, only those columns): the first column of a batch, then groups
    of columns of at most half a chunk.
    Arrow reads a compressed batch whole, so without this a batch larger
    than the chunk needed its whole decompressed size in memory."""

    def __init__(self, pa, mm, keep, col_bytes, nbatches, path):
        self.pa, self.mm, self.keep, self.col_bytes = pa, mm, list(keep), list(col_bytes)
        self.nbatches, self.path = nbatches, path
        self._kept = {}  # fields -> (source, reader) kept open across batches

    def open_reader(self, options):
        """Through the map where there is one: a plain file reader reads a
        batch's whole body, the columns left out too, before it selects."""
        return _open_ipc(self.pa, self.mm, self.path, False, options)

    def drop_pages(self, pool=False):
        """The map's pages read so far let go (the parts are copies, not
        views); with ``pool``, also the memory Arrow's pool keeps of parts
        freed: mimalloc kept each large part's (RSS grew by one 8 MB column
        per part, ~7 MB each, 2026-12-07)."""
        if self.mm is not None:
            self.mm.madvise(mmap.MADV_DONTNEED)
        if pool:
            self.pa.default_memory_pool().release_unused()

    def batch(self, i, fields, keep_open=True):
        """Batch ``i`` of the file's fields ``fields`` (indices in the file's schema)."""
        _still_whole(self.mm, self.path)
        key = tuple(fields)
        entry = self._kept.get(key)
        if entry is None:
            entry = self.open_reader(self.pa.ipc.IpcReadOptions(included_fields=list(key)))
            if entry[1].num_record_batches != self.nbatches:
                entry[0].close()
                raise InputError(f"{self.path} changed while it was read")
            if keep_open:
                self._kept[key] = entry
        try:
            return entry[1].get_batch(i)  # an index within the footer's: checked above
        except ValueError as e:  # Arrow's for a damaged batch, read through the map
            raise InputError(f"{self.path}: not a readable Arrow IPC / Feather file ({_msg(e)})") from None
        finally:
            if not keep_open:
                entry[0].close()

    def groups(self, rows, chunk):
        """(fields, our column indices) of the columns after the first, in
        groups of at most half a chunk of ``rows`` rows (one column at least)."""
        fields, ours, nbytes = [], [], 0
        for j in range(1, len(self.keep)):
            k = rows * self.col_bytes[j]
            if ours and nbytes + k > chunk // 2:
                yield fields, ours
                fields, ours, nbytes = [], [], 0
            fields.append(self.keep[j])
            ours.append(j)
            nbytes += k
        if ours:
            yield fields, ours

    def close(self):
        for src, _ in self._kept.values():
            src.close()
        self._kept = {}


def read_arrow(path, args, bar) -> TableStats:
    """Numeric columns of an Arrow IPC file or stream (Feather v2), batch by batch.

    A file whose columns are all numeric is opened through a memory map,
    where Arrow's batches of an uncompressed file are views of the page
    cache that cost nothing to open: each tells its size and whether it is
    compressed before any of its data is read. Batches of at most half a
    chunk of an uncompressed file, with at least COPY_MIN_COLUMN bytes a
    column, are then read again by plain file reads, a copy summarized
    behind the copy of the next (see _read_batches): copying pages from the
    page cache is faster than a map's first touch of them (400 MB,
    2026-12-07: a read 17-19 ms, touching the mapped pages 31-35 ms).
    Larger batches, compressed ones (decompressed by Arrow into memory of
    its own), and a stream's (which has no index to read a batch again by)
    are summarized in turn, gathered to about one chunk (counted as NumPy
    holds them: booleans a byte each) or GROUP_BATCHES batches, and after
    each group the map's pages are dropped from the process (they stay in
    the page cache), so memory follows the chunk, not the file.

    With columns to skip, plain reads of our columns (``included_fields``,
    which on a map would copy them anyway), a batch at a time; so too
    without a map (no ``madvise`` on this platform, or a file that cannot be
    mapped). A file's batch larger than a chunk that Arrow would decompress
    or read whole is read in parts instead (see _read_batches).
    A mapped file whose size, inode or modification time differ at the end
    from when it was mapped is an error: what was read may mix old and new
    data.

    Still whole in memory: a stream's batch (no footer to read it again by
    parts), and a file's where its head cannot be read or no map be made.
    """
    pa = require("pyarrow", "Arrow IPC / Feather files")
    with open(path, "rb") as fp:
        head = fp.read(8)
    if not head:
        raise InputError(f"{path} is empty")
    if head.startswith(b"FEA1"):
        raise InputError(f"{path} is a Feather version 1 file; rewrite it as version 2 (pyarrow.feather.write_feather)")
    stream = not head.startswith(b"ARROW1")
    mm, ident = _mapped(path)
    pmap = None  # the map batches are read in parts through (_Parts)

    def open_reader(options=None):
        return _open_ipc(pa, mm, path, stream, options)

    notes = []
    try:
        try:
            src, reader = open_reader()
            schema = reader.schema
            src.close()
            del src, reader
            keep = _numeric_fields(pa, schema, notes, path)
            if not keep:
                _no_numeric(path, notes)
            types = [schema.field(i).type for i in keep]
            acc = _Columns(pa, [schema.field(i).name for i in keep], types)
            if mm is not None and len(keep) < len(schema):
                # whole batches would hold the skipped columns: a file's batches are read in parts
                # through the map (only those columns copied or decompressed), a stream's by plain reads
                if stream:
                    mm = _unmap(mm)
                else:
                    pmap, mm = mm, None
            src, reader = open_reader(None if mm is not None else pa.ipc.IpcReadOptions(included_fields=keep))
            copier = None if mm is None or stream else _Copier(pa, path, ident, reader.num_record_batches)
            parts = None if stream else _Parts(
                pa, pmap if mm is None else mm, keep, [_row_bytes(pa, [t]) for t in types],
                reader.num_record_batches, path)
            try:
                _read_batches(reader, stream, acc, mm, _row_bytes(pa, types), args.chunk_size, bar, path, copier,
                              parts)
                if (mm is not None or pmap is not None) and _identity(os.stat(path)) != ident:
                    # written meanwhile: what the map and the copies read may mix old and new data
                    raise InputError(f"{path} changed while it was read")
            finally:
                src.close()
                if copier is not None:
                    copier.close()
                if parts is not None:
                    parts.close()
                del src, reader, copier, parts
        except (pa.ArrowException, OSError, EOFError) as e:
            raise InputError(f"{path}: not a readable Arrow IPC / Feather file ({_msg(e)})") from None
    finally:
        if mm is not None:
            _unmap(mm)
        if pmap is not None:
            _unmap(pmap)
    kind = "Arrow IPC stream" if stream else "Arrow IPC / Feather"
    return acc.result(kind, notes)


#: Batches per summary at most: each batch object holds ~1.6 kB beside its data;
#: and column arrays (batches x columns), each an Arrow array, a NumPy view and
#: a kernel input of its own, and at least 64 bytes of buffer in the file.
GROUP_BATCHES = 256
GROUP_ARRAYS = 4096
#: Bytes per column a batch of the map has at least to be copied (see
#: _read_batches): 5000 one-row columns a batch took 17.4-18.1 s copied,
#: 14.2-14.6 s without the copies (600 batches, 2026-12-07 review).
COPY_MIN_COLUMN = 4096
#: Bytes of copied batches per summary behind the reads (see _read_batches).
COPY_GROUP = 4 << 20
#: Bytes a batch has at least to be read in parts (see _read_batches): with a
#: chunk of a few kB, batches just above it were read a column slice at a
#: time, 2-3x slower (2000 batches of 10 columns, zstd, 2026-12-07 review).
PARTS_MIN = 1 << 22
#: Batches between drops of the pages their heads were read from, where the
#: file is read without the map of all columns (see _read_batches).
HEADS_DROP = 64


def _unmap(mm):
    try:
        mm.close()
    except BufferError:  # a view still held (an error's traceback): unmapped when collected
        pass


def _still_whole(mm, path):
    """A mapped file that shrank would kill the process (SIGBUS) on the next
    read of a page past its new end: checked before each batch and summary."""
    if mm is not None and mm.size() < len(mm):
        raise InputError(f"{path} shrank while it was read")


def _batch(reader, i, path):
    """Batch ``i`` of an IPC file reader. Arrow raises ValueError for an index
    past the batches its footer lists, as where the file was rewritten in
    place (same inode) since it was opened."""
    try:
        return reader.get_batch(i)
    except ValueError as e:
        raise InputError(f"{path} changed while it was read ({_msg(e)})") from None


def _span(mm):
    """The addresses [start, end) of the map ``mm``, or None."""
    if mm is None:
        return None
    import pyarrow as pa

    view = pa.py_buffer(mm)
    span = (view.address, view.address + view.size)
    del view  # its export would keep mm from closing
    return span


def _within(batch, span):
    """Whether ``batch`` is a view of the map at ``span``, not Arrow's
    decompressed copy (a batch is compressed whole or not at all: its first
    buffer with data tells)."""
    lo, hi = span
    for j in range(batch.num_columns):  # not batch.columns: that wraps every column first
        for buf in batch.column(j).buffers():
            if buf is not None and buf.size:
                return lo <= buf.address and buf.address + buf.size <= hi
    return False


def _read_batches(reader, stream, acc, mm, row_bytes, chunk, bar, path, copier=None, parts=None):
    """Summarize the batches of ``reader`` into ``acc``.

    A batch that is a copy (``mm`` None), or one of the map that ``copier``
    copies by plain reads (an uncompressed file: reading pages already in
    the page cache is faster than a map's first touch of them), is
    summarized behind the read of the next (_Behind), gathered to about
    COPY_GROUP bytes, so that each group is still in the cache when it is
    summarized. Only batches of at most half a chunk, and of the map only
    those with a page's worth a column (COPY_MIN_COLUMN; for less, Arrow's
    per-column work of a second read outweighs the pages it saves). Larger
    batches, and batches of the map that are not copied (compressed, or a
    stream's), are summarized in turn, gathered to about a chunk; a batch
    of the map larger than a chunk is summarized a chunk of rows at a time.
    The map's pages are dropped after each chunk's worth of batches, copied
    or not (opening a batch of the map reads its metadata, and the kernel
    maps the pages around it too).

    A file's batch larger than a chunk (and PARTS_MIN) that Arrow would
    decompress or read whole (compressed, or any where columns are skipped:
    no map of all columns), as its head in the file tells before it is opened, is read in
    parts (_Parts): its first column, then a few columns at a time, each
    column summarized alone a chunk of rows at a time, so memory holds at
    most one column and half a chunk of others.
    """
    size = os.path.getsize(path)
    if stream:
        batches, n = iter(reader), None
    else:
        n = reader.num_record_batches
    span = _span(mm)
    # Each batch's head (rows, compressed: readers/ipc_footer.py), read just before it
    # from the map (the parts' map where columns are skipped). On the map of all columns
    # only until a batch is seen uncompressed (a writer compresses all its batches or
    # none): from then on batches are views, whatever their size.
    heads_on = mm if mm is not None else (parts.mm if parts is not None else None)
    blocks = batch_blocks(heads_on) if heads_on is not None and not stream else None
    if blocks is not None and len(blocks) != n:
        blocks = None

    def next_batch(i):
        """(batch, by_columns): by_columns means only the batch's first
        column was read, the rest to be read by columns."""
        nonlocal blocks
        if stream:
            return next(batches, None), False
        if i >= n:
            return None, False
        head = None
        if blocks is not None:
            _still_whole(heads_on, path)
            head = batch_head(heads_on, blocks[i])
        if mm is None and i % HEADS_DROP == HEADS_DROP - 1:
            parts.drop_pages()  # the heads' pages
        if mm is not None and head is not None and not head[1]:
            blocks = None
        if (head is None or head[0] * row_bytes <= max(chunk, PARTS_MIN)
                or (mm is not None and (not head[1] or len(parts.keep) == 1))):
            return _batch(reader, i, path), False
        # larger than a chunk, and compressed or read without the map of all columns:
        # opened whole, Arrow would decompress or read it whole
        first = parts.batch(i, parts.keep[:1])
        parts.drop_pages()
        return first, len(parts.keep) > 1

    def by_columns(i, held):
        """Summarize batch ``i``, of which ``held`` holds the first column
        alone (taken from it: the column is let go before the others are read)."""
        first = held.pop()
        rows = first.num_rows
        acc.add_rows(rows)
        step = max(1, chunk // 8)  # rows per summary: a column's nulls or booleans are copied

        def add(j, col):
            for start in range(0, rows, step):
                acc.add_column(j, col.slice(start, step))

        add(0, first.column(0))
        del first
        parts.drop_pages(pool=True)
        for fields, ours in parts.groups(rows, chunk):
            part = parts.batch(i, fields, keep_open=False)
            parts.drop_pages()
            for c, j in enumerate(ours):
                add(j, part.column(c))
            del part
            parts.drop_pages(pool=True)

    copy_max = chunk // 2
    copy_group = min(COPY_GROUP, copy_max)
    group, nbytes = [], 0  # summarized in turn
    copies, cbytes = [], 0  # summarized behind
    mapped = 0  # bytes of batches opened on the map since its pages were last dropped

    def drop_pages():
        nonlocal mapped
        if mm is not None:
            # Every page read so far, whatever the batch layout or compression:
            # a page still needed comes back from the page cache on its next read.
            mm.madvise(mmap.MADV_DONTNEED)
        mapped = 0

    def in_turn():
        nonlocal group, nbytes
        if group:
            behind.wait()  # one running state: the copies before these first
            _still_whole(mm, path)
            acc.add_group(group)
            group, nbytes = [], 0
            drop_pages()

    def behind_next():
        nonlocal copies, cbytes
        if copies:
            behind.add_group(copies)
            copies, cbytes = [], 0

    with _Behind(acc) as behind:
        i = 0
        while True:
            _still_whole(mm, path)
            batch, columns = next_batch(i)
            if batch is None:
                break
            k = batch.num_rows * row_bytes
            if bar is not None and n:
                bar.update(size / n)
            if columns:
                behind_next()
                in_turn()
                behind.wait()  # one running state
                held = [batch]
                del batch
                by_columns(i, held)
                i += 1
                continue
            cols = max(batch.num_columns, 1)
            copy = None
            if k <= copy_max:
                if mm is None:
                    copy = batch
                elif copier is not None and k >= COPY_MIN_COLUMN * cols and _within(batch, span):
                    copy = copier.get_batch(i)
            i += 1
            if copy is not None:
                del batch
                in_turn()
                copies.append(copy)
                cbytes += k
                mapped += k
                if cbytes >= copy_group or len(copies) >= min(GROUP_BATCHES, GROUP_ARRAYS // cols):
                    behind_next()
                if mapped >= chunk:
                    drop_pages()
                continue
            behind_next()
            if k > chunk and mm is not None:
                in_turn()
                rows = max(1, chunk // row_bytes)
                for start in range(0, batch.num_rows, rows):
                    group = [batch.slice(start, rows)]
                    in_turn()
                continue
            group.append(batch)
            nbytes += k
            if nbytes >= chunk or len(group) >= min(GROUP_BATCHES, GROUP_ARRAYS // cols):
                in_turn()
        behind_next()
        in_turn()
