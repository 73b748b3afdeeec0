"""Which reader a path goes to: from ``--format``, the name, or the first bytes."""

from __future__ import annotations

import os

from ._base import InputError

FORMATS = ("npy", "npz", "raw", "csv", "parquet", "arrow", "zarr", "hdf5")

_MAGIC = [
    (b"\x93NUMPY", "npy"),
    (b"PK\x03\x04", "npz"),
    (b"PAR1", "parquet"),
    (b"ARROW1", "arrow"),
    (b"\xff\xff\xff\xff", "arrow"),  # an IPC stream starts with a continuation marker
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
]
#: Compressed text: tables are the only format we read that comes compressed whole.
COMPRESSION_MAGIC = [(b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\x28\xb5\x2f\xfd", "zstd")]
COMPRESSION_EXT = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd"}

_EXT = {
    ".npy": "npy", ".npz": "npz", ".csv": "csv", ".tsv": "csv", ".tab": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".feather": "arrow", ".arrow": "arrow", ".arrows": "arrow", ".ipc": "arrow",
    ".zarr": "zarr", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5", ".he5": "hdf5",
}


def split_member(path: str):
    """``file.h5:/group/data`` or ``store.zarr:name`` -> (file, member); else (path, None).

    The split is at the first ``:`` whose left part exists, so a path that
    exists whole (even with a colon in it) is never split.
    """
    if os.path.exists(path) or ":" not in path:
        return path, None
    i = path.find(":")
    while i >= 0:
        head = path[:i]
        if head and os.path.exists(head):
            return head, path[i + 1 :]
        i = path.find(":", i + 1)
    return path, None


def compression_of(path: str, head: bytes):
    """The codec of a compressed file (from its name, else its first bytes), or None."""
    ext = os.path.splitext(path)[1].lower()
    if ext in COMPRESSION_EXT:
        return COMPRESSION_EXT[ext]
    for magic, codec in COMPRESSION_MAGIC:
        if head.startswith(magic):
            return codec
    return None


def inner_name(path: str) -> str:
    """The name without a compression suffix: ``t.tsv.gz`` -> ``t.tsv``."""
    stem, ext = os.path.splitext(path)
    return stem if ext.lower() in COMPRESSION_EXT else path


def _is_zarr_dir(path):
    return any(os.path.exists(os.path.join(path, f)) for f in ("zarr.json", ".zgroup", ".zarray"))


def detect_format(path: str, fmt: str | None, raw_hint: bool) -> str:
    """The reader for ``path``; ``raw_hint`` (``--dtype`` given) makes unknown bytes raw."""
    if fmt:
        return fmt
    if os.path.isdir(path):
        if path.rstrip("/").lower().endswith(".zarr") or _is_zarr_dir(path):
            return "zarr"
        raise InputError(f"{path} is a directory (and no Zarr store: no zarr.json, .zgroup or .zarray)")
    # The name and the first bytes first: --dtype on a .npy file is a
    # mistake to report, not an order to read its header as values.
    ext = os.path.splitext(inner_name(path))[1].lower()
    if ext in _EXT:
        return _EXT[ext]
    with open(path, "rb") as fp:
        head = fp.read(8)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if compression_of(path, head):
        return "csv"
    if raw_hint:
        return "raw"
    if not head:
        raise InputError(f"{path} is empty")
    raise InputError(
        f"cannot tell the format of {path}: use --format ({', '.join(FORMATS)}) or --dtype for raw binary"
    )
