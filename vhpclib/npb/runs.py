"""NPB-MZ runs: processes x OpenMP threads, their placement, and the paper's scaling sweep.

The paper runs SP-MZ and BT-MZ class C with 2 OpenMP threads per MPI process,
4 processes per 8-core node, from 4 processes (one node) to 64 (16 nodes).
Launch flags per MPI flavour come from ``vhpclib.mpi`` (Intel MPI
``I_MPI_PIN_DOMAIN=omp``, Open MPI ``--map-by ppr:N:node:PE=T --bind-to core``,
MPICH ``-bind-to core:T``, plus ``OMP_PLACES=cores OMP_PROC_BIND=close``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import InputError, InventoryError
from ..launcher import Job
from ..mpi import LaunchSpec, MpiRuntime, build_launch
from .build import CLASSES
from .distribute import Deployment

#: Process counts and threads per process of the paper's NPB-MZ figures.
PAPER_PROCESSES = (4, 8, 16, 32, 64)
PAPER_THREADS = 2
PAPER_BENCHMARKS = ("sp-mz", "bt-mz")
PAPER_CLASS = "C"


@dataclass(frozen=True)
class MzRun:
    """One NPB-MZ run: ``processes`` MPI ranks of ``threads`` OpenMP threads, ``ppn`` ranks per node."""

    benchmark: str
    klass: str
    processes: int
    threads: int
    ppn: int

    def __post_init__(self) -> None:
        if self.klass not in CLASSES:
            raise InputError(f"class must be one of {', '.join(CLASSES)}, got {self.klass!r}", key="class")
        for name in ("processes", "threads", "ppn"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}", key=name)

    @property
    def nodes(self) -> int:
        return math.ceil(self.processes / self.ppn)

    @property
    def run_id(self) -> str:
        """A store-safe id, e.g. ``sp-mz.C.p16.t2``."""
        return f"{self.benchmark}.{self.klass}.p{self.processes}.t{self.threads}"

    def parameters(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "class": self.klass, "processes": self.processes,
                "threads": self.threads, "ppn": self.ppn, "nodes": self.nodes}


def scaling_sweep(benchmarks: Iterable[str] = PAPER_BENCHMARKS, klass: str = PAPER_CLASS,
                  processes: Iterable[int] = PAPER_PROCESSES, threads: int = PAPER_THREADS,
                  cores_per_node: int = 8) -> list[MzRun]:
    """Every run of a scaling sweep, benchmark by benchmark, smallest count first.

    Each node runs ``cores_per_node // threads`` processes (the paper: 8 cores, 2 threads,
    4 processes per node); a run smaller than one node uses one node.
    """
    if threads < 1 or cores_per_node < threads:
        raise InputError(f"{threads} threads per process do not fit {cores_per_node} cores per node",
                         key="threads")
    ppn = cores_per_node // threads
    counts = sorted(set(processes))
    return [MzRun(b, klass, p, threads, min(ppn, p)) for b in dict.fromkeys(benchmarks) for p in counts]


def sweep_nprocs(runs: Iterable[MzRun]) -> list[int]:
    """The process counts an NPB 3.3 build must bake in for these runs."""
    return sorted({r.processes for r in runs})


def run_hosts(run: MzRun, hosts: Sequence[str]) -> tuple[str, ...]:
    """The hosts a run uses: the first ``run.nodes`` of the environment's (MPI names)."""
    if run.nodes > len(hosts):
        raise InventoryError(f"{run.run_id} needs {run.nodes} nodes at {run.ppn} processes per node, "
                             f"the environment has {len(hosts)} host(s)", key="hosts")
    return tuple(hosts[:run.nodes])


def mz_launch_spec(run: MzRun, hosts: Sequence[str] = ()) -> LaunchSpec:
    """Placement of a run: ``ppn`` ranks per node, each with a domain of ``threads`` cores.

    With no hosts (one local node) the ranks start on the launch host.
    """
    chosen = run_hosts(run, hosts) if hosts else ()
    if not hosts and run.nodes > 1:
        raise InventoryError(f"{run.run_id} needs {run.nodes} nodes but no hosts were given", key="hosts")
    return LaunchSpec(nprocs=run.processes, hosts=chosen, ppn=run.ppn, threads_per_proc=run.threads)


def mz_launch(runtime: MpiRuntime, run: MzRun, binary: str,
              hosts: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
    """argv and environment launching ``binary`` for ``run`` with ``runtime``'s MPI flavour."""
    return build_launch(runtime, mz_launch_spec(run, hosts), [binary])


def mz_job(run: MzRun, deployment: Deployment, hosts: Sequence[str] = (), *,
           timeout_s: float | None = None) -> Job:
    """The launcher job of one run of a deployed binary; its record names the binary and its build."""
    if deployment.binary.benchmark != run.benchmark or deployment.binary.klass != run.klass or \
            deployment.binary.nprocs not in (None, run.processes):
        raise InputError(f"binary {deployment.binary.name} cannot run {run.run_id}", key="binary")
    return Job(program=[deployment.path], launch=mz_launch_spec(run, hosts), timeout_s=timeout_s,
               parameters={**run.parameters(), **deployment.record()})
