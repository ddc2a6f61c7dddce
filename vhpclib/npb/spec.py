"""Where NPB-MZ comes from in an environment: the ``benchmarks.npb`` inventory section.

Declared by the NPB workload (``vhpclib.workloads.npb``, which owns the section) and read by the build and
distribution code of this package, which therefore never imports the workload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class NpbSpec(BaseModel):
    """Where NPB-MZ comes from in an environment: a source tree to build or built binaries."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    source: Path | None = Field(None, description="NPB-MZ source tree (NPB3.3-MZ-MPI or NPB3.4-MZ) vHPC builds.")
    version: Literal["3.3", "3.4"] = Field("3.3", description="NPB-MZ version of the source tree.")
    fc: str = Field("mpif90", description="Fortran compiler (MPI wrapper) the build uses.")
    fflags: str = Field("-O3 -fopenmp", description="Fortran flags of the build.")
    bin_dir: str | None = Field(None, description="Folder of binaries built beforehand (instead of a source).")
    built_in: str | None = Field(None, description="Environment whose build is reused (\"build once, run "
                                                   "everywhere\").")
    benchmarks: list[Literal["sp-mz", "bt-mz", "lu-mz", "mz-demo"]] = Field(
        default_factory=lambda: ["sp-mz", "bt-mz"], min_length=1,
        description="What the single-node and scaling stages run (the paper: SP-MZ and BT-MZ; mz-demo is "
                    "ours, for tests).")
