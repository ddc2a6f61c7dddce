"""Distribution-free intervals of a median from order statistics, and how to state their coverage.

Plain ``math``: the CLI states what n runs buy before any table is read, without importing pandas.
"""

from __future__ import annotations

import math
from functools import lru_cache


@lru_cache(maxsize=256)
def order_statistic_ci(n: int, confidence: float = 0.95) -> tuple[int, int, float]:
    """0-based indices (j, k) of the sorted sample bracketing the median, and their coverage.

    Distribution-free: for continuous data the number of observations below the
    true median is Binomial(n, 1/2), so P(x_(j) <= median <= x_(k)) is a binomial
    sum that does not depend on the distribution. We take the narrowest symmetric
    pair with coverage >= ``confidence``; when n is too small for that (n < 6 at
    95 %), the widest pair (min, max) is returned with its smaller true coverage
    ``1 - 2**(1-n)``, which callers report (column ``ci_coverage``).

    One pass over the binomial coefficients (exact integers, each from the previous one), so a point
    of thousands of repetitions costs milliseconds, not a sum per candidate pair.
    """
    if n < 2:
        return 0, max(n - 1, 0), float("nan")
    cdf = _half_binom_cdfs(n)
    best = (0, n - 1, 1 - 2 * cdf[0])
    for j in range(0, n // 2):
        k = n - 1 - j
        coverage = cdf[k] - cdf[j]
        if coverage >= confidence:
            best = (j, k, float(coverage))
        else:
            break
    return best[0], best[1], float(best[2])


def _half_binom_cdfs(n: int) -> list[float]:
    """P(Binomial(n, 1/2) <= k) for every k, exactly summed, then rounded once.

    Below 2**1023 each coefficient is rounded to a float before the exact sum (as ``math.fsum`` of the
    coefficients did: the same numbers as before for every n that worked); above, the exact sum of
    integers is divided exactly (int / int is correctly rounded in Python).
    """
    scale = 2 ** n
    small = n <= 1020  # every comb(n, i) fits a float
    out, total, comb = [], 0, 1
    for i in range(n + 1):
        total += int(float(comb)) if small else comb
        out.append(float(total) / 2.0 ** n if small else total / scale)
        comb = comb * (n - i) // (i + 1)
    return out


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
