"""blockss: a block Sakurai-Sugiura eigensolver under MPI (the paper's "Bloss" workload).

Finds the eigenvalues inside a circle of sparse generalized (``A x = l B x``) and
polynomial (``(A0 + z A1 + z^2 A2) x = 0``) eigenproblems by contour integration:
quadrature points are spread over MPI ranks, each rank factorizes its own shifted
systems, the moment blocks are summed with one large ``Allreduce`` and the
extraction (SVD + Rayleigh-Ritz or block Hankel) runs redundantly on every rank.
"""

from __future__ import annotations

from blockss.errors import BlockssError
from blockss.problem import Problem, load_problem, load_problem_file
from blockss.solver import SSParams, SSResult, solve

__version__ = "0.2.0"

__all__ = ["BlockssError", "Problem", "SSParams", "SSResult", "load_problem", "load_problem_file",
           "solve", "__version__"]
