"""The ``fastmoments`` command: ``fastmoments describe FILE``.

Describes numeric data larger than memory in one streaming pass: count
(finite values), mean, std, min, max, the non-finite count (NaN, +-Inf) and
the missing count (nulls of a table) per column.

This module keeps the arguments, the statistics' merging and the output; the
formats are read by :mod:`fastmoments.readers` (NumPy's own formats by us,
tables through pyarrow, Zarr and HDF5 through zarr and h5py). With
``--scheduler ADDRESS`` the work goes to a plug-in registered under the entry
point group ``fastmoments.describe.schedulers`` (fastmoments-dask registers
one): the core never imports an integration.

Bad input gets one ``fastmoments: error: ...`` line on stderr and exit status 2;
never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import math
import os
import re
import sys

import numpy as np

from .readers import InputError, detect_format, split_member
from .readers.detect import FORMATS
from .readers.reduce import normalize_axes, reduce_bytes, reduce_rows
from .state import Summary

__all__ = ["main", "InputError"]

DEFAULT_CHUNK = 64 * 1024 * 1024
MAX_CHUNK = 1 << 40
MIN_CHUNK = 4096
#: Entry-point group of ``--scheduler`` plug-ins: ``name = "module:Class"``, where
#: ``Class(address)`` has ``summarize(spec, axes, chunk) -> Summary`` and ``close()``.
SCHEDULER_GROUP = "fastmoments.describe.schedulers"


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


#: --axis not given: axis 0 (one result per column), or all axes of a 0-d array.
_PER_COLUMN = ("per column",)  # not a str: argparse would parse a str default with _parse_axis


def _parse_axis(text: str):
    t = text.strip().lower()
    if t in ("all", "none"):
        return None
    try:
        axes = tuple(int(p) for p in t.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an axis: {text!r} (examples: 0, 1, 0,2, all)") from None
    return axes


@functools.cache  # ~1 ms to build: 4% of describing a 400 MB Feather file where main() is called again in one process
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastmoments", description="One-pass statistics of numeric data files.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser(
        "describe",
        help="count, mean, std, min, max, non-finite and missing counts per column of a file",
        description=(
            "Count (finite values), mean, std, min, max, non-finite and missing counts per column of "
            "a .npy, .npz, raw binary, CSV/TSV (plain, .gz, .bz2, .zst), Parquet, Arrow IPC/Feather "
            "file, a Zarr array (store.zarr or store.zarr:NAME) or an HDF5 dataset (file.h5:/NAME), "
            "read in chunks (never loaded whole). NaN and +-Inf are counted as non-finite and nulls "
            "of a table as missing, both left out of the other statistics."
        ),
    )
    d.add_argument("file", metavar="FILE")
    d.add_argument("--format", choices=FORMATS, help="file format (default: from the name or the first bytes)")
    d.add_argument("--axis", type=_parse_axis, default=_PER_COLUMN, help="axis or axes to reduce, comma separated, or 'all' (default: 0, one result per column; all of a 0-d array)")
    d.add_argument("--json", action="store_true", help="print JSON: one object per column with count, mean, std, min, max, nonfinite, missing")
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


# -- progress --------------------------------------------------------------------------------


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


# -- the cluster plug-in -----------------------------------------------------------------


def _scheduler_plugin(address):
    """The ``--scheduler`` plug-in, connected to ``address``."""
    from importlib.metadata import entry_points

    eps = sorted(entry_points(group=SCHEDULER_GROUP), key=lambda ep: ep.name)
    hint = ("--scheduler needs the fastmoments-dask package: pip install fastmoments-dask "
            "(or pip install -e integrations/dask from a fastmoments checkout)")
    if not eps:
        raise InputError(hint)
    try:
        cls = eps[0].load()
    except ImportError:
        raise InputError(hint) from None
    return cls(address)


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


def _rows(label, state: Summary, ddof, integral, names=None, missing=None):
    """(name, stats dict) per element of ``state``.

    ``integral`` is one flag for the whole state or one per column;
    ``missing`` the null count per column (tables; arrays have none).
    """
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
            "min": _num(state.min[idx], integral[k] if isinstance(integral, list) else integral),
            "max": _num(state.max[idx], integral[k] if isinstance(integral, list) else integral),
            "nonfinite": int(state.n_nonfinite[idx]),
            "missing": int(missing[k]) if missing is not None else 0,
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
    cols = ["column", "count", "mean", "std", "min", "max", "nonfinite", "missing"]
    cells = [[name] + [_fmt(s[c]) for c in cols[1:]] for name, s in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths))))
    for r in cells:
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))


# -- the command ---------------------------------------------------------------------------


def _array_sources(path, member, fmt, args):
    from .readers import numpy_files

    if fmt == "npy":
        return numpy_files.npy_source(path)
    if fmt == "npz":
        return numpy_files.npz_sources(path, args.key)
    if fmt == "raw":
        return numpy_files.raw_source(path, args)
    from .readers import arrays

    if fmt == "zarr":
        return arrays.zarr_sources(path, member)
    return arrays.hdf5_sources(path, member)


def _describe_table(path, fmt, args, bar):
    from .readers import tables

    if args.scheduler:
        raise InputError("--scheduler works with .npy, raw binary, Zarr and HDF5 arrays, not tables")
    if args.axis is not _PER_COLUMN and args.axis not in ((0,), (-2,)):
        raise InputError("tables are described per column: --axis must be 0")
    read = {"csv": tables.read_csv, "parquet": tables.read_parquet, "arrow": tables.read_arrow}[fmt]
    t = read(path, args, bar)
    for n in t.notes:
        print(n, file=sys.stderr)
    rows = _rows("", t.state, args.ddof, t.integral, t.names, t.missing)
    return rows, f"{path}: {t.kind}, {t.nrows} rows, per column"


def _describe(args):
    path, member = split_member(args.file)
    if not os.path.exists(path):
        raise InputError(f"{args.file}: no such file")
    fmt = detect_format(path, args.format, bool(args.dtype))
    if fmt != "zarr" and os.path.isdir(path):
        raise InputError(f"{path} is a directory")
    if fmt != "raw" and (args.dtype or args.shape is not None):
        raise InputError(f"--dtype and --shape are for raw binary files; {path} is read as {fmt}")
    if fmt == "raw" and not args.dtype:
        raise InputError("raw binary files need --dtype (and usually --shape)")
    if member is not None and fmt not in ("zarr", "hdf5"):
        raise InputError(f"{args.file}: only Zarr and HDF5 files have members named after ':' ({path} is read as {fmt})")
    total = os.path.getsize(path) if os.path.isfile(path) else 0
    bar = _progress(total, args.progress, os.path.basename(path))
    try:
        if fmt in ("csv", "parquet", "arrow"):
            return _describe_table(path, fmt, args, bar)
        arrays = _array_sources(path, member, fmt, args)
        if bar is not None and fmt in ("zarr", "hdf5"):
            bar.total = sum(a.nbytes for a in arrays)  # the decoded bytes: what the reduction sees
        plugin = None
        rows, parts = [], []
        try:
            if args.scheduler:
                if any(a.cluster is None for a in arrays):
                    raise InputError("--scheduler works with .npy, raw binary, Zarr and HDF5 arrays, not .npz")
                plugin = _scheduler_plugin(args.scheduler)
            for arr in arrays:
                where = f"{path}[{arr.label}]" if arr.label else args.file
                # By default one result per column, and a 0-d array (a scalar) is its own column.
                axis = args.axis if args.axis is not _PER_COLUMN else ((0,) if arr.shape else None)
                axes = normalize_axes(axis, len(arr.shape), where)
                if plugin is not None:
                    state = plugin.summarize(arr.cluster, axes, args.chunk_size)
                    if bar is not None:
                        bar.update(arr.nbytes)
                elif arr.kind == "rows":
                    state = reduce_rows(arr, axes, args.chunk_size, bar)
                else:
                    state = reduce_bytes(arr, axes, args.chunk_size, bar)
                rows += _rows(arr.label, state, args.ddof, arr.dtype.kind in "biu")
                ax = "all axes" if len(axes) == len(arr.shape) else "axis " + ",".join(map(str, axes))
                parts.append(f"{arr.label + ': ' if arr.label else ''}shape {arr.shape} {arr.dtype}, over {ax}")
        finally:
            if plugin is not None:
                plugin.close()
            for arr in arrays:
                if arr.close is not None:
                    arr.close()
        return rows, f"{args.file}: " + "; ".join(parts)
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
