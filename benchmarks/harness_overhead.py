"""Does the harness perturb what it measures? IMB PingPong run directly and through vhpc, alternately.

Both sides run the identical command line and environment (the one the harness
builds: same pinning, same fabric); the only difference is whether vhpc's
launcher (invoke, raw store, pin-map validation, record writing) is wrapped
around it. Prints medians and, as its last line,
``latency_ratio=X throughput_ratio=Y`` (harness / direct; 0-byte latency,
4 MiB throughput). Target: both within 1.00 +/- 0.03.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from vhpclib.config import load_inventory
from vhpclib.launcher import Job, run_job
from vhpclib.mpi import LaunchSpec, build_launch, runtime_for
from vhpclib.parsers import get_parser
from vhpclib.paths import DEFAULT_INVENTORY
from vhpclib.remote import ConnectionPool
from vhpclib.store import RawStore

SIZES = (0, 4 * 1024 * 1024)


def numbers(stdout: str) -> tuple[float, float]:
    rows = {r["bytes"]: r for r in get_parser("imb").parse(stdout, "bench").records if r["benchmark"] == "PingPong"}
    return rows[SIZES[0]]["t_avg_usec"], rows[SIZES[1]]["mbytes_per_sec"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", type=int, default=15)
    ap.add_argument("--iterations", type=int, default=4000)
    args = ap.parse_args()

    inventory = load_inventory(DEFAULT_INVENTORY)
    env_spec = inventory.environment("local")
    runtime = runtime_for(env_spec)
    work = Path(tempfile.mkdtemp(prefix="vhpc-overhead-"))
    lengths = work / "msglen.txt"
    lengths.write_text("".join(f"{s}\n" for s in SIZES))
    program = [runtime.binary("IMB-MPI1"), "PingPong", "-msglen", str(lengths), "-iter", str(args.iterations)]
    launch = LaunchSpec(nprocs=2, cpus=(0, 1))
    argv, variables = build_launch(runtime, launch, program)
    direct_env = {**os.environ, **variables}
    store = RawStore(work / "raw")
    direct, harness = [], []
    with ConnectionPool(inventory) as pool:
        for i in range(args.pairs):
            out = work / f"direct-{i}.log"
            with open(out, "w") as fh:
                subprocess.run(argv, env=direct_env, stdout=fh, stderr=subprocess.DEVNULL, check=True, cwd=work)
            direct.append(numbers(out.read_text()))
            run = run_job(inventory, "local", Job(program=program, launch=launch), campaign="overhead",
                          stage="microbench", run_id=f"pair-{i:02d}", store=store, pool=pool)
            harness.append(numbers(run.stdout()))
            print(f"pair {i + 1}: direct {direct[-1][0]:.3f} us {direct[-1][1]:.0f} MB/s | "
                  f"harness {harness[-1][0]:.3f} us {harness[-1][1]:.0f} MB/s", flush=True)
    lat_d, thr_d = (statistics.median(x) for x in zip(*direct))
    lat_h, thr_h = (statistics.median(x) for x in zip(*harness))
    print(f"median 0-byte latency: direct {lat_d:.3f} us, harness {lat_h:.3f} us")
    print(f"median 4 MiB throughput: direct {thr_d:.1f} MB/s, harness {thr_h:.1f} MB/s")
    # IMB prints t[usec] with 2 decimals: at ~0.3 us one step is ~3 %, so medians move in steps; means don't.
    mean_lat = statistics.mean(x[0] for x in harness) / statistics.mean(x[0] for x in direct)
    mean_thr = statistics.mean(x[1] for x in harness) / statistics.mean(x[1] for x in direct)
    print(f"means (finer than IMB's 0.01 us print step): latency {mean_lat:.3f}, throughput {mean_thr:.3f}")
    print(f"latency_ratio={lat_h / lat_d:.3f} throughput_ratio={thr_h / thr_d:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
