"""Distribution-free intervals of a median from order statistics, and how to state their coverage.

Plain ``math``: the CLI states what n runs buy before any table is read, without importing pandas.
"""

from __future__ import annotations

import math


def order_statistic_ci(n: int, confidence: float = 0.95) -> tuple[int, int, float]:
    """0-based indices (j, k) of the sorted sample bracketing the median, and their coverage.

    Distribution-free: for continuous data the number of observations below the
    true median is Binomial(n, 1/2), so P(x_(j) <= median <= x_(k)) is a binomial
    sum that does not depend on the distribution. We take the narrowest symmetric
    pair with coverage >= ``confidence``; when n is too small for that (n < 6 at
    95 %), the widest pair (min, max) is returned with its smaller true coverage
    ``1 - 2**(1-n)``, which callers report (column ``ci_coverage``).
    """
    if n < 2:
        return 0, max(n - 1, 0), float("nan")
    best = (0, n - 1, 1 - 2 * _half_binom_cdf(0, n))
    for j in range(0, n // 2):
        k = n - 1 - j
        coverage = _half_binom_cdf(k, n) - _half_binom_cdf(j, n)
        if coverage >= confidence:
            best = (j, k, float(coverage))
        else:
            break
    return best[0], best[1], float(best[2])


def _half_binom_cdf(k: int, n: int) -> float:
    """P(Binomial(n, 1/2) <= k), exactly (scipy.stats is not imported for this: it costs a second)."""
    return math.fsum(math.comb(n, i) for i in range(0, k + 1)) / 2.0 ** n


def repetitions_for(confidence: float = 0.95) -> int:
    """The fewest runs whose median interval reaches ``confidence`` (6 at 95 %: min-max covers 96.9 %)."""
    n = 2
    while order_statistic_ci(n, confidence)[2] < confidence:
        n += 1
    return n


def coverage_text(coverage: float) -> str:
    """A coverage as people read it, never rounded up: 0.75 -> '75 %', 0.96875 -> '96.8 %'."""
    if coverage != coverage:  # NaN
        return "no interval"
    pct = math.floor(coverage * 1000) / 10
    return f"{pct:g} %"


def interval_label(n: int, confidence: float = 0.95) -> str:
    """What the median interval of ``n`` runs is, with its true coverage: 'min–max, 75 %' at n=3.

    n=1 has no interval; from n where a narrower pair of order statistics reaches
    ``confidence``, the label names them ('2nd–9th of 10, 97.8 %').
    """
    n = int(n)
    if n < 2:
        return "no interval (1 run)"
    j, k, coverage = order_statistic_ci(n, confidence)
    if j == 0 and k == n - 1:
        kind = "min–max"
    else:
        kind = f"{_ordinal(j + 1)}–{_ordinal(k + 1)} of {n}"
    return f"{kind}, {coverage_text(coverage)}"


def _ordinal(i: int) -> str:
    suffix = "th" if 10 <= i % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(i % 10, "th")
    return f"{i}{suffix}"
