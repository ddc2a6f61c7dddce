"""Intervals a reviewer accepts, and what they cost: fixed 6 repetitions vs adaptive repetitions.

1. blockss single-node A/A check on this machine: the overhead interval from the fixed
   6 repetitions (the project's Table 3 interval, ``analysis.aa_check``), then the
   adaptive stage (``--ci-target 2 --budget 300``) until the A/A overhead's 95 % interval
   has a half-width <= 2 % (percentage points) or the budget ends.
2. IMB PingPong 0-byte latency, intra-socket: the adaptive microbenchmark stage with a 1 %
   target; the two-level dimensioning (``pingpong-levels``) picks the iterations per run.
   ``latency_iters_fraction`` = every 0-byte iteration measured (dimensioning included),
   summed over runs, / the paper's 1,000,000 per size. 300 s of measuring at most.

Everything is measured into a temporary raw store. The machine may be shared: the load
average is printed before and after; numbers from a loaded machine are upper bounds.
Last line: ``fixed_halfwidth_pct=A adaptive_halfwidth_pct=B adaptive_runs=N machine_s=T
latency_iters_fraction=F latency_halfwidth_pct=L``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

from vhpclib import analysis
from vhpclib.params import AppParams, MicrobenchParams
from vhpclib.paths import DEFAULT_INVENTORY
from vhpclib.stages.adaptive import stage_records
from vhpclib.workloads.pingpong_sizing import PAPER_ITERATIONS
from vhpclib.stages.context import StageContext
from vhpclib.stages.driver import run_stage
from vhpclib.store import RawStore
from vhpclib.tables import build_tables


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def fixed_aa(store: RawStore, preset: str) -> float:
    """Half-width (percentage points) of Table 3's A/A interval from 6 fixed repetitions."""
    with StageContext.open(DEFAULT_INVENTORY, "local", "fixed", store=store) as ctx:
        run_stage(ctx, "single-node", AppParams(workloads=("blockss",), blockss_preset=preset, repetitions=6),
                  progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aa = analysis.aa_check(build_tables("fixed", store=store).tables["apps"], "local")
    row = aa[aa["environment"] == "local/B"].iloc[0]
    print(f"fixed 6 runs: A/A overhead {row['overhead_pct']:+.2f} % "
          f"[{row['overhead_pct_ci_low']:+.2f}, {row['overhead_pct_ci_high']:+.2f}]", flush=True)
    return float((row["overhead_pct_ci_high"] - row["overhead_pct_ci_low"]) / 2)


def adaptive_aa(store: RawStore, preset: str, target: float, budget: float, max_runs: int) -> tuple[float, int, float]:
    params = AppParams(workloads=("blockss",), blockss_preset=preset, ci_target_pct=target, budget_s=budget,
                       max_runs=max_runs)
    with StageContext.open(DEFAULT_INVENTORY, "local", "adaptive", store=store) as ctx:
        result = run_stage(ctx, "single-node", params, progress=False)
    for line in result.lines():
        print(line, flush=True)
    [record] = stage_records("adaptive", store_root=store.root)
    aa = next(q for q in record["quantities"] if q["quantity"] == "A/A overhead")
    return float(aa["halfwidth_pct"]), int(aa["runs"]), float(record["measuring_s"])


def adaptive_latency(store: RawStore, target: float, max_runs: int, budget: float) -> tuple[float, float]:
    params = MicrobenchParams(placements=("intra-socket",), msglog=(0, 0), ci_target_pct=target, max_runs=max_runs,
                              budget_s=budget)
    with StageContext.open(DEFAULT_INVENTORY, "local", "latency", store=store) as ctx:
        result = run_stage(ctx, "microbench", params, progress=False)
    for line in result.lines():
        print(line, flush=True)
    [record] = stage_records("latency", store_root=store.root)
    print("two levels:", json.dumps(record["two_level"], indent=1, default=str), flush=True)
    latency = next(q for q in record["quantities"] if q["quantity"] == "latency 0 B")
    micro = build_tables("latency", store=store).tables["microbench"]
    zero = micro[(micro["bytes"] == 0) & micro["benchmark"].isin(["PingPong", "PingPong-blocks"])]
    return float(latency["halfwidth_pct"]), float(zero["repetitions"].sum()) / PAPER_ITERATIONS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small", help="blockss preset (the committed campaign's: small)")
    ap.add_argument("--target", type=float, default=2.0, help="A/A overhead target half-width, %%")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds of measuring for the A/A check")
    ap.add_argument("--max-runs", type=int, default=200)
    ap.add_argument("--latency-target", type=float, default=1.0)
    ap.add_argument("--latency-budget", type=float, default=300.0, help="seconds of measuring for the latency")
    ap.add_argument("--skip-blockss", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()

    print(f"load average before: {load()} on {os.cpu_count()} cpu(s)", flush=True)
    store = RawStore(Path(tempfile.mkdtemp(prefix="vhpc-ci-")) / "raw")
    fixed = adaptive = machine = lat_hw = fraction = float("nan")
    runs = 0
    if not args.skip_blockss:
        fixed = fixed_aa(store, args.preset)
        adaptive, runs, machine = adaptive_aa(store, args.preset, args.target, args.budget, args.max_runs)
    if not args.skip_latency:
        lat_hw, fraction = adaptive_latency(store, args.latency_target, 60, args.latency_budget)
    print(f"load average after: {load()}; raw runs kept in {store.root}", flush=True)
    print(f"fixed_halfwidth_pct={fixed:.2f} adaptive_halfwidth_pct={adaptive:.2f} adaptive_runs={runs} "
          f"machine_s={machine:.0f} latency_iters_fraction={fraction:.4f} latency_halfwidth_pct={lat_hw:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
