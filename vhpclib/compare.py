"""``vhpc compare``: two campaigns, or two environments, quantity by quantity, the way benchstat compares two
result files: each side's median with its n, the ratio new/old with a distribution-free interval, a verdict.

The ratio's interval is built from each median's order-statistic interval (``vhpclib.median_coverage``, the same
intervals every table and figure shows): ``[low_new / high_old, high_new / low_old]``. It needs no normality,
and since both medians lie in their intervals at once with probability at least the product of their
coverages, so does the ratio (the same rule the efficiency intervals use). A side with one run has no
interval, so no verdict: the row says how many runs are missing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import campaigns
from .exceptions import InputError
from .median_coverage import coverage_text, order_statistic_ci
from .names import Campaign
from .tables import build_tables


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a campaign and, optionally, one of its environments."""

    campaign: str
    environment: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Side":
        """``CAMPAIGN`` or ``CAMPAIGN:ENVIRONMENT``."""
        campaign, _, env = str(text).partition(":")
        return cls(campaigns.for_reading(Campaign.optional(campaign)), env or None)

    def __str__(self) -> str:
        return f"{self.campaign}:{self.environment}" if self.environment else self.campaign


@dataclass(frozen=True)
class Quantity:
    """What is compared: its name, the point it was measured at, its unit and which way is better."""

    name: str
    point: str
    unit: str
    lower_is_better: bool


def samples(campaign: str) -> dict[tuple[str, Quantity], np.ndarray]:
    """Per (environment, quantity): the values of every valid run (one value per run), warm-up runs left out
    by the one rule every table and figure applies (``analysis.WARMUP_RULE``).

    Quantities: PingPong 0-byte latency and throughput at the largest size per placement (IMB), and the
    wall time of every application point.
    """
    from . import analysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the runs left out are counted by `vhpc campaigns show`
        tables = build_tables(campaign).tables
        micro = tables.get("microbench", pd.DataFrame())
        micro = analysis.valid_micro(micro) if len(micro) else micro  # complete, the one warm-up rule applied
        apps = tables.get("apps", pd.DataFrame())
        apps = analysis.valid_apps(apps) if len(apps) else apps
    out: dict[tuple[str, Quantity], np.ndarray] = {}
    if len(micro):
        ok = micro
        for (env, placement), grp in ok.groupby(["environment", "placement"], sort=True):
            zero = grp[grp["bytes"] == 0]
            if len(zero):
                out[(env, Quantity("PingPong latency", f"{placement}, 0 B", "usec", True))] = \
                    zero.groupby("run_id")["t_avg_usec"].median().to_numpy(float)
            big = grp[grp["bytes"] == grp["bytes"].max()]
            if len(big) and big["bytes"].max() > 0:
                size = int(big["bytes"].max())
                out[(env, Quantity("PingPong throughput", f"{placement}, {_bytes(size)}", "GB/s", False))] = \
                    (big.groupby("run_id")["mbytes_per_sec"].median() / 1000.0).to_numpy(float)
    if len(apps):
        ok = apps
        keys = ["environment", "stage", "workload", "problem", "nprocs", "threads_per_proc"]
        for (env, stage, workload, problem, p, t), grp in ok.groupby(keys, sort=True):
            point = f"{stage}, {problem}, {int(p)} proc x {int(t)} thr"
            out[(env, Quantity(f"{workload} wall time", point, "s", True))] = grp["time_s"].to_numpy(float)
    return out


def _bytes(b: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= size and b % size == 0:
            return f"{b // size} {unit}"
    return f"{b} B"


@dataclass
class Row:
    """One quantity compared: medians and n of both sides, the ratio with its interval, and the verdict."""

    environment: str
    quantity: Quantity
    old_median: float
    old_n: int
    new_median: float
    new_n: int
    ratio: float
    low: float
    high: float
    coverage: float
    verdict: str

    def cells(self) -> list[str]:
        q = self.quantity
        interval = (f"[{_pct(self.low)}, {_pct(self.high)}] ({coverage_text(self.coverage)})"
                    if self.low == self.low else "no interval")
        return [q.name, q.point, self.environment, f"{_num(self.old_median)} {q.unit}", str(self.old_n),
                f"{_num(self.new_median)} {q.unit}", str(self.new_n), _pct(self.ratio), interval, self.verdict]


HEADER = ["quantity", "point", "environment", "old median", "n", "new median", "n", "new vs old", "interval",
          "verdict"]


def _num(x: float) -> str:
    return f"{x:.4g}"


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def median_interval(values: np.ndarray) -> tuple[float, float, float, float]:
    """Median, its order-statistic interval and the interval's true coverage (NaN bounds for one run)."""
    x = np.sort(np.asarray(values, dtype=float))
    med = float(np.median(x))
    if x.size < 2:
        return med, math.nan, math.nan, math.nan
    j, k, coverage = order_statistic_ci(int(x.size))
    return med, float(x[j]), float(x[k]), coverage


def compare_values(environment: str, quantity: Quantity, old: np.ndarray, new: np.ndarray) -> Row:
    """The comparison of one quantity: ratio new/old of the medians with a distribution-free interval."""
    om, olo, ohi, ocov = median_interval(old)
    nm, nlo, nhi, ncov = median_interval(new)
    ratio = nm / om if om else math.nan
    if math.isnan(ocov) or math.isnan(ncov) or olo <= 0:
        need = [f"{side} has {n} run{'s' if n != 1 else ''}" for side, n in (("old", old.size), ("new", new.size))
                if n < 2]
        return Row(environment, quantity, om, int(old.size), nm, int(new.size), ratio, math.nan, math.nan, math.nan,
                   f"not resolved: {', '.join(need) or 'no interval'} (an interval needs 2 or more per side)")
    low, high = nlo / ohi, nhi / olo
    coverage = ocov * ncov
    if low > 1 or high < 1:
        better = (high < 1) == quantity.lower_is_better
        verdict = f"{'better' if better else 'worse'}: the interval excludes 0 %"
    else:
        verdict = "no difference resolved: the interval contains 0 %"
    return Row(environment, quantity, om, int(old.size), nm, int(new.size), ratio, low, high, coverage, verdict)


def _pairs(old: Side, new: Side, a: dict, b: dict) -> Iterable[tuple[str, Quantity, np.ndarray, np.ndarray]]:
    if old.environment or new.environment:
        eo, en = old.environment, new.environment
        envs_a = {e for e, _ in a} if eo is None else {eo}
        envs_b = {e for e, _ in b} if en is None else {en}
        if len(envs_a) != 1 or len(envs_b) != 1:
            raise InputError(f"compare: name one environment on each side (CAMPAIGN:ENVIRONMENT); {old} has "
                             f"{', '.join(sorted(envs_a))}, {new} has {', '.join(sorted(envs_b))}", key="compare")
        (eo,), (en,) = envs_a, envs_b
        label = eo if eo == en else f"{eo} -> {en}"
        for (env, q), values in a.items():
            if env == eo and (en, q) in b:
                yield label, q, values, b[(en, q)]
        return
    for (env, q), values in a.items():
        if (env, q) in b:
            yield env, q, values, b[(env, q)]


def compare(old: Side, new: Side) -> list[Row]:
    """Every quantity both sides measured, compared; an ``InputError`` when they share none."""
    a, b = samples(old.campaign), samples(new.campaign)
    for side, found in ((old, a), (new, b)):
        if side.environment and side.environment not in {e for e, _ in found}:
            have = ", ".join(sorted({e for e, _ in found})) or "none with valid runs"
            raise InputError(f"compare: campaign {side.campaign} has no environment {side.environment!r} "
                             f"(environments: {have})", key="compare")
    rows = [compare_values(env, q, x, y) for env, q, x, y in _pairs(old, new, a, b)]
    if not rows:
        raise InputError(f"compare: {old} and {new} measured no quantity in common (same workload, problem, "
                         "process count and placement)", key="compare")
    return rows
