"""Shims that let Chainer 7.8.1 (its last release) import and train on current stacks.

Importing :mod:`fastmoments_chainer` calls :func:`install` before anything
imports Chainer. Each shim checks whether its breakage is present and does
nothing when it is not, so on an old stack (NumPy 1.x, Python <= 3.11,
setuptools < 82) Chainer loads untouched. None of them changes NumPy,
setuptools or CuPy: the fixes live in Chainer's own module namespaces.

The breakages, each with the Chainer file that trips and its shim:

- ``np.sctypes`` removed in NumPy 2 (``chainer/functions/array/as_strided.py``):
  the module's source reads NumPy 1's table from a module global instead.
- ``numpy.float`` removed in NumPy 1.24 (``chainer/functions/array/resize_images.py``,
  breaks ``F.resize_images``): the source says ``numpy.float64``, which it meant.
- ``numpy.distutils`` absent on Python 3.12 / NumPy 2.5 and ``pkg_resources``
  absent from setuptools >= 82 (``chainer/_environment_check.py``): the module
  is replaced by :mod:`._envcheck`, which runs the same checks without them.
- CuPy 14 has no cuDNN (``chainer/backends/cuda.py``): Chainer already falls
  back to its own kernels, but leaves ``cuda.cudnn`` undefined;
  :func:`cudnn_shim` sets it to None (called when the monitor meets a GPU).

Chainer's own ``setup.py`` imports ``pkg_resources`` too, so its sdist is
built with ``setuptools<82`` and ``--no-build-isolation`` (see the README);
that cannot be shimmed from here.

The shims are applied through an import hook (:class:`ChainerCompatFinder`)
that wraps the loader of the three modules above; :data:`APPLIED` records
which shims fired, for the tests and for bug reports.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys

import numpy

__all__ = ["install", "needed", "APPLIED", "ChainerCompatFinder", "cudnn_shim"]

#: Names of the shims that fired in this process, in order.
APPLIED: list[str] = []

_AS_STRIDED = "chainer.functions.array.as_strided"
_RESIZE = "chainer.functions.array.resize_images"
_ENVCHECK = "chainer._environment_check"

# NumPy 1.x's ``np.sctypes`` (platform-independent part); as_strided.py reads
# the 'int' entry at import time and the 'float' entry in backward.
_SCTYPES = {
    "int": [numpy.int8, numpy.int16, numpy.int32, numpy.int64],
    "uint": [numpy.uint8, numpy.uint16, numpy.uint32, numpy.uint64],
    "float": [numpy.float16, numpy.float32, numpy.float64, numpy.longdouble],
    "complex": [numpy.complex64, numpy.complex128, numpy.clongdouble],
    "others": [bool, object, bytes, str, numpy.void],
}


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def needed() -> dict[str, bool]:
    """Which shims this stack needs, found without importing Chainer.

    Returns:
        A dict from shim name to whether its breakage is present.
    """
    return {
        "sctypes": not hasattr(numpy, "sctypes"),
        "numpy_float": not hasattr(numpy, "float"),
        "environment_check": not (_has_module("numpy.distutils") and _has_module("pkg_resources")),
    }


class _PatchedLoader(importlib.abc.Loader):
    """Runs the original module's source after a textual fix, or a replacement module.

    Rewriting the source (rather than handing the module a stand-in NumPy)
    keeps ``xp is numpy`` checks in Chainer true; the code is compiled under
    the original file name, so tracebacks still point at Chainer's file.
    """

    def __init__(self, original, rewrite=None, replace=None):
        self._original = original
        self._rewrite = rewrite
        self._replace = replace

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if self._replace is not None:
            self._replace(module)
            return
        source = self._original.get_source(module.__name__)
        pattern, replacement, names, shim = self._rewrite
        patched, n = re.subn(pattern, replacement, source)
        if n:
            module.__dict__.update(names)
            APPLIED.append(shim)
        code = compile(patched, self._original.get_filename(module.__name__), "exec", dont_inherit=True)
        exec(code, module.__dict__)


def _replace_envcheck(module):
    from . import _envcheck

    module.__dict__.update(
        {k: v for k, v in vars(_envcheck).items() if not k.startswith("__")}
    )
    module.__doc__ = _envcheck.__doc__
    APPLIED.append("environment_check")


class ChainerCompatFinder(importlib.abc.MetaPathFinder):
    """Import hook wrapping the loaders of the Chainer modules that break on new stacks.

    Args:
        shims: the names from :func:`needed` to apply.
    """

    def __init__(self, shims):
        self.shims = frozenset(shims)

    def _plan(self, fullname):
        if fullname == _AS_STRIDED and "sctypes" in self.shims:
            return {"rewrite": (r"\bnp\.sctypes\b", "_fastmoments_sctypes",
                                {"_fastmoments_sctypes": _SCTYPES}, "sctypes")}
        if fullname == _RESIZE and "numpy_float" in self.shims:
            return {"rewrite": (r"\bnumpy\.float\b", "numpy.float64", {}, "numpy_float")}
        if fullname == _ENVCHECK and "environment_check" in self.shims:
            return {"replace": _replace_envcheck}
        return None

    def find_spec(self, fullname, path=None, target=None):
        plan = self._plan(fullname)
        if plan is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _PatchedLoader(spec.loader, **plan)
        return spec


def cudnn_shim(cuda_module=None) -> bool:
    """Give ``chainer.backends.cuda`` a ``cudnn`` attribute when CuPy has no cuDNN.

    CuPy 14 ships no cuDNN bindings; Chainer then catches the ImportError and
    leaves ``cudnn_enabled = False`` but also leaves ``cuda.cudnn`` undefined,
    which code that probes ``cuda.cudnn`` trips over. Chainer falls back to
    its own CuPy kernels for convolutions and batch normalization (slower).

    Args:
        cuda_module: ``chainer.backends.cuda`` (imported here when None).

    Returns:
        True when the shim changed something.
    """
    if cuda_module is None:
        from chainer.backends import cuda as cuda_module
    if not cuda_module.available or hasattr(cuda_module, "cudnn"):
        return False
    cuda_module.cudnn = None
    cuda_module.cudnn_enabled = False
    APPLIED.append("cudnn")
    return True


_installed: ChainerCompatFinder | None = None


def install() -> ChainerCompatFinder | None:
    """Apply the shims this stack needs (idempotent); call before importing Chainer.

    Returns:
        The import hook, or None when no import-time shim is needed.

    Raises:
        RuntimeError: if Chainer was already imported and a needed shim could
            not be applied to it.
    """
    global _installed
    if _installed is not None:
        return _installed
    shims = [name for name, need in needed().items() if need]
    if not shims:
        return None
    late = [m for m in (_AS_STRIDED, _RESIZE, _ENVCHECK) if m in sys.modules]
    if late:
        raise RuntimeError(
            f"import fastmoments_chainer before chainer: {late} were loaded unshimmed"
        )
    if "chainer" not in sys.modules and any(m.startswith("chainer.") for m in sys.modules):
        # A failed `import chainer` leaves its submodules half-initialized
        # behind it; importing Chainer again would fail in obscure ways.
        raise RuntimeError(
            "an earlier `import chainer` failed on this stack and left partly "
            "imported modules behind: restart the interpreter and import "
            "fastmoments_chainer before chainer"
        )
    _installed = ChainerCompatFinder(shims)
    sys.meta_path.insert(0, _installed)
    return _installed
