"""Does the harness perturb what it measures? IMB PingPong run directly and through vhpc, alternately.

Both sides run the identical command line and environment (the one the harness
builds: same pinning, same fabric); the only difference is whether vhpc's
launcher (own session, pidfd wait, contention snapshots, raw store, record
writing) is wrapped around it. Pairs alternate which side goes first.

IMB prints latency in 0.01 us steps (3-6 % of a 0.2-0.3 us latency), so one
pair says little: each run's latency is the mean over the small sizes 0..128 B
(9 numbers), and pairs are added until the 95 % interval of the ratio
(harness / direct: the median of the pairs' ratios with its distribution-free
order-statistic interval, as the project reports medians; other work on a shared
machine gives heavy tails a mean would follow) is within +/- ``--half-width``
(default 3 %), or ``--max-pairs`` is reached. The geometric mean with its t
interval is printed beside it.

The last line is ``latency_ratio=X ci_low=L ci_high=H pairs=N throughput_ratio=Y``
(4 MiB throughput, the same way). Target: the interval inside 1.00 +/- 0.03.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from scipy import stats

from vhpclib.config import load_inventory
from vhpclib.launchers import Job, get_launcher
from vhpclib.mpi import LaunchSpec, build_launch
from vhpclib.parsers import get_parser
from vhpclib.paths import DEFAULT_INVENTORY
from vhpclib.record import RunRecord
from vhpclib.stages.context import StageContext
from vhpclib.store import RawStore

SMALL = (0, 1, 2, 4, 8, 16, 32, 64, 128)
LARGE = 4 * 1024 * 1024


def numbers(stdout: str) -> tuple[float, float]:
    rows = {r["bytes"]: r for r in get_parser("imb").parse(stdout, "bench").records if r["benchmark"] == "PingPong"}
    return statistics.mean(rows[s]["t_avg_usec"] for s in SMALL), rows[LARGE]["mbytes_per_sec"]


def median_interval(ratios: list[float]) -> tuple[float, float, float]:
    """Median ratio and its distribution-free 95 % interval (sorted-sample order statistics)."""
    from vhpclib.analysis import order_statistic_ci

    ordered = sorted(ratios)
    j, k, _ = order_statistic_ci(len(ordered))
    return statistics.median(ordered), ordered[j], ordered[k]


def interval(ratios: list[float]) -> tuple[float, float, float]:
    """Geometric-mean ratio and its 95 % t interval."""
    logs = [math.log(r) for r in ratios]
    mean = statistics.mean(logs)
    if len(logs) < 2:
        return math.exp(mean), 0.0, math.inf
    half = stats.t.ppf(0.975, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-pairs", type=int, default=15)
    ap.add_argument("--max-pairs", type=int, default=300)
    ap.add_argument("--half-width", type=float, default=0.03, help="wanted half-width of the 95 %% interval")
    ap.add_argument("--iterations", type=int, default=4000)
    args = ap.parse_args()

    inventory = load_inventory(DEFAULT_INVENTORY)
    work = Path(tempfile.mkdtemp(prefix="vhpc-overhead-"))
    lengths = work / "msglen.txt"
    lengths.write_text("".join(f"{s}\n" for s in (*SMALL, LARGE)))
    store = RawStore(work / "raw")
    with StageContext(inventory, "local", "overhead", store=store) as ctx:
        runtime = ctx.runtime
        program = [runtime.binary("IMB-MPI1"), "PingPong", "-msglen", str(lengths), "-iter", str(args.iterations)]
        launch = LaunchSpec(nprocs=2, cpus=(0, 1))
        argv, variables = build_launch(runtime, launch, program)
        direct_env = {**os.environ, **variables}
        launcher = get_launcher("mpirun")

        def direct(i: int) -> tuple[float, float]:
            out = work / f"direct-{i}.log"
            with open(out, "w") as fh:
                subprocess.run(argv, env=direct_env, stdout=fh, stderr=subprocess.DEVNULL, check=True, cwd=work)
            return numbers(out.read_text())

        def harness(i: int) -> tuple[float, float]:
            record = RunRecord(run_id=f"pair-{i:03d}", campaign="overhead", environment="local", stage="microbench")
            with store.new_run(record) as writer:
                launcher.launch(ctx, Job(program=program, launch=launch, timeout_s=120), writer)
                return numbers(writer.stdout())

        lat, thr = [], []
        for i in range(args.max_pairs):
            first, second = (direct, harness) if i % 2 == 0 else (harness, direct)
            a, b = first(i), second(i)
            d, h = (a, b) if first is direct else (b, a)
            lat.append(h[0] / d[0])
            thr.append(h[1] / d[1])
            ratio, low, high = median_interval(lat) if len(lat) >= 6 else (lat[-1], 0.0, math.inf)
            print(f"pair {i + 1}: direct {d[0]:.4f} us {d[1]:.0f} MB/s | harness {h[0]:.4f} us {h[1]:.0f} MB/s | "
                  f"latency ratio {ratio:.3f} [{low:.3f}, {high:.3f}]", flush=True)
            if i + 1 >= args.min_pairs and high / ratio - 1 <= args.half_width and 1 - low / ratio <= args.half_width:
                break
    ratio, low, high = median_interval(lat)
    gratio, glow, ghigh = interval(lat)
    tratio, tlow, thigh = median_interval(thr)
    print(f"latency (mean of 0..128 B) harness/direct: median {ratio:.3f}, 95 % CI [{low:.3f}, {high:.3f}]; "
          f"geometric mean {gratio:.3f} [{glow:.3f}, {ghigh:.3f}]; {len(lat)} pairs")
    print(f"4 MiB throughput harness/direct: median {tratio:.3f}, 95 % CI [{tlow:.3f}, {thigh:.3f}]")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    print(f"latency_ratio={ratio:.3f} ci_low={low:.3f} ci_high={high:.3f} pairs={len(lat)} "
          f"throughput_ratio={tratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
