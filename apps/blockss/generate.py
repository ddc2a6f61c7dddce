"""Test problems with known structure, named presets, and the circle helper.

``laplace2d``/``laplace3d``: finite-difference Laplacian ``A`` on a box with unequal
sides and a consistent (tridiagonal-product) mass matrix ``B`` with variable density,
so the generalized problem ``A x = l B x`` is real symmetric-definite with simple
eigenvalues. ``quadratic``: a damped membrane ``(K + z C + z^2 M) x = 0`` with
Rayleigh damping ``C = alpha M + beta K``: every undamped mode ``K phi = w^2 M phi``
gives the pair ``z^2 + (alpha + beta w^2) z + w^2 = 0``, so the spectrum is known.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, eigs, eigsh, splu

from blockss.errors import BlockssError
from blockss.problem import Problem, load_problem

GENERATORS = ("laplace2d", "laplace3d", "quadratic")
RAYLEIGH = (0.05, 0.02)  # alpha, beta of the quadratic problem's damping


def _lap1d(m: int, h: float) -> sp.csr_matrix:
    return sp.diags([-np.ones(m - 1), 2 * np.ones(m), -np.ones(m - 1)], [-1, 0, 1], format="csr") / h**2


def _mass1d(m: int, h: float) -> sp.csr_matrix:
    return sp.diags([np.ones(m - 1), 4 * np.ones(m), np.ones(m - 1)], [-1, 0, 1], format="csr") * (h / 6)


def _grid(size: int, dim: int) -> tuple[list[int], list[float]]:
    # Unequal sides and point counts: no symmetry-induced multiple eigenvalues.
    ms = [size + i for i in range(dim)]
    lengths = [1.0, 1.1892, 1.4142][:dim]
    return ms, [ln / (m + 1) for ln, m in zip(lengths, ms)]


def _density(ms: list[int], hs: list[float]) -> np.ndarray:
    axes = [np.arange(1, m + 1) * h for m, h in zip(ms, hs)]
    mesh = np.meshgrid(*axes, indexing="ij")
    rho = 1.0 + 0.5 * np.sin(3.0 * mesh[0] + 1.0) * np.cos(2.0 * mesh[1] + 0.5)
    if len(mesh) > 2:
        rho = rho + 0.2 * np.sin(5.0 * mesh[2])
    return rho.ravel()


def _kron_sum(ops: list[sp.csr_matrix], eyes: list[sp.csr_matrix]) -> sp.csr_matrix:
    total = None
    for i, op in enumerate(ops):
        term = None
        for j in range(len(ops)):
            f = op if i == j else eyes[j]
            term = f if term is None else sp.kron(term, f, format="csr")
        total = term if total is None else total + term
    return sp.csr_matrix(total)


def laplace(size: int, dim: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Stiffness ``A`` and variable-density mass ``B`` on a ``dim``-D box (n = prod of sides)."""
    if size < 3:
        raise BlockssError(f"size must be >= 3, got {size}")
    ms, hs = _grid(size, dim)
    eyes = [sp.identity(m, format="csr") for m in ms]
    A = _kron_sum([_lap1d(m, h) for m, h in zip(ms, hs)], eyes)
    mass = None
    for m, h in zip(ms, hs):
        mass = _mass1d(m, h) if mass is None else sp.kron(mass, _mass1d(m, h), format="csr")
    d = sp.diags(np.sqrt(_density(ms, hs)))
    B = sp.csr_matrix(d @ mass @ d)
    scale = 1.0 / float(np.prod(hs))  # mass entries O(1), like a lumped FD mass
    return A, B * scale


def quadratic(size: int) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    """``A0 = K``, ``A1 = C = alpha M + beta K``, ``A2 = M`` of a damped 2-D membrane."""
    K, _ = laplace(size, 2)
    ms, hs = _grid(size, 2)
    M = sp.diags(_density(ms, hs), format="csr")
    alpha, beta = RAYLEIGH
    K = K / 100.0  # lowest frequencies O(1): light damping there, overdamped at the top
    return sp.csr_matrix(K), sp.csr_matrix(alpha * M + beta * K), M


@dataclass
class Preset:
    """A named problem with a circle holding a known number of eigenvalues."""

    generator: str
    size: int
    target: tuple[float, float]   # circle center (suggest-circle refines the radius)
    count: int                   # wanted eigenvalues inside (the helper may pick count..count+6)
    N: int
    L: int
    M: int


PRESETS: dict[str, Preset] = {
    "tiny": Preset("laplace2d", 24, (2000.0, 0.0), 8, 32, 8, 4),
    "small": Preset("laplace2d", 100, (3000.0, 0.0), 10, 32, 16, 4),
    "medium": Preset("laplace2d", 250, (3000.0, 0.0), 12, 32, 16, 4),
    "large": Preset("laplace2d", 500, (3000.0, 0.0), 12, 32, 16, 4),
    "quadratic-tiny": Preset("quadratic", 16, (-0.06, 2.0), 6, 32, 8, 4),
    "quadratic-small": Preset("quadratic", 80, (-0.06, 2.0), 10, 32, 16, 4),
}


def write_problem(generator: str, size: int, outdir: str | Path) -> dict[str, str]:
    """Write the matrices of one generated problem as Matrix Market files; role -> file name."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    if generator in ("laplace2d", "laplace3d"):
        mats = dict(zip(("A", "B"), laplace(size, 2 if generator == "laplace2d" else 3)))
    elif generator == "quadratic":
        mats = dict(zip(("A0", "A1", "A2"), quadratic(size)))
    else:
        raise BlockssError(f"unknown generator {generator!r}; known: {', '.join(GENERATORS)}")
    files = {}
    for role, m in mats.items():
        fname = f"{role}.mtx"
        scipy.io.mmwrite(str(out / fname), sp.coo_matrix(m), symmetry="symmetric",
                         comment=f"blockss {generator} size={size} role={role}")
        files[role] = fname
    return files


def nearest_eigenvalues(problem: Problem, target: complex, k: int) -> np.ndarray:
    """The ``k`` eigenvalues nearest ``target``, by shift-invert Arnoldi (one factorization)."""
    n, deg = problem.n, problem.degree
    k = min(k, n * deg - 2)
    if deg == 1 and problem.is_real and target.imag == 0:
        A, B = -problem.coeffs[0], problem.coeffs[1]
        sym = abs(A - A.T).max() == 0 and abs(B - B.T).max() == 0
        if sym:
            vals = eigsh(A, k=k, M=B, sigma=target.real, which="LM", return_eigenvectors=False)
            return np.asarray(vals, dtype=complex)
    lu = splu(problem.matrix_at(target), permc_spec="MMD_AT_PLUS_A")
    if deg == 1:
        A1 = problem.coeffs[1]

        def op(x):
            return -lu.solve(np.asarray(A1 @ x, dtype=complex))
        size = n
    elif deg == 2:
        A1, A2 = problem.coeffs[1], problem.coeffs[2]

        def op(x):
            a, b = x[:n], A2 @ x[n:]
            u = -lu.solve(np.asarray(b + A1 @ a + target * (A2 @ a), dtype=complex))
            return np.concatenate([u, a + target * u])
        size = 2 * n
    else:
        raise BlockssError(f"nearest_eigenvalues supports degree <= 2, got {deg}")
    nu = eigs(LinearOperator((size, size), matvec=op, dtype=complex), k=k, which="LM",
              return_eigenvectors=False)
    return target + 1.0 / nu


def suggest_circle(problem: Problem, target: complex, count: int, spread: int = 6) -> dict[str, Any]:
    """A circle centered at ``target`` holding ``count``..``count+spread`` eigenvalues.

    Among those counts it picks the one with the widest gap between the last eigenvalue
    inside and the first outside (better quadrature filtering) and puts the radius at
    their geometric mean. Returns center, radius, count, gap ratio and the inside values.
    """
    if count < 1:
        raise BlockssError("count must be >= 1")
    vals = nearest_eigenvalues(problem, target, count + spread + 6)
    d = np.abs(vals - target)
    order = np.argsort(d)
    vals, d = vals[order], d[order]
    best = max(range(count, min(count + spread, len(d) - 1) + 1), key=lambda c: d[c] / d[c - 1])
    radius = float(np.sqrt(d[best - 1] * d[best]))
    return {"center": [float(target.real), float(target.imag)], "radius": radius, "count": int(best),
            "gap_ratio": float(d[best] / d[best - 1]),
            "inside": [[float(v.real), float(v.imag)] for v in vals[:best]]}


def generate_preset(name: str, outdir: str | Path) -> dict[str, Any]:
    """Write a preset's matrices and ``problem.json`` (circle, expected count, N/L/M)."""
    if name not in PRESETS:
        raise BlockssError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    pre = PRESETS[name]
    return generate(pre.generator, pre.size, outdir, name=name, target=complex(*pre.target),
                    count=pre.count, params={"N": pre.N, "L": pre.L, "M": pre.M}, preset=asdict(pre))


def generate(generator: str, size: int, outdir: str | Path, *, name: str | None = None,
             target: complex | None = None, count: int | None = None,
             params: dict[str, int] | None = None, preset: dict | None = None) -> dict[str, Any]:
    """Write a generated problem and its ``problem.json``; with ``target`` and ``count``
    the JSON also holds a suggested circle and the number of eigenvalues inside it."""
    out = Path(outdir)
    files = write_problem(generator, size, out)
    spec: dict[str, Any] = {"name": name or f"{generator}-{size}", "generator": generator, "size": size,
                            "matrices": files}
    if preset:
        spec["preset"] = preset
    if params:
        spec.update(params)
    if target is not None and count is not None:
        prob = load_problem(**{r: str(out / f) for r, f in files.items()})
        spec["n"] = prob.n
        circle = suggest_circle(prob, target, count)
        spec.update(center=circle["center"], radius=circle["radius"], expected_count=circle["count"],
                    gap_ratio=circle["gap_ratio"], expected_eigenvalues=circle["inside"])
    (out / "problem.json").write_text(json.dumps(spec, indent=2) + "\n")
    return spec
