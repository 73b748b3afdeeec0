"""A stand-in for CuPy in tests: CUDA kernels executed on the CPU.

Test-only; put on the import path by ``tests/gpu_emu/activate.py`` when a test
run asks for it and no real GPU is there. It offers the CuPy surface that
``fastmoments.gpu`` and ``fastmoments_dask`` use, and holds to CuPy's rules
where they differ from NumPy's, so code that passes here does not fail on a
device for reasons the emulator could have seen:

- arrays live in "device" memory (guarded host buffers, see ``_emu``) and are
  not NumPy arrays: implicit conversion (``np.asarray(x)``) is a TypeError,
  mixing them with NumPy arrays in an operation is a TypeError, ``.get()`` is
  the way to the host; reductions return 0-d arrays, not scalars;
- ``empty`` returns garbage, not zeros;
- ``RawModule`` compiles the very source text (and ``name_expressions``) it
  is given, ``ElementwiseKernel`` the kernel CuPy would generate from its
  parameters, preamble and operation; both run on the executor of
  ``cuda_emu.h`` and check their arguments against the kernels' signatures.

Everything else NumPy-like is NumPy underneath, on the host buffers.
"""

from __future__ import annotations

import math
import operator
import re

import numpy as np

from . import _emu
from ._emu import EmulatorError

__version__ = "14.0.0+fastmoments.emulator"
__fmemu__ = True  # how tests tell the stand-in from the real CuPy

nan, inf, pi, e, newaxis = np.nan, np.inf, np.pi, np.e, np.newaxis
for _t in ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
           "float32", "float64", "complex64", "complex128", "intp", "dtype", "integer", "floating",
           "number", "generic", "signedinteger", "unsignedinteger", "complexfloating", "inexact"):
    globals()[_t] = getattr(np, _t)
del _t


# -- devices ------------------------------------------------------------------------


class Device:
    """The one emulated device, id 0."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise EmulatorError(f"device {self.id}: the emulator has one device, 0")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def use(self):
        pass

    def synchronize(self):
        pass

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(("fmemu-device", self.id))

    def __repr__(self):
        return f"<CUDA Device {self.id} (emulated)>"


class _MemoryPointer:
    __slots__ = ("ptr", "device", "mem")

    def __init__(self, ptr, buf):
        self.ptr = ptr
        self.device = Device(0)
        self.mem = buf


class _Flags:
    def __init__(self, a):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = False

    def __getitem__(self, key):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous, "OWNDATA": self.owndata}[key]


# -- arrays -------------------------------------------------------------------------


class ndarray:
    """A device array: a NumPy view on a guarded buffer (``_a``) it keeps alive."""

    __slots__ = ("_a", "_buf", "__weakref__")
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise EmulatorError("ndarray(memptr=..., strides=...) is not emulated")
        a = _new(np.empty(0, dtype).dtype, shape, order)
        self._a, self._buf = a._a, a._buf

    # construction without copies
    @classmethod
    def _make(cls, a: np.ndarray, buf: _emu.Buffer):
        self = object.__new__(cls)
        self._a = a
        self._buf = buf
        return self

    # attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a))
    data = property(lambda self: _MemoryPointer(self._a.ctypes.data, self._buf))
    device = property(lambda self: Device(0))
    T = property(lambda self: self.transpose())

    @property
    def __cuda_array_interface__(self):
        return {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self.data.ptr, False),
            "version": 3,
            "strides": None if self._a.flags.c_contiguous else self.strides,
        }

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    # to the host
    def get(self, stream=None, order="C", out=None, blocking=True):
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order)

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __bool__(self):
        return bool(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self):
        return repr(self._a).replace("array(", "array(", 1)

    def __str__(self):
        return str(self._a)

    def __reduce__(self):
        return (array, (self.get(),))

    def __hash__(self):
        raise TypeError("unhashable type: 'cupy.ndarray'")

    # views and copies
    def copy(self, order="C"):
        return _adopt(np.array(self._a, order=order))

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        dt = np.dtype(dtype)
        if not copy and dt == self.dtype:
            return self
        return _adopt(self._a.astype(dt, order=order))

    def view(self, dtype=None):
        return _view_of(self, self._a.view() if dtype is None else self._a.view(dtype))

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _result(self._a.reshape(shape, order=order), [self])

    def ravel(self, order="C"):
        return _result(self._a.ravel(order), [self])

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _view_of(self, self._a.transpose(*axes) if axes else self._a.transpose())

    def fill(self, value):
        self._a.fill(_host_scalar(value))

    def __getitem__(self, key):
        k = _unwrap_index(key)
        r = self._a[k]
        if isinstance(r, np.generic):
            # CuPy gives a 0-d view for a full integer index, not a copy.
            kt = k if isinstance(k, tuple) else (k,)
            r = self._a[kt + (Ellipsis,)] if Ellipsis not in kt else np.array(r)
        return _result(r, [self])

    def __setitem__(self, key, value):
        self._a[_unwrap_index(key)] = _unwrap(value)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if any(type(x) is np.ndarray for x in inputs):
            return NotImplemented
        ins = [_unwrap(x) for x in inputs]
        kw = {k: _unwrap(v) for k, v in kwargs.items()}
        if "out" in kw:
            kw["out"] = tuple(_unwrap(o) for o in kwargs["out"])
            getattr(ufunc, method)(*ins, **kw)
            outs = kwargs["out"]
            return outs[0] if len(outs) == 1 else outs
        return _result(getattr(ufunc, method)(*ins, **kw), [x for x in inputs if isinstance(x, ndarray)])

    def __array_function__(self, func, types, args, kwargs):
        if any(issubclass(t, np.ndarray) for t in types):
            return NotImplemented
        impl = globals().get(func.__name__)
        if impl is None or not callable(impl):
            impl = _numpy_function(func.__name__)
        return impl(*args, **kwargs)


def _method(name):
    def m(self, *args, **kwargs):
        return _result(getattr(self._a, name)(*_unwrap(args), **_unwrap(kwargs)), [self])

    m.__name__ = name
    return m


for _name in ("sum", "mean", "min", "max", "any", "all", "prod", "std", "var", "argmin", "argmax", "cumsum",
              "nonzero", "round", "clip", "dot", "squeeze", "swapaxes", "repeat", "take", "sort", "argsort",
              "conj", "flatten", "diagonal", "trace"):
    setattr(ndarray, _name, _method(_name))


def _binary(op, reflected=False):
    def f(self, other):
        if type(other) is np.ndarray:
            raise TypeError(f"Unsupported type {type(other)}: cannot mix cupy.ndarray and numpy.ndarray")
        a, b = self._a, _unwrap(other)
        return _result(op(b, a) if reflected else op(a, b), [self])

    return f


def _inplace(op):
    def f(self, other):
        if type(other) is np.ndarray:
            raise TypeError(f"Unsupported type {type(other)}: cannot mix cupy.ndarray and numpy.ndarray")
        op(self._a, _unwrap(other))
        return self

    return f


for _name, _op in [("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                   ("truediv", operator.truediv), ("floordiv", operator.floordiv), ("mod", operator.mod),
                   ("pow", operator.pow), ("and", operator.and_), ("or", operator.or_), ("xor", operator.xor),
                   ("lshift", operator.lshift), ("rshift", operator.rshift), ("matmul", operator.matmul)]:
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
    setattr(ndarray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}")))
for _name, _op in [("lt", operator.lt), ("le", operator.le), ("gt", operator.gt), ("ge", operator.ge),
                   ("eq", operator.eq), ("ne", operator.ne)]:
    setattr(ndarray, f"__{_name}__", _binary(_op))
for _name, _op in [("neg", operator.neg), ("pos", operator.pos), ("abs", operator.abs), ("invert", operator.invert)]:
    setattr(ndarray, f"__{_name}__", (lambda op: lambda self: _result(op(self._a), [self]))(_op))
del _name, _op


# -- wrapping and unwrapping -----------------------------------------------------------


def _new(dtype, shape, order="C") -> ndarray:
    """An uninitialized (garbage-filled) device array."""
    dt = np.dtype(dtype)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    n = math.prod(shape) * dt.itemsize
    buf = _emu.Buffer(n)
    a = buf.view(dt, shape)
    if order == "F" and len(shape) > 1:
        a = np.asfortranarray(a) if n == 0 else buf.view(dt, shape, strides=_f_strides(shape, dt.itemsize))
    return ndarray._make(a, buf)


def _f_strides(shape, itemsize):
    strides, s = [], itemsize
    for n in shape:
        strides.append(s)
        s *= max(n, 1)
    return tuple(strides)


def _adopt(host: np.ndarray) -> ndarray:
    """A device copy of a host array (its layout kept where it is C or F)."""
    order = "F" if host.flags.f_contiguous and not host.flags.c_contiguous else "C"
    out = _new(host.dtype, host.shape, order)
    out._a[...] = host
    return out


def _view_of(base: ndarray, a: np.ndarray) -> ndarray:
    return ndarray._make(a, base._buf)


def _result(r, inputs):
    """Wrap a NumPy result: views stay views of the input's buffer, new
    arrays get their own, scalars become 0-d arrays (as CuPy returns)."""
    if isinstance(r, tuple):
        return tuple(_result(x, inputs) for x in r)
    if isinstance(r, list):
        return [_result(x, inputs) for x in r]
    if isinstance(r, np.generic):
        return _adopt(np.array(r))
    if isinstance(r, np.ndarray):
        for x in inputs:
            if r.size and np.may_share_memory(r, x._a):
                return ndarray._make(r, x._buf)
        return _adopt(r)
    return r


def _unwrap(x):
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _unwrap_index(key):
    if isinstance(key, tuple):
        return tuple(_unwrap(k) for k in key)
    return _unwrap(key)


def _host_scalar(v):
    return v._a[()] if isinstance(v, ndarray) else v


def _reject_host_arrays(name, args, kwargs):
    def walk(v):
        if type(v) is np.ndarray:
            raise TypeError(f"cupy.{name}: Unsupported type {type(v)} (a NumPy array; use cupy.asarray first)")
        if isinstance(v, (list, tuple)):
            for w in v:
                walk(w)

    walk(args)
    walk(tuple(kwargs.values()))


def _arrays_in(v, out):
    if isinstance(v, ndarray):
        out.append(v)
    elif isinstance(v, (list, tuple)):
        for w in v:
            _arrays_in(w, out)
    return out


_FUNCS: dict = {}


def _numpy_function(name):
    f = _FUNCS.get(name)
    if f is None:
        npf = getattr(np, name)

        def f(*args, **kwargs):
            _reject_host_arrays(name, args, kwargs)
            inputs = _arrays_in(list(args) + list(kwargs.values()), [])
            return _result(npf(*_unwrap(args), **_unwrap(kwargs)), inputs)

        f.__name__ = name
        _FUNCS[name] = f
    return f


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    obj = getattr(np, name, None)
    if obj is None or isinstance(obj, type(np)):  # no NumPy submodules (cupy.testing is ours)
        raise AttributeError(f"the stand-in cupy has no {name!r}")
    if callable(obj) and not isinstance(obj, type):
        return _numpy_function(name)
    return obj


# -- creation and transfer ------------------------------------------------------------------


def asarray(a, dtype=None, order=None, *, blocking=False):
    if isinstance(a, ndarray):
        if dtype is None or np.dtype(dtype) == a.dtype:
            if order in (None, "K", "A") or (order == "C" and a._a.flags.c_contiguous) or (
                order == "F" and a._a.flags.f_contiguous
            ):
                return a
        return _adopt(np.asarray(a._a, dtype=dtype, order=order))
    if hasattr(a, "__cuda_array_interface__") and not isinstance(a, np.ndarray):
        raise TypeError("foreign device arrays are not emulated")
    host = np.asarray(a, dtype=dtype, order=order)
    if host.dtype == object:
        raise ValueError("Unsupported dtype object")
    return _adopt(host)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    host = np.array(obj._a if isinstance(obj, ndarray) else obj, dtype=dtype, copy=True, order=order, ndmin=ndmin)
    if host.dtype == object:
        raise ValueError("Unsupported dtype object")
    return _adopt(host)


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def ascontiguousarray(a, dtype=None):
    a = asarray(a)
    if a._a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype) and a.ndim >= 1:
        return a
    return _adopt(np.ascontiguousarray(a._a, dtype=dtype))


def asfortranarray(a, dtype=None):
    a = asarray(a)
    if a._a.flags.f_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return _adopt(np.asfortranarray(a._a, dtype=dtype))


def empty(shape, dtype=float, order="C"):
    return _new(dtype, shape, order)


def _like_order(a, order):
    if order in ("K", "A"):
        return "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    return order


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    return _new(a.dtype if dtype is None else dtype, a.shape if shape is None else shape, _like_order(a, order))


def zeros(shape, dtype=float, order="C"):
    out = _new(dtype, shape, order)
    out._a[...] = 0
    return out


def ones(shape, dtype=float, order="C"):
    out = _new(dtype, shape, order)
    out._a[...] = 1
    return out


def full(shape, fill_value, dtype=None, order="C"):
    fill = _host_scalar(fill_value)
    out = _new(np.array(fill).dtype if dtype is None else dtype, shape, order)
    out._a[...] = fill
    return out


def zeros_like(a, dtype=None, order="K", subok=None, shape=None):
    return zeros(a.shape if shape is None else shape, a.dtype if dtype is None else dtype, _like_order(a, order))


def ones_like(a, dtype=None, order="K", subok=None, shape=None):
    return ones(a.shape if shape is None else shape, a.dtype if dtype is None else dtype, _like_order(a, order))


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    return full(a.shape if shape is None else shape, fill_value, a.dtype if dtype is None else dtype,
                _like_order(a, order))


def broadcast_to(a, shape):
    a = asarray(a)
    return _view_of(a, np.broadcast_to(a._a, shape))


def get_array_module(*args):
    import sys

    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


# -- kernels ------------------------------------------------------------------------------


class RawModule:
    """CuPy's RawModule over ``code``: compiled (with g++, for the executor)
    on construction; ``name_expressions`` name the template instantiations."""

    def __init__(self, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 *, enable_cooperative_groups=False, name_expressions=None, jitify=False):
        if code is None:
            raise EmulatorError("RawModule(path=...) (a cubin) cannot be emulated; pass code=")
        names = list(name_expressions or [])
        # Kernels declared extern "C" are found by their plain names too.
        for name in _extern_c_kernels(code):
            if name not in names:
                names.append(name)
        self.code = code
        self.options = tuple(options)
        self.name_expressions = tuple(name_expressions or ())
        self._mod = _emu.load(code, names)

    def get_function(self, name):
        k = self._mod.kernels.get(name)
        if k is None:
            raise EmulatorError(
                f"no kernel {name!r} in this module: name it in name_expressions "
                f"(given: {list(self.name_expressions)})"
            )
        return k


_KERNEL = re.compile(r"__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(")


def _extern_c_kernels(code):
    """Names of the kernels declared extern "C", one by one or in an extern "C" { } block."""
    spans = []
    for m in re.finditer(r'extern\s+"C"\s*\{', code):
        depth, i = 1, m.end()
        while i < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
        spans.append((m.end(), i))
    names = []
    for m in _KERNEL.finditer(code):
        before = code[max(0, m.start() - 40) : m.start()]
        if re.search(r'extern\s+"C"\s*$', before) or any(a <= m.start() < b for a, b in spans):
            names.append(m.group(1))
    return names


class RawKernel:
    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False, **kwargs):
        self._fn = RawModule(code=code, options=options, name_expressions=[name]).get_function(name)

    def __call__(self, grid, block, args, **kwargs):
        return self._fn(grid, block, args, **kwargs)


_C_TYPES = {
    "bool": "bool", "int8": "signed char", "uint8": "unsigned char", "int16": "short",
    "uint16": "unsigned short", "int32": "int", "uint32": "unsigned int", "int64": "long long",
    "uint64": "unsigned long long", "float32": "float", "float64": "double",
}


class ElementwiseKernel:
    """CuPy's ElementwiseKernel for parameters of fixed dtypes: the kernel
    CuPy would generate (preamble, a grid-stride loop over ``i``, one line per
    parameter, the operation) run on the executor, with broadcasting."""

    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True, preamble="",
                 no_return=False, return_tuple=False, *, loop_prep="", after_loop="", options=()):
        self.in_params = [self._param(p) for p in in_params.split(",") if p.strip()]
        self.out_params = [self._param(p) for p in out_params.split(",") if p.strip()]
        if "i" in [n for _, n in self.in_params + self.out_params]:
            raise ValueError("Can not use 'i' as a parameter name")
        self.operation = operation
        self.name = name
        self.preamble = preamble
        self.no_return = no_return
        self.return_tuple = return_tuple
        self.loop_prep = loop_prep
        self.after_loop = after_loop
        self._kernels = {}

    @staticmethod
    def _param(p):
        words = p.split()
        if len(words) != 2 or words[0] not in _C_TYPES:
            raise EmulatorError(f"ElementwiseKernel parameter {p.strip()!r}: only fixed dtypes are emulated")
        return np.dtype(words[0]), words[1]

    def _kernel(self, in_dtypes):
        k = self._kernels.get(in_dtypes)
        if k is None:
            params, lines = ["long long _n"], []
            for (dt, n), adt in zip(self.in_params, in_dtypes):
                params.append(f"const {_C_TYPES[adt.name]}* _raw_{n}")
                lines.append(f"const {_C_TYPES[dt.name]} {n} = _raw_{n}[i];")
            for dt, n in self.out_params:
                params.append(f"{_C_TYPES[dt.name]}* _raw_{n}")
                lines.append(f"{_C_TYPES[dt.name]} &{n} = _raw_{n}[i];")
            code = (
                f"{self.preamble}\n"
                f'extern "C" __global__ void {self.name}({", ".join(params)}) {{\n'
                f"  {self.loop_prep};\n"
                "  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < _n;"
                " i += (long long)blockDim.x * gridDim.x) {\n"
                f"    {' '.join(lines)}\n    {self.operation};\n  }}\n  {self.after_loop};\n}}\n"
            )
            k = _emu.load(code, [self.name], source_name=f"{self.name}.cu").kernels[self.name]
            self._kernels[in_dtypes] = k
        return k

    def __call__(self, *args, size=None, block_size=128, stream=None):
        nin, nout = len(self.in_params), len(self.out_params)
        if len(args) not in (nin, nin + nout):
            raise TypeError(f"Wrong number of arguments for {self.name}")
        ins, outs = list(args[:nin]), list(args[nin:])
        for a in args:
            if type(a) is np.ndarray:
                raise TypeError(f"Unsupported type {type(a)}")
        if not any(isinstance(a, ndarray) for a in args):
            raise ValueError("Loop size is undecided.")
        for (dt, n), a in zip(self.in_params, ins):
            if isinstance(a, ndarray) and a.dtype != dt:  # as CuPy: only scalars are cast
                raise TypeError(f"Type is mismatched. {n} {a.dtype.type} {dt.type}")
        shape = np.broadcast_shapes(*(a.shape for a in args if isinstance(a, ndarray)))
        for (dt, n), o in zip(self.out_params, outs):
            if not isinstance(o, ndarray) or o.dtype != dt:
                raise TypeError(f"Type is mismatched. {n} {getattr(o, 'dtype', type(o))} {dt}")
            if o.shape != shape:
                raise ValueError(f"Out shape is mismatched: {o.shape} while {shape} is expected.")
        # Inputs broadcast and laid out contiguously in fresh device memory.
        in_dev = []
        for (dt, n), a in zip(self.in_params, ins):
            host = np.broadcast_to(a._a if isinstance(a, ndarray) else np.asarray(a, dtype=dt), shape)
            in_dev.append(_adopt(np.ascontiguousarray(host)))
        out_dev = [_new(dt, shape) for dt, _ in self.out_params]
        n = math.prod(shape)
        if n:
            k = self._kernel(tuple(a.dtype for a in in_dev))
            grid = min(-(-n // block_size), 2**31 - 1)
            k((grid,), (block_size,), (np.int64(n), *in_dev, *out_dev))
        if outs:
            for o, d in zip(outs, out_dev):
                o._a[...] = d._a
            result = tuple(outs)
        else:
            result = tuple(out_dev)
        if self.no_return:
            return None
        if nout == 1 and not self.return_tuple:
            return result[0]
        return result


from . import cuda, testing  # noqa: E402

__all__ = ["ndarray", "asarray", "array", "asnumpy", "empty", "zeros", "full", "RawModule", "ElementwiseKernel",
           "EmulatorError", "cuda", "testing"]
