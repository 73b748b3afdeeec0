"""``fastmoments describe --scheduler ADDRESS``: the reduction on a Dask cluster.

Registered as the plug-in of the entry point group
``fastmoments.describe.schedulers`` (see ``pyproject.toml``), which the core's
command line discovers: the core never imports this package. The CLI
describes each array as a plain dict (``spec``); the workers read their own
chunks from the path, so only small tasks and states cross the network, and
the path must be readable by the workers.
"""

from __future__ import annotations

import math
import os

import numpy as np

from fastmoments.readers import InputError

from . import summarize


def _read_block(path, offset, count, dtype, shape):
    return np.fromfile(path, dtype=dtype, count=count, offset=offset).reshape(shape)


class _HDF5Rows:
    """A picklable stand-in for an h5py dataset: each slice opens the file on
    the worker (h5py handles cannot cross processes)."""

    def __init__(self, path, name, shape, dtype):
        self.path, self.name = path, name
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)

    def __getitem__(self, index):
        import h5py

        with h5py.File(self.path, "r") as f:
            return f[self.name][index]


def _rows_per_chunk(shape, itemsize, chunk, step=1):
    row = math.prod(shape[1:]) * itemsize
    k = max(1, chunk // max(row, 1))
    return k - k % step if k >= step else k


class DaskScheduler:
    """Connects to the scheduler at ``address``; ``summarize`` one array spec at a time."""

    def __init__(self, address):
        try:
            import distributed
        except ImportError:
            raise InputError("--scheduler needs distributed: pip install fastmoments-dask") from None
        try:
            self.client = distributed.Client(address, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise InputError(f"cannot reach the Dask scheduler at {address}: {' '.join(str(e).split())[:200]}") from None

    def close(self):
        self.client.close()

    def summarize(self, spec, axes, chunk):
        """The Summary of the array ``spec`` over ``axes``, computed on the cluster."""
        darr = getattr(self, "_" + spec["kind"])(spec, chunk)
        return self.client.compute(summarize(darr, axis=axes)).result().to_numpy()

    def _bytes(self, spec, chunk):
        import dask.array as da
        from dask.base import tokenize
        from dask.highlevelgraph import HighLevelGraph

        path, offset, dtype = spec["path"], spec["offset"], np.dtype(spec["dtype"])
        shape, fortran = tuple(spec["shape"]), spec["fortran"]
        # A Fortran-ordered array is the C-ordered array of the reversed shape, transposed.
        cshape = shape[::-1] if fortran else shape
        ndim = len(cshape)
        if ndim == 0:  # one value: read it here
            darr = da.from_array(_read_block(path, offset, 1, dtype, ()), chunks=-1)
        elif cshape[0] == 0:
            darr = da.from_array(np.zeros(cshape, dtype), chunks=-1)
        else:
            row = math.prod(cshape[1:]) * dtype.itemsize
            k = _rows_per_chunk(cshape, dtype.itemsize, chunk)
            name = "fastmoments-read-" + tokenize(path, os.path.getmtime(path), offset, cshape, dtype.str, chunk)
            dsk, rows = {}, []
            for i, a in enumerate(range(0, cshape[0], k)):
                b = min(a + k, cshape[0])
                n = (b - a) * math.prod(cshape[1:])
                dsk[(name, i) + (0,) * (ndim - 1)] = (_read_block, path, offset + a * row, n, dtype, (b - a,) + cshape[1:])
                rows.append(b - a)
            chunks = (tuple(rows),) + tuple((n,) for n in cshape[1:])
            darr = da.Array(HighLevelGraph.from_collections(name, dsk, dependencies=()), name, chunks, dtype=dtype)
        return darr.T if fortran else darr

    def _zarr(self, spec, chunk):
        import dask.array as da
        import zarr

        node = zarr.open_array(spec["path"], path=spec["name"] or "", mode="r")
        shape = tuple(node.shape)
        if not shape:
            return da.from_array(np.asarray(node[()]), chunks=-1)
        k = _rows_per_chunk(shape, np.dtype(node.dtype).itemsize, chunk, int(node.chunks[0]))
        # the workers open the store and read their own chunks
        return da.from_zarr(spec["path"], component=spec["name"] or None, chunks=(k,) + shape[1:])

    def _hdf5(self, spec, chunk):
        import dask.array as da
        import h5py
        from dask.base import tokenize

        with h5py.File(spec["path"], "r") as f:
            ds = f[spec["name"]]
            shape, dtype, step = tuple(ds.shape), ds.dtype, (ds.chunks[0] if ds.chunks and ds.shape else 1)
        rows = _HDF5Rows(spec["path"], spec["name"], shape, dtype)
        if not shape:
            return da.from_array(rows[()], chunks=-1)
        k = _rows_per_chunk(shape, dtype.itemsize, chunk, step)
        name = "fastmoments-hdf5-" + tokenize(spec["path"], os.path.getmtime(spec["path"]), spec["name"], chunk)
        return da.from_array(rows, chunks=(k,) + shape[1:], name=name, lock=False, asarray=True, fancy=False)
