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
- which quantities a point reports is its workload's (``Workload.watch``: by default its table's,
  e.g. wall time for the application table, 0-byte latency for the microbenchmark one); a workload
  may size its point first (``Workload.dimension``: a microbenchmark measures the within-run and
  between-run variance and chooses its iterations per run).

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
from tqdm.auto import tqdm

from .. import stats
from ..fsutil import atomic_write
from ..exceptions import MalformedResult
from ..names import Stage
from ..params import StageParams
from ..record import COMPLETE
from ..store import StoredRun, utc_stamp
from ..workloads import Point, Watch, Workload

if TYPE_CHECKING:
    from .loop import PointRunner

RECORD_FOLDER = "_stopping"  # "_" cannot start a run id, so this folder is never taken for a run
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
    #: For an overhead (unit %): what its interval lets a reader say (``vhpclib.verdict``).
    verdict: str = ""

    def line(self) -> str:
        """One sentence: the value, how wide its interval is and with what coverage, the target, the runs."""
        from ..median_coverage import coverage_text

        value = f"{self.estimate:.4g} {self.unit} [{self.low:.4g}, {self.high:.4g}]"
        warm = f"; warm-up left out: {', '.join(self.warmup)}" if self.warmup else ""
        said = f"; {self.verdict}" if self.verdict else ""
        return (f"{self.environment}: {self.quantity} {self.point}: {value}; the interval is within "
                f"±{self.halfwidth_pct:.1f} % of the value at {coverage_text(self.confidence)} coverage "
                f"(target ±{self.target_pct:g} %), after {self.runs} run(s), {self.values} used{warm}: "
                f"{self.reason}{said}")


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
        said = ""
        if self.unit == "%":
            from ..verdict import verdict

            per_side = interval.n // 2 if self.kind in ("aa", "ratio") else interval.n
            said = verdict(show(interval.estimate), show(interval.low), show(interval.high), per_side).text
        return Outcome(self.name, self.environment, self.point, self.unit, show(interval.estimate),
                       show(interval.low), show(interval.high), round(interval.halfwidth_pct, 4), target, n,
                       interval.n, warm, look, interval.coverage, reason, said)


@dataclass
class Group:
    """The series of one point across environments and the quantities they report: they stop together."""

    key: str
    series: list[Series]
    quantities: list[Quantity] = field(default_factory=list)


def _quantities_of(series: Series, stage: str) -> list[Quantity]:
    """What a series reports by itself (the medians): what its workload watches."""
    what, env = series.point.what, series.environment
    return [Quantity(w.name, env, what, w.unit, w.value, (series,)) for w in series.workload.watch(series.params)]


def _overhead_watch(series: Series) -> Watch | None:
    """The quantity whose ratio between environments a single-node point reports (None: none)."""
    return next((w for w in series.workload.watch(series.params) if w.overhead), None)


def build_groups(series: list[Series], stage: str, baseline: str) -> list[Group]:
    """Group series by point; add overheads (single-node): vs ``baseline`` when several environments
    take part, else the A/A check of the one environment (its runs dealt alternately to two halves)."""
    groups: dict[str, Group] = {}
    for s in series:
        groups.setdefault(s.point.what, Group(s.point.what, [])).series.append(s)
    for group in groups.values():
        for s in group.series:
            group.quantities += _quantities_of(s, stage)
        apps = [(s, w) for s in group.series if (w := _overhead_watch(s)) is not None]
        if stage != Stage.SINGLE_NODE or not apps:
            continue
        if len({s.environment for s, _ in apps}) == 1 and len(apps) == 1:
            s, w = apps[0]
            group.quantities.append(Quantity("A/A overhead", s.environment, s.point.what, "%", w.value, (s,),
                                             kind="aa", scale=100.0, shift=1.0))
            continue
        base, _ = next(((s, w) for s, w in apps if s.environment == baseline), apps[0])
        for s, w in apps:
            if s is not base and s.point.stem == base.point.stem:
                group.quantities.append(Quantity(f"overhead vs {base.environment}", s.environment, s.point.what,
                                                 "%", w.value, (base, s), kind="ratio", scale=100.0, shift=1.0))
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
                point, point_params, record = workload.dimension(runner, point, runner.params, schedule, counts)
                if record is not None:
                    two_level.append(record)
                out.append(Series(runner, workload, point, point_params, counts.get(point.stem, 0)))
    return out


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
