"""One Numba cache stamp for all the CPU kernel modules.

Numba's on-disk cache (``cache=True``) checks an entry against the source
file of the function it holds, but a kernel compiled with ``cache=True``
also holds, inlined, every function it calls from other modules: edit
``blocks.py`` and the cached ``reduce_rows`` of ``rows.py`` would go on
running the old block code. Here the stamp of every entry of a function
defined in this folder is the hash of all the folder's kernel modules, so an edit
to any of them recompiles all of its kernels at their next call, as when
they were one file. Installed by ``fastmoments.cpu`` before its kernel
modules load (a subclass of Numba's locators; where this Numba has none of
the hooks, its per-file stamps stay).
"""

from __future__ import annotations

import glob
import hashlib
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_NO_KERNELS = {"__init__.py", "_cache.py", "layout.py"}  # edits there recompile nothing


def _folder_stamp():
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(_HERE, "*.py"))):
        if os.path.basename(path) in _NO_KERNELS:
            continue
        st = os.stat(path)
        h.update(os.path.basename(path).encode())
        h.update(_hash_file(path, st.st_mtime, st.st_size))
    return h.digest()


def install():
    try:
        from numba.core import caching
    except ImportError:
        return
    global _hash_file
    _hash_file = getattr(caching, "_hash_source_file", None) or _read_hash
    # Public names in recent Numba, private in older ones.
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    in_tree = getattr(caching, "InTreeCacheLocator", None) or getattr(caching, "_InTreeCacheLocator", None)
    user = getattr(caching, "UserProvidedCacheLocator", None) or getattr(caching, "_UserProvidedCacheLocator", None)
    if impl is None or in_tree is None or user is None or not isinstance(getattr(impl, "_locator_classes", None), list):
        return

    class _FolderStamp:
        def get_source_stamp(self):
            return _folder_stamp()

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) != _HERE:
                return None
            return super().from_function(py_func, py_file)

    class UserProvidedKernelsLocator(_FolderStamp, user):
        pass

    class InTreeKernelsLocator(_FolderStamp, in_tree):
        pass

    classes = impl._locator_classes
    if not any(getattr(c, "__module__", None) == __name__ for c in classes):
        classes[:0] = [UserProvidedKernelsLocator, InTreeKernelsLocator]


def _read_hash(path, st_mtime, st_size):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).digest()


_hash_file = _read_hash
