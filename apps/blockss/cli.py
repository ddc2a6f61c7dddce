"""``vhpc-blockss``: solve / generate / suggest-circle / presets.

Run under MPI as ``mpirun -n P vhpc-blockss solve ...``; only rank 0 prints and writes.
Errors in input exit with code 2 and one line on stderr (on rank 0).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

from blockss import __version__
from blockss.errors import BlockssError


def parse_complex(text: str) -> complex:
    """``RE,IM`` or a Python complex literal (``1+2j``)."""
    try:
        if "," in text:
            re, im = text.split(",")
            return complex(float(re), float(im))
        return complex(text.replace(" ", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a complex number (RE,IM): {text!r}") from None


def _add_matrix_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problem", help="problem.json written by 'generate' (matrices, circle, N/L/M)")
    for role, what in (("A", "A of A x = l B x"), ("B", "B (default identity)"),
                       ("A0", "A0 of (A0 + z A1 + z^2 A2) x = 0"), ("A1", "A1"), ("A2", "A2 (optional)")):
        p.add_argument(f"--{role}", dest=role, metavar="FILE.mtx", help=f"Matrix Market file: {what}")
    p.add_argument("--name", help="problem name in the log (default: from problem.json or folder)")


def _load(args: argparse.Namespace):
    from blockss.problem import load_problem, load_problem_file
    if args.problem:
        if any(getattr(args, r) for r in ("A", "B", "A0", "A1", "A2")):
            raise BlockssError("give --problem or matrix files, not both")
        prob, spec = load_problem_file(args.problem)
    else:
        prob, spec = load_problem(A=args.A, B=args.B, A0=args.A0, A1=args.A1, A2=args.A2), {}
    if args.name:
        prob.name = args.name
    return prob, spec


def _threads() -> int:
    from blockss.solver import blas_threads
    n = blas_threads()
    try:  # threadpoolctl, when installed, also caps BLAS pools already loaded
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:
        pass
    return n


def cmd_solve(args: argparse.Namespace) -> int:
    threads = _threads()
    from mpi4py import MPI

    from blockss.report import TIMING_KEYS, format_log, solver_warnings
    from blockss.solver import SSParams, solve

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    comm.Barrier()
    t0 = MPI.Wtime()
    try:
        prob, spec = _load(args)
        center = args.center if args.center is not None else (
            complex(*spec["center"]) if "center" in spec else None)
        radius = args.radius if args.radius is not None else spec.get("radius")
        if center is None or radius is None:
            raise BlockssError("no circle: give --center RE,IM and --radius R (or a problem.json with them)")
        params = SSParams(center=center, radius=float(radius),
                          N=args.N or spec.get("N", 32), L=args.L or spec.get("L", 16),
                          M=args.M or spec.get("M", 4), delta=args.delta, tol=args.tol, seed=args.seed,
                          method=args.method, dense=args.dense, point_workers=args.point_workers,
                          moment_tol=args.moment_tol, weight_tol=args.weight_tol, cluster_tol=args.cluster_tol)
        t_setup = MPI.Wtime() - t0
        res = solve(prob, params, comm=comm)
    except BlockssError as exc:
        # Every rank sees the same input, so every rank fails the same way.
        if rank == 0:
            print(f"vhpc-blockss: error: {exc}", file=sys.stderr)
        return 2
    except Exception:
        # An unexpected failure on one rank would leave the others blocked in a
        # collective forever: print it and abort the whole job.
        import traceback
        traceback.print_exc()
        sys.stderr.flush()
        comm.Abort(1)
    t_total = MPI.Wtime() - t0
    mine = dict(res.timings, setup=t_setup, total=t_total)
    per_rank = comm.gather(mine, root=0)
    tmax = {k: comm.allreduce(mine[k], op=MPI.MAX) for k in TIMING_KEYS}
    if rank != 0:
        return 0
    rec = build_record(prob, spec, params, res, tmax, per_rank, size, threads,
                       MPI.Get_library_version().strip().splitlines()[0])
    rec["warnings"] = [w for part in solver_warnings(rec) for w in part]
    sys.stdout.write(format_log(rec))
    sys.stdout.flush()
    if args.out:
        Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")
    return 0


def build_record(prob, spec: dict[str, Any], params, res, tmax: dict[str, float], per_rank: list[dict],
                 nprocs: int, threads: int, mpi_library: str) -> dict[str, Any]:
    """The JSON run record (also the input of the log formatter)."""
    import numpy
    import scipy
    return {
        "app": "blockss", "version": __version__, "problem": prob.name, "kind": prob.kind,
        "method": res.method, "n": prob.n, "nnz": prob.input_nnz,
        "matrices": {r: {"path": p, "sha256": prob.sha256[r]} for r, p in prob.inputs.items()},
        "center": [params.center.real, params.center.imag], "radius": params.radius,
        "N": params.N, "L": params.L, "M": params.M, "delta": params.delta, "tol": params.tol,
        "seed": params.seed, "dense": params.dense, "point_workers": params.point_workers,
        "nprocs": nprocs, "threads": threads, "points_per_rank": res.points_per_rank,
        "mpi_library": mpi_library, "hostname": platform.node(),
        "numpy": numpy.__version__, "scipy": scipy.__version__,
        "reduce_bytes": res.reduce_bytes, "moment_blocks": res.reduce_bytes // (16 * prob.n * params.L),
        "rank": res.rank, "subspace": res.subspace, "subspace_full": res.subspace_full,
        "singular_values": [float(s) for s in res.singular_values],
        "expected_count": spec.get("expected_count"),
        "moment_tol": params.moment_tol, "weight_tol": params.weight_tol, "cluster_tol": params.cluster_tol,
        "eigenvalues": [[p.value.real, p.value.imag] for p in res.accepted],
        "residuals": [p.residual for p in res.accepted],
        "moment_errors": [p.moment_error for p in res.accepted],
        "weights": [p.weight for p in res.accepted],
        "rejected": [{"value": [p.value.real, p.value.imag], "residual": p.residual, "reasons": list(p.reasons),
                      "moment_error": p.moment_error, "weight": p.weight} for p in res.rejected],
        "outside": [{"value": [p.value.real, p.value.imag], "distance": p.distance, "residual": p.residual}
                    for p in res.outside],
        "outside_count": len(res.outside),
        "clusters": [{"value": [c.value.real, c.value.imag], "count": c.count} for c in res.clusters if c.count > 1],
        "multiplicity_warning": [{"value": [c.value.real, c.value.imag], "count": c.count}
                                 for c in res.saturated_clusters],
        "timings": tmax, "timings_per_rank": per_rank,
        "timing_method": "MPI.Wtime per phase; timings = max over ranks",
    }


def cmd_generate(args: argparse.Namespace) -> int:
    from blockss.generate import generate, generate_preset
    if args.preset:
        if args.generator:
            raise BlockssError("give a generator or --preset, not both")
        spec = generate_preset(args.preset, args.outdir)
    else:
        if not args.generator or not args.size:
            raise BlockssError("need a generator (laplace2d|laplace3d|quadratic) and --size, or --preset")
        spec = generate(args.generator, args.size, args.outdir, target=args.target, count=args.count)
    print(f"wrote {Path(args.outdir) / 'problem.json'}")
    if "radius" in spec:
        c = spec["center"]
        print(f"circle: --center={c[0]!r},{c[1]!r} --radius={spec['radius']!r} "
              f"holds {spec['expected_count']} eigenvalues (gap ratio {spec['gap_ratio']:.3f})")
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    from blockss.generate import suggest_circle
    prob, _ = _load(args)
    circ = suggest_circle(prob, args.target, args.count)
    c = circ["center"]
    print(f"--center={c[0]!r},{c[1]!r} --radius={circ['radius']!r}")
    print(f"holds {circ['count']} eigenvalues; gap ratio (first outside / last inside distance) "
          f"{circ['gap_ratio']:.4f}")
    for re, im in circ["inside"]:
        print(f"  {re:+.12e} {im:+.12e}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from blockss.generate import PRESETS
    for name, p in PRESETS.items():
        print(f"{name:16} {p.generator:10} size={p.size:<4} target={p.target} count>={p.count} "
              f"N={p.N} L={p.L} M={p.M}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vhpc-blockss", allow_abbrev=False,
                                 description="Block Sakurai-Sugiura eigensolver under MPI (vHPC's Bloss).")
    ap.add_argument("--version", action="version", version=f"blockss {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("solve", allow_abbrev=False, help="eigenvalues inside a circle (run under mpirun)")
    _add_matrix_args(s)
    s.add_argument("--center", type=parse_complex, help="circle center RE,IM (use --center=-1,0 for negatives)")
    s.add_argument("--radius", type=float)
    s.add_argument("--N", type=int, help="quadrature points (default 32 or problem.json)")
    s.add_argument("--L", type=int, help="random right-hand sides (default 16 or problem.json)")
    s.add_argument("--M", type=int, help="moments (default 4 or problem.json)")
    s.add_argument("--delta", type=float, default=1e-12, help="relative singular value cut-off")
    s.add_argument("--tol", type=float, default=1e-8, help="relative residual to accept an eigenpair")
    s.add_argument("--moment-tol", type=float, default=1e-5,
                   help="largest relative departure of a pair's moments from the filter recursion (0: off)")
    s.add_argument("--weight-tol", type=float, default=1e-3,
                   help="smallest normalized weight of a pair in the moments (0: off)")
    s.add_argument("--cluster-tol", type=float, default=1e-6,
                   help="eigenvalues closer than this times the radius count as one (multiplicity check)")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--method", choices=("auto", "rr", "hankel"), default="auto")
    s.add_argument("--dense", action="store_true", help="dense LAPACK LU per point (moderate n)")
    s.add_argument("--point-workers", type=int, default=1,
                   help="threads over a rank's quadrature points (helps only with --dense: splu holds the GIL)")
    s.add_argument("--out", help="write the JSON run record here (rank 0)")
    s.set_defaults(func=cmd_solve)

    g = sub.add_parser("generate", allow_abbrev=False, help="write a test problem as Matrix Market files")
    g.add_argument("generator", nargs="?", choices=("laplace2d", "laplace3d", "quadratic"))
    g.add_argument("--size", type=int, help="grid points along the first axis")
    g.add_argument("--preset", help="named preset (see 'presets')")
    g.add_argument("--outdir", required=True)
    g.add_argument("--target", type=parse_complex, help="with --count: suggest a circle around RE,IM")
    g.add_argument("--count", type=int)
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("suggest-circle", allow_abbrev=False,
                       help="a circle around a target holding about COUNT eigenvalues")
    _add_matrix_args(c)
    c.add_argument("--target", type=parse_complex, required=True)
    c.add_argument("--count", type=int, required=True)
    c.set_defaults(func=cmd_suggest)

    p = sub.add_parser("presets", help="list the named presets")
    p.set_defaults(func=cmd_presets)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BlockssError as exc:
        print(f"vhpc-blockss: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
