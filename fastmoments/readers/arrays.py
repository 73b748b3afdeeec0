"""Arrays through their own libraries: Zarr stores (zarr) and HDF5 datasets (h5py).

Both are read in slices along the first axis, whole stored chunks at a time
(:func:`..reduce.reduce_rows`), never whole. An HDF5 dataset stored as is
(no filters, native byte order, contiguous or in chunks of whole rows) is
read in place through a memory map (:class:`_MappedRows`). A group is no array: the member
is named after a colon, ``store.zarr:group/array`` or ``file.h5:/group/data``.
"""

from __future__ import annotations

import math
import mmap
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
    of two slices. The cost, on 2 cores (2026-12-07): as fast with 8 MB
    chunks (a 320 MB store, 1.69-1.71 s a process against 1.74 with the pool,
    which held 33 MiB more), slower with 64 MB ones (a 400 MB store, 0.54-0.58
    s against 0.38-0.44; zarr's own read 0.51-0.58). A fixed glibc mmap
    threshold bounds the pool's heaps too (12 MiB) but made each chunk fresh
    pages (2.06-2.23 s). ``ZARR_THREADING__MAX_WORKERS=N`` overrides.
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
    mapped = _MappedRows.of(h5py, path, node, shape, dtype)

    def read(a, b):
        if a is None:
            return node[()]
        if mapped is not None:
            view = mapped.rows(a, b)
            if view is not None:
                return view
        # into one reused buffer: a fresh array per slice costs its page faults
        # again (glibc maps and unmaps allocations this large), about as long as the read
        if not buf or buf[0].shape[0] < b - a:
            buf[:] = [np.empty((b - a,) + shape[1:], dtype)]
        out = buf[0][: b - a]
        node.read_direct(out, np.s_[a:b])
        return out

    return [ArraySource(
        "", shape, dtype, "rows", read_rows=_guarded(read, where), row_step=row_step,
        cluster={"kind": "hdf5", "path": os.path.abspath(path), "name": node.name},
        close=f.close if mapped is None else lambda: (mapped.close(), f.close()),
    )]


#: Stored chunks up to which a dataset is mapped: their index is a dict (~200 B a chunk).
MAX_CHUNKS = 1 << 17


def _chunk_index(node):
    """{first row: (file offset, stored size)} of every stored chunk, from one
    walk of HDF5's chunk index (``chunk_iter``; a lookup per chunk walks the
    index each time: quadratic), or None where there are too many chunks or
    no such call."""
    if node.id.get_num_chunks() > MAX_CHUNKS or not hasattr(node.id, "chunk_iter"):
        return None
    index = {}

    def note(info):
        index[int(info.chunk_offset[0])] = (info.byte_offset, info.size)

    node.id.chunk_iter(note)
    return index


class _MappedRows:
    """Rows of an HDF5 dataset stored as is, as views of a memory map of the file.

    HDF5 copies every slice it reads out of the page cache; a dataset stored
    without filters, in native byte order, contiguously or in chunks of whole
    rows, lies in the file as the rows themselves, so the summary can read
    them there (the file is mapped whole; after each slice its pages are let
    go, so the resident memory follows the slice). Slices whose stored chunks
    do not follow each other in the file are copied from the map into one
    buffer; a chunk never written (no storage) goes back to HDF5.
    """

    @classmethod
    def of(cls, h5py, path, node, shape, dtype):
        """The mapped rows of ``node``, or None where it is not stored as is."""
        if not hasattr(mmap, "MADV_DONTNEED") or not shape or 0 in shape or not dtype.isnative:
            return None
        try:
            dcpl = node.id.get_create_plist()
            layout = dcpl.get_layout()
            if dcpl.get_external_count() or dcpl.get_nfilters():
                return None
            # The file's type must be NumPy's, bit for bit: an integer type of
            # other precision or offset is reported as the NumPy integer that
            # holds it, and its bytes are not that integer's.
            if not node.id.get_type().equal(h5py.h5t.py_create(dtype)):
                return None
            index = None
            if layout == h5py.h5d.CONTIGUOUS:
                start = node.id.get_offset()
                if start is None:  # no storage yet: every value the fill value
                    return None
                chunk = None
            elif layout == h5py.h5d.CHUNKED and tuple(node.chunks[1:]) == tuple(shape[1:]):
                start, chunk = None, int(node.chunks[0])
                index = _chunk_index(node)
                if index is None:
                    return None
            else:
                return None
            with open(path, "rb") as fp:
                mm = mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ)
        except Exception:  # noqa: BLE001 - an older h5py/HDF5 without these calls, a file we cannot map: HDF5 reads it
            return None
        self = cls(node, shape, dtype, mm, start, chunk, index, path)
        # Offsets are the library's; a look at both ends confirms them (the
        # start of the first and last rows: a row may be large).
        n = shape[0]
        part = (0,) * (len(shape) - 2) + (slice(0, min(shape[-1], 4096)),) if len(shape) > 1 else ()
        try:
            for a in (0, n - 1):
                view = self.rows(a, a + 1)
                ours = view[(0,) + part] if view is not None else None
                if ours is None or ours.tobytes() != np.ascontiguousarray(node[(a,) + part]).tobytes():
                    self.close()
                    return None
        except Exception:  # noqa: BLE001 - see above
            self.close()
            return None
        return self

    def __init__(self, node, shape, dtype, mm, start, chunk, index, path):
        self.node, self.shape, self.dtype, self.mm = node, shape, dtype, mm
        self.start, self.chunk, self.index, self.path = start, chunk, index, path
        self.row = math.prod(shape[1:]) * dtype.itemsize
        self.buf = None
        self.held = []  # the file ranges of the last slice

    def _piece(self, a):
        """(file offset of row ``a``, rows stored from it on in one run), or None."""
        if self.chunk is None:
            return self.start + a * self.row, self.shape[0] - a
        c = self.chunk
        where = self.index.get(a - a % c)
        if where is None or where[1] != c * self.row:  # never written, or not stored as is
            return None
        return where[0] + (a % c) * self.row, c - a % c

    def rows(self, a, b):
        """Rows a..b: a view of the map, a copy from it, or None (HDF5 reads them)."""
        self._let_go()
        # A mapped file that shrank would kill the process (SIGBUS) on a read
        # past its new end.
        if self.mm.size() < len(self.mm):
            raise InputError(f"{self.path} shrank while it was read")
        runs = []
        pos = a
        while pos < b:
            piece = self._piece(pos)
            if piece is None:
                return None
            off, avail = piece
            k = min(avail, b - pos)
            if off + k * self.row > len(self.mm):
                return None
            if runs and runs[-1][0] + runs[-1][1] * self.row == off:
                runs[-1][1] += k
            else:
                runs.append([off, k])
            pos += k
        self.held = runs
        items = math.prod(self.shape[1:])
        views = [np.frombuffer(self.mm, self.dtype, count=k * items, offset=off).reshape((k,) + self.shape[1:])
                 for off, k in runs]
        if len(views) == 1:
            return views[0]
        if self.buf is None or self.buf.shape[0] < b - a:
            self.buf = np.empty((b - a,) + self.shape[1:], self.dtype)
        return np.concatenate(views, out=self.buf[: b - a])

    def _let_go(self):
        """Drop the last slice's pages from the process (summarized by now; they
        stay in the page cache): the resident memory follows the slice."""
        page = mmap.PAGESIZE
        for off, k in self.held:
            a = off - off % page
            self.mm.madvise(mmap.MADV_DONTNEED, a, min(off + k * self.row, len(self.mm)) - a)
        self.held = []

    def close(self):
        try:
            self.mm.close()
        except BufferError:  # a view still held: unmapped when collected
            pass
