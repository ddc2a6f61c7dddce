"""What does going through Slurm cost? Short IMB jobs and host fingerprints on a 2-node testbed.

Brings up its own 2-node namespace testbed with a private Slurm cluster (``testbed up
--slurm``, in a temporary folder), then, from node 1 over SSH as the testbed's ``slurm``
environment does:

* N short IMB PingPong jobs (2 ranks, ``-msglog 0:4 -iter 50``) two ways, interleaved:
  submitted directly with ``srun --mpi=pmi2`` (blocking, the user's own way), and as
  vhpc batch jobs (``vhpclib.slurm.jobs.run_batch_job``: script, sbatch, squeue polls,
  sacct, output copied back). The ratio of the medians is printed as ``jobs_module_ratio``;
  the issue's ``slurm_overhead_ratio`` (through the Slurm *launcher*, target <= 1.10) is
  measured once the launcher exists.
* fingerprinting both nodes through one ``srun --ntasks-per-node=1`` step
  (``slurm_fingerprint_s``, median), beside the same 2 hosts fingerprinted over SSH.

Needs root and the Debian packages slurm-wlm, munge, libpmi2-0. The last line is
``slurm_fingerprint_s=Y direct_srun_job_s=A batch_job_s=B jobs_module_ratio=B/A``.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vhpclib import paths
from vhpclib import testbed as tb
from vhpclib.config import load_inventory
from vhpclib.fingerprint import facts_from_result, fingerprint_script
from vhpclib.mpi import SYSTEM_PATH
from vhpclib.remote import executor_for, fan_out
from vhpclib.slurm.fingerprint import fingerprint_nodes
from vhpclib.slurm.jobs import run_batch_job, slurm_env
from vhpclib.slurm.script import BatchJob

NAME = "slbench"
VENV = Path(sys.prefix)
IMB = (str(VENV / "bin" / "IMB-MPI1"), "PingPong", "-msglog", "0:4", "-iter", "50")


def mpi_env(placement: str) -> dict[str, str]:
    env = {"LD_LIBRARY_PATH": str(VENV / "lib"), "PATH": f"{VENV / 'bin'}:{SYSTEM_PATH}", "FI_PROVIDER": "tcp",
           "I_MPI_PMI_LIBRARY": "/usr/lib/x86_64-linux-gnu/libpmi2.so.0"}
    env["I_MPI_FABRICS"] = "shm" if placement == "intra" else "ofi"
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10, help="short IMB jobs each way")
    parser.add_argument("--fingerprints", type=int, default=5, help="fingerprint rounds each way")
    parser.add_argument("--placement", choices=["intra", "inter"], default="intra",
                        help="2 ranks on node 1, or 1 rank on each node")
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


def run(args: argparse.Namespace, info: tb.TestbedInfo, base: Path) -> None:
    inv = load_inventory(info.inventory)
    env = inv.environment("slurm")
    settings = env.slurm
    shape = ["-N", "1", "-n", "2"] if args.placement == "intra" else ["-N", "2", "--ntasks-per-node=1"]
    direct_cmd = " ".join(shlex.quote(a) for a in ["srun", "--mpi=pmi2", f"--partition={settings.partition}",
                                                   "--exclusive", *shape, *IMB])
    job = BatchJob(name="imb-bench", program=IMB, env=mpi_env(args.placement),
                   **({"ntasks": 2, "nodes": 1} if args.placement == "intra" else {"nodes": 2, "ntasks_per_node": 1}))
    direct: list[float] = []
    batch: list[float] = []
    with executor_for(settings.submit_host, env, inv) as host:
        for i in range(args.jobs + 1):  # the first pair warms up (page cache, SSH session) and is dropped
            t = time.perf_counter()
            result = host.run(direct_cmd, env={**slurm_env(settings), **mpi_env(args.placement)}, timeout=300,
                              warn=True)
            d = time.perf_counter() - t
            if result.exit_code != 0 or "#bytes" not in result.stdout:
                raise SystemExit(f"direct srun failed: {result.stderr.strip()[-500:]}")
            t = time.perf_counter()
            outcome = run_batch_job(host, settings, job, base / "runs" / str(i), timeout_s=300)
            b = time.perf_counter() - t
            if not outcome.ok or "#bytes" not in outcome.stdout_path.read_text():
                raise SystemExit(f"batch job {outcome.job_id} failed: {outcome.reason}")
            if i:
                direct.append(d)
                batch.append(b)
            print(f"job {i}: direct srun {d:.2f} s, batch job {b:.2f} s (turnaround {outcome.turnaround_s:.2f} s, "
                  f"pending {outcome.pending_s if outcome.pending_s is None else round(outcome.pending_s, 2)} s)")
        fingerprints: list[float] = []
        for i in range(args.fingerprints + 1):
            t = time.perf_counter()
            facts, _ = fingerprint_nodes(host, settings, 2, base / "fingerprints" / str(i), timeout_s=300)
            f = time.perf_counter() - t
            if sorted(facts) != [n.hostname for n in info.nodes]:
                raise SystemExit(f"fingerprint answered for {sorted(facts)}")
            if i:
                fingerprints.append(f)
    ssh_fingerprints = time_ssh_fingerprints(inv, env, args.fingerprints)
    d, b, f = statistics.median(direct), statistics.median(batch), statistics.median(fingerprints)
    print(f"direct srun per job: median {d:.2f} s (min {min(direct):.2f}, max {max(direct):.2f})")
    print(f"batch job per job:   median {b:.2f} s (min {min(batch):.2f}, max {max(batch):.2f})")
    print(f"fingerprint 2 nodes through Slurm: median {f:.2f} s; over SSH (fan-out): median "
          f"{statistics.median(ssh_fingerprints):.2f} s")
    print(f"slurm_fingerprint_s={f:.2f} direct_srun_job_s={d:.2f} batch_job_s={b:.2f} jobs_module_ratio={b / d:.2f}")


def time_ssh_fingerprints(inv, env, repeats: int) -> list[float]:
    """The same 2 hosts fingerprinted over SSH in parallel, fresh connections each time."""
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
    main()
