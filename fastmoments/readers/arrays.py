"""Arrays through their own libraries: Zarr stores (zarr) and HDF5 datasets (h5py).

Both are read in slices along the first axis, whole stored chunks at a time
(:func:`..reduce.reduce_rows`), never whole. A group is no array: the member
is named after a colon, ``store.zarr:group/array`` or ``file.h5:/group/data``.
"""

from __future__ import annotations

import os

import numpy as np

from ._base import ArraySource, InputError, check_dtype, require


def _msg(e):
    return " ".join(str(e).split())[:300] or type(e).__name__


def _guarded(read, where):
    """``read`` with the library's errors on a corrupt or missing chunk as one line.

    zarr and h5py raise many types (codec errors, KeyError, OSError, ValueError):
    anything a slice read raises is a problem of the file, not of ours.
    """

    def read_rows(a, b):
        try:
            return read(a, b)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - see above
            raise InputError(f"{where}: unreadable data ({type(e).__name__}: {_msg(e)})") from None

    return read_rows


def _listing(names, limit=8):
    names = list(names)
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more if names else "none"


def _one_decode_thread(zarr):
    """Decode Zarr chunks on one pool thread, unless the user chose a number.

    zarr decodes each chunk on a pool thread, and glibc gives every thread its
    own heap, which keeps up to about twice the largest freed block: with the
    default pool (cores + 4 threads) a read of many chunks held 40-70 MB more
    than a read of three, growing with cores and chunk size, against the bound
    of two slices. One thread was as fast on 2 cores (the reduction, not the
    decoding, runs in parallel); ``ZARR_THREADING__MAX_WORKERS=N`` overrides.
    The pool is made once per process, so this counts only before first use.
    """
    if zarr.config.get("threading.max_workers", None) is None:
        zarr.config.set({"threading.max_workers": 1})


def zarr_sources(path, member):
    zarr = require("zarr", "Zarr stores")
    _one_decode_thread(zarr)
    where = f"{path}:{member}" if member else path
    try:
        node = zarr.open(path, mode="r")
    except Exception as e:  # noqa: BLE001 - zarr raises several kinds for a store it cannot read
        raise InputError(f"{path}: not a readable Zarr store ({type(e).__name__}: {_msg(e)})") from None
    is_group = isinstance(node, zarr.Group)
    if member:
        if not is_group:
            raise InputError(f"{path} is a Zarr array, not a group: describe it without ':{member}'")
        try:
            node = node[member.strip("/")]
        except KeyError:
            arrays = [k for k, v in node.members(max_depth=None) if isinstance(v, zarr.Array)]
            raise InputError(f"{path} has no array {member!r}; it has: {_listing(arrays)}") from None
        is_group = isinstance(node, zarr.Group)
    if is_group:
        arrays = [k for k, v in node.members(max_depth=None) if isinstance(v, zarr.Array)]
        raise InputError(f"{where} is a Zarr group, not an array: name one as {path}:NAME (arrays: {_listing(arrays)})")
    try:
        dtype = np.dtype(node.dtype)
    except TypeError:
        raise InputError(f"{where} has data type {node.dtype}; only bool, integer and real float data are described") from None
    # before any chunk is read: an object array's codec would unpickle
    check_dtype(dtype, where)
    shape = tuple(int(n) for n in node.shape)

    def read(a, b):
        return np.asarray(node[()] if a is None else node[a:b])

    return [ArraySource(
        "", shape, dtype, "rows", read_rows=_guarded(read, where),
        row_step=int(node.chunks[0]) if shape else 1,
        cluster={"kind": "zarr", "path": os.path.abspath(path), "name": member},
    )]


def hdf5_sources(path, member):
    h5py = require("h5py", "HDF5 files")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path} is empty")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{path}: not a readable HDF5 file ({_msg(e)})") from None
    try:
        datasets = []
        f.visititems(lambda name, obj: datasets.append("/" + name) if isinstance(obj, h5py.Dataset) else None)
        if member is None:
            # a file of one dataset needs no name; otherwise which one is the user's choice
            if len(datasets) != 1:
                raise InputError(f"{path} holds {len(datasets)} datasets: name one as {path}:/NAME ({_listing(datasets)})")
            member = datasets[0]
        where = f"{path}:{member}"
        try:
            node = f.get(member)
        except Exception:  # noqa: BLE001 - h5py raises KeyError/ValueError/RuntimeError on odd names
            node = None
        if node is None:
            raise InputError(f"{path} has no dataset {member!r}; it has: {_listing(datasets)}")
        if not isinstance(node, h5py.Dataset):
            inside = [d for d in datasets if d.startswith(node.name.rstrip("/") + "/")]
            raise InputError(f"{where} is an HDF5 group, not a dataset: name one as {path}:/NAME ({_listing(inside)})")
        if h5py.check_string_dtype(node.dtype) is not None:
            raise InputError(f"{where} is a dataset of strings; only bool, integer and real float data are described")
        if h5py.check_vlen_dtype(node.dtype) is not None:
            raise InputError(f"{where} holds variable-length sequences; only bool, integer and real float data are described")
        check_dtype(node.dtype, where)
        shape = tuple(int(n) for n in node.shape) if node.shape is not None else None
        if shape is None:
            raise InputError(f"{where} is an empty (null-dataspace) dataset")
    except BaseException:
        f.close()
        raise
    row_step = int(node.chunks[0]) if node.chunks and shape else 1
    dtype = np.dtype(node.dtype)
    buf = []

    def read(a, b):
        if a is None:
            return node[()]
        # into one reused buffer: a fresh array per slice costs its page faults
        # again (glibc maps and unmaps allocations this large), about as long as the read
        if not buf or buf[0].shape[0] < b - a:
            buf[:] = [np.empty((b - a,) + shape[1:], dtype)]
        out = buf[0][: b - a]
        node.read_direct(out, np.s_[a:b])
        return out

    return [ArraySource(
        "", shape, dtype, "rows", read_rows=_guarded(read, where), row_step=row_step,
        cluster={"kind": "hdf5", "path": os.path.abspath(path), "name": node.name}, close=f.close,
    )]
