"""Mean, covariance and a whitening matrix of a dataset streamed in batches.

The dataset is generated batch by batch (correlated features far from zero:
``z @ A + mu``, z standard normal), so with ``--batches`` large it never fits
in memory: only one batch is held at a time. ``fastmoments.RunningCoMoments``
accumulates the count, the mean vector and the co-moment matrix exactly;
the ZCA whitening matrix ``W = C^(-1/2)`` follows from the covariance. Then
the same statistics are computed in parallel over Dask chunks built from the
same batches (``fastmoments_dask.comoments``). Where the whole dataset fits
(``--check-limit``), both are checked against NumPy's all-at-once ``np.cov``.

    python examples/streaming_covariance.py                   # ~1.3 M x 48, checked
    python examples/streaming_covariance.py --batches 400     # 26 M x 48 (10 GB as float64): streamed only
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastmoments as fm


def mixing(features, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((features, features)) / np.sqrt(features)
    A += np.eye(features)
    mu = rng.uniform(-1, 1, features) * 1e4  # far from zero: naive sums of products lose digits here
    return A, mu


def batch(i, rows, features, seed):
    """Batch ``i`` of the dataset, float32 as features usually arrive."""
    A, mu = mixing(features, seed)
    z = np.random.default_rng([seed, i]).standard_normal((rows, features))
    return (z @ A + mu).astype(np.float32)


def whitening(cov):
    """ZCA whitening matrix C^(-1/2) of a symmetric positive definite C."""
    vals, vecs = np.linalg.eigh(cov)
    return (vecs / np.sqrt(vals)) @ vecs.T


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--rows", type=int, default=65_536, help="observations per batch")
    p.add_argument("--features", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check-limit", type=float, default=2e9,
                   help="check against np.cov when the whole dataset as float64 takes at most this many bytes")
    args = p.parse_args(argv)
    n = args.batches * args.rows
    d = args.features
    print(f"dataset: {args.batches} batches x {args.rows} rows = {n:,} observations of {d} features "
          f"({n * d * 4 / 1e9:.2f} GB as float32), one batch in memory at a time")

    # 1. Stream the batches through RunningCoMoments.
    t0 = time.perf_counter()
    running = fm.RunningCoMoments(d)
    for i in range(args.batches):
        running.update(batch(i, args.rows, d, args.seed))
    t_stream = time.perf_counter() - t0
    cov = running.cov()
    W = whitening(cov)
    print(f"RunningCoMoments: {t_stream:.2f} s (generation included); count {int(running.count):,}")
    print(f"  mean[:3] = {running.mean[:3]},  cov[0, :3] = {cov[0, :3]}")

    # 2. The same over Dask chunks (one chunk per batch, built lazily).
    try:
        import dask
        import dask.array as da

        import fastmoments_dask as fmd
    except ImportError:
        print("dask or fastmoments_dask not installed: the parallel part is skipped")
        state_dask = None
    else:
        chunks = [da.from_delayed(dask.delayed(batch)(i, args.rows, d, args.seed), (args.rows, d), np.float32)
                  for i in range(args.batches)]
        x = da.concatenate(chunks, axis=0)
        t0 = time.perf_counter()
        try:  # one task per core: BLAS's own threads (z @ A above) would oversubscribe them
            from threadpoolctl import threadpool_limits
        except ImportError:
            state_dask = fmd.comoments(x).compute()
        else:
            with threadpool_limits(1, "blas"):
                state_dask = fmd.comoments(x).compute()
        t_dask = time.perf_counter() - t0
        diff = np.max(np.abs(state_dask.cov() - cov)) / np.max(np.abs(cov))
        print(f"fastmoments_dask.comoments over {len(chunks)} chunks: {t_dask:.2f} s; "
              f"largest difference from the stream's covariance {diff:.1e} (relative)")
        assert diff < 1e-12, diff

    # 3. The whitening matrix does its job, checked against all-at-once np.cov.
    if n * d * 8 <= args.check_limit:
        whole = np.concatenate([batch(i, args.rows, d, args.seed) for i in range(args.batches)]).astype(np.float64)
        t0 = time.perf_counter()
        ref = np.cov(whole, rowvar=False)
        t_np = time.perf_counter() - t0
        err_cov = np.max(np.abs(cov - ref)) / np.max(np.abs(ref))
        err_mean = np.max(np.abs(running.mean - whole.mean(axis=0))) / np.max(np.sqrt(np.diag(ref)))
        white = W @ ref @ W.T
        err_white = np.max(np.abs(white - np.eye(d)))
        err_W = np.max(np.abs(W - whitening(ref))) / np.max(np.abs(W))
        print(f"np.cov on all {n:,} rows at once: {t_np:.2f} s (the data held in memory)")
        print(f"  covariance vs np.cov: {err_cov:.1e}; mean vs np.mean: {err_mean:.1e} (of the std)")
        print(f"  whitening matrix vs np.cov's: {err_W:.1e}; W @ cov @ W.T - I: {err_white:.1e}")
        # W's error is the covariance's times the condition number of the eigenproblem
        assert err_cov < 1e-12 and err_mean < 1e-12 and err_W < 1e-8 and err_white < 1e-8
        print("OK: streamed and Dask statistics match the all-at-once np.cov")
    else:
        A, _ = mixing(d, args.seed)
        true = A.T @ A
        print(f"too large to check against np.cov at once (--check-limit); against the generating covariance: "
              f"{np.max(np.abs(cov - true)) / np.max(np.abs(true)):.1e} (sampling error)")


if __name__ == "__main__":
    main()
