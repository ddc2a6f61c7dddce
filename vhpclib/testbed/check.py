"""Ground truth for the testbed: an inter-node IMB PingPong must see the link rate it was given.

With every node link shaped to R by htb, PingPong's peak throughput must be at
most R and close to it (the recipe measured 118 MB/s at 1 gbit = 125 MB/s: TCP,
IP and Ethernet headers take ~5 %); unshaped it must be far above R.
"""

from __future__ import annotations

from pathlib import Path

from ..exceptions import ParseError, TestbedError
from ..parsers import get_parser
from ..params import MicrobenchParams
from ..stages.context import StageContext
from ..stages.loop import run_stage
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
        result = run_stage(ctx, "microbench", params, progress=False)
    if result.failures or result.invalid or not result.runs:
        problems = result.failures + [f"{r.run_id}: {r.record.reason}" for r in result.invalid]
        raise TestbedError("inter-node PingPong on the testbed failed: " + "; ".join(problems or ["no run"]))
    run = result.runs[-1]
    try:
        return get_parser("imb").parse(run.stdout(), str(run.stdout_path)).records
    except ParseError as exc:
        raise TestbedError(f"IMB PingPong across the testbed printed no result table: {exc}") from None


def peak_mb_s(records: list[dict]) -> float:
    """Highest PingPong throughput (10^6 bytes/s) of a set of IMB records."""
    values = [r["mbytes_per_sec"] for r in records if r.get("benchmark") == "PingPong" and r.get("mbytes_per_sec")]
    if not values:
        raise TestbedError("no PingPong throughput in the IMB output")
    return max(values)


def shaped_link_check(name: str = "vhpc", rate: str = "1gbit", *, msglog: tuple[int, int] = (22, 23),
                      iterations: int = 20, tolerance: float = 0.15, attempts: int = 2,
                      campaign: str = "linkcheck", store: RawStore | None = None) -> dict:
    """Measure peak PingPong throughput with links shaped to ``rate`` and unshaped.

    Shaped, PingPong is repeated up to ``attempts`` times until its peak reaches
    ``rate * (1 - tolerance)``: on a loaded machine a descheduled rank can stall a
    transfer, which only ever lowers the number, never raises it above the rate.
    The testbed's own shaping is restored afterwards. The result holds every
    measured peak and whether each bound holds; it does not raise when a check
    fails, so the caller can show the numbers. Every PingPong goes through the
    microbenchmark stage; shaped runs are stored in campaign ``<campaign>-<rate>``,
    unshaped ones in ``<campaign>-unshaped``.
    """
    rate_mb_s = parse_rate(rate) / 8e6
    testbed = info(name)
    before = testbed.rate
    shaped: list[float] = []
    try:
        shape(name, rate)
        for _ in range(max(1, attempts)):
            shaped.append(peak_mb_s(run_pingpong(testbed.inventory, msglog=msglog, iterations=iterations,
                                                 campaign=f"{campaign}-{rate}", store=store)))
            if shaped[-1] >= rate_mb_s * (1 - tolerance):
                break
        shape(name, None)
        unshaped = peak_mb_s(run_pingpong(testbed.inventory, msglog=msglog, iterations=iterations,
                                          campaign=f"{campaign}-unshaped", store=store))
    finally:
        shape(name, before)
    best = max(shaped)
    return {
        "rate": rate, "rate_mb_s": rate_mb_s,
        "shaped_peak_mb_s": best, "shaped_peaks_mb_s": shaped, "unshaped_peak_mb_s": unshaped,
        "shaped_fraction": best / rate_mb_s, "unshaped_fraction": unshaped / rate_mb_s,
        # the upper bound must hold for every attempt: shaping never lets more through
        "shaped_ok": rate_mb_s * (1 - tolerance) <= best and all(p <= rate_mb_s for p in shaped),
        "unshaped_ok": unshaped > 2 * rate_mb_s,
        "msglog": list(msglog), "iterations": iterations, "tolerance": tolerance,
    }
