"""The readers' summaries on a thread of their own (readers/behind.py::_Behind),
and the CPU wing's serial kernels for a thread that asked Numba for one thread."""

import threading

import numba
import numpy as np
import pytest

import fastmoments
import fastmoments.cpu as cpu
import fastmoments.readers.behind as behind_mod
from fastmoments.readers.behind import _Behind, _worker


def _describe_threads():
    return [t for t in threading.enumerate() if t.name.startswith("fastmoments-describe")]


def _worker_idle():
    """One summary thread at most, kept between files, and nothing of ours left
    on it: a task handed to it now runs at once."""
    assert len(_describe_threads()) <= 1
    assert _worker().submit(threading.get_ident).result(timeout=10) != threading.get_ident()
    assert len(_describe_threads()) == 1


class _Recorder:
    """Stands for _Columns: records what it was given, and when."""

    def __init__(self, fail_at=None):
        self.seen, self.fail_at, self.threads = [], fail_at, set()

    def add_group(self, batches):
        self.threads.add(threading.get_ident())
        for batch in batches:
            if batch == self.fail_at:
                raise ValueError(f"bad batch {batch}")
            self.seen.append(batch)


def test_summaries_in_order_at_most_one_batch_behind_the_reader():
    acc = _Recorder()
    lag = []

    def batches():
        for i in range(40):
            lag.append(i - len(acc.seen))  # batches read but not yet summarized, before reading batch i
            yield i

    with _Behind(acc) as behind:
        for b in batches():
            behind.add(b)
    assert acc.seen == list(range(40))
    assert max(lag) <= 1, lag  # memory holds the batch summarized and the one being read
    assert acc.threads and threading.get_ident() not in acc.threads
    _worker_idle()


def test_a_failing_summary_is_raised_and_its_thread_ends():
    acc = _Recorder(fail_at=5)
    with pytest.raises(ValueError, match="bad batch 5"):
        with _Behind(acc) as behind:
            for b in range(20):
                behind.add(b)
    assert acc.seen == [0, 1, 2, 3, 4]
    _worker_idle()


def test_a_failing_reader_stops_the_summaries():
    acc = _Recorder()

    def batches():
        yield from range(3)
        raise OSError("truncated")

    with pytest.raises(OSError, match="truncated"):
        with _Behind(acc) as behind:
            for b in batches():
                behind.add(b)
    assert acc.seen == [0, 1, 2]  # what was handed over is finished, nothing after
    _worker_idle()


def test_the_last_summary_is_waited_for():
    acc = _Recorder()
    go = threading.Event()
    slow_add = acc.add_group

    def add_group(batches):
        go.wait(5)
        slow_add(batches)

    acc.add_group = add_group
    with _Behind(acc) as behind:
        behind.add("only")
        assert acc.seen == []
        go.set()
    assert acc.seen == ["only"]


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs Numba with 2 threads")
def test_a_one_thread_numba_thread_runs_the_serial_kernel(monkeypatch):
    """numba.set_num_threads is per thread: where a thread asked for one, no
    parallel region starts (a region left libgomp's worker spinning ~10 ms on
    a core the caller's other threads needed), and the result is the same."""
    calls = []
    parallel = cpu.reduce_table

    def spy(*args):
        calls.append(threading.get_ident())
        return parallel(*args)

    monkeypatch.setattr(cpu, "reduce_table", spy)
    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=cpu.PARALLEL_MIN_EACH // 4) * 10**k + k for k in range(4)]
    copies = [a.copy() for a in arrays]
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        main = fastmoments.summarize_each(arrays)
    finally:
        numba.set_num_threads(before)
    assert calls == [threading.get_ident()]

    out = {}

    def one_thread():
        numba.set_num_threads(1)
        out["s"] = fastmoments.summarize_each(arrays)

    t = threading.Thread(target=one_thread)
    t.start()
    t.join()
    assert calls == [threading.get_ident()]  # the thread took the serial kernel
    for f, g in zip(main.fields, out["s"].fields):
        np.testing.assert_array_equal(f, g)  # the serial twin splits each array as the parallel kernel does
    ref = np.array([np.mean(a) for a in arrays])
    np.testing.assert_allclose(out["s"].mean, ref, rtol=1e-13)
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)


def test_an_error_setting_the_thread_count_is_raised_as_is(monkeypatch):
    """A Numba whose threading layer cannot load raises on set_num_threads;
    that error must reach the caller as it is (the CLI's one line), not as
    a broken pool with a printed traceback."""
    def no_layer():
        raise ValueError("No threading layer could be loaded")

    monkeypatch.setattr(behind_mod, "_one_core", no_layer)
    acc = _Recorder()
    with pytest.raises(ValueError, match="No threading layer"):
        with _Behind(acc) as behind:
            behind.add(0)
            behind.add(1)
    assert acc.seen == []
    _worker_idle()


def test_the_summary_thread_is_kept_and_shared():
    """One thread for every file (starting one per file cost ~1.5 ms), and
    readers in several threads at once share it, each in its own order."""
    with _Behind(_Recorder()) as behind:
        behind.add(0)
    first = _describe_threads()
    accs = [_Recorder() for _ in range(4)]

    def read(acc):
        with _Behind(acc) as behind:
            for b in range(50):
                behind.add(b)

    ts = [threading.Thread(target=read, args=(a,)) for a in accs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for a in accs:
        assert a.seen == list(range(50))
    assert _describe_threads() == first


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform")
def test_a_forked_child_starts_its_own_summary_thread():
    """The parent's thread is not in a forked child: a reader there must not
    wait on it forever."""
    import multiprocessing

    with _Behind(_Recorder()) as behind:  # the parent's thread exists
        behind.add(0)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        assert pool.apply_async(_in_child).get(timeout=60) == list(range(5))


def _in_child():
    acc = _Recorder()
    with _Behind(acc) as behind:
        for b in range(5):
            behind.add(b)
    return acc.seen


def _wait_for(cond, seconds=30.0):
    import time

    end = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


class _Forget:
    """Stands for _Columns: keeps nothing of what it is given."""

    def add_group(self, batches):
        pass


def test_the_summary_thread_ends_when_idle_and_holds_nothing(monkeypatch):
    """No idle thread of ours stays in the process after a describe (it did:
    a ThreadPoolExecutor's, for the process's life), nor the last batches
    handed to it; the next reader starts a new one."""
    import weakref

    monkeypatch.setattr(behind_mod, "IDLE_S", 0.2)

    class Batch:
        pass

    batch = Batch()
    ref = weakref.ref(batch)
    with _Behind(_Forget()) as behind:
        behind.add(batch)
    del batch
    threads = _describe_threads()
    assert all(t.daemon for t in threads)  # an idle one never holds the interpreter's exit
    assert _wait_for(lambda: ref() is None)  # before the thread ends: nothing of a finished task kept
    assert _wait_for(lambda: not _describe_threads())
    assert not _worker().alive()
    acc = _Recorder()
    with _Behind(acc) as behind:
        for b in range(5):
            behind.add(b)
    assert acc.seen == list(range(5)) and threading.get_ident() not in acc.threads


def test_no_thread_left_after_a_describe(monkeypatch, tmp_path):
    """The CLI in process, as a library user would call it: its summary
    thread is gone once idle."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.feather as feather

    from fastmoments.cli import main

    monkeypatch.setattr(behind_mod, "IDLE_S", 0.2)
    p = tmp_path / "t.feather"
    feather.write_feather(pa.table({"f": np.arange(50_000.0)}), str(p), compression="uncompressed",
                          chunksize=1000)
    assert main(["describe", str(p), "--no-progress", "--json"]) == 0
    assert _wait_for(lambda: not _describe_threads())


def test_tasks_from_many_threads_while_the_thread_ends(monkeypatch):
    """A task handed over just as the idle thread ends is run (by a new
    thread), never lost, whichever thread hands it over."""
    import time

    monkeypatch.setattr(behind_mod, "IDLE_S", 0.001)
    w = _worker()
    bad = []

    def hand_over(j):
        for k in range(100):
            if k % 10 == j % 10:
                time.sleep(0.003)  # let the thread end now and then
            if w.submit(lambda v=(j, k): v).result(timeout=10) != (j, k):
                bad.append((j, k))

    ts = [threading.Thread(target=hand_over, args=(j,)) for j in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert bad == []
