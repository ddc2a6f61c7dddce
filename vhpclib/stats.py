"""Statistics for numbers a reviewer accepts (Hoefler & Belli, SC15; Kalibera & Jones, ISMM 2013).

- **Distribution-free intervals.** The median of repeated runs gets the binomial
  order-statistic interval; the ratio of two environments' times gets the
  Hodges–Lehmann estimate and Moses interval of the log times (inverted
  Mann–Whitney test, exact null distribution). Neither assumes normality; the
  ratio interval assumes only that the two environments' log times differ by a
  shift, which holds exactly in an A/A check.
- **Sequential stopping with stated coverage.** Runs are examined only at planned
  looks (``LookSchedule``); the error rate 1 - confidence is split over the looks
  in proportion to their run counts (weighted Bonferroni). By the union bound the
  interval reported at whatever look the rule stops - target met, run cap or
  budget - covers the true value with at least the stated confidence.
- **Warm-up.** A changepoint rule for the first runs that differ from the rest.
- **Two levels.** Between-run and within-run variance of a benchmark that repeats
  an operation inside each run, and the cost-optimal number of inner repetitions.

Functions are pure; the interval functions are vectorised over leading axes so
the coverage simulations in the test suite run thousands of experiments at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

CONFIDENCE = 0.95
#: Above this cost (m * n * min(m, n)) the Mann–Whitney critical rank uses the normal approximation.
_EXACT_MW_LIMIT = 1_500_000

Bounds = tuple[np.ndarray, np.ndarray, np.ndarray]  # estimate, low, high (arrays over leading axes)


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval; ``coverage`` is the interval's own guaranteed level (NaN: no interval)."""

    estimate: float
    low: float
    high: float
    n: int
    coverage: float

    @property
    def halfwidth_pct(self) -> float:
        """Half the interval's width as a percentage of the estimate (inf when there is no interval)."""
        return halfwidth_pct(self.estimate, self.low, self.high)


def halfwidth_pct(estimate: ArrayLike, low: ArrayLike, high: ArrayLike) -> np.ndarray | float:
    est, lo, hi = (np.asarray(v, dtype=float) for v in (estimate, low, high))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (hi - lo) / 2 / np.abs(est) * 100
    out = np.where(np.isfinite(out), out, np.inf)
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------- the median

@lru_cache(maxsize=4096)
def median_rank(n: int, confidence: float = CONFIDENCE) -> int:
    """1-based rank k with ``[x_(k), x_(n+1-k)]`` covering the median with >= ``confidence``; 0 when n is too few.

    The count of observations below the true median is Binomial(n, 1/2) for any
    continuous distribution, so the coverage ``1 - 2 P(B <= k-1)`` is exact; for
    discrete (tied) data the closed interval covers at least as often. Same pair as
    ``analysis.order_statistic_ci`` where that one reaches ``confidence``.
    """
    if n < 2:
        return 0
    k = int(np.searchsorted(_half_binomial_cdf(n), (1 - confidence) / 2, side="right"))
    return min(k, n // 2)


#: Up to this n the Binomial(n, 1/2) CDF is summed in exact integers; above, scipy's (imported then only).
_EXACT_BINOMIAL_LIMIT = 2000


@lru_cache(maxsize=256)
def _half_binomial_cdf(n: int) -> np.ndarray:
    """P(B <= k), k = 0..n, for B ~ Binomial(n, 1/2): exact for the run counts a campaign has, without the
    second it costs every ``vhpc`` invocation to import scipy.stats for it."""
    if n > _EXACT_BINOMIAL_LIMIT:
        from scipy import stats as sps

        return sps.binom.cdf(np.arange(n + 1), n, 0.5)
    cum, out, total = 0, [], 1 << n
    for k in range(n + 1):
        cum += math.comb(n, k)
        out.append(cum / total)
    return np.asarray(out)


def median_coverage(n: int, confidence: float = CONFIDENCE) -> float:
    """The exact coverage of the interval :func:`median_rank` picks (NaN when there is none)."""
    k = median_rank(n, confidence)
    return float(1 - 2 * _half_binomial_cdf(n)[k - 1]) if k else float("nan")


def median_bounds(samples: ArrayLike, confidence: float = CONFIDENCE) -> Bounds:
    """Median and its distribution-free interval along the last axis (no NaNs allowed; NaN bounds if n too few)."""
    x = np.sort(np.asarray(samples, dtype=float), axis=-1)
    n = x.shape[-1]
    est = np.median(x, axis=-1) if n else np.full(x.shape[:-1], np.nan)
    k = median_rank(n, confidence)
    if k == 0:
        nan = np.full(x.shape[:-1], np.nan)
        return est, nan, nan.copy()
    return est, x[..., k - 1], x[..., n - k]


def median_interval(values: ArrayLike, confidence: float = CONFIDENCE) -> Interval:
    """Median of ``values`` (NaNs dropped) with its distribution-free interval."""
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    est, lo, hi = median_bounds(x, confidence)
    return Interval(float(est), float(lo), float(hi), int(x.size), median_coverage(x.size, confidence))


# ---------------------------------------------------------------- a ratio between two environments

@lru_cache(maxsize=256)
def _mann_whitney_cdf(m: int, n: int) -> np.ndarray:
    """Exact P(W <= w), w = 0..m*n, of the Mann–Whitney count under exchangeability.

    The counts are the coefficients of the Gaussian binomial [m+n choose m]_q, built
    as prod_i (1 - q^(n+i)) / (1 - q^i) in exact integers (no cancellation error).
    """
    m, n = min(m, n), max(m, n)
    coef = [0] * (m * n + m + 1)
    coef[0] = 1
    for i in range(1, m + 1):
        top = (i - 1) * n + n + i  # degree after multiplying by (1 - q^(n+i))
        a = n + i
        for k in range(top, a - 1, -1):
            coef[k] -= coef[k - a]
        for k in range(i, top + 1):  # exact division by (1 - q^i)
            coef[k] += coef[k - i]
    total = math.comb(m + n, m)
    cum, out = 0, []
    for c in coef[: m * n + 1]:
        cum += c
        out.append(cum / total)
    return np.asarray(out)


@lru_cache(maxsize=4096)
def shift_rank(m: int, n: int, confidence: float = CONFIDENCE) -> int:
    """1-based rank k of the sorted m*n pairwise differences bounding the Moses interval (0: samples too small)."""
    if m < 1 or n < 1:
        return 0
    half = (1 - confidence) / 2
    if m * n * min(m, n) <= _EXACT_MW_LIMIT:
        k = int(np.searchsorted(_mann_whitney_cdf(m, n), half, side="right"))
    else:
        sd = math.sqrt(m * n * (m + n + 1) / 12)
        k = int(math.floor(m * n / 2 - 0.5 + sd * NormalDist().inv_cdf(half))) + 1
    return max(0, min(k, (m * n) // 2))


def shift_coverage(m: int, n: int, confidence: float = CONFIDENCE) -> float:
    k = shift_rank(m, n, confidence)
    if not k:
        return float("nan")
    if m * n * min(m, n) <= _EXACT_MW_LIMIT:
        return float(1 - 2 * _mann_whitney_cdf(m, n)[k - 1])
    return confidence


def ratio_bounds(base: ArrayLike, other: ArrayLike, confidence: float = CONFIDENCE) -> Bounds:
    """Ratio other/base: Hodges–Lehmann estimate and Moses interval of the log shift, exponentiated.

    Vectorised over leading axes (``base`` (..., m), ``other`` (..., n), positive values).
    Distribution-free when the log times of the two samples differ by a shift only
    (exactly so in an A/A comparison); more efficient than combining two median
    intervals, which is what makes a tight overhead interval affordable.
    """
    a = np.log(np.asarray(base, dtype=float))
    b = np.log(np.asarray(other, dtype=float))
    m, n = a.shape[-1], b.shape[-1]
    lead = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    if m == 0 or n == 0:
        nan = np.full(lead, np.nan)
        return nan, nan.copy(), nan.copy()
    d = (b[..., None, :] - a[..., :, None]).reshape(*lead, m * n)
    est = np.exp(np.median(d, axis=-1))
    k = shift_rank(m, n, confidence)
    if k == 0:
        nan = np.full(lead, np.nan)
        return est, nan, nan.copy()
    part = np.partition(d, [k - 1, m * n - k], axis=-1)
    return est, np.exp(part[..., k - 1]), np.exp(part[..., m * n - k])


def ratio_interval(base: ArrayLike, other: ArrayLike, confidence: float = CONFIDENCE) -> Interval:
    """Ratio other/base of two samples (NaNs dropped) with its interval; overhead % = (ratio - 1) * 100."""
    a = np.asarray(base, dtype=float).ravel()
    b = np.asarray(other, dtype=float).ravel()
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    est, lo, hi = ratio_bounds(a, b, confidence)
    return Interval(float(est), float(lo), float(hi), int(min(a.size, b.size)),
                    shift_coverage(a.size, b.size, confidence))


def aa_halves(values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Runs in run order dealt alternately to A (1st, 3rd, ...) and B (2nd, 4th, ...), equal halves.

    The same split as ``analysis.aa_check``: slow drift of a shared machine hits both halves alike.
    """
    x = np.asarray(values, dtype=float)
    even = x.size - x.size % 2
    return x[0:even:2], x[1:even:2]


# ---------------------------------------------------------------- sequential stopping

@dataclass(frozen=True)
class LookSchedule:
    """The run counts at which intervals are examined, fixed before any run, and each look's level.

    Look i uses level ``1 - (1 - confidence) * n_i / sum(n)``: the error rate is spent
    in proportion to the runs, so late looks (where stopping is likely) lose little.
    Whatever rule picks the look to stop at, the reported interval covers with at
    least ``confidence`` (union bound over the planned looks).
    """

    looks: tuple[int, ...]
    confidence: float = CONFIDENCE

    def __post_init__(self) -> None:
        if not self.looks or list(self.looks) != sorted(set(self.looks)) or self.looks[0] < 1:
            raise ValueError(f"looks must be increasing positive run counts, got {self.looks}")

    @classmethod
    def geometric(cls, first: int, last: int, growth: float = 1.5,
                  confidence: float = CONFIDENCE) -> "LookSchedule":
        """Looks at ``first``, then x ``growth`` (at least +1), ending exactly at ``last``."""
        first = max(1, min(first, last))
        looks = [first]
        while looks[-1] < last:
            looks.append(min(last, max(looks[-1] + 1, math.ceil(looks[-1] * growth))))
        return cls(tuple(looks), confidence)

    def level(self, index: int) -> float:
        return 1 - (1 - self.confidence) * self.looks[index] / sum(self.looks)

    def describe(self) -> str:
        return (f"looks at {', '.join(map(str, self.looks))} runs; error rate {1 - self.confidence:g} split "
                f"over them in proportion to runs (weighted Bonferroni)")


@dataclass(frozen=True)
class Sequential:
    """Outcome of the sequential rule, per replicate (arrays over leading axes)."""

    look: np.ndarray  # index of the look the rule stopped at
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    met: np.ndarray  # True where the target was met (else the last look was reached)

    @property
    def halfwidth_pct(self) -> np.ndarray:
        return np.asarray(halfwidth_pct(self.estimate, self.low, self.high))


def run_sequential(bounds_at: Callable[[int, float], Bounds], schedule: LookSchedule,
                   target_pct: float) -> Sequential:
    """Stop at the first look whose interval's half-width is <= ``target_pct`` % of its estimate.

    ``bounds_at(n, level)`` gives (estimate, low, high) from the first ``n`` runs at
    ``level``. Replicates that never meet the target stop at the last look. The
    stage loop applies the same rule one look at a time (``look_outcome``).
    """
    out: Sequential | None = None
    for i, n in enumerate(schedule.looks):
        est, lo, hi = bounds_at(n, schedule.level(i))
        met = np.asarray(halfwidth_pct(est, lo, hi)) <= target_pct
        if out is None:
            out = Sequential(np.zeros(np.shape(est), int), est, lo, hi, met)
            continue
        todo = ~out.met
        out = Sequential(np.where(todo, i, out.look), np.where(todo, est, out.estimate),
                         np.where(todo, lo, out.low), np.where(todo, hi, out.high), out.met | met)
    assert out is not None
    return out


# ---------------------------------------------------------------- warm-up

def warmup_length(values: ArrayLike, *, max_runs: int = 5, max_fraction: float = 0.25,
                  threshold: float = 4.0, rel_floor: float = 0.01) -> np.ndarray | int:
    """How many first runs are a warm-up transient (0: none), along the last axis.

    Changepoint rule: the warm-up is the longest prefix of w runs (w <= ``max_runs``
    and <= ``max_fraction`` of the runs) that all lie on the same side of the
    median of the runs after them, more than ``threshold`` robust standard
    deviations away (1.4826 * MAD, at least ``rel_floor`` of the median, so
    quantised output like IMB's two decimals does not flag ties). Such runs are
    left out of the statistics and kept in the raw store.
    """
    x = np.asarray(values, dtype=float)
    n = x.shape[-1]
    w_max = min(max_runs, int(n * max_fraction))
    found = np.zeros(x.shape[:-1], dtype=int)
    for w in range(1, w_max + 1):
        rest = x[..., w:]
        med = np.median(rest, axis=-1, keepdims=True)
        scale = np.maximum(1.4826 * np.median(np.abs(rest - med), axis=-1, keepdims=True), rel_floor * np.abs(med))
        z = (x[..., :w] - med) / scale
        hit = np.all(z > threshold, axis=-1) | np.all(z < -threshold, axis=-1)
        found = np.where(hit, w, found)
    return int(found) if found.ndim == 0 else found


# ---------------------------------------------------------------- two levels (Kalibera & Jones)

@dataclass(frozen=True)
class TwoLevel:
    """Variance components of a benchmark that repeats an operation inside each run.

    ``between_var`` is the variance of the run effect (what a new process launch
    changes); ``within_var`` the variance of one inner iteration, from the spread
    of block means inside runs (``block_var * iterations_per_block``). Both in the
    measured unit squared.
    """

    mean: float
    runs: int
    blocks: int
    iterations_per_block: int
    between_var: float
    within_var: float
    block_var: float

    def run_sd(self, iterations: int) -> float:
        """Standard deviation of one run's mean over ``iterations`` inner repetitions."""
        return math.sqrt(self.between_var + self.within_var / iterations)

    def optimal_iterations(self, run_cost_s: float, iteration_cost_s: float) -> float:
        """Inner repetitions per run minimising cost for a given variance of the grand mean.

        Var = s_b^2/n1 + s_w^2/(n1 n2), cost = n1 (c1 + n2 c2)  =>  n2* = sqrt(c1 s_w^2 / (c2 s_b^2))
        (Kalibera & Jones 2013, eq. for the optimal repetition count of a level). inf when
        runs do not differ (then one long run is cheapest).
        """
        if self.between_var <= 0:
            return math.inf
        return math.sqrt(run_cost_s * self.within_var / (iteration_cost_s * self.between_var))


def two_level(blocks_by_run: Sequence[Sequence[float]], iterations_per_block: int) -> TwoLevel:
    """One-way random-effects estimates from block means grouped by run (at least 2 runs with 2+ blocks).

    Within: pooled variance of block means inside runs. Between: variance of run
    means minus the within part they still carry (Kalibera & Jones' T1^2 = S1^2 - S2^2/n2),
    floored at 0.
    """
    runs = [np.asarray(b, dtype=float) for b in blocks_by_run]
    runs = [r[~np.isnan(r)] for r in runs]
    runs = [r for r in runs if r.size]
    if len(runs) < 2 or any(r.size < 2 for r in runs):
        raise ValueError("two levels need at least 2 runs of at least 2 blocks each")
    sizes = np.array([r.size for r in runs], dtype=float)
    ss_within = sum(float(((r - r.mean()) ** 2).sum()) for r in runs)
    block_var = ss_within / float(sizes.sum() - len(runs))
    run_means = np.array([r.mean() for r in runs])
    harmonic = len(runs) / float((1 / sizes).sum())
    between = max(0.0, float(run_means.var(ddof=1)) - block_var / harmonic)
    return TwoLevel(mean=float(np.concatenate(runs).mean()), runs=len(runs), blocks=int(sizes.sum()),
                    iterations_per_block=int(iterations_per_block), between_var=between,
                    within_var=block_var * iterations_per_block, block_var=block_var)


def nice_count(value: float, lo: int, hi: int) -> int:
    """``value`` rounded up to 1, 2 or 5 x 10^k and clamped to [lo, hi]: stable across resumed estimates."""
    if not math.isfinite(value):
        return hi
    value = min(max(value, lo), hi)
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * exp >= value:
            return int(min(max(step * exp, lo), hi))
    return hi


def mark_warmup(table: Any, keys: Sequence[str], value: str, order: str = "repetition") -> Any:
    """``table`` (a DataFrame, index reset) with a boolean ``warmup`` column.

    True for the runs :func:`warmup_length` finds at the start of each group of ``keys``, in
    ``order``; rows without a value are never warm-up. Tables keep every run; statistics and
    figures use the column to leave the transient out and to show it.
    """
    out = table.reset_index(drop=True)
    out["warmup"] = False
    if out.empty:
        return out
    for _, grp in out[out[value].notna()].groupby(list(keys), sort=False, dropna=False):
        ordered = grp.sort_values(order, kind="stable")
        w = int(warmup_length(ordered[value].to_numpy(float)))
        out.loc[ordered.index[:w], "warmup"] = True
    return out
