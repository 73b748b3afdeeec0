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
from . import _histogram as _hist
from ._inputs import COUNT_OVERFLOW
from ._pebay import ORDERS, empty_weighted, kind_of

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
        for name in ("m2", "m4", "sum_weights", "sum_weights2"):
            if name in cls._fields and bool(xp.any(arrays[cls._fields.index(name)] < 0)):
                raise ValueError(f"{name} must be non-negative")
        return cls._wrap(_cleared_where_empty(cls._fields, _broadcast_fields(cls._fields, arrays, xp), xp))

    @classmethod
    def _fold(cls, states):
        """Merge equally shaped states one at a time, left to right, as a
        running total does: bit for bit ``states[0]._merge(states[1],
        False)._merge(states[2], False)...``, in one backend call where the
        backend has ``fold`` (k - 1 merges' Python otherwise)."""
        first = states[0]
        # One call only for states exactly of this class (not a Summary with
        # a histogram, not weighted or higher-order moments) and of one shape;
        # anything else merges one at a time, with merge's checks and errors.
        if (len(states) > 1 and all(type(s) is cls for s in states)
                and all(s.shape == first.shape for s in states)):
            be = backend_for(*first.fields)
            fold = getattr(be, "fold", None)
            if fold is not None:
                xp, shape, k = be.xp, first.shape, len(states)
                # concatenate, then reshape: a third of np.stack's time on small fields
                stacked = [xp.concatenate(f).reshape((k,) + shape) if shape else xp.stack(f)
                           for f in zip(*(s.fields for s in states))]
                fields = fold(cls._kind, stacked)
                if fields is not None:
                    return cls._wrap(fields)
        acc = first
        for s in states[1:]:
            acc = acc._merge(s, checked=False)
        return acc

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
        if not isinstance(other, self._merge_type()):
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

    def _merge_type(self):
        return type(self)

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
    def var(self, ddof=0, *, weights="frequency"):
        """Variance; NaN where its denominator is not positive.

        Without weights (and for states of unweighted data, whose sums of
        weights are their counts) it is ``m2 / (count - ddof)`` as NumPy's.
        For weighted data, ``weights`` says what the weights were:

        - ``"frequency"``: repeat counts; ``m2 / (sum_weights - ddof)``, as
          ``np.cov(x, fweights=w, ddof=ddof)``.
        - ``"reliability"``: importance; ``m2 / (sum_weights - ddof *
          sum_weights2 / sum_weights)``, as ``np.cov(x, aweights=w, ddof=ddof)``.

        (NumPy divides by a denominator <= 0 anyway: inf where m2 > 0, NaN
        where m2 = 0, with a warning. Neither is a variance, so both are NaN
        here, silently.)

        Args:
            ddof: delta degrees of freedom, a real number (as NumPy's).
            weights: ``"frequency"`` or ``"reliability"``.
        """
        _check_ddof(ddof)
        if weights not in ("frequency", "reliability"):
            raise ValueError(f'weights must be "frequency" or "reliability", got {weights!r}')
        xp = _xp(self.m2)
        if "sum_weights" not in self._fields:
            denom = self.count - ddof
        elif weights == "frequency":
            denom = self.sum_weights - ddof
        else:
            w = self.sum_weights
            with np.errstate(divide="ignore", invalid="ignore"):
                denom = w - ddof * (self.sum_weights2 / xp.where(w > 0, w, 1.0))
            denom = xp.where(w > 0, denom, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = xp.where(denom > 0, self.m2 / xp.where(denom > 0, denom, 1), xp.nan)
        return _scalar(out, xp)

    def std(self, ddof=0, *, weights="frequency"):
        """Standard deviation, the square root of :meth:`var` (same arguments)."""
        return _xp(self.m2).sqrt(self.var(ddof, weights=weights))


def _scalar(out, xp):
    return out[()] if out.ndim == 0 and xp is np else out


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
    fill = {"mean": xp.nan, "min": xp.nan, "max": xp.nan, "m2": 0.0, "m3": 0.0, "m4": 0.0,
            "sum_weights": 0.0, "sum_weights2": 0.0}
    return tuple(xp.where(empty, fill[n], a) if n in fill else a for n, a in zip(names, arrays))


def _broadcast_fields(names, arrays, xp):
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = ", ".join(f"{n} {a.shape}" for n, a in zip(names, arrays))
        raise ValueError(f"mismatched shapes: {shapes}") from None
    return tuple(xp.broadcast_to(a, shape).copy() for a in arrays)


class Moments(_State):
    """Count, mean and central moments of batches of values, weighted or not.

    A state of order 2 holds the count, mean and M2 (the sum of squared
    deviations from the mean); order 3 adds M3 and order 4 also M4 (sums of
    cubed and fourth-power deviations). States of weighted data (and every
    state of order 3 or 4) also hold ``sum_weights`` and ``sum_weights2``, the
    sums of the weights and squared weights, and their M-fields are weighted
    sums; for unweighted data both sums equal the count.

    Args:
        count: number of values (non-negative integers).
        mean: their mean (ignored where count is 0).
        m2: sum of squared deviations from the mean (non-negative).
        m3, m4: sums of cubed and fourth-power deviations (keyword only;
            ``m4`` needs ``m3``); they make a state of order 3 or 4.
        sum_weights, sum_weights2: sums of the weights and of their squares
            (keyword only, both or neither; default: the count, for
            unweighted data).

    All fields broadcast to one shape. The arrays are copied, so the state
    never shares memory with the caller.
    """

    _fields = ("count", "mean", "m2")
    _int_fields = frozenset({"count"})
    _kind = "moments"
    _order = 2
    __slots__ = _fields

    def __new__(cls, count, mean, m2, *, m3=None, m4=None, sum_weights=None, sum_weights2=None):
        if cls is not Moments:
            raise TypeError("build states with Moments(...) or from_fields")
        if m4 is not None and m3 is None:
            raise ValueError("a state of order 4 needs m3 as well as m4")
        if (sum_weights is None) != (sum_weights2 is None):
            raise ValueError("give both sum_weights and sum_weights2, or neither")
        if m3 is None and sum_weights is None:
            return Moments.from_fields(count=count, mean=mean, m2=m2)
        order = 2 if m3 is None else 3 if m4 is None else 4
        given = [v for v in (count, mean, m2, m3, m4, sum_weights, sum_weights2) if v is not None]
        xp = backend_for(*given).xp
        if sum_weights is None:
            sum_weights = sum_weights2 = _as_count(count, xp).astype(np.float64)
        fields = dict(count=count, mean=mean, m2=m2, sum_weights=sum_weights, sum_weights2=sum_weights2)
        if m3 is not None:
            fields["m3"] = m3
        if m4 is not None:
            fields["m4"] = m4
        return _WEIGHTED[order].from_fields(**fields)

    @classmethod
    def _wrap(cls, fields):
        if len(fields) != len(cls._fields):  # the layout follows from the fields given
            cls = _BY_N_FIELDS[len(fields)]
        return _State._wrap.__func__(cls, fields)

    @classmethod
    def empty(cls, shape=(), *, like=None, order=2):
        """States with count 0: the identity of :meth:`merge`.

        Args:
            shape: the shape of the state.
            like: an array whose type (NumPy or CuPy) the fields take.
            order: 2, 3 or 4.
        """
        order = _check_order(order)
        xp = backend_for(like).xp if like is not None else np
        if order > 2:
            return cls._wrap(empty_weighted(xp, shape, order))
        return cls._wrap(
            (xp.zeros(shape, np.int64), xp.full(shape, np.nan), xp.zeros(shape, np.float64))
        )

    @property
    def order(self) -> int:
        """The highest central moment this state holds: 2, 3 or 4."""
        return self._order

    # Unweighted states of order 2 keep no sums of weights: they are the counts.
    @property
    def sum_weights(self):
        """Sum of the weights of the values taken (the count for unweighted data), float64."""
        return self.count.astype(np.float64)

    @property
    def sum_weights2(self):
        """Sum of the squared weights (the count for unweighted data), float64."""
        return self.count.astype(np.float64)

    @property
    def m3(self):
        raise AttributeError(
            f"m3: this state is of order {self.order}; compute it with order=3 or 4 to have m3"
        )

    @property
    def m4(self):
        raise AttributeError(
            f"m4: this state is of order {self.order}; compute it with order=4 to have m4"
        )

    def _merge_type(self):
        return Moments

    def _merge(self, other, checked):
        a, b = self, other
        if a.order != b.order:
            raise ValueError(
                f"cannot merge a state of order {a.order} with one of order {b.order}: "
                "reduce both with the same order"
            )
        if a._kind != b._kind:  # order 2, one of them weighted: both weighted
            a, b = _as_weighted(a), _as_weighted(b)
        be = backend_for(*a.fields, *b.fields)
        return a._wrap(be.merge(a._kind, a.fields, b.fields, checked=checked))

    # -- shape of the distribution ------------------------------------------------
    def _shape_stats(self, p):
        xp = _xp(self.m2)
        w = self.sum_weights
        m2 = self.m2
        mp = self.m3 if p == 3 else self.m4
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            var = m2 / xp.where(w > 0, w, 1.0)
            # As scipy: a variance below what rounding of the mean leaves is
            # no spread at all (constant data), and its shape is undefined.
            flat = (var <= (_RESOLUTION * self.mean) ** 2) | ~(w > 0)
            if p == 3:
                g = mp / xp.where(flat, 1.0, m2 * xp.sqrt(var))
            else:
                g = mp / xp.where(flat, 1.0, m2 * var)
        return xp, w, xp.where(flat, xp.nan, g)

    def skew(self, bias=True):
        """Sample skewness, as ``scipy.stats.skew``.

        ``bias=True``: ``g1 = m3/W / (m2/W)**1.5``. ``bias=False``: the
        adjusted Fisher-Pearson ``G1 = g1 * sqrt(W*(W-1)) / (W-2)``, W the
        sum of weights (the count for unweighted data: weights act as
        frequencies). NaN where undefined: no spread (constant data), fewer
        than 3 values for ``bias=False`` (scipy silently returns the biased
        value there), or no values.

        Args:
            bias: False to correct for statistical bias.
        """
        xp, w, g = self._shape_stats(3)
        if not bias:
            with np.errstate(divide="ignore", invalid="ignore"):
                g = g * xp.sqrt(w * (w - 1.0)) / (w - 2.0)
            g = xp.where((self.count >= 3) & (w > 2.0), g, xp.nan)
        return _scalar(g, xp)

    def kurtosis(self, fisher=True, bias=True):
        """Sample kurtosis, as ``scipy.stats.kurtosis``.

        ``b2 = m4/W / (m2/W)**2``; ``fisher=True`` subtracts 3 (0 for a
        normal distribution). ``bias=False`` gives the unbiased estimator of
        scipy, ``((W+1)*b2 - 3*(W-1)) * (W-1) / ((W-2)*(W-3)) + 3`` with W the
        sum of weights (the count for unweighted data). NaN where undefined:
        no spread (constant data), fewer than 4 values for ``bias=False``, or
        no values.

        Args:
            fisher: subtract 3 (excess kurtosis).
            bias: False to correct for statistical bias.
        """
        xp, w, b2 = self._shape_stats(4)
        if not bias:
            with np.errstate(divide="ignore", invalid="ignore"):
                b2 = ((w + 1.0) * b2 - 3.0 * (w - 1.0)) * (w - 1.0) / ((w - 2.0) * (w - 3.0)) + 3.0
            b2 = xp.where((self.count >= 4) & (w > 3.0), b2, xp.nan)
        return _scalar(b2 - 3.0 if fisher else b2, xp)

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




# scipy.stats' threshold for "no spread" (np.finfo(np.float64).resolution).
_RESOLUTION = 1e-15


def _check_order(order):
    if isinstance(order, (bool, np.bool_)) or not isinstance(order, (int, np.integer)):
        raise TypeError(f"order must be an int (2, 3 or 4), got {order!r}")
    if int(order) not in ORDERS:
        raise ValueError(f"order must be 2, 3 or 4, got {order}")
    return int(order)


class _Weighted(Moments):
    """A :class:`Moments` layout that keeps the sums of weights (and M3, M4)."""

    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        raise TypeError("build states with Moments(...) or from_fields")

    def __repr__(self):
        return f"Moments(order={self._order}, {self._moment_repr()})"


def _layout(order):
    names = ("count", "sum_weights", "sum_weights2", "mean", "m2", "m3", "m4")[: 3 + order]
    slots = ("sum_weights", "sum_weights2") + names[5:]
    cls = type(
        f"_Weighted{order}",
        (_Weighted,),
        {
            "__slots__": slots,
            "__module__": __name__,
            "__doc__": f"Moments of order {order} with sums of weights; see :class:`Moments`.",
            "_fields": names,
            "_kind": kind_of(order),
            "_order": order,
        },
    )
    cls.__qualname__ = cls.__name__
    return cls


_Weighted2 = _layout(2)
_Weighted3 = _layout(3)
_Weighted4 = _layout(4)
_WEIGHTED = {2: _Weighted2, 3: _Weighted3, 4: _Weighted4}
_BY_N_FIELDS = {3: Moments, 5: _Weighted2, 6: _Weighted3, 7: _Weighted4}


def _as_weighted(state):
    """An order-2 state in the layout with sums of weights (its counts)."""
    if isinstance(state, _Weighted):
        return state
    w = state.count.astype(np.float64)
    return _Weighted2._wrap((state.count, w, w.copy(), state.mean, state.m2))


class Summary(_State):
    """What a person watching gradients needs, mergeable like :class:`Moments`.

    Fields: ``count`` (finite values), ``mean`` and ``m2`` of the finite values,
    ``min`` and ``max`` of the finite values (NaN where count is 0),
    ``n_nonfinite`` (NaN and +-Inf, left out of all the others) and ``n_zero``.

    Summaries computed with ``histogram=True`` also hold ``histogram``: int64
    counts of the finite non-zero values per binary exponent of ``|v|``, of
    shape ``shape + (N_BINS,)`` (the layout is fixed: see
    :attr:`histogram_edges` and ``fastmoments.HISTOGRAM_EXPONENTS``). It merges
    by addition; a summary with a histogram merges only with another that has one.
    """

    _fields = ("count", "mean", "m2", "min", "max", "n_nonfinite", "n_zero")
    _int_fields = frozenset({"count", "n_nonfinite", "n_zero"})
    _kind = "summary"
    __slots__ = _fields

    def __init__(self, *args, **kwargs):
        raise TypeError("Summary states come from fastmoments.summarize / summarize_each")

    @classmethod
    def _wrap(cls, fields):
        if len(fields) != len(cls._fields):  # the layout follows from the fields given
            cls = _HistSummary if len(fields) == len(_HistSummary._fields) else Summary
        return _State._wrap.__func__(cls, fields)

    @classmethod
    def from_fields(cls, **fields):
        """Build a summary from its field arrays (copied), e.g. after a transfer.

        As :meth:`_State.from_fields`; ``histogram`` (optional) is an array of
        whole non-negative counts of shape ``shape + (N_BINS,)`` (the leading
        dimensions broadcast with the other fields).
        """
        hist = fields.pop("histogram", None)
        base = _State.from_fields.__func__(Summary, **fields)
        if hist is None:
            return base
        xp = backend_for(hist, *base.fields).xp
        h = _as_count(hist, xp, "histogram")
        if h.ndim < 1 or h.shape[-1] != _hist.N_BINS:
            raise ValueError(f"histogram must have {_hist.N_BINS} bins along its last axis, got shape {h.shape}")
        try:
            shape = np.broadcast_shapes(base.shape, h.shape[:-1])
        except ValueError:
            raise ValueError(f"mismatched shapes: histogram {h.shape}, fields {base.shape}") from None
        others = tuple(xp.broadcast_to(f, shape).copy() for f in base.fields)
        h = xp.broadcast_to(h, shape + (_hist.N_BINS,)).copy()
        return _HistSummary._wrap(others + (h,))

    @property
    def has_histogram(self) -> bool:
        """Whether this summary holds a magnitude histogram (``histogram=True``)."""
        return False

    @property
    def histogram(self):
        raise AttributeError("histogram: this summary was computed without it; pass histogram=True")

    @property
    def histogram_edges(self) -> np.ndarray:
        """The N_BINS + 1 edges of the histogram's bins of ``|v|`` (NumPy,
        float64): 0, 2**-149, 2**-148, ..., 2**128, inf; bin i counts
        ``edges[i] <= |v| < edges[i + 1]``, zeros excluded."""
        return _hist.histogram_edges()

    def _merge_type(self):
        # Any Summary: one without a histogram is refused by _merge, whichever side it is on.
        return Summary

    def _merge(self, other, checked):
        if self.has_histogram != other.has_histogram:
            raise ValueError(
                "cannot merge a Summary with a histogram with one without: "
                "compute both with the same histogram= setting"
            )
        be = backend_for(*self.fields, *other.fields)
        fields = be.merge("summary", self.fields[:7], other.fields[:7], checked=checked)
        if self.has_histogram:
            h = self.histogram + other.histogram  # leading dimensions broadcast as the others'
            if checked and h.size and bool(h.min() < 0):
                raise ValueError(COUNT_OVERFLOW)
            fields = tuple(fields) + (h,)
        return self._wrap(fields)

    def reduce(self, axis=None):
        """Merge the states along ``axis`` (None: all), as a pairwise tree
        (histograms are summed).

        Args:
            axis: None, an int or a tuple of ints; negative values count from
                the end.
        """
        axes = normalize_axes(axis, self.ndim)
        be = backend_for(*self.fields)
        fields = tuple(be.reduce("summary", self.fields[:7], axes))
        if self.has_histogram:
            h = self.histogram
            if axes:
                if h.size and float(h.sum(axis=axes, dtype=np.float64).max()) >= 2.0**62:
                    host = h.get() if is_gpu_array(h) else h
                    if np.max(np.asarray(host, dtype=object).sum(axis=axes)) >= 2**63:
                        raise ValueError(COUNT_OVERFLOW)
                h = h.sum(axis=axes)
            fields += (h,)
        return self._wrap(fields)

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



class _HistSummary(Summary):
    """A :class:`Summary` with its magnitude histogram; see :class:`Summary`."""

    _fields = Summary._fields + ("histogram",)
    _int_fields = Summary._int_fields | {"histogram"}
    __slots__ = ("histogram",)

    @property
    def has_histogram(self) -> bool:
        return True

    def __getitem__(self, index):
        # The histogram's bins are a last axis of its own: index the leading ones.
        hindex = (index if isinstance(index, tuple) else (index,)) + (slice(None),)
        return self._wrap(tuple(f[index] for f in self.fields[:7]) + (self.histogram[hindex],))

    def _moment_repr(self):
        if self.ndim == 0:
            body = ", ".join(f"{k}={getattr(self, k)[()]!r}" for k in Summary._fields)
            return f"{body}, histogram=<{_hist.N_BINS} bins, {int(self.histogram.sum())} counted>"
        return f"shape={self.shape}, histogram"

    def __repr__(self):
        return f"Summary({self._moment_repr()})"


_HistSummary.__name__ = _HistSummary.__qualname__ = "_HistSummary"
