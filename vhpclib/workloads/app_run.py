"""One point of an application stage: a workload at processes x threads, ``ppn`` processes per node.

Shared by every MPI+OpenMP application (blockss, NPB-MZ, MZ-DEMO, plugins), so
all of them name their runs, count nodes and place ranks the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..exceptions import InputError
from ..mpi import LaunchSpec
from .base import Point

SINGLE_NODE, SCALING = "single-node", "scaling"
APP_STAGES = (SINGLE_NODE, SCALING)


@dataclass(frozen=True)
class AppRun:
    """``processes`` MPI ranks of ``threads`` OpenMP threads, ``ppn`` ranks per node."""

    workload: str  # what the program is: blockss, sp-mz, bt-mz, mz-demo, ...
    problem: str  # problem size: a blockss preset, an NPB class
    processes: int
    threads: int
    ppn: int

    def __post_init__(self) -> None:
        for name in ("processes", "threads", "ppn"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}", key=name)

    @property
    def nodes(self) -> int:
        return math.ceil(self.processes / self.ppn)

    @property
    def stem(self) -> str:
        return f"{self.workload}-{self.problem}-p{self.processes}-t{self.threads}"

    def fields(self) -> dict[str, Any]:
        return asdict(self)

    def point(self, registry_name: str) -> Point:
        return Point(registry_name, self.stem, self.fields(), nodes=self.nodes,
                     label=f"{self.workload} p={self.processes}", ranks_per_node=min(self.ppn, self.processes))

    @classmethod
    def of(cls, point: Point | dict[str, Any]) -> "AppRun":
        fields = point.fields if isinstance(point, Point) else point
        return cls(**{k: fields[k] for k in ("workload", "problem", "processes", "threads", "ppn")})

    def launch_spec(self, hosts: tuple[str, ...] = ()) -> LaunchSpec:
        """``ppn`` ranks per node (when on several nodes), each with a domain of ``threads`` cores."""
        return LaunchSpec(self.processes, hosts, self.ppn if self.nodes > 1 else None,
                          threads_per_proc=self.threads)


def powers_of_two(limit: int) -> list[int]:
    out, n = [], 1
    while n <= limit:
        out.append(n)
        n *= 2
    return out
