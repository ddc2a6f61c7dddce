"""Pure DataFrame -> DataFrame analysis of tidy benchmark tables (Tables 2/3, Figures 2-4).

Every result column carries its unit in its name (``latency_usec``, ``time_s``,
``overhead_pct``...). Functions never print; they warn (``warnings.warn``) when
they drop invalid or unverified rows so the caller sees what was excluded.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def ideal_efficiency(parallel_s: ArrayLike, duplicated_s: ArrayLike, p: ArrayLike,
                     p_base: ArrayLike = 1) -> np.ndarray | float:
    """Algorithmic efficiency limit when part of the work is duplicated in every process.

    ``parallel_s`` (P) is the time of the perfectly divisible part and
    ``duplicated_s`` (D) the time every process repeats, both measured at the
    base process count ``p_base`` (p0). With perfect communication, the time at
    ``p`` processes is ``P*p0/p + D``, so relative to p0:

        E_ideal(p) = T(p0)*p0 / (T(p)*p) = (P + D) / (P + D*p/p0)

    Works on scalars and numpy arrays (broadcast); returns a float for scalar input.
    """
    P = np.asarray(parallel_s, dtype=float)
    D = np.asarray(duplicated_s, dtype=float)
    pp = np.asarray(p, dtype=float)
    p0 = np.asarray(p_base, dtype=float)
    out = (P + D) / (P + D * pp / p0)
    return float(out) if np.ndim(out) == 0 else out
