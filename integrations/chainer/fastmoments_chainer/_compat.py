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
  It is also replaced wherever Chainer's module would import ``pkg_resources``
  at all (its source says so: every Chainer 7 release): setuptools >= 81
  deprecates ``pkg_resources`` with a warning at import, which would be the
  first line of every program's output.
- ``PrintReport`` writes the terminal escape ``ESC[J`` (erase to the end of
  the screen) before every line, terminal or not
  (``chainer/training/extensions/print_report.py``): log files and CI logs
  get raw escape codes. The source writes it only when the stream is a
  terminal (``isatty()``).
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
_PRINT_REPORT = "chainer.training.extensions.print_report"

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


def _chainer_source(relpath: str) -> str | None:
    """The text of a file of the installed Chainer, found without importing Chainer."""
    try:
        spec = importlib.util.find_spec("chainer")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        try:
            with open(f"{folder}/{relpath}", encoding="utf-8") as f:
                return f.read()
        except OSError:
            continue
    return None


def _envcheck_imports_pkg_resources(source=None) -> bool:
    source = _chainer_source("_environment_check.py") if source is None else source
    return source is not None and re.search(r"^\s*import pkg_resources\b|^\s*from pkg_resources\b",
                                            source, re.M) is not None


def _print_report_erases(source=None) -> bool:
    source = _chainer_source("training/extensions/print_report.py") if source is None else source
    return source is not None and _ERASE.search(source) is not None


_ERASE = re.compile(r"\bout\.write\('\\033\[J'\)")


def needed() -> dict[str, bool]:
    """Which shims this stack needs, found without importing Chainer.

    Returns:
        A dict from shim name to whether its breakage is present.
    """
    return {
        "sctypes": not hasattr(numpy, "sctypes"),
        "numpy_float": not hasattr(numpy, "float"),
        # Replaced whenever Chainer's check would import pkg_resources at all
        # (deprecated with a warning from setuptools 81, removed in 82) or
        # numpy.distutils is gone.
        "environment_check": (not (_has_module("numpy.distutils") and _has_module("pkg_resources"))
                              or _envcheck_imports_pkg_resources()),
        "print_report_tty": _print_report_erases(),
    }


def _erase_if_tty(out):
    """What PrintReport's ``out.write('\\033[J')`` becomes: the escape only on a terminal."""
    isatty = getattr(out, "isatty", None)
    try:
        tty = bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # a closed stream
        tty = False
    if tty:
        out.write("\033[J")


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
        if fullname == _PRINT_REPORT and "print_report_tty" in self.shims:
            return {"rewrite": (_ERASE.pattern, "_fastmoments_erase_if_tty(out)",
                                {"_fastmoments_erase_if_tty": _erase_if_tty}, "print_report_tty")}
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
    modules = {"sctypes": _AS_STRIDED, "numpy_float": _RESIZE, "environment_check": _ENVCHECK,
               "print_report_tty": _PRINT_REPORT}
    # Without these Chainer does not import or breaks; the others only
    # clean up its output, and are left out if their module loaded already.
    fatal = {"sctypes", "numpy_float"}
    if not (_has_module("numpy.distutils") and _has_module("pkg_resources")):
        fatal.add("environment_check")
    late = [modules[s] for s in shims if s in fatal and modules[s] in sys.modules]
    shims = [s for s in shims if s in fatal or modules[s] not in sys.modules]
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
