"""Mergeable state types: :class:`Moments` and :class:`Summary`.

A state holds, per element of its shape, the count, the mean and M2 (the sum
of squared deviations from the mean) of some batch of values. Two states merge
exactly (Chan, Golub & LeVeque), so statistics of data split across blocks,
batches, devices or machines combine without loss. The variance is derived on
demand, so ``ddof`` stays the caller's choice and ``count <= 1`` is no error.

Fields are NumPy arrays for CPU data and CuPy arrays for GPU data; the kernels
behind ``merge`` and ``reduce`` are chosen by that type.
"""

from __future__ import annotations

import numpy as np

from ._dispatch import backend_for, is_gpu_array
from ._inputs import check_not_masked, normalize_axes

__all__ = ["Moments", "Summary"]


def _xp(a):
    return backend_for(a).xp


class _State:
    """Machinery shared by the state types: fields, shape, indexing, pickling."""

    _fields: tuple[str, ...] = ()
    _int_fields: frozenset[str] = frozenset()
    _kind = ""
    __slots__ = ()

    @classmethod
    def _wrap(cls, fields):
        """Build from backend arrays we own, skipping validation and copies."""
        self = object.__new__(cls)
        set_field = object.__setattr__
        for name, arr in zip(cls._fields, fields):
            if type(arr) is np.ndarray:  # CuPy arrays have no read-only flag
                if arr.flags.writeable:  # reading the flag costs 0.14 us, setting it 0.8
                    arr.flags.writeable = False
            elif isinstance(arr, np.generic):  # e.g. state[i]: fields are always arrays, 0-d here
                arr = np.array(arr)
                arr.flags.writeable = False
            set_field(self, name, arr)
        return self

    @classmethod
    def from_fields(cls, **fields):
        """Build a state from its field arrays (copied), e.g. after a transfer.

        Checked as the constructor checks them: counts are whole numbers in
        [0, 2**63), floats are real and m2 is non-negative (on a GPU these
        checks synchronize the device).

        Args:
            **fields: one array per name in ``_fields``; they broadcast together.
        """
        missing = set(cls._fields) - set(fields)
        extra = set(fields) - set(cls._fields)
        if missing or extra:
            raise TypeError(
                f"{cls.__name__} fields are {cls._fields}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        xp = backend_for(*fields.values()).xp
        arrays = [
            _as_count(fields[n], xp, n) if n in cls._int_fields else _float_field(n, fields[n], xp)
            for n in cls._fields
        ]
        if bool(xp.any(arrays[cls._fields.index("m2")] < 0)):
            raise ValueError("m2 must be non-negative")
        return cls._wrap(_cleared_where_empty(cls._fields, _broadcast_fields(cls._fields, arrays, xp), xp))

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable")

    @property
    def fields(self) -> tuple:
        """The field arrays, in the order of ``_fields``."""
        return tuple(getattr(self, f) for f in self._fields)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.count.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self):
        if not self.shape:
            raise TypeError(f"len() of a 0-d {type(self).__name__}")
        return self.shape[0]

    def __getitem__(self, index):
        return self._wrap(tuple(f[index] for f in self.fields))

    def __iter__(self):
        if not self.shape:
            raise TypeError(f"iteration over a 0-d {type(self).__name__}")
        return (self[i] for i in range(self.shape[0]))

    def __reduce__(self):
        return (_rebuild, (type(self), self.fields))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def merge(self, other):
        """Return the state of both batches together (elementwise, broadcasting).

        Args:
            other: a state of the same type whose shape broadcasts with this one.
        """
        if not isinstance(other, type(self)):
            raise TypeError(
                f"cannot merge {type(self).__name__} with {type(other).__name__}"
            )
        try:
            np.broadcast_shapes(self.shape, other.shape)
        except ValueError:
            raise ValueError(
                f"cannot merge states of shapes {self.shape} and {other.shape}: "
                "they do not broadcast"
            ) from None
        return self._merge(other, checked=True)

    def _merge(self, other, checked):
        """:meth:`merge` of a state of this type; ``checked=False`` skips the
        check of counts passing int64, which on a GPU costs a synchronization
        (for callers whose counts cannot get near 2**63, e.g. per-iteration
        accumulation of gradient statistics)."""
        be = backend_for(*self.fields, *other.fields)
        return self._wrap(be.merge(self._kind, self.fields, other.fields, checked=checked))

    def reduce(self, axis=None):
        """Merge the states along ``axis`` (None: all), as a pairwise tree.

        Args:
            axis: None, an int or a tuple of ints; negative values count from
                the end.
        """
        axes = normalize_axes(axis, self.ndim)
        be = backend_for(*self.fields)
        return self._wrap(be.reduce(self._kind, self.fields, axes))

    def to_numpy(self):
        """A copy of this state with NumPy fields (a device-to-host copy for GPU states)."""
        return self._wrap(tuple(f.get() if is_gpu_array(f) else f.copy() for f in self.fields))

    def _moment_repr(self):
        if self.ndim == 0:
            return ", ".join(f"{k}={getattr(self, k)[()]!r}" for k in self._fields)
        return f"shape={self.shape}"

    def __repr__(self):
        return f"{type(self).__name__}({self._moment_repr()})"

    # -- derived statistics ----------------------------------------------------
    def var(self, ddof=0):
        """Variance ``m2 / (count - ddof)``; NaN where ``count <= ddof``.

        (NumPy divides there anyway: inf where m2 > 0, NaN where m2 = 0, with
        a warning. Neither is a variance, so both are NaN here, silently.)

        Args:
            ddof: delta degrees of freedom, a real number (as NumPy's).
        """
        _check_ddof(ddof)
        xp = _xp(self.m2)
        denom = self.count - ddof
        with np.errstate(divide="ignore", invalid="ignore"):
            out = xp.where(denom > 0, self.m2 / xp.where(denom > 0, denom, 1), xp.nan)
        return out[()] if out.ndim == 0 and xp is np else out

    def std(self, ddof=0):
        """Standard deviation, the square root of :meth:`var`."""
        return _xp(self.m2).sqrt(self.var(ddof))


def _check_ddof(ddof):
    if isinstance(ddof, (bool, np.bool_)) or not isinstance(ddof, (int, float, np.integer, np.floating)):
        raise TypeError(f"ddof must be a real number, got {ddof!r}")


def _rebuild(cls, fields):
    return cls._wrap(tuple(fields))


_COUNT_LIMIT = 2**63  # counts are int64


def _as_count(count, xp, name="count"):
    check_not_masked(count, name)
    c = xp.asarray(count)
    if c.dtype.kind not in "iubf":
        raise TypeError(f"{name} must be integers, got dtype {c.dtype}")
    if c.dtype.kind == "f":
        if not bool(xp.all(xp.isfinite(c))):
            raise ValueError(f"{name} must be finite")
        if bool(xp.any(c != xp.floor(c))):
            raise ValueError(f"{name} must hold whole numbers")
    if bool(xp.any(c < 0)):
        raise ValueError(f"{name} must be non-negative")
    # The only dtypes that hold 2**63: floats (exact in float64) and uint64.
    if c.dtype.kind == "f":
        big = c.astype(np.float64) >= float(_COUNT_LIMIT)
    elif c.dtype == np.uint64:
        big = c >= np.uint64(_COUNT_LIMIT)
    else:
        big = None
    if big is not None and bool(xp.any(big)):
        raise ValueError(f"{name} must be below 2**63 (counts are int64)")
    return c.astype(np.int64)


def _float_field(name, value, xp):
    check_not_masked(value, name)
    a = xp.asarray(value)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be real numbers, got dtype {a.dtype}")
    return a.astype(np.float64)  # astype copies: the caller's array stays theirs


def _cleared_where_empty(names, arrays, xp):
    """The fields, with no mean, spread or extremes where the count is 0,
    whatever was given: those would leak into merges otherwise."""
    empty = arrays[names.index("count")] == 0
    fill = {"mean": xp.nan, "min": xp.nan, "max": xp.nan, "m2": 0.0}
    return tuple(xp.where(empty, fill[n], a) if n in fill else a for n, a in zip(names, arrays))


def _broadcast_fields(names, arrays, xp):
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = ", ".join(f"{n} {a.shape}" for n, a in zip(names, arrays))
        raise ValueError(f"mismatched shapes: {shapes}") from None
    return tuple(xp.broadcast_to(a, shape).copy() for a in arrays)


class Moments(_State):
    """Count, mean and M2 (sum of squared deviations) of batches of values.

    Args:
        count: number of values (non-negative integers).
        mean: their mean (ignored where count is 0).
        m2: sum of squared deviations from the mean (non-negative).

    All three broadcast to one shape. The arrays are copied, so the state
    never shares memory with the caller.
    """

    _fields = ("count", "mean", "m2")
    _int_fields = frozenset({"count"})
    _kind = "moments"
    __slots__ = _fields

    def __init__(self, count, mean, m2):
        xp = backend_for(count, mean, m2).xp
        c = _as_count(count, xp)
        mu = _float_field("mean", mean, xp)
        m2 = _float_field("m2", m2, xp)
        if bool(xp.any(m2 < 0)):
            raise ValueError("m2 must be non-negative")
        fields = _cleared_where_empty(self._fields, _broadcast_fields(self._fields, (c, mu, m2), xp), xp)
        for name, arr in zip(self._fields, fields):
            if isinstance(arr, np.ndarray):
                arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    @classmethod
    def empty(cls, shape=(), *, like=None):
        """States with count 0: the identity of :meth:`merge`.

        Args:
            shape: the shape of the state.
            like: an array whose type (NumPy or CuPy) the fields take.
        """
        xp = backend_for(like).xp if like is not None else np
        return cls._wrap(
            (xp.zeros(shape, np.int64), xp.full(shape, np.nan), xp.zeros(shape, np.float64))
        )

    @classmethod
    def from_mean_std(cls, mean, std, count, ddof=1):
        """Build states from published summaries (mean, standard deviation, count).

        A group with count 0 is empty whatever its mean; a group of one value
        has zero spread whatever ``std`` says (NaN included), since one value
        has none; a group of two or more values with count at most ``ddof``
        has an unknown spread (m2 NaN), since ``std`` is undefined there.

        Args:
            mean: group means.
            std: group standard deviations, computed with ``ddof``.
            count: group sizes (non-negative integers).
            ddof: the delta degrees of freedom ``std`` was computed with.
        """
        _check_ddof(ddof)
        xp = backend_for(mean, std, count).xp
        c = _as_count(count, xp)
        mu = _float_field("mean", mean, xp)
        s = _float_field("std", std, xp)
        if bool(xp.any(s < 0)):
            raise ValueError("std must be non-negative")
        c, mu, s = _broadcast_fields(("count", "mean", "std"), (c, mu, s), xp)
        dof = c - ddof
        # One value has no spread; two or more whose std was computed with
        # ddof >= count (a division by zero or less) have an unknown one.
        m2 = xp.where(dof > 0, s * s * xp.where(dof > 0, dof, 0), xp.nan)
        m2 = xp.where(c <= 1, 0.0, m2)
        mu = xp.where(c == 0, xp.nan, mu)
        return cls._wrap((c, mu, m2))


class Summary(_State):
    """What a person watching gradients needs, mergeable like :class:`Moments`.

    Fields: ``count`` (finite values), ``mean`` and ``m2`` of the finite values,
    ``min`` and ``max`` of the finite values (NaN where count is 0),
    ``n_nonfinite`` (NaN and +-Inf, left out of all the others) and ``n_zero``.
    """

    _fields = ("count", "mean", "m2", "min", "max", "n_nonfinite", "n_zero")
    _int_fields = frozenset({"count", "n_nonfinite", "n_zero"})
    _kind = "summary"
    __slots__ = _fields

    def __init__(self, *args, **kwargs):
        raise TypeError("Summary states come from fastmoments.summarize / summarize_each")

    @property
    def moments(self) -> Moments:
        """The count/mean/m2 part as a :class:`Moments`."""
        return Moments._wrap((self.count, self.mean, self.m2))

    def norm(self):
        """L2 norm of the finite values, ``sqrt(m2 + count * mean**2)``."""
        xp = _xp(self.m2)
        sq = self.m2 + self.count * xp.where(self.count > 0, self.mean, 0.0) ** 2
        out = xp.sqrt(sq)
        return out[()] if out.ndim == 0 and xp is np else out

