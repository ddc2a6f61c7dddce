"""How many IMB iterations a PingPong run needs for a target interval: the two levels of Kalibera & Jones.

For adaptive repetitions (``Workload.dimension``), PingPong first measures a few launches of
``pingpong-levels`` (B blocks of I iterations of 0 bytes in one launch, see
``workloads/pingpong_levels.py``) per placement: the spread of blocks inside a run is the
within-run level, the spread of run means across launches the between-run level. From them it
chooses the iterations per run that reach the target interval at the least predicted cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..record import COMPLETE
from .base import Point, Workload, get_workload

if TYPE_CHECKING:
    import numpy as np

    from .. import stats
    from ..params import StageParams

BLOCKS = 10  # blocks of 0 bytes per pingpong-levels launch
BLOCK_ITERATIONS = 200  # iterations per block
PAPER_ITERATIONS = 1_000_000  # IMB iterations per size in the paper
LEVEL_RUNS = 5  # launches of pingpong-levels per placement (the dimensioning experiment)
MIN_ITERATIONS, MAX_ITERATIONS = 100, PAPER_ITERATIONS
IMB_TIME_LIMIT_S = 10.0  # IMB's default -time (max seconds per sample), src_c/IMB_settings.h SECS_PER_SAMPLE


def dimension(workload: Workload, runner: Any, point: Point, params: StageParams, schedule: stats.LookSchedule,
              counts: Mapping[str, int]) -> tuple[Point, StageParams, dict[str, Any] | None]:
    """Measure the two levels at this placement, choose IMB's iterations per run, and plan the point with them.

    Returns the point planned again, the parameters with the chosen iterations, and what the stage
    record keeps (``two_level``). ``runner`` is the stage loop's ``PointRunner``.
    """
    import numpy as np

    from .. import stats

    levels = get_workload("pingpong-levels")
    placement = point.fields["placement"]
    planned_levels = [p for p in levels.plan(runner.stage, runner.ctx, params) if isinstance(p, Point)]
    mine = [p for p in planned_levels if p.fields["placement"] == placement]
    if not mine:
        return point, params, None
    if levels not in [w for w, _ in runner.points]:
        runner.points.append((levels, planned_levels))  # prepared once, for every placement
    offset = counts.get(mine[0].stem, 0)
    runs = [runner.run(levels, mine[0], offset + k, params) for k in range(1, LEVEL_RUNS + 1)]
    raw = [np.array([r["t_avg_usec"] for r in (run.result_rows() or [])], dtype=float) for run in runs
           if run is not None and run.status == COMPLETE]
    steady, excess = within_run_warmup(raw, levels_iterations())
    try:
        components = stats.two_level(steady, levels_iterations())
    except ValueError:
        return point, params, {"environment": runner.environment, "placement": placement,
                               "error": f"too few complete dimensioning runs ({len(raw)} of {LEVEL_RUNS})"}
    durations = [r.record.duration_s or 0.0 for r in runs if r is not None and r.status == COMPLETE]
    choice = choose_iterations(components, durations, params, schedule, excess)
    record = {"environment": runner.environment, "placement": placement,
              "runs": [r.run_id for r in runs if r is not None],
              "warmup_blocks": [len(b) - len(s) for b, s in zip(raw, steady)], **choice}
    chosen = params.with_settings(workload, iterations=choice["chosen_iterations"])
    planned = next(p for p in workload.plan(runner.stage, runner.ctx, chosen)
                   if isinstance(p, Point) and p.fields["placement"] == placement)
    return planned, chosen, record


def within_run_warmup(blocks: list[np.ndarray], iterations: int) -> tuple[list[np.ndarray], float]:
    """Blocks after each run's warm-up transient (the changepoint rule, inside the run), and the median
    extra time (usec) the transient added to a run: IMB 2021.10 warms up with only a tenth of a size's
    iterations, so the first block of a launch is often slow."""
    import numpy as np

    from .. import stats

    steady, excess = [], []
    for b in blocks:
        w = int(stats.warmup_length(b)) if b.size else 0
        steady.append(b[w:])
        excess.append(float(np.sum(b[:w] - np.median(b[w:])) * iterations) if w else 0.0)
    return steady, float(np.median(excess)) if excess else 0.0


def levels_iterations() -> int:
    return BLOCK_ITERATIONS


def choose_iterations(tl: stats.TwoLevel, run_durations: list[float], params: StageParams,
                      schedule: stats.LookSchedule, warmup_excess_usec: float = 0.0) -> dict[str, Any]:
    """The iterations per run that reach the target at the least predicted cost, and what the paper's design gives.

    Cost of n runs of m iterations: n (c_run + m c_iter). The median over runs needs
    n = (1.2533 z sd(m) / (h mu))^2 runs (at least the first look), with
    sd(m)^2 = s_b^2 + s_w^2 / m. A grid search over 1-2-5 counts (which respects the first look
    and the cap; Kalibera & Jones' closed-form optimum sqrt(c_run s_w^2 / (c_iter s_b^2)) is
    recorded beside it) picks the cheapest m, or, where the cost is flat within 10 %, the
    fewest iterations. When no m reaches the target within ``max_runs``, m is the smallest
    that brings a run's spread within 10 % of its floor s_b (more iterations buy nothing).
    Either way a run must dilute the launch's warm-up transient (``warmup_excess_usec``, which
    IMB's mean over the run includes) to at most the target: m >= excess / (h mu); and stay
    within a tenth of IMB's time limit per size.
    """
    import numpy as np
    from scipy.stats import norm

    from .. import stats

    iter_cost = 2 * tl.mean * 1e-6  # one PingPong iteration is a round trip of two one-way latencies
    overheads = [d - BLOCKS * tl.iterations_per_block * iter_cost for d in run_durations]
    run_cost = max(0.05, float(np.median(overheads))) if overheads else 1.0
    target = (params.ci_target_pct or 1.0) / 100
    z = float(norm.ppf(1 - (1 - schedule.level(len(schedule.looks) - 1)) / 2))  # the last look's level

    def runs_needed(m: int) -> int:
        sd = tl.run_sd(m)
        return max(params.min_runs, math.ceil((1.2533 * z * sd / (target * tl.mean)) ** 2))

    grid = sorted({stats.nice_count(v, MIN_ITERATIONS, MAX_ITERATIONS) for v in np.logspace(2, 6, 40)})
    cost = {m: runs_needed(m) * (run_cost + m * iter_cost) for m in grid}
    feasible = [m for m in grid if runs_needed(m) <= params.max_runs]
    if feasible:  # the cheapest mix; where the cost curve is flat (within 10 %), the fewest iterations
        best = min(cost[m] for m in feasible)
        chosen = min(m for m in feasible if cost[m] <= 1.1 * best)
    else:  # the target is out of reach within max_runs: iterations only while they still narrow the runs
        floor = tl.run_sd(MAX_ITERATIONS)
        chosen = min(m for m in grid if tl.run_sd(m) <= 1.1 * floor)
    bias_floor = warmup_excess_usec / (target * tl.mean) if warmup_excess_usec > 0 else 0.0
    chosen = max(chosen, stats.nice_count(bias_floor, MIN_ITERATIONS, MAX_ITERATIONS) if bias_floor else chosen)
    # IMB stops a size after -time seconds (default 10) and prints "time-out." instead of a result:
    # keep a run's 0-byte size within a tenth of that, at a pessimistic latency (mean + 3 block sd)
    slow_iter_cost = 2 * (tl.mean + 3 * math.sqrt(tl.block_var)) * 1e-6
    time_cap = 0.1 * (_time_limit(params) or IMB_TIME_LIMIT_S) / slow_iter_cost
    chosen = min(chosen, max([m for m in grid if m <= time_cap] or [MIN_ITERATIONS]))
    return {
        "mean_usec": tl.mean, "between_sd_usec": math.sqrt(tl.between_var),
        "within_sd_usec_per_iteration": math.sqrt(tl.within_var), "block_sd_usec": math.sqrt(tl.block_var),
        "level_runs": tl.runs, "blocks": tl.blocks, "iterations_per_block": tl.iterations_per_block,
        "run_cost_s": run_cost, "iteration_cost_s": iter_cost, "warmup_excess_usec": warmup_excess_usec,
        "warmup_min_iterations": bias_floor, "time_cap_iterations": time_cap,
        "kj_optimal_iterations": tl.optimal_iterations(run_cost, iter_cost),
        "chosen_iterations": chosen, "predicted_runs": runs_needed(chosen), "target_reachable": bool(feasible),
        "predicted_cost_s": cost[chosen], "chosen_run_sd_pct": 100 * tl.run_sd(chosen) / tl.mean,
        "paper_iterations": PAPER_ITERATIONS, "paper_run_sd_pct": 100 * tl.run_sd(PAPER_ITERATIONS) / tl.mean,
        "paper_cost_s_per_size": run_cost + PAPER_ITERATIONS * iter_cost,
    }


def _time_limit(params: StageParams) -> float | None:
    return params.settings(get_workload("pingpong")).time_limit_s


__all__ = ["BLOCKS", "BLOCK_ITERATIONS", "PAPER_ITERATIONS", "choose_iterations", "dimension", "within_run_warmup"]
