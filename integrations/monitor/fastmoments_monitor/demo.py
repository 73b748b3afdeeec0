"""What the framework demos share: the data, and the summary that checks each
run told its story (``fastmoments_chainer.demo``, ``fastmoments_torch.demo``).

Three runs on scikit-learn's bundled digits: ``healthy`` (no alerts),
``vanishing`` (vanishing alerts, no dead layers) and ``exploding`` (exploding
or skipped updates, then dead layers, never called vanishing).
"""

from __future__ import annotations

import sys

import numpy as np

RUN_NAMES = ("healthy", "vanishing", "exploding")


def digits():
    """(x, t): the 1,797 8x8 digits as float32 in [0, 1], shape (1797, 64), and
    their int64 labels (bundled with scikit-learn, no download)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def told_as_designed(kinds):
    """Whether the alert kinds of each run (name -> {kind: count}) are the ones
    its story should raise."""
    healthy, vanishing, exploding = (kinds.get(n, {}) for n in RUN_NAMES)
    return bool(not healthy and vanishing.get("vanishing") and not vanishing.get("dead")
                and (exploding.get("exploding") or exploding.get("skipped"))
                and exploding.get("dead") and not exploding.get("vanishing"))


def print_summary(summary, seconds, device, file=None):
    """Print each run's alert kinds and diagnosis (``summary``: name ->
    (kinds, diagnosis)); returns the exit status: 1 where all three runs ran
    and did not tell their stories, else 0."""
    print(f"\n=== summary ({seconds:.1f} s on {device}) ===", file=file)
    for name, (kinds, diagnosis) in summary.items():
        print(f"{name:10s} alerts: {kinds if kinds else 'none'}", file=file)
        print(f"{'':10s} diagnosis: {diagnosis}", file=file)
    if set(summary) == set(RUN_NAMES) and not told_as_designed({n: k for n, (k, _) in summary.items()}):
        print("unexpected: the alerts did not fire as designed", file=sys.stderr)
        return 1
    return 0
