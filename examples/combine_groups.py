"""The seed example done right: running mean/std of a stream of random groups.

Each group arrives as (mean, std, n), as a published summary would; fastmoments
combines them exactly, including groups of one value (whose std is undefined)
and empty groups, and the result is printed beside the all-at-once numbers.
"""

import argparse

import numpy as np

import fastmoments as fm


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--groups", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    seen = []
    mean, std, n = np.nan, np.nan, 0
    print(f"{'group':>5} {'n':>5} {'group mean':>11} {'group std':>10} | "
          f"{'running mean':>12} {'running std':>11} {'all-at-once mean':>16} {'std':>10}")
    for g in range(args.groups):
        size = int(rng.choice([0, 1, 2, 5, 50, 400]))
        values = rng.normal(rng.uniform(-3, 3), rng.uniform(0.5, 2), size=size)
        seen.append(values)
        g_mean = values.mean() if size else np.nan
        g_std = values.std(ddof=1) if size > 1 else np.nan  # undefined for n <= 1
        mean, std, n = fm.combine_mean_std(mean, std, n, g_mean, g_std, size)
        everything = np.concatenate(seen)
        ref_mean = everything.mean() if everything.size else np.nan
        ref_std = everything.std(ddof=1) if everything.size > 1 else np.nan
        print(f"{g:>5} {size:>5} {g_mean:>11.5f} {g_std:>10.5f} | "
              f"{mean:>12.6f} {std:>11.6f} {ref_mean:>16.6f} {ref_std:>10.6f}")
    # The same with states and a stream accumulator:
    rm = fm.RunningMoments()
    for values in seen:
        rm.update(values)
    print(f"RunningMoments over the same stream: n={int(rm.count)} mean={float(rm.mean):.6f} "
          f"std={float(rm.std(ddof=1)):.6f}")


if __name__ == "__main__":
    main()
