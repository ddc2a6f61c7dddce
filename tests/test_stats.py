"""The statistics behind adaptive repetitions: intervals that keep their coverage, checked by simulation.

The simulations are vectorised (thousands of experiments per array operation) and seeded, so they are
fast and give the same numbers every time. Coverage is asserted >= 95 % on skewed noise; the same
experiments without the adjustment for repeated looks are shown to fall below it, so the test can fail.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from vhpclib import stats
from vhpclib.analysis import median_ci, order_statistic_ci

SEED = 20130620  # fixed: the same simulated experiments every time


def skewed_noise(rng: np.random.Generator, kind: str, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Positive benchmark-like noise and its true median."""
    if kind == "lognormal":  # strongly right-skewed
        return rng.lognormal(0.0, 0.5, shape), 1.0
    if kind == "shifted-exponential":  # a floor plus an exponential tail: a quiet machine's run times
        return 1.0 + rng.exponential(0.3, shape), 1.0 + 0.3 * math.log(2)
    if kind == "bimodal":  # 80 % fast, 20 % slow (interference), each log-normal
        slow = rng.random(shape) < 0.2
        x = rng.lognormal(0.0, 0.05, shape) * np.where(slow, 1.3, 1.0)
        big = rng.lognormal(0.0, 0.05, 2_000_000) * np.where(rng.random(2_000_000) < 0.2, 1.3, 1.0)
        return x, float(np.median(big))
    raise ValueError(kind)


def test_median_rank_is_the_pair_analysis_reports():
    for n in range(2, 120):
        j, k, coverage = order_statistic_ci(n)
        if coverage >= 0.95:
            assert stats.median_rank(n) == j + 1 and k == n - 1 - j
            assert stats.median_coverage(n) == pytest.approx(coverage)
        else:
            assert stats.median_rank(n) == 0 and math.isnan(stats.median_coverage(n))
    values = [3.1, 2.9, 3.0, 3.3, 2.8, 3.05, 3.2, 2.95, 3.15]
    got = stats.median_interval(values)
    med, lo, hi, n = median_ci(values)
    assert (got.estimate, got.low, got.high, got.n) == (med, lo, hi, n)


def test_mann_whitney_null_distribution_is_exact():
    """The critical ranks of the ratio interval come from the exact distribution, checked by enumeration."""
    for m, n in [(3, 4), (4, 4), (5, 3), (6, 5)]:
        counts = np.zeros(m * n + 1)
        for first in itertools.combinations(range(m + n), m):
            others = [r for r in range(m + n) if r not in first]
            counts[sum(a < b for a in first for b in others)] += 1
        assert np.allclose(np.cumsum(counts) / counts.sum(), stats._mann_whitney_cdf(m, n))
    assert stats.shift_rank(3, 3) == 0  # 1/20 > 2.5 %: no 95 % interval from 3 vs 3
    assert stats.shift_rank(4, 4) == 1 and stats.shift_coverage(4, 4) == pytest.approx(1 - 2 / 70)


def test_the_normal_approximation_for_large_samples_errs_on_the_wide_side():
    for m in (40, 80):
        exact = stats.shift_rank(m, m, 0.99)
        sd = math.sqrt(m * m * (2 * m + 1) / 12)
        from scipy.stats import norm
        approx = int(math.floor(m * m / 2 - 0.5 + sd * norm.ppf(0.005))) + 1
        assert approx <= exact <= approx + 5


def test_ratio_interval_of_an_aa_pair_contains_one():
    rng = np.random.default_rng(SEED)
    x = rng.lognormal(0, 0.05, 40)
    a, b = stats.aa_halves(x)
    assert a.size == b.size == 20 and a[0] == x[0] and b[0] == x[1]
    ratio = stats.ratio_interval(a, b)
    assert ratio.low < 1 < ratio.high and ratio.halfwidth_pct < 5
    assert stats.ratio_interval(a[:3], b[:3]).halfwidth_pct == math.inf  # too few for 95 %


@pytest.mark.parametrize("kind", ["lognormal", "shifted-exponential", "bimodal"])
def test_sequential_median_rule_keeps_95_percent_coverage_on_skewed_noise(kind):
    """Stop at the first planned look whose median interval is narrow enough; the reported interval covers."""
    rng = np.random.default_rng(SEED)
    schedule = stats.LookSchedule.geometric(10, 120)
    x, truth = skewed_noise(rng, kind, (4000, schedule.looks[-1]))
    # targets chosen so the rule stops at many different looks (the hard case for coverage)
    width_mid = float(np.median(stats.halfwidth_pct(*stats.median_bounds(x[:, :35], 0.95))))
    for target in (0.7 * width_mid, width_mid, 1.4 * width_mid):
        out = stats.run_sequential(lambda n, level: stats.median_bounds(x[:, :n], level), schedule, target)
        covered = (out.low <= truth) & (truth <= out.high)
        assert len(np.unique(out.look)) >= 3, "the rule should stop at several different looks"
        assert covered.mean() >= 0.95, f"{kind}, target {target:.2f} %: coverage {covered.mean():.4f}"
        assert np.all(out.halfwidth_pct[out.met] <= target)


def test_looking_after_every_run_without_the_adjustment_undercovers():
    """A look after every run at plain 95 %: coverage drops below 95 % (why the adjustment exists)."""
    rng = np.random.default_rng(SEED)
    every_run = stats.LookSchedule(tuple(range(10, 121)))
    x, truth = skewed_noise(rng, "lognormal", (4000, 120))
    naive = stats.run_sequential(lambda n, level: stats.median_bounds(x[:, :n], 0.95), every_run, 15.0)
    adjusted = stats.run_sequential(lambda n, level: stats.median_bounds(x[:, :n], level), every_run, 15.0)
    cover = lambda o: float(((o.low <= truth) & (truth <= o.high)).mean())  # noqa: E731
    assert cover(naive) < 0.94 and cover(adjusted) >= 0.95


@pytest.mark.parametrize("true_ratio", [1.0, 1.09])
def test_sequential_ratio_rule_keeps_95_percent_coverage_on_lognormal_noise(true_ratio):
    """Overhead of B over A (A/A: 1.0; the paper's KVM on Bloss: 1.09), runs interleaved, halves compared."""
    rng = np.random.default_rng(SEED)
    schedule = stats.LookSchedule.geometric(10, 80)
    base = rng.lognormal(0.0, 0.1, (2000, schedule.looks[-1] // 2))
    other = true_ratio * rng.lognormal(0.0, 0.1, (2000, schedule.looks[-1] // 2))
    out = stats.run_sequential(lambda n, level: stats.ratio_bounds(base[:, :n // 2], other[:, :n // 2], level),
                               schedule, 6.0)
    covered = (out.low <= true_ratio) & (true_ratio <= out.high)
    assert len(np.unique(out.look)) >= 2
    assert covered.mean() >= 0.95


def test_look_schedule_spends_the_error_rate_over_the_planned_looks():
    schedule = stats.LookSchedule.geometric(10, 120)
    assert schedule.looks == (10, 15, 23, 35, 53, 80, 120)
    spent = sum(1 - schedule.level(i) for i in range(len(schedule.looks)))
    assert spent == pytest.approx(0.05)
    assert schedule.level(0) > schedule.level(6) > 0.95
    with pytest.raises(ValueError):
        stats.LookSchedule((10, 5))


def test_warmup_rule_finds_a_transient_and_rarely_flags_steady_runs():
    rng = np.random.default_rng(SEED)
    steady = rng.lognormal(0.0, 0.03, (5000, 20))
    false_alarms = np.asarray(stats.warmup_length(steady)) > 0
    assert false_alarms.mean() < 0.01
    warm = steady.copy()
    warm[:, 0] *= 1.5  # a cold first run (page cache, JIT, frequency ramp)
    warm[:, 1] *= 1.3
    found = np.asarray(stats.warmup_length(warm))
    assert (found == 2).mean() > 0.99
    assert stats.warmup_length([0.30, 0.30, 0.31, 0.30, 0.30, 0.30, 0.31, 0.30]) == 0  # IMB's two decimals
    assert stats.warmup_length([9.0, 1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0]) == 1
    assert stats.warmup_length([1.0, 9.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0]) == 0  # a later spike is noise


def test_two_levels_recover_between_and_within_run_variance():
    rng = np.random.default_rng(SEED)
    runs, blocks, iters = 400, 8, 1000
    between_sd, iteration_sd = 0.02, 0.5  # run effect; one iteration's noise
    effects = rng.normal(0, between_sd, runs)
    block_means = 1.0 + effects[:, None] + rng.normal(0, iteration_sd / math.sqrt(iters), (runs, blocks))
    got = stats.two_level(block_means, iters)
    assert got.runs == runs and got.blocks == runs * blocks
    assert math.sqrt(got.between_var) == pytest.approx(between_sd, rel=0.1)
    assert math.sqrt(got.within_var) == pytest.approx(iteration_sd, rel=0.05)
    # the optimum minimises cost at fixed variance of the grand mean: compare with a brute-force search
    c_run, c_iter = 1.0, 2e-6
    best = min(range(1, 200_000, 10), key=lambda n2: (got.between_var + got.within_var / n2) * (c_run + n2 * c_iter))
    assert got.optimal_iterations(c_run, c_iter) == pytest.approx(best, rel=0.01)
    with pytest.raises(ValueError):
        stats.two_level([[1.0, 2.0]], 10)


def test_nice_counts_are_stable_and_clamped():
    assert [stats.nice_count(v, 100, 100_000) for v in (1, 130, 2100, 4999, 7e6, math.inf)] == \
        [100, 200, 5000, 5000, 100_000, 100_000]


def test_mark_warmup_flags_the_first_runs_of_each_group_in_run_order():
    import pandas as pd

    table = pd.DataFrame({"env": ["a"] * 8 + ["b"] * 8, "repetition": list(range(8, 0, -1)) + list(range(1, 9)),
                          "t": [1.0] * 7 + [3.0] + [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.0]})
    marked = stats.mark_warmup(table, ["env"], "t")
    assert list(marked.loc[marked["warmup"], "repetition"]) == [1] and marked.loc[marked["warmup"], "env"].item() == "a"
