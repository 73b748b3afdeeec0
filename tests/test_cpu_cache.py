"""The Numba cache of the CPU kernels follows edits to any kernel module.

A kernel's cache entry holds, inlined, what it calls from other modules of
``fastmoments/cpu``; Numba checks an entry against its own file only, so
``fastmoments.cpu._cache`` stamps every entry with all the kernel modules.
"""

import importlib
import pathlib

import numba.core.dispatcher
import pytest

import fastmoments.cpu  # noqa: F401  (installs the locator)
from fastmoments.cpu import _cache

CPU = pathlib.Path(_cache.__file__).parent
KERNEL_MODULES = sorted(p.stem for p in CPU.glob("*.py") if p.name not in _cache._NO_KERNELS)


def dispatchers(module):
    for name in dir(module):
        obj = getattr(module, name)
        if isinstance(obj, numba.core.dispatcher.Dispatcher) and obj.__module__ == module.__name__:
            yield name, obj


@pytest.mark.parametrize("modname", KERNEL_MODULES)
def test_every_kernel_is_cached_under_the_folder_stamp(modname):
    module = importlib.import_module(f"fastmoments.cpu.{modname}")
    found = list(dispatchers(module))
    for name, d in found:
        assert d._cache._impl._locator.get_source_stamp() == _cache._folder_stamp(), name
        assert type(d._cache._impl._locator).__module__ == _cache.__name__, name


@pytest.mark.parametrize("edited", KERNEL_MODULES)
def test_the_stamp_changes_with_any_kernel_module(monkeypatch, edited):
    before = _cache._folder_stamp()
    real = _cache._hash_file

    def hash_file(path, st_mtime, st_size):
        h = real(path, st_mtime, st_size)
        return h[::-1] if pathlib.Path(path).stem == edited else h

    monkeypatch.setattr(_cache, "_hash_file", hash_file)
    assert _cache._folder_stamp() != before
