"""What does running a campaign through Slurm cost? Short IMB jobs through the vhpc Slurm launcher vs srun.

Brings up its own 2-node namespace testbed with a private Slurm cluster (``testbed up
--slurm``, in a temporary folder). From node 1 over SSH, as the testbed's ``slurm``
environment does, one job at a time, alternating:

* **direct**: the user's own way, ``srun --mpi=pmi2`` with the same allocation (nodes,
  tasks per node, ``--exclusive``), the same binding and the same IMB PingPong
  (``-msglog 0:4 -iter 50``), blocking, over the same SSH connection;
* **vhpc**: the microbench stage (``vhpclib.stages.driver.run_stage``, one repetition of
  one placement per call, ``rerun``) with ``launcher: slurm``: the job's script, its
  session on the submit host (submit, wait, sacct, output back), the run folder,
  sanity (pin map), extraction and the store's commit.

``slurm_overhead_ratio`` is the vhpc total over the direct total, for the
submission given by ``--submission`` (``allocation``: salloc; ``batch``: sbatch,
which Slurm starts on its next scheduling pass, up to a second later); with
``both`` (default) the two are measured interleaved and the ratio line names
each. The campaign's one-time costs are outside the ratio and printed apart: the
settings check (``sbatch --test-only``) and the host fingerprints, of which
``slurm_fingerprint_s`` is fingerprinting both nodes through one ``srun
--ntasks-per-node=1`` step (median), beside the same over SSH.

Needs root and the Debian packages slurm-wlm, munge, libpmi2-0. The last line is
``slurm_overhead_ratio=X slurm_fingerprint_s=Y ...``.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from vhpclib import paths
from vhpclib import testbed as tb
from vhpclib.config import load_inventory
from vhpclib.fingerprint import facts_from_result, fingerprint_script
from vhpclib.launchers.slurm import plan_job, submit_executor
from vhpclib.params import MicrobenchParams
from vhpclib.remote import executor_for, fan_out
from vhpclib.slurm.node_fingerprints import fingerprint_nodes
from vhpclib.slurm.jobs import check_submission, slurm_env
from vhpclib.slurm.script import launch_env
from vhpclib.stages.context import StageContext
from vhpclib.stages.driver import run_stage
from vhpclib.store import RawStore
from vhpclib.workloads import get_workload

NAME = "sgbench"
PLACEMENTS = {"intra": "intra-socket", "inter": "inter-node"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10, help="short IMB jobs each way (after one warm-up pair)")
    parser.add_argument("--fingerprints", type=int, default=5, help="fingerprint rounds each way")
    parser.add_argument("--placement", choices=sorted(PLACEMENTS), default="inter",
                        help="2 ranks on node 1, or 1 rank on each node")
    parser.add_argument("--submission", choices=["allocation", "batch", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vhpc-slurm-bench-") as tmp:
        base = Path(tmp)
        paths.TESTBEDS, paths.INVENTORIES = base / "testbeds", base / "inventories"
        tb.down(NAME)
        t0 = time.perf_counter()
        info = tb.up(2, name=NAME, slurm=True)
        print(f"testbed with Slurm up in {time.perf_counter() - t0:.2f} s")
        try:
            run(args, info, base)
        finally:
            tb.down(NAME)


def inventory_for(info: tb.TestbedInfo, base: Path, submission: str) -> Path:
    """The testbed's inventory with the ``slurm`` environment's submission set."""
    data = yaml.safe_load(info.inventory.read_text())
    data["environments"]["slurm"]["slurm"]["submission"] = submission
    path = base / "inventories" / f"bench-{submission}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def direct_command(ctx: StageContext, params: MicrobenchParams) -> tuple[str, dict[str, str]]:
    """The srun line a user would type for the stage's job, and its environment."""
    workload = get_workload("pingpong")
    points = [p for p in workload.plan("microbench", ctx, params) if hasattr(p, "nodes")]
    job = workload.job(ctx, points[0], 1, workload.prepare(ctx, points, params), params)
    plan = plan_job(ctx, job, "direct")
    settings, batch = ctx.env.slurm, plan.batch
    allocation = [f"--partition={settings.partition}", "--exclusive", f"--nodes={batch.nodes}",
                  f"--ntasks-per-node={batch.ntasks_per_node}"]
    argv = [plan.argv[0], *allocation, *plan.argv[1:]]
    env = {**slurm_env(settings), **plan.variables, **launch_env(settings, batch)}
    return " ".join(shlex.quote(a) for a in argv), env


def run(args: argparse.Namespace, info: tb.TestbedInfo, base: Path) -> None:
    submissions = ["allocation", "batch"] if args.submission == "both" else [args.submission]
    params = MicrobenchParams(msglog=(0, 4), iterations=50, repetitions=1, placements=(PLACEMENTS[args.placement],),
                              rerun=True)
    contexts = {s: StageContext.open(inventory_for(info, base, s), "slurm", f"bench-{s}",
                                     store=RawStore(base / "raw")) for s in submissions}
    direct: list[float] = []
    vhpc: dict[str, list[float]] = {s: [] for s in submissions}
    try:
        first = contexts[submissions[0]]
        t = time.perf_counter()
        check_submission(submit_executor(first), first.env.slurm, nodes=len(first.env.hosts))
        print(f"settings check (sbatch --test-only, once per campaign): {time.perf_counter() - t:.2f} s")
        fingerprints = time_fingerprints(first, base, args.fingerprints)
        for ctx in contexts.values():
            ctx.host_facts(ctx.env.hosts)  # once per campaign (timed above)
        command, env = direct_command(first, params)
        host = submit_executor(first)
        for i in range(args.jobs + 1):  # the first round warms up (page cache, SSH channels) and is dropped
            t = time.perf_counter()
            result = host.run(command, env=env, timeout=300, warn=True)
            d = time.perf_counter() - t
            if result.exit_code != 0 or "#bytes" not in result.stdout:
                raise SystemExit(f"direct srun failed: {result.stderr.strip()[-500:]}")
            line = [f"job {i}: direct srun {d:.2f} s"]
            for submission, ctx in contexts.items():
                t = time.perf_counter()
                stage = run_stage(ctx, "microbench", params, progress=False)
                v = time.perf_counter() - t
                if stage.failures or stage.invalid or not stage.runs:
                    raise SystemExit(f"vhpc run failed: {stage.lines()}")
                if i:
                    vhpc[submission].append(v)
                line.append(f"vhpc ({submission}) {v:.2f} s")
            if i:
                direct.append(d)
            print(", ".join(line))
    finally:
        for ctx in contexts.values():
            ctx.close()
    ssh = time_ssh_fingerprints(load_inventory(info.inventory), args.fingerprints)
    total = sum(direct)
    ratios = {s: sum(v) / total for s, v in vhpc.items()}
    print(f"direct srun: {total:.2f} s for {len(direct)} jobs (median {statistics.median(direct):.2f} s)")
    for submission, times in vhpc.items():
        print(f"vhpc ({submission}): {sum(times):.2f} s (median {statistics.median(times):.2f} s), "
              f"ratio {ratios[submission]:.2f}")
    f = statistics.median(fingerprints)
    print(f"fingerprint 2 nodes through Slurm: median {f:.2f} s; over SSH (fan-out): median "
          f"{statistics.median(ssh):.2f} s")
    main_ratio = ratios[submissions[0]]
    extra = " ".join(f"{s}_ratio={r:.2f}" for s, r in ratios.items())
    print(f"slurm_overhead_ratio={main_ratio:.2f} slurm_fingerprint_s={f:.2f} submission={submissions[0]} {extra} "
          f"direct_job_s={statistics.median(direct):.2f}")


def time_fingerprints(ctx: StageContext, base: Path, repeats: int) -> list[float]:
    """Both nodes fingerprinted through one srun step, ``repeats`` times after one warm-up."""
    times = []
    host = submit_executor(ctx)
    for i in range(repeats + 1):
        t = time.perf_counter()
        facts, _ = fingerprint_nodes(host, ctx.env.slurm, len(ctx.env.hosts), base / "fingerprints" / str(i),
                                     runtime=ctx.runtime, timeout_s=300)
        elapsed = time.perf_counter() - t
        if len(facts) != len(ctx.env.hosts):
            raise SystemExit(f"fingerprint answered for {sorted(facts)}")
        if i:
            times.append(elapsed)
    return times


def time_ssh_fingerprints(inv, repeats: int) -> list[float]:
    """The same 2 hosts fingerprinted over SSH in parallel, fresh connections each time."""
    env = inv.environment("slurm")
    times = []
    script = fingerprint_script()
    for i in range(repeats + 1):
        executors = [executor_for(h, env, inv) for h in env.hosts]
        t = time.perf_counter()
        outcomes = fan_out(executors, script, timeout=120)
        for outcome in outcomes:
            facts_from_result(outcome.host, outcome.result)
        elapsed = time.perf_counter() - t
        for e in executors:
            e.close()
        if i:
            times.append(elapsed)
    return times


if __name__ == "__main__":
    sys.exit(main())
