"""The ``fastmoments`` command: ``fastmoments describe FILE``.

Describes numeric data files larger than memory in one streaming pass: count
(finite values), mean, std, min, max and the non-finite count per column.

Formats: ``.npy`` (read through short-lived memory maps of one chunk at a time,
never whole), ``.npz`` (each array streamed from the archive), raw binary
(``--dtype``, ``--shape``) and CSV (streamed in chunks, numeric columns only).
Object arrays are refused: reading them would mean unpickling, which runs code
from the file. With ``--scheduler ADDRESS`` the chunks are read and reduced by
the workers of a Dask cluster (needs ``fastmoments-dask``; the file's path must
be readable by the workers).

Bad input gets one ``fastmoments: error: ...`` line on stderr and exit status 2;
never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import itertools
import json
import math
import mmap
import os
import re
import sys
import zipfile

import numpy as np

from .reductions import summarize
from .state import Summary

__all__ = ["main"]

DEFAULT_CHUNK = 64 * 1024 * 1024
MAX_CHUNK = 1 << 40
MIN_CHUNK = 4096
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


class InputError(Exception):
    """A problem with the user's input: reported as one line, exit status 2."""


# -- argument parsing ------------------------------------------------------------------


def _parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 64MB, 512k, 1G, 1048576)")
    value, unit, _ = m.groups()
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit.lower()]
    n = float(value) * factor
    if n < MIN_CHUNK:
        raise argparse.ArgumentTypeError(f"chunk size must be at least {MIN_CHUNK} bytes, got {text!r}")
    if n > MAX_CHUNK:
        raise argparse.ArgumentTypeError(f"chunk size must be at most 1T, got {text!r}")
    return int(n)


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        value = ast.literal_eval(text.strip() if text.strip() else "()")
    except (ValueError, SyntaxError):
        value = None
    if value is None and re.fullmatch(r"\s*-?\d+(\s*x\s*-?\d+)*\s*", text):
        value = tuple(int(v) for v in text.split("x"))  # 1000x3
    if isinstance(value, int):
        value = (value,)
    if not isinstance(value, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (examples: 1000,3  or  -1,3)")
    if sum(v == -1 for v in value) > 1 or any(v < -1 for v in value):
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: sizes must be >= 0, with at most one -1")
    return value


def _parse_axis(text: str):
    t = text.strip().lower()
    if t in ("all", "none"):
        return None
    try:
        axes = tuple(int(p) for p in t.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an axis: {text!r} (examples: 0, 1, 0,2, all)") from None
    return axes


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastmoments", description="One-pass statistics of numeric data files.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser(
        "describe",
        help="count, mean, std, min, max and non-finite count per column of a file",
        description=(
            "Count (finite values), mean, std, min, max and non-finite count per column of "
            "a .npy, .npz, raw binary or CSV file, read in chunks (never loaded whole). "
            "NaN and +-Inf are counted as non-finite and left out of the other statistics."
        ),
    )
    d.add_argument("file", metavar="FILE")
    d.add_argument("--format", choices=("npy", "npz", "raw", "csv"), help="file format (default: from the extension or the first bytes)")
    d.add_argument("--axis", type=_parse_axis, default=(0,), help="axis or axes to reduce, comma separated, or 'all' (default: 0, one result per column)")
    d.add_argument("--json", action="store_true", help="print JSON: one object per column with count, mean, std, min, max, nonfinite")
    d.add_argument("--chunk-size", type=_parse_size, default=DEFAULT_CHUNK, metavar="SIZE", help="bytes read at a time (default: 64MB; accepts k, M, G suffixes)")
    d.add_argument("--ddof", type=int, default=0, help="delta degrees of freedom of std (default: 0, as NumPy)")
    d.add_argument("--dtype", help="raw binary: the values' dtype (e.g. float32, <i8)")
    d.add_argument("--shape", type=_parse_shape, help="raw binary: the array's shape (e.g. 1000,3 or 1000x3 or --shape=-1,3; default: 1-D)")
    d.add_argument("--offset", type=int, default=0, help="raw binary: bytes to skip at the start (default: 0)")
    d.add_argument("--order", choices=("C", "F"), default="C", help="raw binary: memory order (default: C)")
    d.add_argument("--key", action="append", metavar="NAME", help=".npz: describe only this array (repeatable)")
    d.add_argument("--delimiter", help="CSV: field delimiter (default: ',' or a tab for .tsv)")
    d.add_argument("--scheduler", metavar="ADDRESS", help="hand the work to the Dask scheduler at ADDRESS (needs fastmoments-dask)")
    prog = d.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show a progress bar")
    prog.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")
    return p


# -- array sources ---------------------------------------------------------------------


class _Array:
    """A numeric array in a file: where its bytes are and how to read them."""

    def __init__(self, label, shape, dtype, fortran, nbytes_total, opener, path=None, offset=None):
        self.label = label  # column-name prefix ('' for a single array)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = dtype
        self.fortran = fortran
        self.nbytes = nbytes_total
        self.opener = opener  # () -> a reader with .next(nbytes) and .close()
        self.path = path  # set when the data are a plain byte range of a file
        self.offset = offset


def _check_dtype(dtype, where):
    if dtype.hasobject:
        raise InputError(
            f"{where} holds Python objects (dtype {dtype}); refused: reading them would "
            "unpickle the file, which can run arbitrary code"
        )
    if dtype.fields is not None or dtype.kind == "V":
        raise InputError(f"{where} has a structured dtype ({dtype}); describe numeric arrays only")
    if dtype.kind not in "biuf":
        what = {"c": "complex", "U": "string", "S": "bytes", "M": "datetime", "m": "timedelta"}.get(dtype.kind, "non-numeric")
        raise InputError(f"{where} has {what} dtype {dtype}; only bool, integer and real float data are described")
    if dtype.kind == "f" and dtype.itemsize > 8:
        raise InputError(f"{where} has extended-precision dtype {dtype}; only floats up to 64 bits are described")


def _read_npy_header(fp, where):
    """(shape, fortran_order, dtype) of a .npy stream positioned at its start."""
    head = fp.read(len(_NPY_MAGIC))
    if not head:
        raise InputError(f"{where} is empty")
    if head != _NPY_MAGIC:
        raise InputError(f"{where} is not a .npy file (no NUMPY magic string)")
    ver = fp.read(2)
    if len(ver) < 2:
        raise InputError(f"{where}: truncated .npy header")
    version = (ver[0], ver[1])
    try:
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        elif version == (3, 0):
            shape, fortran, dtype = np.lib.format._read_array_header(fp, version)
        else:
            raise InputError(f"{where}: unknown .npy format version {version[0]}.{version[1]}")
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - literal_eval and tokenize raise many kinds
        msg = " ".join(str(e).split())[:200] or type(e).__name__
        raise InputError(f"{where}: corrupt .npy header ({msg})") from None
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise InputError(f"{where}: corrupt .npy header (shape {tuple(shape)})")
    return tuple(shape), bool(fortran), dtype


class _MappedReader:
    """Reads consecutive byte ranges of a file through one short-lived memory map each.

    Only the current range is mapped, so the resident memory stays about one
    chunk however large the file; with MAP_POPULATE the kernel maps the
    page-cached pages in one go instead of one page fault at a time.
    """

    def __init__(self, path, offset):
        self._fd = os.open(path, os.O_RDONLY)
        self._pos = offset

    def next(self, nbytes):
        start = self._pos - self._pos % mmap.ALLOCATIONGRANULARITY
        skip = self._pos - start
        self._pos += nbytes
        if nbytes == 0:
            return np.empty(0, np.uint8)
        length = skip + nbytes
        if hasattr(mmap, "MAP_POPULATE"):
            mm = mmap.mmap(self._fd, length, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ, offset=start)
        else:  # pragma: no cover - not Linux
            mm = mmap.mmap(self._fd, length, access=mmap.ACCESS_READ, offset=start)
        # The array keeps the map alive; it is unmapped when the last view goes.
        return np.frombuffer(mm, np.uint8, nbytes, skip)

    def close(self):
        os.close(self._fd)


class _StreamReader:
    """Reads consecutive byte ranges of a stream (an .npz member) into one buffer."""

    def __init__(self, fp, where):
        self._fp = fp
        self._where = where
        self._buf = None

    def next(self, nbytes):
        if self._buf is None or self._buf.size < nbytes:
            self._buf = np.empty(nbytes, np.uint8)
        view = memoryview(self._buf)[:nbytes]
        got = 0
        while got < nbytes:
            try:
                k = self._fp.readinto(view[got:])
            except (zipfile.BadZipFile, EOFError, OSError) as e:
                raise InputError(f"{self._where}: unreadable data ({e})") from None
            if not k:
                raise InputError(f"{self._where}: truncated: the data end early")
            got += k
        return self._buf[:nbytes]

    def close(self):
        self._fp.close()


def _npy_source(path):
    size = os.path.getsize(path)
    if size == 0:
        raise InputError(f"{path} is empty")
    with open(path, "rb") as fp:
        shape, fortran, dtype = _read_npy_header(fp, path)
        offset = fp.tell()
    _check_dtype(dtype, path)
    need = math.prod(shape) * dtype.itemsize
    if size - offset < need:
        raise InputError(
            f"{path}: truncated .npy: the header says shape {shape} of {dtype} "
            f"({need} bytes of data) but the file holds {size - offset} bytes"
        )
    return [_Array("", shape, dtype, fortran, need, lambda: _MappedReader(path, offset), path, offset)]


def _raw_source(path, args):
    try:
        dtype = np.dtype(args.dtype)
    except TypeError:
        raise InputError(f"--dtype {args.dtype!r} is not a dtype (examples: float64, float32, <i4)") from None
    _check_dtype(dtype, f"--dtype {args.dtype}")
    size = os.path.getsize(path)
    if size == 0:
        raise InputError(f"{path} is empty")
    if args.offset < 0 or args.offset > size:
        raise InputError(f"--offset {args.offset} is outside {path} ({size} bytes)")
    data = size - args.offset
    shape = args.shape if args.shape is not None else (-1,)
    known = math.prod(n for n in shape if n != -1)
    if -1 in shape:
        per = known * dtype.itemsize
        if per == 0 or data % per:
            raise InputError(
                f"{path}: {data} bytes of data do not divide into whole rows of shape {args.shape or '(-1,)'} "
                f"of {dtype} ({per} bytes per step of the -1 axis)"
            )
        shape = tuple(data // per if n == -1 else n for n in shape)
    elif known * dtype.itemsize != data:
        raise InputError(
            f"--shape {','.join(map(str, shape))} of {dtype} is {known * dtype.itemsize} bytes, "
            f"but {path} holds {data} bytes of data"
        )
    need = math.prod(shape) * dtype.itemsize
    return [_Array("", shape, dtype, args.order == "F", need, lambda: _MappedReader(path, args.offset), path, args.offset)]


def _npz_sources(path, keys):
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        if os.path.getsize(path) == 0:
            raise InputError(f"{path} is empty") from None
        raise InputError(f"{path} is not a valid .npz (zip) archive") from None
    with zf:
        names = [n for n in zf.namelist() if n.endswith(".npy")]
        if not names:
            raise InputError(f"{path} holds no arrays")
        by_key = {n[: -len(".npy")]: n for n in names}
        if keys:
            missing = [k for k in keys if k not in by_key]
            if missing:
                raise InputError(f"{path} has no array {missing[0]!r}; it has: {', '.join(by_key)}")
            by_key = {k: by_key[k] for k in keys}
        out = []
        for key, member in by_key.items():
            where = f"{path}[{key}]"
            try:
                with zf.open(member) as fp:
                    shape, fortran, dtype = _read_npy_header(fp, where)
                    header_len = fp.tell()
            except (zipfile.BadZipFile, EOFError, OSError) as e:
                raise InputError(f"{where}: unreadable ({e})") from None
            _check_dtype(dtype, where)
            need = math.prod(shape) * dtype.itemsize
            if zf.getinfo(member).file_size - header_len < need:
                raise InputError(f"{where}: truncated: the header says shape {shape} of {dtype} ({need} bytes)")

            def opener(member=member, where=where):
                z = zipfile.ZipFile(path)
                fp = z.open(member)
                _read_npy_header(fp, where)
                r = _StreamReader(fp, where)
                close = r.close
                r.close = lambda: (close(), z.close())
                return r

            out.append(_Array(key, shape, dtype, fortran, need, opener))
    return out


# -- streaming reduction of one array ---------------------------------------------------


def _block_plan(shape, itemsize, chunk):
    """Blocks in memory order (C), each one contiguous run of at most ``chunk`` bytes.

    Yields (lead, start, stop, nbytes): the block is ``x[lead + (slice(start, stop),)]``.
    """
    ndim = len(shape)
    if ndim == 0:
        yield (), None, None, itemsize
        return
    d = 0
    while d < ndim - 1 and math.prod(shape[d + 1 :]) * itemsize > chunk:
        d += 1
    row = math.prod(shape[d + 1 :]) * itemsize
    k = max(1, chunk // max(row, 1))
    for lead in itertools.product(*(range(n) for n in shape[:d])):
        for a in range(0, shape[d], k):
            b = min(a + k, shape[d])
            yield lead, a, b, (b - a) * row


def _progress(total, enabled, desc):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    # delay: short runs never draw a bar
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, file=sys.stderr, delay=0.5, leave=False)


def _reduce_array(arr: _Array, axes, chunk, bar) -> Summary:
    """Summary of ``arr`` over ``axes`` (normalized), reading one chunk at a time."""
    shape, ndim = arr.shape, len(arr.shape)
    # A Fortran-ordered array is the C-ordered array of the reversed shape, transposed.
    cshape = shape[::-1] if arr.fortran else shape
    caxes = tuple(sorted(ndim - 1 - a for a in axes)) if arr.fortran else axes
    keep = tuple(1 if i in caxes else n for i, n in enumerate(cshape))
    empty = summarize(np.empty((0,) + keep), axis=0)
    acc = [np.array(f) for f in empty.fields]
    reader = arr.opener()
    try:
        for lead, a, b, nbytes in _block_plan(cshape, arr.dtype.itemsize, chunk):
            raw = reader.next(nbytes)
            if a is None:
                block = raw.view(arr.dtype).reshape(())
            else:
                bshape = (1,) * len(lead) + (b - a,) + cshape[len(lead) + 1 :]
                block = raw.view(arr.dtype).reshape(bshape)
            state = summarize(block, axis=caxes, keepdims=True)
            del raw, block  # unmaps the chunk (mapped reader) before the next one
            region = tuple(
                slice(0, 1) if i in caxes else (slice(lead[i], lead[i] + 1) if i < len(lead) else (slice(a, b) if i == len(lead) and a is not None else slice(None)))
                for i in range(ndim)
            )
            old = Summary._wrap(tuple(f[region] for f in acc))
            for f, new in zip(acc, old.merge(state).fields):
                f[region] = new
            if bar is not None:
                bar.update(nbytes)
    finally:
        reader.close()
    if arr.fortran:
        acc = [f.transpose() for f in acc]
    out_shape = tuple(n for i, n in enumerate(shape) if i not in axes)
    return Summary._wrap(tuple(np.ascontiguousarray(f).reshape(out_shape) for f in acc))


def _normalize_axes(axis, ndim, where):
    if axis is None:
        return tuple(range(ndim))
    out = []
    for a in axis:
        if not -ndim <= a < ndim:
            raise InputError(f"--axis {a} is out of range for {where}, which has {ndim} dimension{'s' * (ndim != 1)}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise InputError(f"--axis repeats an axis: {axis}")
    return tuple(sorted(out))


# -- Dask --------------------------------------------------------------------------------


def _read_block(path, offset, count, dtype, shape):
    return np.fromfile(path, dtype=dtype, count=count, offset=offset).reshape(shape)


def _reduce_with_dask(arr: _Array, axes, chunk, client) -> Summary:
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    import fastmoments_dask

    shape, ndim = arr.shape, len(arr.shape)
    cshape = shape[::-1] if arr.fortran else shape
    if ndim == 0:  # one value: read it here
        darr = da.from_array(_read_block(os.path.abspath(arr.path), arr.offset, 1, arr.dtype, ()), chunks=-1)
    elif cshape[0] == 0:
        darr = da.from_array(np.zeros(cshape, arr.dtype), chunks=-1)
    else:
        row = math.prod(cshape[1:]) * arr.dtype.itemsize
        k = max(1, chunk // max(row, 1))
        name = "fastmoments-read-" + tokenize(arr.path, os.path.getmtime(arr.path), arr.offset, cshape, str(arr.dtype), chunk)
        dsk, rows = {}, []
        path = os.path.abspath(arr.path)
        for i, a in enumerate(range(0, cshape[0], k)):
            b = min(a + k, cshape[0])
            n = (b - a) * math.prod(cshape[1:])
            dsk[(name, i) + (0,) * (ndim - 1)] = (_read_block, path, arr.offset + a * row, n, arr.dtype, (b - a,) + cshape[1:])
            rows.append(b - a)
        chunks = (tuple(rows),) + tuple((n,) for n in cshape[1:])
        darr = da.Array(HighLevelGraph.from_collections(name, dsk, dependencies=()), name, chunks, dtype=arr.dtype)
    if arr.fortran:
        darr = darr.T
    lazy = fastmoments_dask.summarize(darr, axis=axes)
    return client.compute(lazy).result().to_numpy()


def _connect(address):
    try:
        import fastmoments_dask  # noqa: F401
        import distributed
    except ImportError:
        raise InputError(
            "--scheduler needs the fastmoments-dask package: pip install fastmoments-dask "
            "(or pip install -e integrations/dask from a fastmoments checkout)"
        ) from None
    try:
        return distributed.Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise InputError(f"cannot reach the Dask scheduler at {address}: {' '.join(str(e).split())[:200]}") from None


# -- CSV -----------------------------------------------------------------------------------


def _is_number(text):
    t = text.strip()
    if not t:
        return False
    try:
        float(t)
        return True
    except ValueError:
        return False


def _describe_csv(path, args, bar):
    """(column names, 1-D Summary) of the numeric columns of a CSV file, streamed."""
    if args.axis not in ((0,), (-2,)):
        raise InputError("CSV files are described per column: --axis must be 0")
    delim = args.delimiter or ("\t" if path.lower().endswith(".tsv") else ",")
    if len(delim) != 1:
        raise InputError(f"--delimiter must be one character, got {delim!r}")
    notes = []
    with open(path, "rb") as fp:
        first = fp.readline()
        while first and not first.strip():
            first = fp.readline()
        if not first:
            raise InputError(f"{path} is empty")
        try:
            first_text = first.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"{path} is not UTF-8 text; is it a CSV file?") from None
        fields = next(csv.reader([first_text], delimiter=delim))
        ncol = len(fields)
        has_header = not all(_is_number(f) or not f.strip() for f in fields)
        names = [f.strip() or f"column {i}" for i, f in enumerate(fields)] if has_header else [str(i) for i in range(ncol)]
        numeric = list(range(ncol))  # indices still believed numeric
        acc, acc_cols = None, []  # Summary over the columns acc_cols
        pending = b"" if has_header else first
        line_no = 1 if has_header else 0
        rows_seen = 0
        done = False
        # No bigger than the file: a huge --chunk-size must not allocate it.
        chunk = min(args.chunk_size, os.fstat(fp.fileno()).st_size + 1)
        while not done and numeric:
            data = fp.read(chunk)
            if not data:
                done = True
                text_bytes, pending = pending, b""
            else:
                buf = pending + data
                cut = _last_record_end(buf)
                if cut < 0:
                    pending = buf
                    continue
                text_bytes, pending = buf[: cut + 1], buf[cut + 1 :]
            if bar is not None:
                bar.update(len(data))
            if not text_bytes.strip():
                line_no += text_bytes.count(b"\n")
                continue
            try:
                text = text_bytes.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{path} is not UTF-8 text after line {line_no}; is it a CSV file?") from None
            values, numeric, dropped, nrows = _parse_csv_chunk(text, delim, numeric, ncol, line_no, path)
            for col, why in dropped:
                notes.append(f"note: column {names[col]!r} is not numeric ({why}); skipped")
            if dropped and acc is not None:
                keep = [i for i, c in enumerate(acc_cols) if c in numeric]
                acc, acc_cols = acc[np.array(keep, dtype=np.intp)], [acc_cols[i] for i in keep]
            line_no += text.count("\n")
            rows_seen += nrows
            if numeric and nrows:
                s = summarize(values, axis=0)
                acc = s if acc is None else acc.merge(s)
                acc_cols = list(numeric)
    for n in notes:
        print(n, file=sys.stderr)
    if rows_seen == 0:
        raise InputError(f"{path} has a header but no data rows" if has_header else f"{path} has no data rows")
    if not numeric:
        raise InputError(f"{path} has no numeric columns")
    return [names[c] for c in acc_cols], acc


def _last_record_end(buf):
    """Index of the last newline of ``buf`` (which starts at a record) that
    ends a record: one outside double quotes, where a field may hold
    newlines. -1 if none."""
    if b'"' not in buf:
        return buf.rfind(b"\n")
    a = np.frombuffer(buf, np.uint8)
    newlines = np.flatnonzero(a == 10)
    quotes = np.cumsum(a == 34)  # an escaped quote ("") counts twice: parity unchanged
    outside = newlines[quotes[newlines] % 2 == 0]
    return int(outside[-1]) if outside.size else -1


def _parse_csv_chunk(text, delim, numeric, ncol, line_no, path):
    """Parse one chunk of whole lines; returns (values, numeric, dropped, nrows).

    The fast path is NumPy's C parser on the columns believed numeric; when it
    fails (an empty field, a word, a ragged line) the chunk is parsed again in
    Python to find out which, with empty fields read as NaN.
    """
    try:
        with np.errstate(all="ignore"):
            values = np.loadtxt(
                io.StringIO(text), delimiter=delim, dtype=np.float64, usecols=numeric,
                ndmin=2, comments=None, quotechar='"',
            )
        # loadtxt ignores fields outside usecols: a ragged line (or a quoted
        # delimiter) shows in the count of delimiters, checked at C speed.
        if text.count(delim) == values.shape[0] * (ncol - 1):
            return values, numeric, [], values.shape[0]
    except ValueError:
        pass
    cols = {c: [] for c in numeric}
    dropped = []
    nrows = 0
    for i, row in enumerate(csv.reader(io.StringIO(text), delimiter=delim)):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != ncol:
            raise InputError(f"{path}: line {line_no + i + 1} has {len(row)} fields, expected {ncol}")
        nrows += 1
        for c in list(cols):
            v = row[c].strip()
            if not v:
                cols[c].append(math.nan)
                continue
            try:
                cols[c].append(float(v))
            except ValueError:
                dropped.append((c, f"{v[:30]!r} on line {line_no + i + 1}"))
                del cols[c]
    numeric = [c for c in numeric if c in cols]
    values = np.array([cols[c] for c in numeric], dtype=np.float64).T.reshape(nrows, len(numeric))
    return values, numeric, dropped, nrows


# -- output ----------------------------------------------------------------------------------


def _num(v, as_int=False):
    v = float(v)
    if math.isnan(v):
        return None  # JSON has no NaN: null where there are no finite values
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"  # nor infinities (a std beyond float64's range)
    # Integer data's min/max are float64: exact below 2**53, rounded above,
    # where printing them as integers would claim digits they do not have.
    return int(v) if as_int and v.is_integer() and abs(v) <= 2**53 else v


def _rows(label, state: Summary, ddof, integral, names=None):
    """(name, stats dict) per element of ``state``."""
    std = np.asarray(state.std(ddof)).reshape(state.shape)
    out = []
    for k, idx in enumerate(np.ndindex(state.shape)):
        if names is not None:
            name = names[k]
        elif not state.shape:
            name = label or "all"
        else:
            pos = ",".join(map(str, idx))
            name = f"{label}[{pos}]" if label else pos
        out.append((name, {
            "count": int(state.count[idx]),
            "mean": _num(state.mean[idx]),
            "std": _num(std[idx]),
            "min": _num(state.min[idx], integral),
            "max": _num(state.max[idx], integral),
            "nonfinite": int(state.n_nonfinite[idx]),
        }))
    return out


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, (int, str)):
        return str(v)
    return f"{v:.6g}"


def _unique_names(rows):
    """Rows with repeated column names told apart ("a", "a (2)"): JSON objects
    keep one value per name."""
    seen, out = {}, []
    taken = {name for name, _ in rows}
    for name, stats in rows:
        if name in seen:
            k = seen[name] + 1
            while f"{name} ({k})" in taken:
                k += 1
            seen[name] = k
            new = f"{name} ({k})"
            taken.add(new)
            out.append((new, stats))
        else:
            seen[name] = 1
            out.append((name, stats))
    return out


def _print_table(rows, heading):
    print(heading)
    cols = ["column", "count", "mean", "std", "min", "max", "nonfinite"]
    cells = [[name] + [_fmt(s[c]) for c in cols[1:]] for name, s in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths))))
    for r in cells:
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))


# -- the command ---------------------------------------------------------------------------


def _detect_format(path, args):
    if args.format:
        return args.format
    # The name and the first bytes first: --dtype on a .npy file is a
    # mistake to report, not an order to read its header as values.
    ext = os.path.splitext(path)[1].lower()
    if ext in (".npy", ".npz"):
        return ext[1:]
    if ext in (".csv", ".tsv"):
        return "csv"
    with open(path, "rb") as fp:
        head = fp.read(8)
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGIC):
        return "npz"
    if args.dtype:
        return "raw"
    if not head:
        raise InputError(f"{path} is empty")
    raise InputError(f"cannot tell the format of {path}: use --format (npy, npz, raw, csv) or --dtype for raw binary")


def _describe(args):
    path = args.file
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path} is a directory")
    fmt = _detect_format(path, args)
    if fmt != "raw" and (args.dtype or args.shape is not None):
        raise InputError(f"--dtype and --shape are for raw binary files; {path} is read as {fmt}")
    if fmt == "raw" and not args.dtype:
        raise InputError("raw binary files need --dtype (and usually --shape)")
    total = os.path.getsize(path)
    bar = _progress(total, args.progress, os.path.basename(path))
    try:
        if fmt == "csv":
            if args.scheduler:
                raise InputError("--scheduler works with .npy and raw binary files, not CSV")
            names, state = _describe_csv(path, args, bar)
            rows = _rows("", state, args.ddof, False, names)
            heading = f"{path}: CSV, per column"
            return rows, heading
        arrays = {"npy": _npy_source, "npz": lambda p: _npz_sources(p, args.key)}.get(fmt, lambda p: _raw_source(p, args))(path)
        client = None
        if args.scheduler:
            if fmt == "npz":
                raise InputError("--scheduler works with .npy and raw binary files, not .npz")
            client = _connect(args.scheduler)
        rows, parts = [], []
        try:
            for arr in arrays:
                where = f"{path}[{arr.label}]" if arr.label else path
                axes = _normalize_axes(args.axis, len(arr.shape), where)
                if client is not None:
                    state = _reduce_with_dask(arr, axes, args.chunk_size, client)
                    if bar is not None:
                        bar.update(arr.nbytes)
                else:
                    state = _reduce_array(arr, axes, args.chunk_size, bar)
                rows += _rows(arr.label, state, args.ddof, arr.dtype.kind in "biu")
                ax = "all axes" if len(axes) == len(arr.shape) else "axis " + ",".join(map(str, axes))
                parts.append(f"{arr.label + ': ' if arr.label else ''}shape {arr.shape} {arr.dtype}, over {ax}")
        finally:
            if client is not None:
                client.close()
        return rows, f"{path}: " + "; ".join(parts)
    finally:
        if bar is not None:
            bar.close()


def main(argv=None) -> int:
    """Entry point of the ``fastmoments`` console script; returns the exit status.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
    """
    args = _parser().parse_args(argv)
    try:
        rows, heading = _describe(args)
        if args.json:
            print(json.dumps(dict(_unique_names(rows)), indent=1, allow_nan=False))
        else:
            _print_table(rows, heading)
        sys.stdout.flush()
    except InputError as e:
        print(f"fastmoments: error: {e}", file=sys.stderr)
        return 2
    except PermissionError as e:
        print(f"fastmoments: error: {e.filename or args.file}: permission denied", file=sys.stderr)
        return 2
    except MemoryError:
        print("fastmoments: error: out of memory; try a smaller --chunk-size", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastmoments: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # e.g. `fastmoments describe big.npy | head`: not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except Exception as e:  # noqa: BLE001 - the promise is one line, never a traceback
        if os.environ.get("FASTMOMENTS_DEBUG"):
            raise
        msg = " ".join(str(e).split())[:300]
        print(f"fastmoments: error: {type(e).__name__}: {msg} (set FASTMOMENTS_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
