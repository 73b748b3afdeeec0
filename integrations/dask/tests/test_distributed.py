"""fastmoments_dask on a real distributed cluster: two worker processes.

The cluster is started by the fixture and shut down after the module; the
states travel between processes by pickle, so this also covers their
serialization and the tree combine running on other workers than the chunks.
"""

from __future__ import annotations

import logging

import dask
import dask.array as da
import numpy as np
import pytest

import fastmoments
import fastmoments_dask as fmd

from test_reduction import check_moments, close

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: CI may run other clusters
        silence_logs=logging.ERROR,
    ) as cluster, distributed.Client(cluster, timeout="30s") as c:
        c.wait_for_workers(2, timeout=60)
        yield c


X = np.random.default_rng(7).normal(-4.0, 3.0, size=(3000, 12))


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)], ids=str)
@pytest.mark.parametrize("chunks", [(250, 5), (1000, 12), (97, 7)], ids=str)
def test_moments_on_cluster(client, axis, chunks):
    d = da.from_array(X, chunks=chunks)
    lazy = fmd.moments(d, axis=axis, split_every=3)
    m = client.compute(lazy).result(timeout=60)
    check_moments(m, X, axis)
    (m2,) = dask.compute(lazy)  # the client is the default scheduler now
    check_moments(m2, X, axis)


def test_both_workers_took_part(client):
    d = da.from_array(X, chunks=(50, 12))  # 60 chunks
    with distributed.get_task_stream(client) as ts:
        m = client.compute(fmd.moments(d, axis=0)).result(timeout=60)
    check_moments(m, X, 0)
    ran = {t["worker"] for t in ts.data if "fastmoments" in str(t["key"])}
    assert len(ran) == 2, f"fastmoments tasks ran on {ran}"


def test_summarize_and_persist_on_cluster(client):
    x = X.copy()
    x[::17, 3] = np.nan
    x[5, 7] = np.inf
    d = da.from_array(x, chunks=(300, 4))
    s = client.compute(fmd.summarize(d, axis=0, split_every=2)).result(timeout=60)
    assert isinstance(s, fastmoments.Summary)
    finite = np.isfinite(x)
    xf = np.where(finite, x, np.nan)
    np.testing.assert_array_equal(s.count, finite.sum(0))
    np.testing.assert_array_equal(s.n_nonfinite, (~finite).sum(0))
    np.testing.assert_array_equal(s.min, np.nanmin(xf, 0))
    close(s.var(), np.nanvar(xf, 0))
    x[5, 7] = np.nan  # moments' skipna leaves out NaN only; +-Inf would propagate
    d = da.from_array(x, chunks=(300, 4))
    p = client.persist(fmd.moments(d, axis=0, skipna=True))
    m = p.compute()
    check_moments(m, x, 0, skipna=True)
    close(p.std(ddof=1).compute(), np.nanstd(x, 0, ddof=1))


def test_weighted_order_4_on_cluster(client):
    # weighted states of order 4 travel between worker processes (pickled
    # layouts), persist keeps the layout, a bad weight is a ValueError here too
    from test_weighted import check_state

    w = np.random.default_rng(8).random(X.shape)
    w[::7, 2] = 0.0
    d = da.from_array(X, chunks=(250, 5))
    dw = da.from_array(w, chunks=(400, 12))
    lazy = fmd.moments(d, axis=0, weights=dw, order=4, split_every=3)
    m = client.compute(lazy).result(timeout=60)
    check_state(m, X, w, 0, 4)
    p = client.persist(lazy)
    assert p.order == 4 and p.weighted
    close(p.kurtosis(bias=False).compute(), m.kurtosis(bias=False), scale=1.0)
    w1 = np.random.default_rng(9).random(X.shape[0])
    m1 = client.compute(fmd.moments(d, axis=0, weights=da.from_array(w1, chunks=700), order=3)).result(timeout=60)
    check_state(m1, X, np.broadcast_to(w1[:, None], X.shape), 0, 3)
    bad = w.copy()
    bad[2000, 4] = -1.0
    with pytest.raises(ValueError, match="negative"):
        client.compute(fmd.moments(d, axis=0, weights=da.from_array(bad, chunks=(400, 12)))).result(timeout=60)
