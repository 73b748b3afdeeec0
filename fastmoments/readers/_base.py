"""What every reader shares: the error type, dtype checks, optional imports."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np


class InputError(Exception):
    """A problem with the user's input: reported as one line, exit status 2."""


def require(module: str, what: str):
    """Import an optional reader library, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise InputError(f"reading {what} needs {top}: pip install fastmoments[io]") from None


def check_dtype(dtype, where):
    """Refuse what ``summarize`` cannot describe, before any data is read."""
    if dtype.kind == "T":  # NumPy's variable-width strings: no objects to unpickle, just text
        raise InputError(f"{where} has string dtype {dtype}; only bool, integer and real float data are described")
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


@dataclass
class ArraySource:
    """A numeric array in a file, and how to read it a piece at a time.

    ``kind`` says how: ``"bytes"`` for a plain run of bytes (``opener`` returns
    a reader of consecutive byte ranges; ``path``/``offset`` are set when the
    run lies in a file the Dask workers can read themselves), ``"rows"`` for
    an array whose library reads slices along the first axis
    (``read_rows(a, b)``, ideally in steps of ``row_step`` rows: whole chunks).
    ``cluster`` describes the array to the Dask plug-in (None: not supported).
    """

    label: str  # column-name prefix ('' for a single array)
    shape: tuple
    dtype: np.dtype
    kind: str
    fortran: bool = False
    opener: object = None
    path: str | None = None
    offset: int | None = None
    read_rows: object = None
    row_step: int = 1
    cluster: dict | None = None
    close: object = None  # releases the file handle of a library reader, if any

    @property
    def nbytes(self):
        n = self.dtype.itemsize
        for s in self.shape:
            n *= s
        return n


@dataclass
class TableStats:
    """Per-column results of a table: names, one 1-D Summary, null counts."""

    names: list
    state: object  # Summary of shape (ncols,)
    missing: np.ndarray  # int64 nulls per column, apart from NaN/Inf
    integral: list  # per column: integer or bool (min/max printed as integers)
    kind: str = ""
    nrows: int = 0
    notes: list = field(default_factory=list)
