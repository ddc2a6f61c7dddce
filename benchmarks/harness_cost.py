"""What does vhpc cost per run and per invocation, next to a plain shell loop running the same IMB command?

Interleaved rounds, each timing four things (order rotated per round):
  shell 1 / shell N   a bash loop running the exact mpirun command vhpc builds (same variables, same
                      pinning) 1 and N times, output to files;
  vhpc 1 / vhpc N     ``vhpc run microbench --rerun --repetitions 1|N`` on one campaign (no figures,
                      no progress bar), i.e. a campaign being re-measured.

Per run: (vhpc N - vhpc 1) / (N - 1) against the same for the shell loop -> ``per_run_ratio``.
Fixed: what one invocation costs above the shell loop, runs aside ->
``fixed_cost_s`` = (vhpc 1 - vhpc per run) - (shell 1 - shell per run). Each quantity is the fastest of
the rounds (``--estimator min``, the default: on a machine other work shares, the fastest round is the
least disturbed one) or their median (``--estimator median``); both are printed.
A warm-up invocation (first fingerprint, page cache) is not counted.

Targets on a quiet 2-core machine: per_run_ratio <= 1.15, fixed_cost_s <= 0.5. The last line is
``per_run_ratio=X fixed_cost_s=Y``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vhpclib.config import load_inventory
from vhpclib.mpi import LaunchSpec, build_launch, runtime_for
from vhpclib.workloads.pingpong import PingPongParams
from vhpclib.paths import DEFAULT_INVENTORY, PROJECT_ROOT

VHPC = [sys.executable, "-m", "vhpclib.cli"]


def shell_loop(command: str, variables: dict[str, str], runs: int, folder: Path) -> float:
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in variables.items())
    script = exports + f"for i in $(seq {runs}); do {command} > {folder}/out-$i.log 2> {folder}/err-$i.log; done\n"
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True, cwd=folder)
    return time.perf_counter() - t0


def vhpc(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([*VHPC, *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"vhpc failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--msglog", default="0:3")
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--estimator", choices=("min", "median"), default="min")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vhpc-cost-"))
    env = {**os.environ, "VHPC_DATA": str(work / "data"), "VHPC_FIGURES": str(work / "figures")}
    params = PingPongParams(msglog=args.msglog, iterations=args.iterations, placements=("intra-socket",))
    runtime = runtime_for(load_inventory(DEFAULT_INVENTORY).environment("local"))
    program = [runtime.binary("IMB-MPI1"), *params.imb_args()]
    argv, variables = build_launch(runtime, LaunchSpec(nprocs=2, cpus=(0, 1)), program)
    command = " ".join(shlex.quote(a) for a in argv)
    base = ["run", "microbench", "-c", "cost", "--rerun", "--msglog", args.msglog, "--iterations",
            str(args.iterations), "--placement", "intra-socket", "--no-figures", "--no-progress"]

    vhpc([*base, "--repetitions", "1"], env)  # warm-up: first fingerprint, page cache
    samples: dict[str, list[float]] = {"shell1": [], "shellN": [], "vhpc1": [], "vhpcN": []}
    jobs = {
        "shell1": lambda: shell_loop(command, variables, 1, work),
        "shellN": lambda: shell_loop(command, variables, args.runs, work),
        "vhpc1": lambda: vhpc([*base, "--repetitions", "1"], env),
        "vhpcN": lambda: vhpc([*base, "--repetitions", str(args.runs)], env),
    }
    order = list(jobs)
    for r in range(args.rounds):
        rotated = order[r % 4:] + order[:r % 4]
        for name in rotated:
            samples[name].append(jobs[name]())
        print(f"round {r + 1}: " + "  ".join(f"{n} {samples[n][-1]:.3f} s" for n in order), flush=True)

    n = args.runs
    results = {}
    for name, estimate in (("min", min), ("median", statistics.median)):
        est = {k: estimate(v) for k, v in samples.items()}
        shell_per_run = (est["shellN"] - est["shell1"]) / (n - 1)
        vhpc_per_run = (est["vhpcN"] - est["vhpc1"]) / (n - 1)
        fixed = (est["vhpc1"] - vhpc_per_run) - (est["shell1"] - shell_per_run)
        results[name] = (vhpc_per_run / shell_per_run, fixed)
        print(f"{name}: " + "  ".join(f"{k} {v:.3f} s" for k, v in est.items())
              + f" -> per run shell {shell_per_run:.3f} s, vhpc {vhpc_per_run:.3f} s; fixed {fixed:.3f} s")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus; estimator {args.estimator}")
    ratio, fixed = results[args.estimator]
    print(f"per_run_ratio={ratio:.3f} fixed_cost_s={fixed:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
