"""NumPy's own formats and raw binary: ``.npy``, ``.npz``, ``--dtype``/``--shape`` files.

NumPy has no streaming reader, and ``np.load`` of an ``.npz`` member reads
it whole, so these stay ours: headers parsed with ``allow_pickle`` never
involved (object dtypes are refused before any data is read), data read
one chunk at a time.
"""

from __future__ import annotations

import math
import mmap
import os
import zipfile

import numpy as np

from ._base import ArraySource, InputError, check_dtype

NPY_MAGIC = b"\x93NUMPY"


def read_npy_header(fp, where):
    """(shape, fortran_order, dtype) of a .npy stream positioned at its start."""
    head = fp.read(len(NPY_MAGIC))
    if not head:
        raise InputError(f"{where} is empty")
    if head != NPY_MAGIC:
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


def npy_source(path):
    size = os.path.getsize(path)
    if size == 0:
        raise InputError(f"{path} is empty")
    with open(path, "rb") as fp:
        shape, fortran, dtype = read_npy_header(fp, path)
        offset = fp.tell()
    check_dtype(dtype, path)
    need = math.prod(shape) * dtype.itemsize
    if size - offset < need:
        raise InputError(
            f"{path}: truncated .npy: the header says shape {shape} of {dtype} "
            f"({need} bytes of data) but the file holds {size - offset} bytes"
        )
    return [ArraySource("", shape, dtype, "bytes", fortran, lambda: _MappedReader(path, offset), path, offset,
                        cluster={"kind": "bytes", "path": os.path.abspath(path), "offset": offset, "shape": shape, "dtype": dtype.str, "fortran": fortran})]


def raw_source(path, args):
    try:
        dtype = np.dtype(args.dtype)
    except TypeError:
        raise InputError(f"--dtype {args.dtype!r} is not a dtype (examples: float64, float32, <i4)") from None
    check_dtype(dtype, f"--dtype {args.dtype}")
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
    fortran = args.order == "F"
    return [ArraySource("", shape, dtype, "bytes", fortran, lambda: _MappedReader(path, args.offset), path, args.offset,
                        cluster={"kind": "bytes", "path": os.path.abspath(path), "offset": args.offset, "shape": shape, "dtype": dtype.str, "fortran": fortran})]


def npz_sources(path, keys):
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
                    shape, fortran, dtype = read_npy_header(fp, where)
                    header_len = fp.tell()
            except (zipfile.BadZipFile, EOFError, OSError) as e:
                raise InputError(f"{where}: unreadable ({e})") from None
            check_dtype(dtype, where)
            need = math.prod(shape) * dtype.itemsize
            if zf.getinfo(member).file_size - header_len < need:
                raise InputError(f"{where}: truncated: the header says shape {shape} of {dtype} ({need} bytes)")

            def opener(member=member, where=where):
                z = zipfile.ZipFile(path)
                fp = z.open(member)
                read_npy_header(fp, where)
                r = _StreamReader(fp, where)
                close = r.close
                r.close = lambda: (close(), z.close())
                return r

            out.append(ArraySource(key, shape, dtype, "bytes", fortran, opener))
    return out
