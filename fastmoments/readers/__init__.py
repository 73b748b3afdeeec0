"""Readers of ``fastmoments describe``: one module per family of formats.

* :mod:`.numpy_files`: ``.npy``, ``.npz`` and raw binary (our own: NumPy's
  formats have no streaming reader of their own that refuses pickles);
* :mod:`.tables`: CSV/TSV (plain or compressed), Parquet and Arrow IPC /
  Feather, through pyarrow's streaming readers;
* :mod:`.arrays`: Zarr and HDF5 arrays, through zarr and h5py.

Array sources (:class:`ArraySource`) are reduced by :mod:`.reduce`; tables are
streamed straight into one summary per column (:class:`TableStats`). The
optional libraries are imported only when their format is read, so the core
installs without them (``pip install fastmoments[io]`` adds them).
"""

from __future__ import annotations

from ._base import ArraySource, InputError, TableStats, check_dtype, require
from .detect import detect_format, split_member

__all__ = ["ArraySource", "InputError", "TableStats", "check_dtype", "require", "detect_format", "split_member"]
