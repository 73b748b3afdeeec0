"""Interval pooling: per-iteration Summaries of a fixed list of arrays, merged on their devices.

:class:`IntervalPool` is the per-iteration part of the monitor and knows
nothing of any framework: it takes NumPy or CuPy arrays (``None`` for an
array that is missing this iteration), groups them by device, summarizes each
group in one :func:`fastmoments.summarize_each` call (one fused launch on a
GPU) and merges the result into the group's running Summary on the same
device (on the CPU every :data:`FOLD_EVERY` iterations and at a report, all
at once, bit for bit as one at a time). Nothing is copied to the host until
:meth:`IntervalPool.collect`, except under ``check=True`` (one small device-to-host copy per group and
iteration).

It also keeps, per array, the first iteration of the interval at which it
held NaN or Inf (``first_bad``): on the host for NumPy groups (read from the
host Summary, no extra pass), on the device for CuPy groups (one tiny
elementwise launch, no synchronization).
"""

from __future__ import annotations

import sys

import numpy as np

import fastmoments

__all__ = ["IntervalPool", "NONE", "device_key", "empty_summary"]

#: ``first_bad`` of an array that held no NaN/Inf in the interval.
NONE = np.iinfo(np.int64).max

#: A CPU group merges its per-iteration Summaries every this many iterations
#: (and at a report), all at once.
FOLD_EVERY = 32


def device_key(arr):
    """``'cpu'`` for NumPy arrays, ``(module, device id)`` otherwise."""
    if type(arr) is np.ndarray:
        return "cpu"
    dev = getattr(arr, "device", None)
    return (type(arr).__module__.split(".", 1)[0], getattr(dev, "id", dev))


def _xp(arr):
    return np if type(arr) is np.ndarray else sys.modules[type(arr).__module__.split(".", 1)[0]]


def _to_host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


_EMPTY = {}


def empty_summary(n):
    """The identity Summary of shape ``(n,)`` on the host, whatever fields the Summary has
    (read-only, cached per ``n``)."""
    s = _EMPTY.get(n)
    if s is None:
        s = _EMPTY[n] = fastmoments.summarize_each([np.empty(0, np.float32)] * n)
    return s


class _on_device:
    """Makes a CuPy group's GPU current while its kernels are launched (no-op on the CPU)."""

    __slots__ = ("key", "ctx")

    def __init__(self, key):
        self.key = key
        self.ctx = None

    def __enter__(self):
        if self.key != "cpu" and self.key[0] == "cupy":
            import cupy

            self.ctx = cupy.cuda.Device(self.key[1])
            self.ctx.__enter__()

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


_FIRST_BAD_KERNEL = None


def _first_bad_gpu(first, n_nonfinite, iteration):
    """``first = where(first == NONE and n_nonfinite > 0, iteration, first)`` in one launch."""
    global _FIRST_BAD_KERNEL
    if _FIRST_BAD_KERNEL is None:
        import cupy

        _FIRST_BAD_KERNEL = cupy.ElementwiseKernel(
            "int64 bad, int64 it", "int64 first",
            "if (bad > 0 && first == 9223372036854775807LL) first = it;", "fastmoments_first_bad")
    _FIRST_BAD_KERNEL(n_nonfinite, iteration, first)


class _Group:
    """The arrays living on one device and their running Summary."""

    __slots__ = ("key", "indices", "acc", "pending", "empty", "first_bad", "cpu", "index_list", "hist")

    def __init__(self, key, indices, like):
        self.key = key
        self.indices = np.asarray(indices, np.intp)
        self.index_list = [int(i) for i in indices]
        self.acc = None
        # CPU groups: this interval's per-iteration Summaries not yet merged
        # into acc (see IntervalPool._fold).
        self.pending = []
        self.cpu = key == "cpu"
        # Stands in for a missing array: an empty array contributes the
        # identity state, so the group's Summary keeps its shape every iteration.
        # A copy, not a view: a view would keep ``like``'s whole buffer (a
        # gradient, maybe an embedding's) alive as long as the monitor.
        self.empty = like.ravel()[:0].copy()  # ravel first: 0-d arrays have no [:0]
        self.first_bad = None  # CuPy groups: per-array first bad iteration, on the device
        self.hist = None  # running magnitude histograms (histogram_every), on the device


class IntervalPool:
    """The running Summary of ``n`` arrays over one report interval.

    Args:
        n: how many arrays each :meth:`add` gets.
        scale_mask: per array, whether a loss scale applies to it (gradients:
            True; parameter values: False). Default: all.
    """

    def __init__(self, n, scale_mask=None, histogram_every=0):
        self.n = int(n)
        # Every how many iterations (by iteration number) the magnitude
        # histograms are counted too (0: never). They are kept apart from the
        # Summary (one (n, N_BINS) int64 sum per device group), so the
        # interval's Summary, its saved state and resume do not change.
        self.histogram_every = int(histogram_every)
        self.scale_mask = np.ones(self.n, bool) if scale_mask is None else np.asarray(scale_mask, bool)
        self.groups = None
        self._where = None
        self._all_cpu = self._single = False
        self.reset()

    def reset(self):
        """Start a new interval."""
        if self.groups:
            for g in self.groups.values():
                g.acc = None
                g.pending = []
                g.first_bad = None
                g.hist = None
        self.hist = None                       # host histograms carried over (device change)
        self.n_hist = 0                        # iterations whose histograms were counted
        self.host = None                       # host Summary carried over (resume, device change)
        self.n_obs = np.zeros(self.n, np.int64)  # iterations in which each array was present
        self.n_iter = 0
        self.first_bad = np.full(self.n, NONE, np.int64)  # host part of first_bad

    # -- per iteration ---------------------------------------------------------------
    def add(self, arrays, iteration, *, like=None, loss_scale=None, check=False):
        """Summarize this iteration's arrays into the interval.

        Args:
            arrays: ``n`` NumPy/CuPy arrays, ``None`` for missing ones.
            iteration: the iteration number (recorded in ``first_bad``).
            like: ``i -> array`` on the device of a missing array ``i``
                (called only when the device groups are (re)built).
            loss_scale: divide the statistics of the arrays of ``scale_mask`` by this.
            check: read the non-finite counts to the host (one copy per device).

        Returns:
            Under ``check``, the host array of this iteration's non-finite
            counts per array; otherwise None (no synchronization).
        """
        # The per-iteration Python here is ~10 us for 16 arrays; the rest of
        # the hook's time is summarize_each's pass over the values.
        missing = any(a is None for a in arrays)
        if self.groups is None or not self._same_devices(arrays, missing):
            self._regroup(arrays, like)
        if missing:
            self.n_obs += np.fromiter((a is not None for a in arrays), bool, self.n)
        else:
            self.n_obs += 1
        self.n_iter += 1
        counts = np.zeros(self.n, np.int64) if check else None
        scaled = loss_scale is not None and loss_scale != 1
        hist = self.histogram_every > 0 and int(iteration) % self.histogram_every == 0
        self.n_hist += hist
        for g in self.groups.values():
            if missing:
                empty = g.empty
                batch = [arrays[i] if arrays[i] is not None else empty for i in g.index_list]
            elif self._single:
                batch = arrays
            else:
                batch = [arrays[i] for i in g.index_list]
            if g.cpu:
                s = self._step(g, batch, scaled, loss_scale, hist)
                if check:
                    counts[g.indices] = s.n_nonfinite
                else:
                    bad = s.n_nonfinite
                    if bad.any():
                        self._mark(g.indices[bad > 0], iteration)
                continue
            with _on_device(g.key):
                s = self._step(g, batch, scaled, loss_scale, hist)
                if check:
                    counts[g.indices] = _to_host(s.n_nonfinite)
                else:
                    if g.first_bad is None:
                        g.first_bad = _xp(s.n_nonfinite).full(len(g.index_list), NONE, np.int64)
                    _first_bad_gpu(g.first_bad, s.n_nonfinite, int(iteration))
        if check and counts.any():
            self._mark(np.flatnonzero(counts), iteration)
        return counts

    def _step(self, g, batch, scaled, loss_scale, hist=False):
        if hist:
            # The histogram is of the values as given (scaled, under a loss
            # scale: those are what a float16 copy would hold).
            s = fastmoments.summarize_each(batch, histogram=True)
            g.hist = s.histogram if g.hist is None else g.hist + s.histogram
            s = fastmoments.Summary._wrap(s.fields[:7])
        else:
            s = fastmoments.summarize_each(batch)
        if scaled:
            s = self._unscale(s, g, loss_scale)
        if g.cpu:
            g.pending.append(s)
            if len(g.pending) >= FOLD_EVERY:
                self._fold(g)
        else:
            # Unchecked: counts grow by the array sizes per iteration, far from
            # int64's range, and the check would synchronize a GPU.
            g.acc = s if g.acc is None else g.acc._merge(s, checked=False)
        return s

    @staticmethod
    def _fold(g):
        """Merge a CPU group's pending Summaries into its running one, in
        iteration order: bit for bit the merges one per iteration would give
        (so resumed runs stay identical), in one call instead of a merge's
        ~25 us of Python per iteration inside the optimizer hook."""
        if g.pending:
            states = g.pending if g.acc is None else [g.acc] + g.pending
            g.acc = fastmoments.Summary._fold(states)
            g.pending = []

    def _mark(self, idx, iteration):
        fb = self.first_bad[idx]
        self.first_bad[idx] = np.where(fb == NONE, int(iteration), fb)

    def _unscale(self, s, g, loss_scale):
        """Undo loss scaling on the scaled arrays of a per-iteration Summary."""
        xp = _xp(s.mean)
        k = xp.asarray(np.where(self.scale_mask[g.indices], 1.0 / loss_scale, 1.0))
        # _wrap, not from_fields: these fields come from a valid state, and
        # from_fields' checks would synchronize a GPU every iteration.
        fields = dict(zip(type(s)._fields, s.fields))
        fields.update(mean=s.mean * k, m2=s.m2 * k * k, min=s.min * k, max=s.max * k)
        return type(s)._wrap(tuple(fields[f] for f in type(s)._fields))

    def _same_devices(self, arrays, missing=True):
        if self._all_cpu and not missing:
            for a in arrays:
                if type(a) is not np.ndarray:
                    return False
            return True
        where = self._where
        for i, a in enumerate(arrays):
            if a is not None and where[i] != device_key(a):
                return False
        return True

    def _regroup(self, arrays, like):
        """(Re)build the device groups from this iteration's arrays."""
        if self.groups:
            self.host, fb = self._collect_pair()
            self.first_bad = fb
            self.hist = self.histograms()
            for g in self.groups.values():
                g.hist = None
        keys = {}
        for i, arr in enumerate(arrays):
            if arr is None:
                arr = like(i) if like is not None else None
                if arr is None:
                    arr = np.empty(0, np.float32)
            keys.setdefault(device_key(arr), ([], arr))[0].append(i)
        self.groups = {k: _Group(k, idx, a) for k, (idx, a) in keys.items()}
        self._all_cpu = set(self.groups) == {"cpu"}
        self._single = len(self.groups) == 1  # one group holds every array, in order
        self._where = [None] * self.n
        for g in self.groups.values():
            for i in g.index_list:
                self._where[i] = g.key
        if self.host is not None:
            # The carried-over interval (resume, device change) becomes the
            # groups' starting state, so later iterations merge into it in the
            # order an uninterrupted run uses: resumed results are bit-identical.
            for g in self.groups.values():
                xp = _xp(g.empty)
                with _on_device(g.key):
                    g.acc = fastmoments.Summary._wrap(  # f[indices] is a copy: ours
                        tuple(f[g.indices] if xp is np else xp.asarray(f[g.indices]) for f in self.host.fields))
            self.host = None

    # -- at a report -----------------------------------------------------------------
    def _collect_pair(self):
        total = self.host if self.host is not None else empty_summary(self.n)
        fb = self.first_bad.copy()
        parts = []
        for g in (self.groups or {}).values():
            if g.first_bad is not None:
                d = _to_host(g.first_bad)
                fb[g.indices] = np.minimum(fb[g.indices], d)
            self._fold(g)
            if g.acc is not None:
                parts.append((g, g.acc.to_numpy()))
        if parts:
            fields = [np.array(f, copy=True) for f in empty_summary(self.n).fields]
            for g, part in parts:
                for f, v in zip(fields, part.fields):
                    f[g.indices] = v
            total = total.merge(fastmoments.Summary._wrap(tuple(fields)))
        return total, fb

    def histograms(self):
        """The interval's magnitude histograms, ``(n, N_BINS)`` int64 on the host
        (see ``fastmoments.Summary.histogram``), or None if none were counted."""
        total = None if self.hist is None else self.hist.copy()
        for g in (self.groups or {}).values():
            if g.hist is not None:
                if total is None:
                    total = np.zeros((self.n, g.hist.shape[-1]), np.int64)
                total[g.indices] += _to_host(g.hist)
        return total

    def collect(self):
        """The interval's pooled Summary of shape ``(n,)`` on the host (copies from devices),
        and ``first_bad``: per array, the first iteration with NaN/Inf (:data:`NONE`: none)."""
        return self._collect_pair()

    def load(self, summary, n_obs, n_iter, first_bad=None, hist=None, n_hist=0):
        """Start from a saved interval (resume): a host Summary of shape ``(n,)``,
        and the interval's histograms ``(n, N_BINS)`` with the number of
        iterations that counted them, if any were."""
        self.reset()
        self.host = summary
        self.n_obs = np.asarray(n_obs, np.int64).copy()
        self.n_iter = int(n_iter)
        if first_bad is not None:
            self.first_bad = np.asarray(first_bad, np.int64).copy()
        if hist is not None:
            self.hist = np.asarray(hist, np.int64).copy()
            self.n_hist = int(n_hist)
        self.groups = None
