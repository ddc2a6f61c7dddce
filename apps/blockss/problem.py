"""Eigenproblems as matrix polynomials ``T(z) = sum_k z^k A_k`` read from Matrix Market files.

A generalized problem ``A x = l B x`` is stored as ``T(z) = -A + z B`` so that the
solver, the residual check and the circle helper treat every problem the same way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import scipy.sparse as sp

from blockss.errors import BlockssError

KINDS = ("generalized", "standard", "polynomial")


@dataclass
class Problem:
    """A sparse matrix polynomial ``T(z) = sum_k z^k coeffs[k]`` (all n x n, CSC).

    ``kind`` is ``standard``/``generalized`` (degree 1) or ``polynomial`` (degree >= 2);
    ``inputs`` maps the role of each file read (``A``, ``B``, ``A0``...) to its path and
    ``sha256`` to its digest, so a run record names exactly what was solved.
    """

    name: str
    kind: str
    coeffs: list[sp.csc_matrix]
    inputs: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    input_nnz: int = 0

    @property
    def n(self) -> int:
        return self.coeffs[0].shape[0]

    @property
    def degree(self) -> int:
        return len(self.coeffs) - 1

    @property
    def is_real(self) -> bool:
        return all(not np.iscomplexobj(c.data) for c in self.coeffs)

    def matrix_at(self, z: complex) -> sp.csc_matrix:
        """``T(z)`` as a complex CSC matrix (the shifted system of one quadrature point)."""
        t = self.coeffs[0].astype(np.complex128)
        zk = 1.0 + 0j
        for c in self.coeffs[1:]:
            zk *= z
            t = t + zk * c
        return sp.csc_matrix(t)

    def apply(self, z: complex, x: np.ndarray) -> np.ndarray:
        """``T(z) @ x`` without forming ``T(z)``."""
        y = self.coeffs[0] @ x
        zk = 1.0 + 0j
        for c in self.coeffs[1:]:
            zk *= z
            y = y + zk * (c @ x)
        return y

    def norms(self) -> list[float]:
        """1-norms of the coefficients (the scale of the relative residual)."""
        return [float(abs(c).sum(axis=0).max()) if c.nnz else 0.0 for c in self.coeffs]

    def dense_pencil(self) -> tuple[np.ndarray, np.ndarray]:
        """A dense linear pencil ``(Ac, Bc)`` with the same eigenvalues (companion form).

        ``Ac v = l Bc v``; for degree 1 this is ``(-A0, A1)``. Used by tests and by the
        dense reference check; only sensible for small n.
        """
        return companion([c.toarray() for c in self.coeffs])


def companion(mats: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Companion pencil ``(Ac, Bc)`` of ``sum_k z^k mats[k]``: same eigenvalues, first block of the vectors."""
    if len(mats) == 2:
        return -mats[0], mats[1]
    n, d = mats[0].shape[0], len(mats) - 1
    ac = np.zeros((n * d, n * d), dtype=np.result_type(*mats))
    bc = np.eye(n * d, dtype=ac.dtype)
    for i in range(d - 1):
        ac[i * n:(i + 1) * n, (i + 1) * n:(i + 2) * n] = np.eye(n)
    for k in range(d):
        ac[(d - 1) * n:, k * n:(k + 1) * n] = -mats[k]
    bc[(d - 1) * n:, (d - 1) * n:] = mats[d]
    return ac, bc


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _read(path: str | Path, role: str) -> sp.csc_matrix:
    p = Path(path)
    if not p.is_file():
        raise BlockssError(f"matrix {role} not found", file=str(p))
    try:
        m = scipy.io.mmread(str(p))
    except (ValueError, OSError) as exc:
        raise BlockssError(f"matrix {role} is not a readable Matrix Market file: {exc}", file=str(p)) from exc
    m = sp.csc_matrix(m)
    if m.shape[0] != m.shape[1]:
        raise BlockssError(f"matrix {role} is not square: {m.shape}", file=str(p))
    return m


def load_problem(*, A: str | None = None, B: str | None = None, A0: str | None = None,
                 A1: str | None = None, A2: str | None = None, name: str | None = None) -> Problem:
    """Read a problem: ``A`` (+ optional ``B``) or ``A0, A1`` (+ optional ``A2``).

    Raises ``BlockssError`` naming the file when a matrix is missing, unreadable, not
    square or of another size than the others.
    """
    if A is not None and any(x is not None for x in (A0, A1, A2)):
        raise BlockssError("give either --A [--B] or --A0 --A1 [--A2], not both")
    roles: dict[str, str] = {}
    if A is not None:
        roles["A"] = A
        if B is not None:
            roles["B"] = B
    elif A0 is not None and A1 is not None:
        roles["A0"], roles["A1"] = A0, A1
        if A2 is not None:
            roles["A2"] = A2
    else:
        raise BlockssError("no problem given: need --A [--B], --A0 --A1 [--A2] or --problem FILE")
    mats = {role: _read(path, role) for role, path in roles.items()}
    n = next(iter(mats.values())).shape[0]
    for role, m in mats.items():
        if m.shape[0] != n:
            raise BlockssError(f"matrix {role} is {m.shape[0]} x {m.shape[0]}, expected {n} x {n}",
                               file=roles[role])
    if "A" in mats:
        kind = "generalized" if "B" in mats else "standard"
        bmat = mats.get("B", sp.identity(n, format="csc"))
        coeffs = [sp.csc_matrix(-mats["A"]), sp.csc_matrix(bmat)]
    else:
        coeffs = [mats["A0"], mats["A1"]] + ([mats["A2"]] if "A2" in mats else [])
        kind = "polynomial" if len(coeffs) > 2 else "generalized"
    return Problem(
        name=name or Path(next(iter(roles.values()))).parent.name or "problem",
        kind=kind, coeffs=coeffs,
        inputs={r: str(Path(p)) for r, p in roles.items()},
        sha256={r: sha256_file(p) for r, p in roles.items()},
        input_nnz=int(sum(m.nnz for m in mats.values())),
    )


def read_problem_file(path: str | Path) -> dict[str, Any]:
    """The ``problem.json`` written by ``vhpc-blockss generate``, matrix paths made absolute."""
    p = Path(path)
    try:
        spec = json.loads(p.read_text())
    except FileNotFoundError:
        raise BlockssError("problem file not found", file=str(p)) from None
    except json.JSONDecodeError as exc:
        raise BlockssError(f"not JSON: {exc}", file=str(p)) from exc
    if "matrices" not in spec:
        raise BlockssError("no 'matrices' key", file=str(p))
    spec["matrices"] = {role: str((p.parent / f).resolve()) for role, f in spec["matrices"].items()}
    return spec


def load_problem_file(path: str | Path) -> tuple[Problem, dict[str, Any]]:
    """Load a problem described by ``problem.json``; returns the problem and the spec."""
    spec = read_problem_file(path)
    prob = load_problem(name=spec.get("name"), **spec["matrices"])
    return prob, spec
