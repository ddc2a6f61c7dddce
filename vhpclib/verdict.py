"""What a comparison's interval lets a reader say: resolved, consistent with zero, or not resolved yet.

An overhead of +3 % with the interval [-19, +25] % is not "3 % overhead", and not "no overhead" either: at
this noise the runs cannot tell. Every comparison (overhead vs the baseline, A/A check) carries one of:

- ``resolved``: the interval excludes 0, so the sign of the overhead is known;
- ``consistent with zero``: the interval contains 0 and lies within +-``margin_pct`` (the overhead is
  below what the comparison is asked to see);
- ``not resolved at this noise: about N more runs needed``: neither, where N (per environment) comes
  from the measured spread: an interval's half-width shrinks like 1/sqrt(runs), so n runs of half-width
  h reach half-width h' with about n (h / h')^2 runs. N is for the nearer of the two verdicts (half-width
  below |estimate| to resolve it, or below margin - |estimate| to show it is negligible).

Pure: numbers in, a ``Verdict`` out; tables, the adaptive record, figures and the report all call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RESOLVED, ZERO, UNRESOLVED, NO_INTERVAL = "resolved", "consistent with zero", "not resolved", "no interval"
#: An overhead within +-2 % is "consistent with zero" when its whole interval is (the report states it).
DEFAULT_MARGIN_PCT = 2.0


@dataclass(frozen=True)
class Verdict:
    kind: str
    more_runs: int | None = None  # per environment, for "not resolved"

    @property
    def text(self) -> str:
        if self.kind == UNRESOLVED:
            return f"not resolved at this noise: about {self.more_runs} more runs needed"
        return self.kind


def verdict(estimate: float, low: float, high: float, runs: int, *,
            margin_pct: float = DEFAULT_MARGIN_PCT) -> Verdict:
    """The verdict of an overhead (%) ``estimate`` with interval [``low``, ``high``] from ``runs`` runs per side."""
    values = (estimate, low, high)
    if any(v is None or not math.isfinite(v) for v in values) or runs < 1:
        return Verdict(NO_INTERVAL)
    if low > 0 or high < 0:
        return Verdict(RESOLVED)
    if -margin_pct <= low and high <= margin_pct:
        return Verdict(ZERO)
    half = (high - low) / 2
    needed = []
    size = abs(estimate)
    if size > 0:
        needed.append(runs * (half / size) ** 2)  # resolve the sign
    if size < margin_pct:
        needed.append(runs * (half / (margin_pct - size)) ** 2)  # show it is negligible
    total = math.ceil(min(needed)) if needed else runs * 2
    return Verdict(UNRESOLVED, max(1, total - runs))
