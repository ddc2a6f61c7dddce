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
from ..names import APP_STAGES, Stage
from ..schema import Column, TableSpec, Watch, register_table
from .base import Point

SINGLE_NODE, SCALING = Stage.SINGLE_NODE, Stage.SCALING  # the enum's members, re-exported for the app workloads
__all__ = ["APP_STAGES", "SINGLE_NODE", "SCALING", "AppRun", "powers_of_two"]


def wall_time(rows: list[dict[str, Any]]) -> float | None:
    """The run's time (s) when its result is verified."""
    row = rows[0] if rows else {}
    value = row.get("time_s")
    return float(value) if value is not None and row.get("verified") else None


def _identity(run: Any, workload: Any, row: dict[str, Any]) -> dict[str, Any]:
    from ..record import COMPLETE

    rec = run.record
    point = rec.point
    processes, ppn = point.get("processes", 1), point.get("ppn", 1)
    return {"campaign": rec.campaign, "environment": rec.environment, "label": rec.label, "run_id": rec.run_id,
            "repetition": rec.repetition, "status": rec.status, "stage": rec.stage,
            "workload": workload.display_name(point), "problem": point.get("problem"), "nprocs": processes,
            "threads_per_proc": point.get("threads"), "nodes": -(-processes // ppn), "wall_s": rec.duration_s,
            # a run rejected by the harness is not verified, whatever the benchmark said
            "verified": bool(row.get("verified")) and run.status == COMPLETE}


#: The application table (Table 3, Figures 3 and 4): one row per run of any application workload.
APPS = register_table(TableSpec(
    "apps",
    (
        Column("campaign", description="the campaign (folder under data/raw)"),
        Column("environment", description="the inventory's environment"),
        Column("label", description="the environment's label"),
        Column("stage", description="single-node or scaling"),
        Column("workload", description="as tables and figures name it (SP-MZ, blockss...)"),
        Column("problem", description="problem size: a blockss preset, an NPB class"),
        Column("nprocs", "processes", "MPI ranks"),
        Column("threads_per_proc", "threads", "OpenMP threads per rank"),
        Column("nodes", "nodes", "nodes the ranks ran on"),
        Column("repetition", description="1, 2, ... per point"),
        Column("run_id", description="the run's folder: <point>-r<repetition>"),
        Column("time_s", "s", "the time the workload reports"),
        Column("wall_s", "s", "the run's wall time as the harness measured it"),
        Column("verified", description="the workload's own check passed and the harness accepted the run"),
    ),
    _identity, APP_STAGES, (Watch("wall time", "s", wall_time, overhead=True),),
    "every application run: time, wall time, verification",
    tail=(Column("status", description="complete, or invalid with the run's reason"),)), replace=True)


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

    def launch_spec(self, hosts: tuple[str, ...] = (), *, distinct_cores: bool = False) -> LaunchSpec:
        """``ppn`` ranks per node (when on several nodes), each with a domain of ``threads`` cores.

        ``distinct_cores``: the nodes are one machine (namespaces, containers), so node i's ranks are pinned
        to cores i*ppn.. of their own instead of every node starting at core 0 (single-threaded ranks).
        """
        if distinct_cores and self.nodes > 1 and len(hosts) >= self.nodes:
            if self.threads != 1:
                raise InputError(f"{self.stem}: ranks of nodes sharing one machine get a core each only when "
                                 "single-threaded", key="threads")
            per_node = [min(self.ppn, self.processes - i * self.ppn) for i in range(self.nodes)]
            host_cpus = tuple((host, tuple(range(i * self.ppn, i * self.ppn + n)))
                              for i, (host, n) in enumerate(zip(hosts, per_node)))
            return LaunchSpec(self.processes, hosts, self.ppn, host_cpus=host_cpus)
        return LaunchSpec(self.processes, hosts, self.ppn if self.nodes > 1 else None,
                          threads_per_proc=self.threads)


def powers_of_two(limit: int) -> list[int]:
    out, n = [], 1
    while n <= limit:
        out.append(n)
        n *= 2
    return out
