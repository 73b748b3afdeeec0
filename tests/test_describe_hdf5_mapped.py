"""HDF5 datasets stored as is, read in place through a memory map
(``readers/arrays.py::_MappedRows``), against NumPy statistics of the same
data; each case also says whether the map is taken, so that a layout read
the other way is seen."""

from __future__ import annotations

import numpy as np
import pytest

from test_cli import _bad, assert_matches, reference, run_json

h5py = pytest.importorskip("h5py")

from fastmoments.readers.arrays import _MappedRows  # noqa: E402

RNG = np.random.default_rng(4242)


def _mapped(p, name):
    with h5py.File(p, "r") as f:
        node = f[name]
        m = _MappedRows.of(h5py, str(p), node, tuple(node.shape), np.dtype(node.dtype))
        if m is not None:
            m.close()
        return m is not None


def _describe(capsys, p, name, x, cols):
    for chunk in ("4096", "20k", "64MB"):
        got, _ = run_json(capsys, f"{p}:{name}", "--chunk-size", chunk)
        assert_matches(got, reference(x), cols)


@pytest.mark.parametrize("kind, mapped", [
    ("contiguous", True),
    ("chunked", True),
    ("chunked, userblock", True),
    ("chunked, reversed writes", True),  # chunks out of file order: copied from the map
    ("chunked, part of each row", False),
    ("gzip", False),
    ("shuffle", False),
    ("big-endian", False),
])
def test_layouts(tmp_path, capsys, kind, mapped):
    x = RNG.normal(size=(3001, 4)) * 3 + np.arange(4) * 10
    x[17, 1] = np.nan
    x[2000, 3] = -np.inf
    p = tmp_path / "f.h5"
    with h5py.File(p, "w", userblock_size=1024 if "userblock" in kind else 0) as f:
        if kind == "contiguous":
            f.create_dataset("x", data=x)
        elif kind == "chunked, reversed writes":
            ds = f.create_dataset("x", shape=x.shape, dtype=x.dtype, chunks=(250, 4))
            for a in reversed(range(0, len(x), 250)):
                ds[a:a + 250] = x[a:a + 250]
        elif kind == "chunked, part of each row":
            f.create_dataset("x", data=x, chunks=(250, 2))
        elif kind == "gzip":
            f.create_dataset("x", data=x, chunks=(250, 4), compression="gzip")
        elif kind == "shuffle":
            f.create_dataset("x", data=x, chunks=(250, 4), shuffle=True)
        elif kind == "big-endian":
            f.create_dataset("x", data=x.astype(">f8"), chunks=(250, 4))
        else:
            f.create_dataset("x", data=x, chunks=(250, 4))
    assert _mapped(p, "x") is mapped
    _describe(capsys, p, "/x", x, ["0", "1", "2", "3"])


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int64, np.float32, np.bool_])
def test_dtypes_and_dimensions(tmp_path, capsys, dtype):
    x = RNG.integers(0, 100, size=(700, 3, 5)).astype(dtype)
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("c", data=x, chunks=(64, 3, 5))
        f.create_dataset("k", data=x)
    for name in ("c", "k"):
        assert _mapped(p, name)
        got, _ = run_json(capsys, f"{p}:/{name}", "--axis", "0,2", "--chunk-size", "4096")
        assert_matches(got, reference(x, (0, 2)), [str(i) for i in range(3)])


def test_chunks_never_written_are_read_by_hdf5(tmp_path, capsys):
    """Unwritten chunks have no storage: HDF5 gives their fill value."""
    p = tmp_path / "f.h5"
    x = np.full((1000, 2), 7.5)
    with h5py.File(p, "w") as f:
        ds = f.create_dataset("x", shape=x.shape, dtype="f8", chunks=(100, 2), fillvalue=7.5)
        ds[0:100] = x[0:100] = RNG.normal(size=(100, 2))
        ds[900:1000] = x[900:1000] = RNG.normal(size=(100, 2))
        ds[400:500] = x[400:500] = RNG.normal(size=(100, 2))
    assert _mapped(p, "x")
    _describe(capsys, p, "/x", x, ["0", "1"])


def test_contiguous_dataset_never_written(tmp_path, capsys):
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", shape=(50, 2), dtype="f4", fillvalue=1.5)
    assert not _mapped(p, "x")
    _describe(capsys, p, "/x", np.full((50, 2), 1.5, np.float32), ["0", "1"])


def test_truncated_file_is_one_error_line(tmp_path, capsys):
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("c", data=RNG.normal(size=(40_000, 3)))
        f.create_dataset("k", data=RNG.normal(size=(40_000, 3)), chunks=(1000, 3))
    b = p.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(b[: int(len(b) * 0.75)])
    for name in ("c", "k"):
        _bad(capsys, f"{cut}:/{name}", match="cut.h5")


def test_input_file_unchanged_and_views_read_only(tmp_path, capsys):
    p = tmp_path / "f.h5"
    x = RNG.normal(size=(2000, 3))
    with h5py.File(p, "w") as f:
        f.create_dataset("x", data=x, chunks=(500, 3))
    before = p.read_bytes()
    with h5py.File(p, "r") as f:
        m = _MappedRows.of(h5py, str(p), f["x"], (2000, 3), np.dtype("f8"))
        v = m.rows(500, 1500)
        assert not v.flags.writeable
        np.testing.assert_array_equal(v, x[500:1500])
        del v
        m.close()
    _describe(capsys, p, "/x", x, ["0", "1", "2"])
    assert p.read_bytes() == before
