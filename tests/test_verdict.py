"""A verdict per comparison: resolved, consistent with zero, or how many more runs the noise asks for."""

from __future__ import annotations

import numpy as np
import pytest

from vhpclib import stats
from vhpclib.verdict import NO_INTERVAL, RESOLVED, UNRESOLVED, ZERO, verdict


def test_an_interval_excluding_zero_is_resolved_on_either_side() -> None:
    assert verdict(11.0, 4.0, 18.0, 20).kind == RESOLVED
    assert verdict(-6.0, -9.0, -0.5, 20).kind == RESOLVED


def test_a_narrow_interval_around_zero_is_consistent_with_zero() -> None:
    v = verdict(0.3, -1.2, 1.9, 60)
    assert v.kind == ZERO and v.text == "consistent with zero"


def test_a_wide_interval_around_zero_asks_for_more_runs_from_its_spread() -> None:
    v = verdict(3.0, -19.0, 25.0, 6)  # the A/A of a 6-run stage on a loaded machine
    assert v.kind == UNRESOLVED
    # to resolve +3 %: half-width 22 -> 3, i.e. 6 * (22/3)^2 = 322.7 runs; negligible (< 2 %) is out of reach
    assert v.more_runs == 317
    assert v.text == "not resolved at this noise: about 317 more runs needed"


def test_more_runs_is_the_nearer_verdict() -> None:
    # estimate 0.5: showing it is below 2 % needs half-width 1.5 (from 4): 10 * (4/1.5)^2 = 71.1
    assert verdict(0.5, -3.5, 4.5, 10).more_runs == 62


def test_no_interval_is_said_so() -> None:
    assert verdict(5.0, float("nan"), float("nan"), 2).kind == NO_INTERVAL


def test_the_predicted_runs_do_resolve_a_true_overhead_in_simulation() -> None:
    """The N a verdict names, spent, resolves a real 5 % overhead in most simulated experiments."""
    rng = np.random.default_rng(7)
    sd, n = 0.08, 8
    resolved = 0
    for _ in range(200):
        a = rng.lognormal(0, sd, n)
        b = rng.lognormal(np.log(1.05), sd, n)
        est, lo, hi = (100 * (v - 1) for v in stats.ratio_bounds(a, b))
        v = verdict(float(est), float(lo), float(hi), n)
        if v.kind != UNRESOLVED:
            continue
        m = n + v.more_runs
        a2, b2 = rng.lognormal(0, sd, m), rng.lognormal(np.log(1.05), sd, m)
        est, lo, hi = (100 * (v - 1) for v in stats.ratio_bounds(a2, b2))
        resolved += verdict(float(est), float(lo), float(hi), m).kind == RESOLVED
    assert resolved >= 100  # of the unresolved ones (nearly all at n=8); a guide, not a guarantee


@pytest.mark.parametrize("margin", [1.0, 5.0])
def test_the_margin_is_a_parameter(margin: float) -> None:
    assert (verdict(0.5, -0.9, 0.95, 30, margin_pct=margin).kind == ZERO)
    assert verdict(0.5, -3.0, 4.0, 30, margin_pct=margin).kind == (ZERO if margin == 5.0 else UNRESOLVED)
