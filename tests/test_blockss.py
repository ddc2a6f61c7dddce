"""blockss: eigenvalues against dense LAPACK, real mpirun with 1-3 ranks, reporting of failures."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg as sla

from blockss.generate import RAYLEIGH, generate, generate_preset, laplace, quadratic, suggest_circle
from blockss.problem import load_problem, load_problem_file
from blockss.solver import SSParams, quadrature, solve
from vhpclib.parsers import app as app_parser

VENV_BIN = Path("/work/main/.venv/bin")
BLOCKSS = VENV_BIN / "vhpc-blockss"
MPIRUN = VENV_BIN / "mpirun"


@pytest.fixture(scope="module")
def problems(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("blockss")
    return {name: _gen(name, root) for name in ("tiny", "quadratic-tiny")}


def _gen(name: str, root: Path) -> Path:
    generate_preset(name, root / name)
    return root / name / "problem.json"


def _dense_inside(problem, center: complex, radius: float) -> np.ndarray:
    ac, bc = problem.dense_pencil()
    ev = sla.eig(ac, bc, right=False)
    ev = ev[np.isfinite(ev)]
    return np.sort_complex(ev[np.abs(ev - center) < radius])


def _params(spec: dict, **kw) -> SSParams:
    base = dict(center=complex(*spec["center"]), radius=spec["radius"], N=spec["N"], L=spec["L"], M=spec["M"])
    base.update(kw)
    return SSParams(**base)


def _assert_same_eigenvalues(got: np.ndarray, want: np.ndarray, rtol: float = 1e-8) -> None:
    got = np.sort_complex(np.asarray(got))
    assert len(got) == len(want), f"found {len(got)} eigenvalues, dense eig has {len(want)} inside"
    assert np.max(np.abs(got - want) / np.abs(want)) < rtol


def _env(threads: int = 1) -> dict[str, str]:
    env = dict(os.environ, I_MPI_FABRICS="shm", OMP_NUM_THREADS=str(threads),
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    env.pop("I_MPI_HYDRA_IFACE", None)
    return env


def _mpirun(nprocs: int, *args: str, threads: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(MPIRUN), "-n", str(nprocs), str(BLOCKSS), "solve", *args]
    cp = subprocess.run(cmd, capture_output=True, text=True, env=_env(threads), timeout=120)
    if check:
        assert cp.returncode == 0, cp.stderr + cp.stdout
    return cp


@pytest.mark.parametrize("method", ["rr", "hankel"])
def test_generalized_eigenvalues_match_dense_eig_inside_circle(problems, method) -> None:
    prob, spec = load_problem_file(problems["tiny"])
    want = _dense_inside(prob, complex(*spec["center"]), spec["radius"])
    assert len(want) == spec["expected_count"] >= 5
    res = solve(prob, _params(spec, method=method))
    _assert_same_eigenvalues([p.value for p in res.accepted], want)
    assert res.rejected == [] and not res.subspace_full
    assert max(p.residual for p in res.accepted) < 1e-10


@pytest.mark.parametrize("method", ["hankel", "rr"])
def test_quadratic_eigenvalues_match_companion_linearization(problems, method) -> None:
    prob, spec = load_problem_file(problems["quadratic-tiny"])
    assert prob.kind == "polynomial" and prob.degree == 2
    want = _dense_inside(prob, complex(*spec["center"]), spec["radius"])
    assert len(want) == spec["expected_count"] >= 5
    res = solve(prob, _params(spec, method=method))
    assert res.method == method
    _assert_same_eigenvalues([p.value for p in res.accepted], want)
    assert res.rejected == []


def test_laplace3d_problem_with_suggested_circle_matches_dense_eig(tmp_path) -> None:
    spec = generate("laplace3d", 5, tmp_path, target=complex(500.0, 0.0), count=6)
    prob, spec = load_problem_file(tmp_path / "problem.json")
    assert prob.n == 5 * 6 * 7 and prob.kind == "generalized"
    want = _dense_inside(prob, complex(*spec["center"]), spec["radius"])
    assert len(want) == spec["expected_count"] >= 6
    res = solve(prob, SSParams(center=complex(*spec["center"]), radius=spec["radius"], N=32, L=8, M=4))
    _assert_same_eigenvalues([p.value for p in res.accepted], want)


def test_quadratic_generator_has_rayleigh_damping_spectrum() -> None:
    K, C, M = quadratic(8)
    alpha, beta = RAYLEIGH
    assert abs(C - (alpha * M + beta * K)).max() < 1e-12
    w2 = sla.eigh(K.toarray(), M.toarray(), eigvals_only=True)
    damp = alpha + beta * w2
    roots = np.concatenate([(-damp + np.sqrt(damp**2 - 4 * w2 + 0j)) / 2, (-damp - np.sqrt(damp**2 - 4 * w2 + 0j)) / 2])
    prob = load_problem_from_mats(K, C, M)
    ac, bc = prob.dense_pencil()
    ev = sla.eig(ac, bc, right=False)
    assert len(ev) == len(roots)
    # every analytic root is an eigenvalue of the companion pencil, and vice versa
    dist = np.abs(ev[:, None] - roots[None, :])
    assert dist.min(axis=0).max() < 1e-9 and dist.min(axis=1).max() < 1e-9


def load_problem_from_mats(*mats):
    from blockss.problem import Problem
    import scipy.sparse as sp
    return Problem(name="mem", kind="polynomial", coeffs=[sp.csc_matrix(m) for m in mats])


def test_standard_problem_without_B_uses_identity(tmp_path) -> None:
    import scipy.io
    import scipy.sparse as sp
    A, _ = laplace(12, 2)
    scipy.io.mmwrite(str(tmp_path / "A.mtx"), sp.coo_matrix(A))
    prob = load_problem(A=str(tmp_path / "A.mtx"))
    assert prob.kind == "standard"
    circ = suggest_circle(prob, complex(600.0, 0.0), 6)
    want = np.sort(np.linalg.eigvalsh(A.toarray()))
    c, r = complex(*circ["center"]), circ["radius"]
    inside = want[np.abs(want - c) < r].astype(complex)
    assert len(inside) == circ["count"]
    res = solve(prob, SSParams(center=c, radius=r, N=32, L=8, M=4))
    _assert_same_eigenvalues([p.value for p in res.accepted], inside)


def test_quadrature_weights_integrate_cauchy_kernel_exactly() -> None:
    c, r = 1.0 + 2.0j, 0.5
    z, w, zeta = quadrature(c, r, 16)
    assert np.allclose(np.abs(z - c), r)
    assert abs(np.sum(w / (z - c)) - 1) < 1e-14          # (1/2 pi i) oint dz / (z - c) = 1
    assert abs(np.sum(w / (z - (c + 3 * r)))) < 1e-7      # pole outside: integral 0


def test_dense_lapack_path_with_point_threads_matches_sparse(problems) -> None:
    prob, spec = load_problem_file(problems["tiny"])
    a = solve(prob, _params(spec))
    b = solve(prob, _params(spec, dense=True, point_workers=2))
    assert np.allclose([p.value for p in a.accepted], [p.value for p in b.accepted], rtol=1e-12, atol=0)


def test_too_small_subspace_is_reported_not_hidden(problems) -> None:
    prob, spec = load_problem_file(problems["tiny"])
    res = solve(prob, _params(spec, L=2, M=2))
    assert res.subspace_full
    assert len(res.accepted) < spec["expected_count"]
    assert res.rejected  # the Ritz values it did find are listed, with their residuals


@pytest.mark.mpi
def test_mpirun_1_2_3_ranks_give_same_eigenvalues_and_json_record(problems, tmp_path) -> None:
    prob, spec = load_problem_file(problems["tiny"])
    want = _dense_inside(prob, complex(*spec["center"]), spec["radius"])
    recs = {}
    for k in (1, 2, 3):
        out = tmp_path / f"np{k}.json"
        cp = _mpirun(k, "--problem", str(problems["tiny"]), "--out", str(out))
        recs[k] = json.loads(out.read_text())
        [row] = app_parser.parse(cp.stdout, file=f"np{k}.log").records
        assert row["nprocs"] == k and row["n_eigenvalues"] == len(want) and row["verified"]
        assert row["reduce_bytes"] == prob.n * spec["L"] * spec["M"] * 16
        assert sum(recs[k]["points_per_rank"]) == spec["N"] and len(recs[k]["points_per_rank"]) == k
    base = np.array([complex(*v) for v in recs[1]["eigenvalues"]])
    _assert_same_eigenvalues(base, want)
    for k in (2, 3):
        other = np.array([complex(*v) for v in recs[k]["eigenvalues"]])
        assert np.allclose(other, base, rtol=1e-12, atol=0)
    rec = recs[2]
    for key in ("eigenvalues", "residuals", "nprocs", "threads", "n", "N", "L", "M", "seed", "center", "radius"):
        assert key in rec
    assert set(rec["timings"]) == {"setup", "solve", "wait", "reduce", "extract", "total"}
    assert all(v >= 0 for v in rec["timings"].values())
    for role, m in rec["matrices"].items():
        assert m["sha256"] == hashlib.sha256(Path(m["path"]).read_bytes()).hexdigest()


@pytest.mark.mpi
def test_mpirun_quadratic_two_ranks_with_two_threads(problems, tmp_path) -> None:
    out = tmp_path / "q.json"
    cp = _mpirun(2, "--problem", str(problems["quadratic-tiny"]), "--out", str(out), threads=2)
    rec = json.loads(out.read_text())
    assert rec["threads"] == 2 and rec["method"] == "hankel"
    prob, spec = load_problem_file(problems["quadratic-tiny"])
    want = _dense_inside(prob, complex(*spec["center"]), spec["radius"])
    _assert_same_eigenvalues([complex(*v) for v in rec["eigenvalues"]], want)
    assert "parallel: nprocs=2 threads=2" in cp.stdout


@pytest.mark.mpi
def test_missing_matrix_exits_2_naming_the_file(tmp_path) -> None:
    missing = tmp_path / "nope.mtx"
    cp = _mpirun(1, "--A", str(missing), "--center", "1,0", "--radius", "1", check=False)
    assert cp.returncode == 2
    assert str(missing) in cp.stderr and "not found" in cp.stderr


def test_generate_cli_writes_matrix_market_and_problem_json(tmp_path) -> None:
    out = tmp_path / "q"
    cp = subprocess.run([str(BLOCKSS), "generate", "quadratic", "--size", "10", "--outdir", str(out),
                         "--target=-0.06,2", "--count", "4"], capture_output=True, text=True, env=_env())
    assert cp.returncode == 0, cp.stderr
    spec = json.loads((out / "problem.json").read_text())
    assert sorted(spec["matrices"]) == ["A0", "A1", "A2"]
    assert (out / "A2.mtx").read_text().startswith("%%MatrixMarket matrix coordinate real symmetric")
    prob, _ = load_problem_file(out / "problem.json")
    assert len(_dense_inside(prob, complex(*spec["center"]), spec["radius"])) == spec["expected_count"]
    assert shutil.which("vhpc-blockss", path=str(VENV_BIN))
