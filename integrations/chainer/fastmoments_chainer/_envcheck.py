"""Stand-in for ``chainer/_environment_check.py`` on stacks where it cannot import.

Chainer's module imports ``numpy.distutils`` (absent on Python 3.12 and NumPy
>= 2.5) and ``pkg_resources`` (absent from setuptools >= 82) at import time.
This module does the same checks without them: the Python 3.5.0 refusal, and
the optional-dependency version warnings through ``importlib.metadata``. The
macOS Accelerate probe needs ``numpy.distutils`` and is dropped. Installed by
:mod:`._compat` only when one of those two imports is unavailable.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import warnings

__all__ = ["check"]


def _check_python_350():
    if sys.version_info[:3] == (3, 5, 0) and not int(os.getenv("CHAINER_PYTHON_350_FORCE", "0")):
        raise Exception("Chainer does not work with Python 3.5.0.")


def _satisfies(version: str, specifier: str) -> bool | None:
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # no way to compare: say nothing rather than guess
        return None
    return SpecifierSet(specifier).contains(version, prereleases=True)


def _check_optional_dependencies(dependencies=None):
    """Warn, as Chainer does, when an optional dependency is outside its supported range.

    Args:
        dependencies: Chainer's ``_version._optional_dependencies`` list
            (read from Chainer when None).
    """
    if dependencies is None:
        import chainer._version

        dependencies = chainer._version._optional_dependencies
    warn_mismatch = os.environ.get("CHAINER_WARN_VERSION_MISMATCH", "1") == "1"
    for dep in dependencies:
        found = []
        for pkg in dep["packages"]:
            try:
                version = importlib.metadata.version(pkg)
            except importlib.metadata.PackageNotFoundError:
                continue
            found.append(pkg)
            if warn_mismatch and _satisfies(version, dep["specifier"]) is False:
                warnings.warn(
                    f"{dep['name']} ({pkg}) version {version} may not be compatible with "
                    f"this version of Chainer (wants {dep['specifier']}); see {dep['help']}"
                )
        if len(found) > 1:
            warnings.warn(
                f"Multiple installations of {dep['name']} package has been detected: {found}. "
                "You should select only one package."
            )


def check():
    """The checks ``chainer/__init__.py`` runs at import."""
    _check_python_350()
    _check_optional_dependencies()
