"""Adaptive repetitions: measure until every reported quantity's interval is narrow enough, or a cap is reached.

Hoefler & Belli (SC15) ask for as many measurements as a stated interval needs, with
nonparametric intervals of the median; Kalibera & Jones (ISMM 2013) for repetitions
sized from the variance measured at each level. Here:

- the quantities a stage reports (wall time per point, overhead vs the baseline or the
  A/A check, 0-byte latency and peak throughput per placement) are computed from the
  runs' stored results at planned looks (``stats.LookSchedule``: ``min_runs`` growing
  x1.5 up to ``max_runs``); a point stops at the first look where all its quantities'
  95 % intervals have a half-width <= ``ci_target_pct`` % of their value, else at the
  cap or when ``budget_s`` would be exceeded by the next block. Looks spend the error
  rate by weighted Bonferroni, so every reported interval keeps its coverage.
- a warm-up transient (``stats.warmup_length``) is left out of the statistics and named;
  the runs stay in the raw store.
- for IMB, a few launches of ``pingpong-levels`` measure the within-run and between-run
  variance first, and the iterations per run are chosen as the cheapest mix for the target.

Each call writes a stage record (``_stopping/<UTC stamp>.json`` in each environment's
stage folder; never a run) with every quantity's interval, the runs used, the warm-up
left out and why it stopped.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import norm
from tqdm.auto import tqdm

from .. import stats
from ..fsutil import atomic_write
from ..params import MicrobenchParams, StageParams
from ..exceptions import MalformedResult
from ..record import COMPLETE
from ..store import StoredRun, utc_stamp
from ..workloads import Point, Workload, get_workload

if TYPE_CHECKING:
    from .loop import PointRunner

RECORD_FOLDER = "_stopping"  # "_" cannot start a run id, so this folder is never taken for a run
PAPER_ITERATIONS = 1_000_000  # IMB iterations per size in the paper
LEVEL_RUNS = 5  # launches of pingpong-levels per placement (the dimensioning experiment)
MIN_ITERATIONS, MAX_ITERATIONS = 100, PAPER_ITERATIONS
IMB_TIME_LIMIT_S = 10.0  # IMB's default -time (max seconds per sample), src_c/IMB_settings.h SECS_PER_SAMPLE
PEAK_MIN_MSGLOG = 16  # the throughput peak is reported when sizes reach 64 KiB (it lies at large messages)
TARGET_MET, MAX_RUNS, BUDGET = "target met", "max runs", "budget"


# ---------------------------------------------------------------- per-run values

def _rows(run: StoredRun | None, cache: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    if run is None or run.status != COMPLETE:
        return []
    key = str(run.path)
    if key not in cache:
        try:
            cache[key] = run.result_rows() or []
        except (OSError, ValueError, MalformedResult):  # a damaged result counts as no value
            cache[key] = []
    return cache[key]


def wall_time(rows: list[dict[str, Any]]) -> float | None:
    """The run's time (s) when its result is verified."""
    row = rows[0] if rows else {}
    value = row.get("time_s")
    return float(value) if value is not None and row.get("verified") else None


def latency_0b(rows: list[dict[str, Any]]) -> float | None:
    """The run's 0-byte PingPong latency (usec); several 0-byte rows are averaged by their iterations."""
    zero = [r for r in rows if r.get("benchmark") == "PingPong" and r.get("bytes") == 0
            and r.get("t_avg_usec") is not None]
    if not zero:
        return None
    weights = [r.get("repetitions") or 1 for r in zero]
    return float(np.average([r["t_avg_usec"] for r in zero], weights=weights))


def peak_throughput(rows: list[dict[str, Any]]) -> float | None:
    """The run's peak PingPong throughput over message sizes (GB/s, 10^9 B/s)."""
    rates = [r["mbytes_per_sec"] for r in rows if r.get("benchmark") == "PingPong" and (r.get("bytes") or 0) > 0
             and r.get("mbytes_per_sec") is not None]
    return max(rates) / 1000.0 if rates else None


# ---------------------------------------------------------------- series, quantities, groups

@dataclass
class Series:
    """One point measured in one environment: repetitions ``offset+1 ...`` of this call, in run order."""

    runner: PointRunner
    workload: Workload
    point: Point
    params: StageParams
    offset: int = 0
    runs: dict[int, StoredRun | None] = field(default_factory=dict)

    @property
    def environment(self) -> str:
        return self.runner.environment

    def run(self, k: int) -> StoredRun | None:
        """The k-th repetition of this call (1-based), measured or reused."""
        if k not in self.runs:
            self.runs[k] = self.runner.run(self.workload, self.point, self.offset + k, self.params)
        return self.runs[k]

    def upto(self, n: int) -> list[StoredRun | None]:
        return [self.runs.get(k) for k in range(1, n + 1)]

    def seconds_per_run(self) -> float | None:
        durations = [r.record.duration_s for r in self.runs.values() if r is not None and r.record.duration_s]
        return float(np.median(durations)) if durations else None


@dataclass
class Outcome:
    """One reported quantity at the look its point stopped: printed, kept in the stage result and record."""

    quantity: str
    environment: str
    point: str
    unit: str
    estimate: float
    low: float
    high: float
    halfwidth_pct: float
    target_pct: float
    runs: int
    values: int
    warmup: list[str]
    look: int  # index of the planned look the point stopped at
    confidence: float
    reason: str

    def line(self) -> str:
        value = f"{self.estimate:.4g} {self.unit} [{self.low:.4g}, {self.high:.4g}]"
        warm = f", warm-up left out: {', '.join(self.warmup)}" if self.warmup else ""
        return (f"{self.environment}: {self.quantity} {self.point}: {value} "
                f"(+-{self.halfwidth_pct:.2f} % at {self.confidence:.4f}; target {self.target_pct:g} %) "
                f"after {self.runs} run(s), {self.values} used{warm}: {self.reason}")


@dataclass
class Quantity:
    """A reported quantity: the median of per-run values, or a ratio between two sets of runs."""

    name: str
    environment: str
    point: str
    unit: str
    value: Callable[[list[dict[str, Any]]], float | None]
    series: tuple[Series, ...]
    kind: str = "median"  # "median" | "ratio" (series[1] over series[0]) | "aa" (halves of series[0])
    scale: float = 1.0  # shown value = scale * (estimate - offset): overhead in % from a ratio
    shift: float = 0.0

    def _values(self, series: Series, n: int, cache: dict, exclude_warmup: bool) -> tuple[np.ndarray, list[str]]:
        runs = [r for r in series.upto(n) if r is not None]
        pairs = [(r.run_id, self.value(_rows(r, cache))) for r in runs]
        pairs = [(rid, v) for rid, v in pairs if v is not None and math.isfinite(v)]
        values = np.array([v for _, v in pairs], dtype=float)
        w = int(stats.warmup_length(values)) if exclude_warmup and values.size else 0
        return values[w:], [rid for rid, _ in pairs[:w]]

    def evaluate(self, n: int, level: float, cache: dict, exclude_warmup: bool) -> tuple[stats.Interval, list[str]]:
        if self.kind == "median":
            x, warm = self._values(self.series[0], n, cache, exclude_warmup)
            est, lo, hi = stats.median_bounds(x, level)
            return stats.Interval(float(est), float(lo), float(hi), int(x.size), level), warm
        if self.kind == "aa":
            x, warm = self._values(self.series[0], n, cache, exclude_warmup)
            a, b = stats.aa_halves(x)
        else:
            a, warm_a = self._values(self.series[0], n, cache, exclude_warmup)
            b, warm_b = self._values(self.series[1], n, cache, exclude_warmup)
            warm = warm_a + warm_b
        est, lo, hi = stats.ratio_bounds(a, b, level)
        return stats.Interval(float(est), float(lo), float(hi), int(a.size + b.size), level), warm

    def outcome(self, interval: stats.Interval, warm: list[str], n: int, look: int, target: float,
                reason: str) -> Outcome:
        show = lambda v: self.scale * (v - self.shift)  # noqa: E731
        return Outcome(self.name, self.environment, self.point, self.unit, show(interval.estimate),
                       show(interval.low), show(interval.high), round(interval.halfwidth_pct, 4), target, n,
                       interval.n, warm, look, interval.coverage, reason)


@dataclass
class Group:
    """The series of one point across environments and the quantities they report: they stop together."""

    key: str
    series: list[Series]
    quantities: list[Quantity] = field(default_factory=list)


def _quantities_of(series: Series, stage: str) -> list[Quantity]:
    """What a series reports by itself (the medians), by the table its workload feeds."""
    what, env = series.point.what, series.environment
    if series.workload.table == "apps":
        return [Quantity("wall time", env, what, "s", wall_time, (series,))]
    if series.workload.table == "microbench" and series.workload.name != "pingpong-levels":
        out = [Quantity("latency 0 B", env, what, "usec", latency_0b, (series,))]
        params = series.params
        if isinstance(params, MicrobenchParams) and params.msglog[1] >= PEAK_MIN_MSGLOG:
            out.append(Quantity("peak throughput", env, what, "GB/s", peak_throughput, (series,)))
        return out
    return []


def build_groups(series: list[Series], stage: str, baseline: str) -> list[Group]:
    """Group series by point; add overheads (single-node): vs ``baseline`` when several environments
    take part, else the A/A check of the one environment (its runs dealt alternately to two halves)."""
    groups: dict[str, Group] = {}
    for s in series:
        groups.setdefault(s.point.what, Group(s.point.what, [])).series.append(s)
    for group in groups.values():
        for s in group.series:
            group.quantities += _quantities_of(s, stage)
        apps = [s for s in group.series if s.workload.table == "apps"]
        if stage != "single-node" or not apps:
            continue
        if len({s.environment for s in apps}) == 1 and len(apps) == 1:
            s = apps[0]
            group.quantities.append(Quantity("A/A overhead", s.environment, s.point.what, "%", wall_time, (s,),
                                             kind="aa", scale=100.0, shift=1.0))
            continue
        base = next((s for s in apps if s.environment == baseline), apps[0])
        for s in apps:
            if s is not base and s.point.stem == base.point.stem:
                group.quantities.append(Quantity(f"overhead vs {base.environment}", s.environment, s.point.what,
                                                 "%", wall_time, (base, s), kind="ratio", scale=100.0, shift=1.0))
    return list(groups.values())


# ---------------------------------------------------------------- the driver

Order = Callable[[list[Group], int, int], list[tuple[Series, int]]]


def round_robin(groups: list[Group], first: int, last: int) -> list[tuple[Series, int]]:
    """Repetitions ``first..last`` of every series, one repetition of every point after the other."""
    return [(s, k) for k in range(first, last + 1) for g in groups for s in g.series]


@dataclass
class Clock:
    """Seconds of measuring spent in this call, against the budget."""

    budget_s: float | None
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def allows(self, todo: list[tuple[Series, int]]) -> bool:
        if self.budget_s is None:
            return True
        fallback = [s.seconds_per_run() for s, _ in todo if s.seconds_per_run()]
        default = float(np.median(fallback)) if fallback else 0.0
        predicted = sum(s.seconds_per_run() or default for s, k in todo if k not in s.runs)
        return self.elapsed + predicted <= self.budget_s


def run_adaptive(runners: dict[str, PointRunner], stage: str, params: StageParams, *, progress: bool = True,
                 order: Order = round_robin, baseline: str | None = None,
                 extra: dict[str, Any] | None = None) -> list[Outcome]:
    """Measure every point of ``runners`` until its quantities meet ``params.ci_target_pct`` (see module doc).

    Returns one ``Outcome`` per quantity and writes the stage record in each environment's stage folder.
    """
    assert params.ci_target_pct is not None
    started_utc = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock = Clock(params.budget_s)
    schedule = stats.LookSchedule.geometric(params.min_runs, params.max_runs, confidence=params.confidence)
    first = next(iter(runners.values()))
    two_level: list[dict[str, Any]] = []
    series = _series(runners, stage, params, schedule, two_level)
    groups = build_groups(series, stage, baseline or first.ctx.inventory.baseline)
    outcomes = _sequential(groups, schedule, params, clock, order, progress, f"{stage} [{', '.join(runners)}]")
    write_stage_records(runners, stage, params, schedule, outcomes, started_utc=started_utc,
                        measuring_s=clock.elapsed, two_level=two_level, extra=extra or {})
    return outcomes


def _sequential(groups: list[Group], schedule: stats.LookSchedule, params: StageParams, clock: Clock,
                order: Order, progress: bool, desc: str) -> list[Outcome]:
    target = float(params.ci_target_pct or 0)
    cache: dict[str, list[dict[str, Any]]] = {}
    done: dict[str, list[Outcome]] = {}
    last: dict[str, list[tuple[Quantity, stats.Interval, list[str]]]] = {}
    bar = tqdm(total=sum(len(g.series) for g in groups) * schedule.looks[-1], desc=desc, unit="run",
               disable=not progress)
    previous = 0
    for i, n in enumerate(schedule.looks):
        active = [g for g in groups if g.key not in done]
        if not active:
            break
        todo = order(active, previous + 1, n)
        if i > 0 and not clock.allows(todo):
            for g in active:
                done[g.key] = [q.outcome(iv, w, previous, i - 1, target,
                                         TARGET_MET if iv.halfwidth_pct <= target else BUDGET)
                               for q, iv, w in last[g.key]]
            break
        for s, k in todo:
            s.run(k)
            bar.update(1)
        level = schedule.level(i)
        for g in active:
            last[g.key] = [(q, *q.evaluate(n, level, cache, params.exclude_warmup)) for q in g.quantities]
            met = [iv.halfwidth_pct <= target for _, iv, _ in last[g.key]]
            if all(met) or i == len(schedule.looks) - 1:
                done[g.key] = [q.outcome(iv, w, n, i, target, TARGET_MET if ok else MAX_RUNS)
                               for (q, iv, w), ok in zip(last[g.key], met)]
                bar.update(len(g.series) * (schedule.looks[-1] - n))
        previous = n
    bar.close()
    return [o for g in groups for o in done.get(g.key, [])]


def _series(runners: dict[str, PointRunner], stage: str, params: StageParams, schedule: stats.LookSchedule,
            two_level: list[dict[str, Any]]) -> list[Series]:
    out: list[Series] = []
    for runner in runners.values():
        counts = runner.stored_counts() if params.rerun else {}
        for workload, points in list(runner.points):
            for point in points:
                point_params = runner.params
                if stage == "microbench" and isinstance(point_params, MicrobenchParams) \
                        and workload.name == "pingpong" and point_params.iterations is None:
                    point, point_params = _dimension(runner, workload, point, point_params, schedule, two_level,
                                                      counts)
                out.append(Series(runner, workload, point, point_params, counts.get(point.stem, 0)))
    return out


# ---------------------------------------------------------------- two levels for IMB

def _dimension(runner: PointRunner, workload: Workload, point: Point, params: MicrobenchParams,
               schedule: stats.LookSchedule, two_level: list[dict[str, Any]],
               counts: dict[str, int]) -> tuple[Point, MicrobenchParams]:
    """Measure the two levels at this placement, choose IMB's iterations per run, and plan the point with them."""
    levels = get_workload("pingpong-levels")
    placement = point.fields["placement"]
    planned_levels = [p for p in levels.plan(runner.stage, runner.ctx, params) if isinstance(p, Point)]
    mine = [p for p in planned_levels if p.fields["placement"] == placement]
    if not mine:
        return point, params
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
        two_level.append({"environment": runner.environment, "placement": placement,
                          "error": f"too few complete dimensioning runs ({len(raw)} of {LEVEL_RUNS})"})
        return point, params
    durations = [r.record.duration_s or 0.0 for r in runs if r is not None and r.status == COMPLETE]
    choice = choose_iterations(components, durations, params, schedule, excess)
    two_level.append({"environment": runner.environment, "placement": placement,
                      "runs": [r.run_id for r in runs if r is not None],
                      "warmup_blocks": [len(b) - len(s) for b, s in zip(raw, steady)], **choice})
    chosen = params.model_copy(update={"iterations": choice["chosen_iterations"]})
    planned = next(p for p in workload.plan(runner.stage, runner.ctx, chosen)
                   if isinstance(p, Point) and p.fields["placement"] == placement)
    return planned, chosen


def within_run_warmup(blocks: list[np.ndarray], iterations: int) -> tuple[list[np.ndarray], float]:
    """Blocks after each run's warm-up transient (the changepoint rule, inside the run), and the median
    extra time (usec) the transient added to a run: IMB 2021.10 warms up with only a tenth of a size's
    iterations, so the first block of a launch is often slow."""
    steady, excess = [], []
    for b in blocks:
        w = int(stats.warmup_length(b)) if b.size else 0
        steady.append(b[w:])
        excess.append(float(np.sum(b[:w] - np.median(b[w:])) * iterations) if w else 0.0)
    return steady, float(np.median(excess)) if excess else 0.0


def levels_iterations() -> int:
    from ..workloads.pingpong_levels import BLOCK_ITERATIONS

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
    from ..workloads.pingpong_levels import BLOCKS

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
    time_cap = 0.1 * (getattr(params, "time_limit_s", None) or IMB_TIME_LIMIT_S) / slow_iter_cost
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


# ---------------------------------------------------------------- the stage record

def write_stage_records(runners: dict[str, PointRunner], stage: str, params: StageParams,
                        schedule: stats.LookSchedule, outcomes: list[Outcome], *, started_utc: str,
                        measuring_s: float, two_level: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    """One JSON per call in every environment's stage folder (write-once, never a run)."""
    document = {
        "record_id": uuid.uuid4().hex, "stage": stage, "environments": list(runners),
        "started_utc": started_utc, "ended_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "measuring_s": round(measuring_s, 3),
        "params": {k: getattr(params, k) for k in ("ci_target_pct", "min_runs", "max_runs", "budget_s",
                                                    "confidence", "exclude_warmup", "rerun")},
        "rule": schedule.describe(), "looks": list(schedule.looks),
        "quantities": [asdict(o) for o in outcomes], "two_level": two_level, **extra,
    }
    text = json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"
    stamp = utc_stamp()
    for runner in runners.values():
        ctx = runner.ctx
        folder = ctx.store.root / ctx.campaign / ctx.environment / stage / RECORD_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"{stamp}.json", text)


def stage_records(campaign: str, *, store_root: Any = None) -> list[dict[str, Any]]:
    """Every stage record of a campaign (one per adaptive call), oldest first, each once."""
    from ..paths import RAW

    root = store_root or RAW
    seen: dict[str, dict[str, Any]] = {}
    for path in sorted((root / campaign).glob(f"*/*/{RECORD_FOLDER}/*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        seen.setdefault(doc.get("record_id", str(path)), doc)
    return sorted(seen.values(), key=lambda d: d.get("started_utc", ""))


def outcomes_table(records: Iterable[dict[str, Any]]):
    """The quantities of stage records as one tidy DataFrame (for notebooks and the report)."""
    import pandas as pd

    rows = [{"stage": r["stage"], "started_utc": r["started_utc"], **q} for r in records for q in r["quantities"]]
    return pd.DataFrame(rows)
