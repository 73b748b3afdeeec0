"""Accuracy against certified and exact references (NIST StRD, fractions)."""

import math
import numpy as np
import pytest

import fastmoments as fm
from conftest import DATA, exact_mean_var, fsum_mean_var


def _read_nist(name):
    certified = {}
    values = []
    for line in (DATA / name).read_text().splitlines():
        if line.startswith("#"):
            words = line[1:].split()
            if words[:2] == ["certified", "mean"]:
                certified["mean"] = float(words[2])
            elif words[:2] == ["certified", "std"]:
                certified["std"] = float(words[-1])
        elif line.strip():
            values.extend(float(w) for w in line.split())
    return np.array(values), certified


@pytest.mark.parametrize("name,n", [("Lew.txt", 200), ("Lottery.txt", 218),
                                    ("Mavro.txt", 50), ("Michelso.txt", 100)])
def test_nist_certified(name, n):
    x, cert = _read_nist(name)
    assert x.size == n
    m = fm.moments(x)
    assert m.count == n
    assert m.mean == pytest.approx(cert["mean"], rel=1e-13)
    assert m.std(ddof=1) == pytest.approx(cert["std"], rel=1e-13)
    s = fm.summarize(x)
    assert s.std(ddof=1) == pytest.approx(cert["std"], rel=1e-13)


def _numacc(k):
    if k == 1:
        return np.array([10000001.0, 10000003.0, 10000002.0])
    base = {2: (1.2, 1.1, 1.3), 3: (1000000.2, 1000000.1, 1000000.3),
            4: (10000000.2, 10000000.1, 10000000.3)}[k]
    return np.array([base[0]] + [base[1], base[2]] * 500)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("split", [None, 7])
def test_numacc_exact(k, split):
    x = _numacc(k)
    mean, var = exact_mean_var(x)
    n = x.size
    exact_std = math.sqrt(float(var * n / (n - 1)))
    if split is None:
        m = fm.moments(x)
    else:  # the same data merged from uneven pieces
        parts = np.array_split(x, split)
        m = fm.moments(parts[0])
        for p in parts[1:]:
            m = m.merge(fm.moments(p))
    assert m.mean == pytest.approx(float(mean), rel=1e-15)
    # One pass keeps 1e-12. Merging pieces adds the rounding of each piece's
    # stored float64 mean (ulp(1e7) = 2e-9) to the mean differences: 1e-10.
    assert m.std(ddof=1) == pytest.approx(exact_std, rel=1e-12 if split is None else 1e-10)


def test_numacc4_certified_difference():
    # The stored doubles are not the decimals: their exact std is 0.10000000055879354.
    m = fm.moments(_numacc(4))
    assert m.std(ddof=1) == pytest.approx(0.10000000055879354, rel=1e-12)


@pytest.mark.parametrize("n", [10_000, 100_003])
def test_large_offset_float64(rng, n):
    x = 1e8 + rng.standard_normal(n)
    mean, var = (exact_mean_var if n < 50_000 else fsum_mean_var)(x)
    m = fm.moments(x)
    assert m.mean == pytest.approx(float(mean), rel=1e-15)
    assert m.var() == pytest.approx(float(var), rel=1e-9)


def test_large_offset_float32_input(rng):
    x = (1e4 + rng.standard_normal(200_000)).astype(np.float32)
    mean, var = fsum_mean_var(x)
    m = fm.moments(x)
    assert m.mean == pytest.approx(float(mean), rel=1e-12)
    assert m.var() == pytest.approx(float(var), rel=1e-8)
    s = fm.summarize(x)
    assert s.var() == pytest.approx(float(var), rel=1e-8)


@pytest.mark.parametrize("pos", [0, 8192, 8192 * 3, 8192 * 64])
def test_outlier_at_block_start(rng, pos):
    x = rng.standard_normal(8192 * 70)
    x[pos] = 1e12
    mean, var = fsum_mean_var(x)
    m = fm.moments(x)
    assert m.mean == pytest.approx(float(mean), rel=1e-13)
    assert m.var() == pytest.approx(float(var), rel=1e-12)


def test_many_blocks_float32_counts_exact():
    # 2**24 + 3 float32 ones: a float32 count would round; ours is exact int64.
    x = np.ones(2**24 + 3, np.float32)
    m = fm.moments(x)
    assert m.count.dtype == np.int64 and int(m.count) == 2**24 + 3
    assert m.mean == 1.0 and m.m2 == 0.0


def test_columns_large_offset(rng):
    x = 1e8 + rng.standard_normal((5000, 7))
    m = fm.moments(x, axis=0)
    for j in range(7):
        mean, var = exact_mean_var(x[:, j])
        assert m.mean[j] == pytest.approx(float(mean), rel=1e-15)
        assert m.var()[j] == pytest.approx(float(var), rel=1e-8)



def test_fsum_reference_matches_fractions(rng):
    x = 1e6 + rng.standard_normal(3000)
    m_exact, v_exact = exact_mean_var(x)
    m_fsum, v_fsum = fsum_mean_var(x)
    assert m_fsum == pytest.approx(float(m_exact), rel=1e-16)
    assert v_fsum == pytest.approx(float(v_exact), rel=1e-12)


@pytest.mark.parametrize("case", ["trend", "outlier_first", "far_first"])
def test_one_pass_blocks_fall_back(case):
    # Blocks are summed in one pass around the mean of their first 8 values
    # unless that shift is far from the block's mean; these cases put it far.
    from conftest import fsum_mean_var

    rng = np.random.default_rng(7)
    n = 9 * 8192 + 17  # two groups of four blocks read together, one block alone, a partial one
    if case == "trend":
        x = np.linspace(0.0, 1e3, n) + 1e5
    elif case == "outlier_first":
        x = rng.standard_normal(n) + 3.0
        x[::8192] = 1e7
    else:  # shift 1e6 off: without the fallback q cancels ~1e3-fold (measured error 1e-13)
        x = rng.standard_normal(n) + 1e8
        for b in range(0, n, 8192):
            x[b : b + 8] += 1e6
    mean, var = fsum_mean_var(x)
    for m in (fm.moments(x), fm.moments(x.reshape(1, -1), axis=1)[0], fm.summarize(x)):
        assert abs(m.mean - mean) <= 1e-15 * np.abs(x).max()
        # far_first: two-pass accuracy (measured 3e-15; 1e-13 without the fallback)
        assert abs(m.var() - var) <= (2e-14 if case == "far_first" else 1e-12) * var


@pytest.mark.parametrize("width", [5, 1000])
def test_column_tiles_fall_back(width):
    # Over axis 0, tiles after the first are summed in one pass around the
    # previous tile's column means; steps in the data put that shift far from
    # the next tile's means (redone in two passes). The error a far shift
    # causes stays below eps times the step's own share of m2, so this checks
    # the results, not that the fallback ran.
    from conftest import fsum_mean_var

    rng = np.random.default_rng(11)
    n = 200_000 if width == 5 else 2_000
    x = rng.standard_normal((n, width)) + 1e8
    x[n // 3 :] += 1e6
    x[2 * n // 3 :] -= 2e6
    m = fm.moments(x, axis=0)
    for j in (0, width // 2, width - 1):
        mean, var = fsum_mean_var(x[:, j])
        assert abs(m.mean[j] - mean) <= 1e-15 * np.abs(x[:, j]).max()
        assert abs(m.var()[j] - var) <= 1e-12 * var


def _exact_m2(x):
    from fractions import Fraction

    fr = [Fraction(float(v)) for v in x]
    mean = sum(fr) / len(fr)
    return mean, sum((v - mean) ** 2 for v in fr)


def _overflow_paths(x):
    """(name, state of all of x) for each kernel path that can reduce x."""
    yield "1-D", fm.moments(x)
    yield "skipna", fm.moments(x, skipna=True)
    yield "summary", fm.summarize(x)
    yield "row", fm.moments(x.reshape(1, -1), axis=1)[0]
    yield "column", fm.moments(x.reshape(-1, 1), axis=0)[0]
    yield "column skipna", fm.moments(x.reshape(-1, 1), axis=0, skipna=True)[0]
    yield "column summary", fm.summarize(x.reshape(-1, 1), axis=0)[0]
    yield "merged halves", fm.moments(x[: x.size // 2]).merge(fm.moments(x[x.size // 2 :]))


@pytest.mark.parametrize("n", [3, 16, 65, 9000, "max", "offset"])
def test_m2_overflow_is_inf_on_every_path(n):
    # The squared deviations pass float64's range while the mean does not:
    # m2 is inf (as np.var says), never the NaN of inf - inf.
    if n == "max":
        x = np.array([1e308, -1e308, 1e308])
    elif n == "offset":
        x = np.array([1e300, 1e300 * 1.0000001, 1e300])
    else:
        x = np.full(n, 1e300)
        x[::2] = -1e300
    mean, m2 = _exact_m2(x)
    assert m2 > np.finfo(np.float64).max
    for name, m in _overflow_paths(x):
        assert m.m2 == np.inf, name
        assert m.mean == pytest.approx(float(mean), rel=1e-15, abs=1e-12 * 1e300), name


def test_m2_near_the_range_end_stays_finite():
    # Deviations of 1e152: m2 = 9e307, just below the range's end.
    x = np.full(9000, 1e152)
    x[::2] = -1e152
    mean, m2 = _exact_m2(x)
    for name, m in _overflow_paths(x):
        assert m.m2 == pytest.approx(float(m2), rel=1e-12), name


def test_merge_of_means_whose_difference_overflows():
    a = fm.moments(np.array([1.7e308]))
    b = fm.moments(np.array([-1.7e308]))
    m = a.merge(b)
    assert m.mean == 0.0 and m.m2 == np.inf and m.count == 2
    assert fm.moments(np.array([1.7e308, -1.7e308])).mean == 0.0
    # elementwise, with broadcasting
    e = fm.moments(np.array([[1.7e308, 1.0]]), axis=0).merge(fm.moments(np.array([[-1.7e308, 3.0]]), axis=0))
    assert e.mean.tolist() == [0.0, 2.0] and e.m2.tolist() == [np.inf, 2.0]


def _offset_paths(x):
    """(name, variance of x) along each CPU path that merges block or tile states."""
    yield "1-D", fm.moments(x).var()
    yield "1-D skipna", fm.moments(x, skipna=True).var()
    yield "1-D summary", fm.summarize(x).var()
    yield "summarize_each", fm.summarize_each([x, x[:1000]])[0].var()
    yield "rows", fm.moments(np.stack([x, x[::-1]]), axis=1).var()[1]
    for w in (3, 5, 1100):  # narrow (copies merged), and wide (tile columns in blocks)
        n = x.size if w < 1000 else 20_000
        cols = np.repeat(x[:n, None], w, axis=1)
        ref = fsum_mean_var(x[:n])[1]
        for name, m in (("", fm.moments(cols, axis=0)), (" skipna", fm.moments(cols, axis=0, skipna=True)),
                        (" summary", fm.summarize(cols, axis=0))):
            yield f"columns {w}{name}", m.var()[w - 1] * (fsum_mean_var(x)[1] / ref)


@pytest.mark.parametrize("data", ["1e10 + normal", "timestamps", "1e8 + normal, float32 trend"])
def test_offset_data_keeps_two_pass_accuracy(data):
    # Block and tile means are merged relative to an origin near the data, so
    # an offset far beyond the spread costs no digits of the variance. Stored
    # as plain float64 means, they cost 2*eps*|mean|/(std*sqrt(n)): measured
    # 2.3e-9 for the first case and 9e-11 for the second (2026-11-28).
    rng = np.random.default_rng(5)
    if data == "1e10 + normal":
        x = 1e10 + rng.standard_normal(300_001)
    elif data == "timestamps":
        x = 1.7e9 + rng.uniform(0, 10, 400_003)
    else:
        x = (1e8 + np.linspace(0, 50, 200_000) + rng.standard_normal(200_000)).astype(np.float32)
    mean, var = fsum_mean_var(x)
    for name, v in _offset_paths(x):
        assert abs(v - var) <= 1e-13 * var, name
    assert fm.moments(x).mean == pytest.approx(mean, rel=1e-16)


def test_origin_ignores_outlying_samples():
    # Block and tile means merge relative to a median of samples of the data
    # (9 per row, 3 per column): outliers at a few of the sampled places must
    # not cost accuracy. Outliers at every sampled place put the origin far
    # from the bulk, but a value of the data is never more than sqrt(n)
    # standard deviations from the mean, which bounds what it can cost.
    rng = np.random.default_rng(6)
    n = 8 * 8192 + 1
    samples = [i * (n - 1) // 8 for i in range(9)]
    for outliers in (samples[:1] + samples[3:4], samples, [0, n // 2, n - 1]):
        x = 1e9 + rng.standard_normal(n)
        x[outliers] = 1e15
        mean, var = fsum_mean_var(x)
        for name, v in _offset_paths(x):
            if name.startswith("columns"):
                continue  # their windows hold other values
            assert abs(v - var) <= 1e-12 * var, (outliers, name)
        for w in (3, 1100):
            cols = np.repeat(x[:, None], w, axis=1)
            for m in (fm.moments(cols, axis=0), fm.summarize(cols, axis=0)):
                assert abs(m.var()[0] - var) <= 1e-12 * var, (outliers, w)


def _row_paths(x):
    """The CPU paths that reduce x: as a row, and as a column (after the tiles, a redo)."""
    yield "1-D", fm.moments(x)
    yield "skipna", fm.moments(np.append(x, np.nan), skipna=True)
    yield "summary", fm.summarize(np.append(x, [np.inf, -np.inf]))
    yield "row", fm.moments(np.vstack([x, x]), axis=1)[1]
    yield "row summary", fm.summarize(np.vstack([x, x]), axis=1)[1]
    col = np.column_stack([np.ones_like(x), x])
    yield "column", fm.moments(col, axis=0)[1]
    yield "column skipna", fm.moments(np.vstack([col, [np.nan, np.nan]]), axis=0, skipna=True)[1]
    yield "column summary", fm.summarize(np.vstack([col, [np.inf, np.inf]]), axis=0)[1]


@pytest.mark.parametrize("case", ["alternating 9", "four of 1e308", "alternating 10000", "two blocks apart",
                                  "3 per row", "16 per row"])
def test_values_in_range_whose_sums_are_not(case):
    # |v| > MAX / n: the sums overflow though the mean is within the range.
    # Those rows are summed again scaled by 2**-64; before, the mean came out
    # inf or NaN, even of the wrong sign (+inf for a mean of -1.9e307).
    big = 1.7e308
    x = {
        "alternating 9": np.array([-big, big] * 4 + [-big]),
        "four of 1e308": np.full(4, 1e308),
        "alternating 10000": np.where(np.arange(10_000) % 2 == 0, -big, big),
        "two blocks apart": np.concatenate([np.full(9000, big), np.full(9000, -1e308)]),
        "3 per row": np.array([big, big, -big]),
        "16 per row": np.array([big] * 12 + [-big] * 4),
    }[case]
    mean, m2 = _exact_m2(x)
    want_m2 = float(m2) if m2 <= np.finfo(np.float64).max else np.inf
    for name, m in _row_paths(x):
        assert m.mean == pytest.approx(float(mean), rel=1e-14, abs=1e-14 * np.abs(x).max()), name
        assert m.m2 == pytest.approx(want_m2, rel=1e-12), name
