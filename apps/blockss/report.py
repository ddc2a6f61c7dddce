"""The human-readable log (parsed by ``vhpclib.parsers.app``) and the JSON run record.

The log's anchored lines are a contract with the parser: ``# blockss <version>`` opens
it, ``size:``, ``contour:``, ``parallel:``, ``reduce:``, ``subspace:``, ``eigenvalues:``
and the ``timings [s]`` block carry the numbers, ``# blockss done`` closes it. Rows:
accepted eigenvalues (``#  real  imag  residual``), ``R<k>`` rejected pairs (with why:
``residual``, ``moments``, ``weight``), ``O<k>`` eigenvalues dropped as outside the
circle (with their distance to it). ``WARNING:`` lines make the run unverified.
"""

from __future__ import annotations

from typing import Any

TIMING_KEYS = ("setup", "solve", "wait", "reduce", "extract", "total")


def fmt_complex(z: complex) -> str:
    return f"{z.real:.17g}{z.imag:+.17g}j"


def solver_warnings(rec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What makes a run unverified, as the log prints it: (before, after) the ``eigenvalues:`` line.

    The JSON record carries the same sentences (``warnings``), so log and JSON never disagree.
    """
    before = []
    if rec["subspace_full"]:
        before.append(f"subspace full (rank {rec['rank']} = L*M): eigenvalues may be missing; increase L or M")
    for c in rec["multiplicity_warning"]:
        before.append(f"eigenvalue {fmt_complex(complex(*c['value']))} found {c['count']} times = L={rec['L']}: "
                      f"its multiplicity may exceed L and copies may be missing; rerun with a larger --L "
                      f"(e.g. --L {2 * rec['L']})")
    exp = rec.get("expected_count")
    after = []
    if exp is not None and exp != len(rec["eigenvalues"]):
        after.append(f"expected {exp} eigenvalues inside the circle, accepted {len(rec['eigenvalues'])}")
    return before, after


def format_log(rec: dict[str, Any]) -> str:
    """The log text of one run record (as built by ``cli.build_record``)."""
    out = [f"# blockss {rec['version']}: block Sakurai-Sugiura eigensolver"]
    out.append(f"problem: {rec['problem']} kind={rec['kind']} method={rec['method']}")
    for role, m in rec["matrices"].items():
        out.append(f"matrix {role}: {m['path']} sha256={m['sha256']}")
    out.append(f"size: n={rec['n']} nnz={rec['nnz']}")
    c = complex(*rec["center"])
    out.append(f"contour: center={fmt_complex(c)} radius={rec['radius']:.17g} N={rec['N']} L={rec['L']} "
               f"M={rec['M']} delta={rec['delta']:g} tol={rec['tol']:g} seed={rec['seed']}")
    out.append(f"parallel: nprocs={rec['nprocs']} threads={rec['threads']} point_workers={rec['point_workers']} "
               f"solver={'dense-lapack' if rec['dense'] else 'splu'} "
               f"points_per_rank={','.join(map(str, rec['points_per_rank']))}")
    out.append(f"mpi: {rec['mpi_library']}")
    out.append(f"reduce: one Allreduce of {rec['reduce_bytes']} bytes "
               f"({rec['moment_blocks']} moment blocks of n x L complex128)")
    out.append(f"subspace: rank={rec['rank']} of L*M={rec['subspace']}")
    out.append(f"filter: moment_tol={rec['moment_tol']:g} weight_tol={rec['weight_tol']:g} "
               f"cluster_tol={rec['cluster_tol']:g}")
    before, after = solver_warnings(rec)
    out += [f"WARNING: {w}" for w in before]
    exp = rec.get("expected_count")
    out.append(f"eigenvalues: accepted={len(rec['eigenvalues'])} rejected={len(rec['rejected'])} "
               f"outside={rec['outside_count']} expected={exp if exp is not None else '-'}")
    out += [f"WARNING: {w}" for w in after]
    out.append(f"{'#':>4} {'real':>25} {'imag':>25} {'residual':>10}")
    for i, ((re, im), r) in enumerate(zip(rec["eigenvalues"], rec["residuals"]), 1):
        out.append(f"{i:4d} {re:+25.17e} {im:+25.17e} {r:10.3e}")
    if rec["rejected"]:
        out.append(f"rejected: residual > tol={rec['tol']:g} (not converged), or spurious: moment error > "
                   f"moment_tol (moments), weight < weight_tol (weight)")
        for i, rj in enumerate(rec["rejected"], 1):
            out.append(f"R{i:3d} {rj['value'][0]:+25.17e} {rj['value'][1]:+25.17e} {rj['residual']:10.3e} "
                       f"{','.join(rj['reasons'])}")
    if rec["outside"]:
        out.append("outside: dropped, |lambda - center| >= radius; distance = |lambda - center| - radius")
        for i, o in enumerate(rec["outside"], 1):
            out.append(f"O{i:3d} {o['value'][0]:+25.17e} {o['value'][1]:+25.17e} {o['distance']:10.3e}")
    out.append("timings [s] (MPI.Wtime per phase, max over ranks):")
    for k in TIMING_KEYS:
        out.append(f"  {k:<8} {rec['timings'][k]:12.6f}")
    out.append("# blockss done")
    return "\n".join(out) + "\n"
