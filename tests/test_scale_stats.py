"""Statistics and figures whose cost grows with points, not runs: same numbers, bounded work."""

import math

import numpy as np
import pandas as pd

from vhpclib import analysis
from vhpclib.figures import distributions
from vhpclib.median_coverage import order_statistic_ci


def _by_definition(n: int, confidence: float) -> tuple[int, int]:
    """The narrowest symmetric pair with coverage >= confidence, from exact binomial sums."""
    total, coefs = 2 ** n, [math.comb(n, i) for i in range(n + 1)]
    inside = total - 2  # all but the extremes: between x_(0) and x_(n-1)
    best = (0, n - 1)
    for j in range(n // 2):
        if j:
            inside -= 2 * coefs[j]
        if inside / total >= confidence:
            best = (j, n - 1 - j)
        else:
            break
    return best


def test_median_interval_of_thousands_of_runs_is_exact_and_quick():
    for n in (7, 50, 1021, 2500):
        j, k, coverage = order_statistic_ci(n, 0.95)
        assert (j, k) == _by_definition(n, 0.95)
        assert 0.95 <= coverage and (n < 1000 or coverage < 0.96)
    assert order_statistic_ci(20000, 0.95)[:2] == (9860, 10139)  # past float range: exact integers


def test_bootstrap_in_blocks_draws_the_same_resamples():
    rng = np.random.default_rng(3)
    base, other = rng.lognormal(0, 0.05, 900), rng.lognormal(0.1, 0.05, 800)
    gen = np.random.default_rng(analysis.BOOTSTRAP_SEED)
    io = gen.integers(0, other.size, (analysis.BOOTSTRAP_RESAMPLES, other.size), dtype="int64")
    ib = gen.integers(0, base.size, (analysis.BOOTSTRAP_RESAMPLES, base.size), dtype="int64")
    theta = np.median(other[io], axis=-1) / np.median(base[ib], axis=-1)
    expected = tuple(np.quantile(theta, [0.025, 0.975]))
    assert analysis._ratio_of_medians_ci(base, other, 0.95) == expected


def _runs(n: int, env: str) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return pd.DataFrame({"campaign": "c", "environment": env, "label": env, "stage": "single-node",
                         "workload": "blockss", "problem": "small", "nprocs": 2, "threads_per_proc": 1,
                         "repetition": np.arange(1, n + 1), "run_id": [f"b-r{i}" for i in range(1, n + 1)],
                         "time_s": rng.lognormal(0, 0.05, n), "verified": True, "status": "complete"})


def test_a_large_sample_is_drawn_as_a_box_a_small_one_run_by_run():
    apps = pd.concat([_runs(2000, "local"), _runs(12, "guest")], ignore_index=True)
    fig = distributions.wall_time_distribution(apps)
    kinds = {(t.type, t.name) for t in fig.data}
    assert ("box", "local") in kinds and ("violin", "guest") in kinds
    points = sum(len(t.y) for t in fig.data if t.y is not None)
    assert points < 40  # not 2012 markers
    box = next(t for t in fig.data if t.type == "box")
    kept = apps[apps["environment"] == "local"]["time_s"]
    assert math.isclose(box.median[0], float(np.quantile(kept, 0.5)), rel_tol=0.01)
    assert "box of quantiles" in fig.layout.title.text
