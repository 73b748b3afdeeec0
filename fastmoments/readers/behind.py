"""Summaries behind the reads: one thread of ours summarizes a batch while a
reader reads or decodes the next (:class:`_Behind`), started on first use and
ended when idle (:class:`_Worker`)."""

from __future__ import annotations

import collections
import concurrent.futures
import os
import threading

#: Seconds the summary thread waits for work before it ends. Starting one
#: cost ~1.5 ms (its start, and Numba's first call on it), 7% of reading a
#: 400 MB Feather file: files read one after another keep it; a process that
#: described once does not keep an idle thread.
IDLE_S = 5.0


def _one_core():
    """Numba's thread count is per thread: this one runs serial kernels."""
    import numba

    numba.set_num_threads(1)


class _Worker:
    """Runs the tasks handed to it in order on one thread of its own.

    The thread starts with the first task and ends after ``IDLE_S`` seconds
    without one; the next task starts a new one. It is a daemon thread: its
    tasks are waited for by the readers that handed them over, and an idle
    one must not hold the interpreter's exit for ``IDLE_S``. Once the main
    thread has finished (``atexit`` handlers) ``submit`` raises
    RuntimeError, as ``ThreadPoolExecutor`` does: the caller then works in
    turn.
    """

    def __init__(self):
        self._cv = threading.Condition(threading.Lock())
        self._tasks = collections.deque()
        self._thread = None

    def submit(self, fn, *args) -> concurrent.futures.Future:
        if not threading.main_thread().is_alive():
            raise RuntimeError("cannot start new work at interpreter shutdown")
        future = concurrent.futures.Future()
        with self._cv:
            self._tasks.append((future, fn, args))
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="fastmoments-describe", daemon=True)
                try:
                    thread.start()
                except BaseException:  # e.g. "can't create new thread at interpreter shutdown"
                    self._tasks.pop()
                    raise
                self._thread = thread
            else:
                self._cv.notify()
        return future

    def _run(self):
        while True:
            with self._cv:
                if not self._cv.wait_for(lambda: self._tasks, timeout=IDLE_S):
                    self._thread = None  # under the lock: a submit after this starts a new thread
                    return
                future, fn, args = self._tasks.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as e:
                future.set_exception(e)
            del future, fn, args  # hold nothing of a finished task (its batches) while idle

    def alive(self) -> bool:
        """Whether the thread is running now (for tests)."""
        with self._cv:
            return self._thread is not None


_WORKER = None
_WORKER_LOCK = threading.Lock()


def _worker() -> _Worker:
    """The one summary thread's worker, shared by concurrent readers: their
    summaries take turns."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = _Worker()
        return _WORKER


def _forget_worker():
    """In a forked child: the parent's thread is not there, and a lock may
    have been held by another of its threads at the fork."""
    global _WORKER, _WORKER_LOCK
    _WORKER, _WORKER_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_worker)


class _Behind:
    """Summarizes batches on the summary thread (_worker), on one core,
    while the reader reads or decodes the next on its own threads.

    Arrow decodes a Parquet batch on both cores and waits for us meanwhile;
    summarized in turn, the summary's parallel region also left its OpenMP
    worker spinning for ~10 ms (libgomp's default wait), on a core Arrow's
    next decode needed (bench/README, "OpenMP workers spin after each
    parallel region"). An uncompressed Feather batch is copied from the
    page cache while the one before is summarized. One group at a time: the
    reader waits for the previous summary before handing over the next, so
    memory holds the batches summarized and those being read, as in turn.
    """

    def __init__(self, acc):
        self.acc = acc
        self._pool = _worker()
        self._pending = None

    def _add(self, batches):
        _one_core()  # in the task: its errors then reach result() as they are
        self.acc.add_group(batches)

    def add(self, batch):
        self.add_group([batch])

    def add_group(self, batches):
        """Summarize ``batches`` together (see _Columns.add_group), behind."""
        self.wait()
        try:
            self._pending = self._pool.submit(self._add, batches)
        except RuntimeError:  # the interpreter is shutting down (an atexit handler): in turn
            self.acc.add_group(batches)

    def wait(self):
        if self._pending is not None:
            self._pending.result()  # re-raises what the summary raised
            self._pending = None  # only once done: interrupted, __exit__ still waits for it

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pending, self._pending = self._pending, None
        if pending is not None:
            if exc[0] is None:
                pending.result()
            else:  # the reader failed: what was handed over is finished, not left running on acc
                concurrent.futures.wait([pending])
