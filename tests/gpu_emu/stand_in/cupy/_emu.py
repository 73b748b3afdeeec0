"""Device memory and kernels of the stand-in CuPy: host buffers and g++ modules.

"Device" memory is host memory with guard bytes on both sides; a kernel that
writes past an allocation is an error after its launch, and one that reads
past it reads the garbage pattern. New memory (``empty``) holds that pattern
too, so an output no thread writes is garbage, not zeros.

A kernel source is compiled by g++ after ``cuda_emu.h`` (the CUDA executor),
once per text and flags, into a cache directory shared by the processes of a
test run; each kernel asked for is exported under a number and described by
its C signature, against which every launch's arguments are checked as the
real CuPy and driver would need them.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np

HEADER = Path(__file__).resolve().parents[2] / "cuda_emu.h"
GUARD = 256
GARBAGE = 0x5A
MAX_STATIC_SHARED = 48 * 1024
# -ftrivial-auto-var-init=pattern: an uninitialized local reads garbage, as
# it may on a GPU, rather than a lucky zero. -fstack-clash-protection: a large
# frame touches its pages in order, so an overflow hits the stack's guard.
CXXFLAGS = ["-std=c++17", "-O1", "-fPIC", "-shared", "-fvisibility=hidden", "-w", "-fno-strict-aliasing",
            "-ftrivial-auto-var-init=pattern", "-fstack-clash-protection"]

# One launch at a time in the process: the executor's state and the kernels'
# __shared__ variables are per module, not per caller.
_LAUNCH_LOCK = threading.RLock()


class EmulatorError(RuntimeError):
    """A launch the emulator refused or a kernel that failed while running."""


# -- memory ---------------------------------------------------------------------------


class Buffer:
    """One allocation: ``nbytes`` of data between two guards."""

    __slots__ = ("raw", "nbytes", "start", "__weakref__")

    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)
        # 64-byte aligned data start, as cudaMalloc's 256-byte alignment would
        # never give less than the kernels need.
        raw = np.empty(self.nbytes + 2 * GUARD + 64, np.uint8)
        off = (-raw.ctypes.data) % 64
        self.raw = raw[off : off + self.nbytes + 2 * GUARD]
        self.raw[:] = GARBAGE
        self.start = self.raw.ctypes.data + GUARD
        _LIVE.add(self)

    def view(self, dtype, shape, strides=None, offset=0) -> np.ndarray:
        data = self.raw[GUARD : GUARD + self.nbytes]
        return np.ndarray(shape, dtype=dtype, buffer=data, offset=offset, strides=strides)

    def guards_intact(self) -> bool:
        return self.raw[:GUARD].tobytes() == _GUARD_BYTES and self.raw[GUARD + self.nbytes :].tobytes() == _GUARD_BYTES

    def contains(self, addr: int) -> bool:
        return self.start <= addr <= self.start + self.nbytes


_LIVE: "weakref.WeakSet[Buffer]" = weakref.WeakSet()
_GUARD_BYTES = bytes([GARBAGE]) * GUARD


def find_buffer(addr: int):
    for b in list(_LIVE):
        if b.contains(addr):
            return b
    return None


# -- compiling -------------------------------------------------------------------------


def _cache_dir() -> Path:
    d = os.environ.get("FASTMOMENTS_EMU_CACHE")
    path = Path(d) if d else Path(tempfile.gettempdir()) / f"fastmoments-emu-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


_MODULES: dict = {}


def _compile(text: str) -> Path:
    key = hashlib.sha256((text + HEADER.read_text() + " ".join(CXXFLAGS)).encode()).hexdigest()[:24]
    so = _cache_dir() / f"m{key}.so"
    if so.exists() and so.with_suffix(".bounds").exists():
        return so
    tag = f"{os.getpid()}.{threading.get_ident()}"
    tmp_src = so.with_name(f"{so.stem}.{tag}.cpp")
    tmp_so = so.with_name(f"{so.stem}.{tag}.so")
    tmp_bounds = so.with_name(f"{so.stem}.{tag}.bounds")
    tmp_src.write_text(text)
    cmd = ["g++", *CXXFLAGS, f"-I{HEADER.parent}", str(tmp_src), "-o", str(tmp_so)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        tmp_src.unlink(missing_ok=True)
        raise EmulatorError(f"the kernel source does not compile (g++):\n{res.stderr[-6000:]}")
    tmp_bounds.write_text(json.dumps(_launch_bounds(tmp_src)))
    os.replace(tmp_so, so)  # atomic: other processes see all or nothing
    os.replace(tmp_bounds, so.with_suffix(".bounds"))
    os.replace(tmp_src, so.with_suffix(".cpp"))
    return so


_BOUNDS = re.compile(r"__launch_bounds__\s*\(\s*\(*\s*(\d+)[^;{]*?\)\s*(\w+)\s*\(")


def _launch_bounds(src: Path) -> dict:
    """{kernel name: its __launch_bounds__ thread limit}, read from the source
    preprocessed with __launch_bounds__ left in (its argument's macros expanded)."""
    res = subprocess.run(["g++", "-std=c++17", "-E", "-P", "-DFMEMU_KEEP_LAUNCH_BOUNDS", f"-I{HEADER.parent}",
                          str(src)], capture_output=True, text=True)
    return {m.group(2): int(m.group(1)) for m in _BOUNDS.finditer(res.stdout)}


_NM_LINE = re.compile(r"^([0-9a-f]+) ([0-9a-f]+) ([bBdDuV]) (.*)$")


def _symbols(so: Path):
    """(where fmemu_add_shared lies in the file, the kernels' __shared__
    variables as (address in the file, size, name)), from one ``nm``: the
    variables are the function-local statics (mangled ``_ZZ...``) outside the
    executor and the standard library."""
    out = subprocess.run(["nm", "-S", "--defined-only", str(so)], capture_output=True, text=True, check=True)
    found, add_shared = [], None
    for line in out.stdout.splitlines():
        parts = line.split()
        if parts and parts[-1] == "fmemu_add_shared":
            add_shared = int(parts[0], 16)
        m = _NM_LINE.match(line)
        if not m:
            continue
        addr, size, _, name = m.groups()
        if not name.startswith("_ZZ") or name.startswith(("_ZZN5fmemu", "_ZZNK5fmemu", "_ZZSt", "_ZZNSt", "_ZZNKSt")):
            continue
        found.append((int(addr, 16), int(size, 16), name))
    if add_shared is None:
        raise EmulatorError(f"fmemu_add_shared missing from {so}")
    if found:
        names = subprocess.run(["c++filt"], input="\n".join(n for _, _, n in found), capture_output=True,
                               text=True).stdout.split("\n")
        found = [(a, n, names[i] if i < len(names) and names[i] else raw) for i, (a, n, raw) in enumerate(found)]
    return add_shared, found


class Module:
    """A compiled source: its kernels by name, each a :class:`Kernel`."""

    def __init__(self, code: str, names: list[str], source_name: str = "kernel.cu"):
        exports = "".join(f"FMEMU_EXPORT({i}, {n})\n" for i, n in enumerate(names))
        text = f'#include "cuda_emu.h"\n#line 1 "{source_name}"\n{code}\n#line 1 "fmemu-exports"\n{exports}'
        so = _compile(text)  # concurrent compiles of one text are harmless
        self.lib = ctypes.CDLL(str(so))
        self.path = so
        bounds = json.loads(so.with_suffix(".bounds").read_text())
        add_at, shared = _symbols(so)
        add = self.lib.fmemu_add_shared
        add.argtypes = [ctypes.c_void_p, ctypes.c_ulonglong]
        base = ctypes.cast(add, ctypes.c_void_p).value - add_at
        total = 0
        for addr, size, name in shared:
            if size > MAX_STATIC_SHARED:
                raise EmulatorError(
                    f"__shared__ {name} takes {size} bytes, more than the {MAX_STATIC_SHARED} bytes "
                    "of static shared memory a kernel may have"
                )
            add(base + addr, size)
            total += size
        self.lib.fmemu_section_bytes.restype = ctypes.c_ulonglong
        total += self.lib.fmemu_section_bytes()
        if total > MAX_STATIC_SHARED:
            # Summed over the module's kernels, so conservative; ptxas checks
            # each kernel exactly (tests/test_cuda_sources.py).
            raise EmulatorError(
                f"the module's __shared__ variables take {total} bytes, more than the {MAX_STATIC_SHARED} "
                "bytes of static shared memory a kernel may have"
            )
        self.lib.fmemu_configure.argtypes = [ctypes.c_ulonglong, ctypes.c_int, ctypes.c_int, ctypes.c_double]
        self.kernels = {}
        for i, n in enumerate(names):
            sig = getattr(self.lib, f"fmemu_sig_{i}")
            sig.restype = ctypes.c_char_p
            fn = getattr(self.lib, f"fmemu_launch_{i}")
            fn.restype = ctypes.c_int
            self.kernels[n] = Kernel(n, sig().decode().split(), fn, self.lib.fmemu_configure,
                                     bounds.get(re.sub(r"<.*", "", n).strip()))


class _Settings:
    """The order of threads and blocks: derived per launch from ``seed``
    (forward, reverse or shuffled), or fixed by ``mode`` (0, 1, 2)."""

    def __init__(self):
        self.seed = int(os.environ.get("FASTMOMENTS_EMU_SEED", "0") or 0)
        self.mode = int(os.environ.get("FASTMOMENTS_EMU_ORDER", "-1") or -1)
        self.timeout = float(os.environ.get("FASTMOMENTS_EMU_TIMEOUT", "60") or 60)


settings = _Settings()


def load(code: str, names, source_name="kernel.cu") -> Module:
    key = (code, tuple(names))
    mod = _MODULES.get(key)
    if mod is None:
        mod = Module(code, list(names), source_name)
        _MODULES[key] = mod
    return mod


# -- launching -------------------------------------------------------------------------

_KINDS = {"i": "iu", "u": "iu", "f": "f", "b": "b"}


class Kernel:
    """One kernel of a module, callable as CuPy's ``RawKernel``."""

    def __init__(self, name, params, fn, configure, max_threads=None):
        self.name = name
        self.params = params
        self.max_threads = max_threads  # its __launch_bounds__, if any
        self._fn = fn
        self._configure = configure

    def _pointer(self, i, tok, a):
        from . import ndarray

        if a is None:
            return ctypes.c_void_p(0)
        if isinstance(a, ndarray):
            want_kind, size = tok[1], int(tok[2:])
            dt = a.dtype
            if want_kind in _KINDS:
                if dt.kind not in _KINDS[want_kind] or dt.itemsize != size or (
                    want_kind in "iu" and dt.kind != want_kind
                ):
                    raise EmulatorError(
                        f"kernel {self.name}: argument {i} is a {dt} array, but the parameter points to "
                        f"{_describe(tok[1:])}"
                    )
            elif want_kind == "s" and (size % dt.itemsize):
                raise EmulatorError(
                    f"kernel {self.name}: argument {i} is a {dt} array, but the parameter points to a "
                    f"{size}-byte struct"
                )
            return ctypes.c_void_p(a.data.ptr)
        if isinstance(a, (np.uint64, np.int64)) or (type(a) is int):
            addr = int(a)
            if addr == 0 or find_buffer(addr) is not None:
                return ctypes.c_void_p(addr)
            raise EmulatorError(
                f"kernel {self.name}: argument {i} ({type(a).__name__} {addr:#x}) is passed to a pointer "
                "parameter but is neither null nor an address in device memory"
            )
        raise EmulatorError(
            f"kernel {self.name}: argument {i} is a {type(a).__name__}, but the parameter is a pointer "
            "(a device array or a null)"
        )

    def _value(self, i, tok, a):
        from . import ndarray

        kind, size = tok[0], int(tok[1:])
        if isinstance(a, ndarray):
            raise EmulatorError(
                f"kernel {self.name}: argument {i} is a device array, but the parameter is {_describe(tok)}"
            )
        # CuPy passes Python scalars as int64 / float64 / bool.
        if type(a) is bool:
            a = np.bool_(a)
        elif type(a) is int:
            a = np.int64(a)
        elif type(a) is float:
            a = np.float64(a)
        if not isinstance(a, np.generic):
            raise EmulatorError(f"kernel {self.name}: argument {i} of type {type(a).__name__} cannot be passed")
        dt = a.dtype
        ok = {"i": dt.kind in "iu", "u": dt.kind in "iu", "f": dt.kind == "f", "b": dt.kind == "b"}.get(kind, False)
        if not ok or dt.itemsize != size:
            raise EmulatorError(
                f"kernel {self.name}: argument {i} is {dt.name} ({dt.itemsize} bytes), but the parameter is "
                f"{_describe(tok)}: CuPy would pass {dt.itemsize} bytes where the kernel reads {size}"
            )
        return ctypes.create_string_buffer(np.array(a).tobytes(), size)

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None, enable_cooperative_groups=False):
        grid = _dims(grid, "grid")
        block = _dims(block, "block")
        if grid[0] > 2**31 - 1 or grid[1] > 65535 or grid[2] > 65535:
            raise EmulatorError(f"kernel {self.name}: grid {grid} beyond (2**31 - 1, 65535, 65535)")
        if block[0] > 1024 or block[1] > 1024 or block[2] > 64 or block[0] * block[1] * block[2] > 1024:
            raise EmulatorError(f"kernel {self.name}: block {block}: at most 1024 threads, z at most 64")
        if self.max_threads is not None and block[0] * block[1] * block[2] > self.max_threads:
            raise EmulatorError(
                f"kernel {self.name}: block {block} has more threads than its __launch_bounds__({self.max_threads})"
            )
        if shared_mem:
            raise EmulatorError("dynamic shared memory is not emulated")
        args = tuple(args)
        if len(args) != len(self.params):
            raise EmulatorError(
                f"kernel {self.name} takes {len(self.params)} arguments, {len(args)} given"
            )
        store = [
            self._pointer(i, tok, a) if tok[0] == "p" else self._value(i, tok, a)
            for i, (tok, a) in enumerate(zip(self.params, args))
        ]
        ptrs = (ctypes.c_void_p * len(store))(*[ctypes.cast(ctypes.pointer(s), ctypes.c_void_p) for s in store])
        g = (ctypes.c_longlong * 3)(*grid)
        b = (ctypes.c_longlong * 3)(*block)
        err = ctypes.create_string_buffer(4096)
        with _LAUNCH_LOCK:
            # Per launch: modules of one source share one library and its settings.
            self._configure(settings.seed, settings.mode, GARBAGE, settings.timeout)
            rc = self._fn(g, b, ptrs, self.name.encode(), err, ctypes.c_longlong(len(err)))
            broken = [buf for buf in list(_LIVE) if not buf.guards_intact()]
        if rc:
            raise EmulatorError(err.value.decode(errors="replace"))
        if broken:
            raise EmulatorError(
                f"kernel {self.name} wrote outside {len(broken)} allocation(s) "
                f"(first: {broken[0].nbytes} bytes at {broken[0].start:#x})"
            )


def _dims(d, what):
    if isinstance(d, (int, np.integer)):
        d = (d,)
    d = tuple(int(v) for v in d)
    if not 1 <= len(d) <= 3 or any(v < 1 for v in d):
        raise EmulatorError(f"{what} {d}: 1 to 3 positive dimensions")
    return d + (1,) * (3 - len(d))


def _describe(tok):
    names = {"i": "signed integer", "u": "unsigned integer", "f": "floating", "b": "bool", "s": "struct"}
    return f"a {int(tok[1:]) * 8}-bit {names.get(tok[0], tok[0])}"
