"""Measured vs algorithmic (ideal) parallel efficiency of blockss at 2 ranks.

Generates a preset (default ``medium``, ~20 s CPU at 1 rank on this 2-core machine),
runs it with real ``mpirun -n 1`` and ``mpirun -n 2`` (1 thread per rank, Intel MPI
shm), and reads the JSON run records. Measured efficiency E(2) = T(1) / (2 T(2)) from
``total``; the ideal from the 1-rank phase times with ``vhpclib.analysis.ideal_efficiency``:
P = solve (divisible), D = setup + extract (every rank repeats them; reduce is
communication, assumed free in the ideal). Last line: ``efficiency_2=X ideal_2=Y``.

    .venv/bin/python benchmarks/blockss_scaling.py [--preset medium] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from blockss.generate import generate_preset
from vhpclib.analysis import ideal_efficiency

VENV_BIN = Path(sys.executable).parent


def run(nprocs: int, problem: Path, out: Path) -> dict:
    env = dict(os.environ, I_MPI_FABRICS="shm", OMP_NUM_THREADS="1",
               PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("I_MPI_HYDRA_IFACE", None)
    cmd = [str(VENV_BIN / "mpirun"), "-n", str(nprocs), str(VENV_BIN / "vhpc-blockss"), "solve",
           "--problem", str(problem), "--out", str(out)]
    cp = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if cp.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({cp.returncode}):\n{cp.stderr[-2000:]}")
    (out.with_suffix(".log")).write_text(cp.stdout)
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--keep", help="keep matrices, logs and JSON records in this folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        spec = generate_preset(args.preset, work / args.preset)
        problem = work / args.preset / "problem.json"
        recs = {p: run(p, problem, work / f"np{p}.json") for p in (1, 2)}
    for p, r in recs.items():
        t = r["timings"]
        print(f"np={p} n={r['n']} eigenvalues={len(r['eigenvalues'])}/{spec['expected_count']} "
              f"reduce_bytes={r['reduce_bytes']} " + " ".join(f"{k}={v:.3f}s" for k, v in t.items()))
    t1, t2 = recs[1]["timings"], recs[2]["timings"]
    measured = t1["total"] / (2 * t2["total"])
    P, D = t1["solve"], t1["setup"] + t1["extract"]
    ideal = ideal_efficiency(P, D, 2, 1)
    print(f"P(solve,1 rank)={P:.3f}s D(setup+extract,1 rank)={D:.3f}s")
    print(f"efficiency_2={measured:.3f} ideal_2={ideal:.3f}")


if __name__ == "__main__":
    main()
