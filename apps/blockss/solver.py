"""The block Sakurai-Sugiura method (SS-RR and SS-Hankel) with MPI over quadrature points.

Phases, timed separately because they scale differently with the number of ranks:

``solve``    each rank factorizes and solves ``T(z_j) Y_j = V`` for its own quadrature
             points and accumulates ``sum_j w_j zeta_j^k Y_j`` (shrinks as 1/p);
``wait``     a barrier: time a rank waits for the slowest (load imbalance, noise);
``reduce``   ONE ``Allreduce`` sums the moment blocks ``S_k`` (n x L each, all k in one
             buffer of n*L*K complex numbers);
``extract``  SVD with rank truncation, Rayleigh-Ritz or block Hankel, residuals: run
             redundantly on every rank (the duplicated part that caps efficiency).

Spurious eigenvalues. The truncated subspace holds, besides the eigenvectors inside
the circle, directions the filter damped to the noise level of the computed moments.
For non-normal matrices a Ritz value from such a direction can fall inside the circle
with a small residual (it lies in the pseudospectrum), so the residual test alone
accepts it. Every genuine eigenpair (inside or outside) contributes to the moments as
``S_k = x a^T f_k(t)`` with the known filter ``f_k(t) = sum_j w_j zeta_j^k / (z_j - lambda)``
(``t^k / (1 + t^N)`` for the trapezoidal rule), so each Ritz pair's coefficients in the
moments are checked against that recursion (``moment_error``, relative) and its unfiltered
contribution ``|x| |a|`` against what an eigenpair of condition number 1 would contribute
(``weight``, normalized by ``|T'(lambda)|`` and ``sqrt(L)`` so it does not depend on the
scale of the matrices): noise directions fail one or both. This is the stability /
projection-weight idea of the block SS literature (Ikegami and Sakurai's Rayleigh-Ritz
variant; Imakura, Du and Sakurai) made explicit for both extractions.

Multiplicity. A block method sees at most ``L`` independent eigenvectors of one
eigenvalue (the moments of one eigenvalue have rank <= L). When an eigenvalue is found
``L`` times its multiplicity may be larger: ``clusters`` reports it (the log warns).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import scipy.linalg as sla
from scipy.sparse.linalg import splu

from blockss.errors import BlockssError
from blockss.problem import Problem, companion

METHODS = ("auto", "rr", "hankel")


@dataclass
class SSParams:
    """Contour and subspace parameters.

    ``N`` quadrature points (trapezoidal rule on the circle), ``L`` random right-hand
    sides (from ``seed``), ``M`` moments; singular values below ``delta`` times the
    largest are truncated; eigenpairs with relative residual above ``tol`` are rejected.
    ``method`` ``auto`` is Rayleigh-Ritz for degree-1 problems, block Hankel otherwise.
    A pair inside the circle is also rejected as spurious when its moment error exceeds
    ``moment_tol`` or its normalized weight is below ``weight_tol`` (0 disables either);
    eigenvalues closer than ``cluster_tol * radius`` count as one (multiplicity check).
    """

    center: complex
    radius: float
    N: int = 32
    L: int = 16
    M: int = 4
    delta: float = 1e-12
    tol: float = 1e-8
    seed: int = 1
    method: str = "auto"
    dense: bool = False
    point_workers: int = 1
    moment_tol: float = 1e-5
    weight_tol: float = 1e-3
    cluster_tol: float = 1e-6

    def check(self, n: int) -> None:
        if self.radius <= 0:
            raise BlockssError(f"radius must be > 0, got {self.radius}")
        if self.N < 2 or self.L < 1 or self.M < 1:
            raise BlockssError(f"need N >= 2, L >= 1, M >= 1 (got N={self.N} L={self.L} M={self.M})")
        if self.method not in METHODS:
            raise BlockssError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.L > n:
            raise BlockssError(f"L={self.L} exceeds the matrix size n={n}")
        if self.point_workers < 1:
            raise BlockssError("point_workers must be >= 1")
        if min(self.moment_tol, self.weight_tol, self.cluster_tol) < 0:
            raise BlockssError("moment_tol, weight_tol and cluster_tol must be >= 0")

    def resolved_method(self, degree: int) -> str:
        if self.method != "auto":
            return self.method
        return "rr" if degree == 1 else "hankel"


@dataclass
class Eigenpair:
    """A Ritz pair: relative residual, moment error and weight (None where not computed),
    why it was rejected (``reasons``), and for pairs outside the circle their distance to it."""

    value: complex
    residual: float
    vector: np.ndarray | None = None
    moment_error: float | None = None
    weight: float | None = None
    reasons: tuple[str, ...] = ()
    distance: float | None = None


@dataclass
class Cluster:
    """Accepted eigenvalues closer than ``cluster_tol * radius``: one eigenvalue found ``count`` times."""

    value: complex
    count: int


@dataclass
class SSResult:
    """What one rank computed; timings are this rank's own (reduce them for the log)."""

    method: str
    accepted: list[Eigenpair]
    rejected: list[Eigenpair]
    outside: list[Eigenpair]
    rank: int
    subspace: int
    singular_values: np.ndarray
    reduce_bytes: int
    points_per_rank: list[int]
    L: int = 1
    clusters: list[Cluster] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def subspace_full(self) -> bool:
        """True when the numerical rank reached L*M: eigenvalues may be missing."""
        return self.rank >= self.subspace

    @property
    def saturated_clusters(self) -> list[Cluster]:
        """Eigenvalues found L times or more: their multiplicity may exceed L (copies may be missing)."""
        return [c for c in self.clusters if c.count >= self.L]


def quadrature(center: complex, radius: float, n_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trapezoidal rule on the circle: points ``z``, weights ``w`` and normalized ``zeta``.

    ``sum_j w_j zeta_j^k f(z_j)`` approximates ``(1/2 pi i) oint ((z-c)/r)^k f(z) dz``.
    """
    theta = 2 * np.pi * (np.arange(n_points) + 0.5) / n_points
    zeta = np.exp(1j * theta)
    return center + radius * zeta, radius * zeta / n_points, zeta


def _points_of(rank: int, size: int, n_points: int) -> list[int]:
    # Cyclic distribution: neighbouring points have similar cost, so this balances.
    return list(range(rank, n_points, size))


def _wtime(comm: Any) -> Callable[[], float]:
    if comm is None:
        return time.perf_counter
    from mpi4py import MPI
    return MPI.Wtime


def _solve_point(problem: Problem, z: complex, rhs: np.ndarray, dense: bool) -> np.ndarray:
    if dense:
        t = problem.matrix_at(z).toarray()
        lu = sla.lu_factor(t, overwrite_a=True, check_finite=False)
        return sla.lu_solve(lu, rhs, check_finite=False)
    try:
        # Symmetric-structure ordering with threshold pivoting: half the fill of the
        # default COLAMD on grid problems, still stable (pivots when |diag| < 0.1 max).
        lu = splu(problem.matrix_at(z), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.1,
                  options={"SymmetricMode": True})
    except RuntimeError as exc:  # "Factor is exactly singular": z is an eigenvalue
        raise BlockssError(f"T(z) is singular at quadrature point z={z:.6g}; move the circle") from exc
    return lu.solve(rhs)


def random_block(n: int, L: int, seed: int) -> np.ndarray:
    """The ``L`` random right-hand sides; identical on every rank for a given seed."""
    return np.random.default_rng(seed).standard_normal((n, L)).astype(np.complex128)


def solve(problem: Problem, params: SSParams, comm: Any = None, keep_vectors: bool = False) -> SSResult:
    """Eigenvalues of ``problem`` inside the circle, by block SS with MPI over ``comm``.

    ``comm`` is an mpi4py communicator (None: one process). Every rank returns the same
    eigenvalues; ``timings`` holds this rank's ``solve``, ``reduce`` and ``extract``
    seconds. Raises ``BlockssError`` on bad parameters or a singular shifted system.
    """
    n = problem.n
    params.check(n)
    method = params.resolved_method(problem.degree)
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    wtime = _wtime(comm)
    L, M = params.L, params.M
    K = M if method == "rr" else 2 * M
    z, w, zeta = quadrature(params.center, params.radius, params.N)
    mine = _points_of(rank, size, params.N)
    counts = [len(_points_of(r, size, params.N)) for r in range(size)]

    # --- solve: factorize + solve own shifted systems, accumulate moment blocks.
    t0 = wtime()
    V = random_block(n, L, params.seed)
    buf = np.zeros((K, n, L), dtype=np.complex128)

    def accumulate(j: int, Y: np.ndarray) -> None:
        wk = w[j]
        for k in range(K):
            buf[k] += wk * Y
            wk *= zeta[j]

    if params.point_workers > 1 and len(mine) > 1:
        with ThreadPoolExecutor(params.point_workers) as pool:
            for j, Y in zip(mine, pool.map(lambda j: _solve_point(problem, z[j], V, params.dense), mine)):
                accumulate(j, Y)
    else:
        for j in mine:
            accumulate(j, _solve_point(problem, z[j], V, params.dense))
    t1 = wtime()

    # --- wait: a barrier, so that load imbalance (a rank still solving) is timed as
    # ``wait`` and not folded into the collective's time.
    if comm is not None and size > 1:
        comm.Barrier()
    t1b = wtime()

    # --- reduce: one Allreduce of all K moment blocks (n*L*K complex128).
    if comm is not None and size > 1:
        from mpi4py import MPI
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    t2 = wtime()

    # --- extract: redundant on every rank.
    if method == "rr":
        res = _extract_rr(problem, buf, params)
    else:
        res = _extract_hankel(problem, buf, V, params)
    values, vectors, rnk, sv, moment_errors, weights = res
    accepted, rejected, outside = _classify(problem, values, vectors, moment_errors, weights, params,
                                            keep_vectors)
    t3 = wtime()
    return SSResult(method=method, accepted=accepted, rejected=rejected, outside=outside, rank=rnk,
                    subspace=L * M, singular_values=sv, reduce_bytes=int(buf.nbytes),
                    points_per_rank=counts, L=L, clusters=clusters(accepted, params.cluster_tol * params.radius),
                    timings={"solve": t1 - t0, "wait": t1b - t1, "reduce": t2 - t1b, "extract": t3 - t2})


def _truncate(sv: np.ndarray, delta: float) -> int:
    if sv.size == 0 or sv[0] == 0:
        return 0
    return int(np.count_nonzero(sv > delta * sv[0]))


def _small_polynomial_eig(mats: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of a small dense matrix polynomial ``sum_k z^k mats[k]`` (companion form)."""
    vals, vecs = sla.eig(*companion(mats))
    return vals, vecs[:mats[0].shape[0]]


def filter_values(params: SSParams, values: np.ndarray, K: int) -> np.ndarray:
    """``f_k(lambda) = sum_j w_j zeta_j^k / (z_j - lambda)`` for k < K (rows) and every value (columns):
    how the quadrature weights an eigenvalue's eigenvector in the k-th moment."""
    z, w, zeta = quadrature(params.center, params.radius, params.N)
    base = w[:, None] / (z[:, None] - np.asarray(values)[None, :])  # N x m
    return np.stack([(zeta[:, None] ** k * base).sum(axis=0) for k in range(K)])


def _derivative_scale(problem: Problem, values: np.ndarray) -> np.ndarray:
    """A bound on ``|T'(lambda)|`` (1-norms): the eigenvector coefficient of a unit random
    vector is about ``1 / |T'(lambda)|`` for an eigenvalue of condition number 1."""
    norms = problem.norms()
    a = np.abs(values)
    out = sum(k * a ** (k - 1) * nk for k, nk in enumerate(norms) if k >= 1)
    return np.where(out > 0, out, 1.0)


def _moment_test(coef: np.ndarray, f: np.ndarray, L: int) -> tuple[float, np.ndarray]:
    """Fit ``coef`` (K blocks of L) by ``f (x) a``: (relative misfit, unfiltered block ``a``)."""
    blocks = coef.reshape(len(f), L)
    nf = float(np.vdot(f, f).real)
    a = (f.conj() @ blocks) / nf if nf > 0 else np.zeros(L, dtype=blocks.dtype)
    norm = np.linalg.norm(blocks)
    misfit = float(np.linalg.norm(blocks - np.outer(f, a)) / norm) if norm > 0 else float("inf")
    return misfit, a


def _extract_rr(problem: Problem, buf: np.ndarray, params: SSParams):
    K, n, L = buf.shape
    S = buf.transpose(1, 0, 2).reshape(n, K * L)  # [S_0 S_1 ... S_{M-1}]
    U, sv, Wh = np.linalg.svd(S, full_matrices=False)
    m = _truncate(sv, params.delta)
    Q = U[:, :m]
    small = [Q.conj().T @ (c @ Q) for c in problem.coeffs]
    vals, Y = _small_polynomial_eig(small)
    finite = np.isfinite(vals)
    vals, Y = vals[finite], Y[:, finite]
    errors = weights = None
    if problem.degree == 1 and m > 0 and Y.shape[1] == m:
        # S ~ Q R with R = Q^H S = Sigma W^H, and Q R = (Q Y)(Y^-1 R): row i of Y^-1 R is Ritz
        # pair i's share of the moments.
        coef = np.linalg.solve(Y, sv[:m, None] * Wh[:m])
        f = filter_values(params, vals, K)
        scale = _derivative_scale(problem, vals)
        errors, weights = np.empty(len(vals)), np.empty(len(vals))
        for i in range(len(vals)):
            errors[i], a = _moment_test(coef[i], f[:, i], L)
            weights[i] = np.linalg.norm(Y[:, i]) * np.linalg.norm(a) * scale[i] / np.sqrt(L)
    # A degree >= 2 Rayleigh-Ritz (companion form) has more Ritz vectors than dimensions: no test.
    return vals, Q @ Y, m, sv, errors, weights


def _extract_hankel(problem: Problem, buf: np.ndarray, V: np.ndarray, params: SSParams):
    K, n, L = buf.shape
    M = K // 2
    mu = np.einsum("nl,knj->klj", V.conj(), buf)  # mu_k = V^H S_k, L x L
    H0 = np.block([[mu[i + j] for j in range(M)] for i in range(M)])
    H1 = np.block([[mu[i + j + 1] for j in range(M)] for i in range(M)])
    U, sv, Wh = np.linalg.svd(H0)
    m = _truncate(sv, params.delta)
    U1, W1, s1 = U[:, :m], Wh[:m].conj().T, sv[:m]
    small = (U1.conj().T @ H1 @ W1) / s1[None, :]
    zeta, Y = sla.eig(small)
    vals = params.center + params.radius * zeta
    S = buf[:M].transpose(1, 0, 2).reshape(n, M * L)
    X = S @ (W1 @ (Y / s1[:, None]))
    errors = weights = None
    if m > 0:
        # H0 = (U1 Y)(Y^-1 S1 W1^H): pair i contributes the rank-one u_i c_i, whose (a, b) block
        # must be f_{a+b}(lambda_i) p q^T for an eigenpair (p = V^H x, q its coefficient row).
        left = U1 @ Y
        right = np.linalg.solve(Y, s1[:, None] * W1.conj().T)
        f = filter_values(params, vals, 2 * M - 1)
        scale = _derivative_scale(problem, vals)
        hank = np.add.outer(np.arange(M), np.arange(M))  # a + b
        errors, weights = np.empty(len(vals)), np.empty(len(vals))
        for i in range(len(vals)):
            blocks = np.einsum("ap,bq->abpq", left[:, i].reshape(M, L), right[i].reshape(M, L))
            fi = f[hank, i]  # M x M
            nf = float(np.sum(np.abs(fi) ** 2))
            G = np.einsum("ab,abpq->pq", fi.conj(), blocks) / nf if nf > 0 else np.zeros((L, L))
            norm = np.linalg.norm(blocks)
            errors[i] = np.linalg.norm(blocks - fi[:, :, None, None] * G) / norm if norm > 0 else np.inf
            weights[i] = np.linalg.norm(G) * scale[i] / L
    return vals, X, m, sv, errors, weights


def _classify(problem: Problem, values: np.ndarray, vectors: np.ndarray, moment_errors: np.ndarray | None,
              weights: np.ndarray | None, params: SSParams,
              keep_vectors: bool) -> tuple[list[Eigenpair], list[Eigenpair], list[Eigenpair]]:
    """Accepted, rejected (residual above tol, or spurious) and outside pairs, each sorted by value."""
    norms = problem.norms()
    accepted: list[Eigenpair] = []
    rejected: list[Eigenpair] = []
    outside: list[Eigenpair] = []
    for i, lam in enumerate(values):
        if not np.isfinite(lam):
            continue
        x = vectors[:, i]
        xn = np.linalg.norm(x)
        scale = xn * sum(abs(lam) ** k * nk for k, nk in enumerate(norms))
        r = float(np.linalg.norm(problem.apply(lam, x)) / scale) if scale > 0 else float("inf")
        err = float(moment_errors[i]) if moment_errors is not None else None
        weight = float(weights[i]) if weights is not None else None
        pair = Eigenpair(complex(lam), r, x / xn if keep_vectors and xn > 0 else None, err, weight)
        distance = abs(lam - params.center) - params.radius
        if distance >= 0:
            pair.distance = float(distance)
            outside.append(pair)
            continue
        reasons = []
        if not r <= params.tol:
            reasons.append("residual")
        if err is not None and params.moment_tol > 0 and not err <= params.moment_tol:
            reasons.append("moments")
        if weight is not None and params.weight_tol > 0 and not weight >= params.weight_tol:
            reasons.append("weight")
        pair.reasons = tuple(reasons)
        (rejected if reasons else accepted).append(pair)
    key = lambda p: (round(p.value.real, 12), round(p.value.imag, 12))  # noqa: E731
    outside.sort(key=lambda p: (p.distance, key(p)))
    return sorted(accepted, key=key), sorted(rejected, key=key), outside


def clusters(pairs: list[Eigenpair], tol: float) -> list[Cluster]:
    """Groups of values within ``tol`` of each other (single linkage), largest first."""
    groups: list[list[complex]] = []
    for p in sorted(pairs, key=lambda q: (q.value.real, q.value.imag)):
        near = [g for g in groups if any(abs(p.value - v) <= tol for v in g)]
        merged = [p.value] + [v for g in near for v in g]
        groups = [g for g in groups if g not in near] + [merged]
    out = [Cluster(complex(np.mean(g)), len(g)) for g in groups]
    return sorted(out, key=lambda c: (-c.count, c.value.real, c.value.imag))


def blas_threads() -> int:
    """Threads per rank as the environment sets them (``OMP_NUM_THREADS``, default 1)."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1
