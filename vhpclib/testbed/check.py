"""Ground truth for the testbed: an inter-node IMB PingPong must see the link rate it was given.

With every node link shaped to R (``shaping``: tbf, a ceiling at every message size),
PingPong's throughput must stay at most R at every message size, and unshaped it must
be far above R. How close the shaped peak comes to R depends on how idle the machine
is (late timer wake-ups are lost link time); the result says it.
"""

from __future__ import annotations

from pathlib import Path

from ..exceptions import ParseError, TestbedError
from ..names import Stage
from ..parsers import get_parser
from ..params import MicrobenchParams
from ..stages.context import StageContext
from ..stages.driver import run_stage
from ..store import RawStore
from .inventory import ENVIRONMENT
from .lifecycle import info, shape
from .shaping import parse_rate


def run_pingpong(inventory: str | Path, *, msglog: tuple[int, int] = (0, 12), iterations: int = 200,
                 timeout: float = 300.0, campaign: str = "linkcheck", store: RawStore | None = None) -> list[dict]:
    """IMB PingPong between the first two nodes of the inventory's ``testbed`` environment.

    Goes through the normal microbenchmark stage (placement ``inter-node``, pinning
    verified, raw logs kept in ``store`` under ``campaign``: every call adds a run),
    and returns the parsed IMB records (``mbytes_per_sec`` in 10^6 B/s).
    """
    with StageContext.open(inventory, ENVIRONMENT, campaign, store=store) as ctx:
        if len(ctx.env.hosts) < 2:
            raise TestbedError("an inter-node PingPong needs a testbed with at least 2 nodes")
        params = MicrobenchParams(placements=("inter-node",), msglog=msglog, iterations=iterations, repetitions=1,
                                  rerun=True, timeout_s=timeout)
        result = run_stage(ctx, Stage.MICROBENCH, params, progress=False)
    if result.failures or result.invalid or not result.runs:
        problems = result.failures + [f"{r.run_id}: {r.record.reason}" for r in result.invalid]
        raise TestbedError("inter-node PingPong on the testbed failed: " + "; ".join(problems or ["no run"]))
    run = result.runs[-1]
    try:
        return get_parser("imb").parse(run.stdout(), str(run.stdout_path)).records
    except ParseError as exc:
        raise TestbedError(f"IMB PingPong across the testbed printed no result table: {exc}") from None


def peak_mb_s(records: list[dict], min_bytes: int = 0) -> float:
    """Highest PingPong throughput (10^6 bytes/s) of a set of IMB records (messages of ``min_bytes`` or more)."""
    values = [r["mbytes_per_sec"] for r in records if r.get("benchmark") == "PingPong" and r.get("mbytes_per_sec")
              and r.get("bytes", 0) >= min_bytes]
    if not values:
        raise TestbedError("no PingPong throughput in the IMB output")
    return max(values)


def per_size_mb_s(records: list[dict]) -> dict[int, float]:
    """PingPong throughput by message size (10^6 bytes/s)."""
    return {int(r["bytes"]): float(r["mbytes_per_sec"]) for r in records
            if r.get("benchmark") == "PingPong" and r.get("bytes") and r.get("mbytes_per_sec") is not None}


#: Messages this large are many frames: their throughput is what the link sustains.
BULK_BYTES = 1 << 20


def shaped_link_check(name: str = "vhpc", rate: str = "1gbit", *, msglog: tuple[int, int] = (0, 23),
                      iterations: int = 20, tolerance: float = 0.15, attempts: int = 2,
                      campaign: str = "linkcheck", store: RawStore | None = None) -> dict:
    """Measure PingPong throughput at every size of ``msglog`` with links shaped to ``rate`` and unshaped.

    ``shaped_ok`` is the ceiling: no size of any attempt above the rate. ``bulk_mb_s`` is
    the best throughput of messages of 1 MiB or more (what the link sustains); shaped
    PingPong is repeated up to ``attempts`` times until it reaches ``rate * (1 - tolerance)``
    (``reaches_rate``), which depends on how idle the machine is: late timer wake-ups are
    lost link time, never extra. ``shaped_max_size`` says at which size the shaped
    maximum was measured (a one-frame message crosses at the link's latency, not its rate).
    The testbed's own shaping is restored afterwards; nothing raises when a bound fails, so
    the caller can show the numbers. Every PingPong goes through the microbenchmark stage;
    shaped runs are stored in campaign ``<campaign>-<rate>``, unshaped ones in ``<campaign>-unshaped``.
    """
    rate_mb_s = parse_rate(rate) / 8e6
    testbed = info(name)
    before = testbed.rate
    shaped: list[dict[int, float]] = []
    try:
        shape(name, rate)
        for _ in range(max(1, attempts)):
            shaped.append(per_size_mb_s(run_pingpong(testbed.inventory, msglog=msglog, iterations=iterations,
                                                     campaign=f"{campaign}-{rate}", store=store)))
            if max((v for b, v in shaped[-1].items() if b >= BULK_BYTES), default=0) >= rate_mb_s * (1 - tolerance):
                break
        shape(name, None)
        unshaped = peak_mb_s(run_pingpong(testbed.inventory, msglog=msglog, iterations=iterations,
                                          campaign=f"{campaign}-unshaped", store=store))
    finally:
        shape(name, before)
    if not any(shaped):
        raise TestbedError("no PingPong throughput in the shaped IMB output")
    maxima = {b: max(a.get(b, 0.0) for a in shaped) for b in sorted({b for a in shaped for b in a})}
    peaks = [max(a.values()) for a in shaped if a]
    bulk = max((v for b, v in maxima.items() if b >= BULK_BYTES), default=0.0)
    return {
        "rate": rate, "rate_mb_s": rate_mb_s,
        "shaped_peak_mb_s": max(peaks), "shaped_peaks_mb_s": peaks, "shaped_max_size": max(maxima, key=maxima.get),
        "shaped_by_size_mb_s": maxima, "bulk_mb_s": bulk, "unshaped_peak_mb_s": unshaped,
        "shaped_fraction": bulk / rate_mb_s, "unshaped_fraction": unshaped / rate_mb_s,
        # the ceiling must hold for every size of every attempt: shaping never lets more through
        "shaped_ok": all(p <= rate_mb_s for p in peaks),
        "reaches_rate": rate_mb_s * (1 - tolerance) <= bulk,
        "unshaped_ok": unshaped > 2 * rate_mb_s,
        "msglog": list(msglog), "iterations": iterations, "tolerance": tolerance,
    }
