"""NPB Multi-Zone (SP-MZ, BT-MZ, LU-MZ) and MZ-DEMO, our stand-in laid out like an NPB-MZ tree.

The paper's layout: 2 OpenMP threads per MPI process, cores/2 processes per
node (4 per 8-core node, 4 to 64 processes on 16 nodes). Binaries are built
once (in this environment, or in the one named by ``built_in``), copied to every
host and their sha256 verified before every run. An environment whose
inventory gives no ``benchmarks.npb`` records NPB-MZ as skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..exceptions import InputError, ParseError
from ..launchers import Job
from ..npb.spec import NpbSpec
from ..parsers import get_parser
from .app_run import APP_STAGES, SINGLE_NODE, AppRun, powers_of_two
from .base import Column, Extracted, Point, Section, Skip, Workload
from .capacity import Capacity

if TYPE_CHECKING:
    from ..npb import Deployment
    from ..params import AppParams
    from ..stages.context import StageContext
    from ..store import StoredRun

#: The paper's NPB-MZ figures: SP-MZ and BT-MZ class C, 4 to 64 processes of 2 threads.
PAPER_PROCESSES = (4, 8, 16, 32, 64)
PAPER_THREADS = 2
PAPER_BENCHMARKS = ("sp-mz", "bt-mz")
PAPER_CLASS = "C"
DISPLAY = {"sp-mz": "SP-MZ", "bt-mz": "BT-MZ", "lu-mz": "LU-MZ", "mz-demo": "MZ-DEMO"}
NO_NPB = ("the inventory gives no benchmarks.npb for this environment "
          "(NPB's source cannot be downloaded here; see README)")
ROW_KEYS = ("time_s", "verified", "mops_total")


class NpbParams(BaseModel):
    """NPB-MZ's parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    npb_class: str = Field(PAPER_CLASS, description="NPB-MZ class (the paper: C).",
                           json_schema_extra={"cli": "--class"})

    @field_validator("npb_class")
    @classmethod
    def _npb_class(cls, value: str) -> str:
        from ..npb.build import CLASSES

        if value not in CLASSES:
            raise ValueError(f"NPB class must be one of {', '.join(CLASSES)}, got {value!r}")
        return value


class NpbMz(Workload):
    name = "npb"
    paper_name = "NPB-MZ"
    table = "apps"
    stages = APP_STAGES
    Params = NpbParams
    section = Section("npb", NpbSpec | None, "NPB-MZ for this environment (a source tree to build, or binaries); "
                      "none: NPB-MZ is recorded as skipped, with the reason.")
    columns = (Column("mops_total", "Mop/s", "NPB-MZ's total rate as it prints it (empty for other workloads)"),)

    def display_name(self, point: Any) -> str:
        return DISPLAY.get(point.get("workload", ""), str(point.get("workload", "")).upper())

    def plan(self, stage: str, ctx: StageContext, params: AppParams) -> list[Point | Skip]:
        if stage not in APP_STAGES:
            return []
        spec = ctx.env.benchmarks.npb
        if spec is None:
            return [Skip(self.name, "npb-mz", "NPB-MZ", NO_NPB)]
        capacity = Capacity.of(ctx)
        ppn = max(1, capacity.cores_per_node // PAPER_THREADS)
        klass = self.settings(params).npb_class
        if stage == SINGLE_NODE:
            runs = [AppRun(b, klass, ppn, PAPER_THREADS, ppn) for b in spec.benchmarks]
        else:
            counts = params.processes or tuple(ppn * n for n in powers_of_two(capacity.nodes))
            runs = [AppRun(b, klass, p, PAPER_THREADS, min(ppn, p))
                    for b in spec.benchmarks for p in counts]
        # a point the nodes cannot host pinned is skipped with the reason, never run oversubscribed
        return capacity.fit(self.name, runs)

    def prepare(self, ctx: StageContext, points: list[Point], params: AppParams) -> Prepared:
        return deployments(ctx, [AppRun.of(p) for p in points])

    def job(self, ctx: StageContext, point: Point, repetition: int, prepared: Prepared, params: AppParams) -> Job:
        from ..npb import verify_deployment

        run = AppRun.of(point)
        mine = [d for d in prepared.deployments if d.binary.benchmark == run.workload
                and d.binary.klass == run.problem and d.binary.nprocs in (None, run.processes)]
        if not mine:
            raise InputError(f"no NPB-MZ binary for {run.stem} in the build", key="benchmarks.npb")
        for deployment in mine:  # checksums verified on every host before every run
            host = next(h for h in ctx.env.hosts if h.label == deployment.host)
            verify_deployment(ctx.executor(host), deployment)
        shared = run.nodes > 1 and ctx.shares_machine(list(ctx.env.hosts[:run.nodes]))
        return Job([mine[0].path], run.launch_spec(ctx.mpi_hosts(run.nodes), distinct_cores=shared),
                   timeout_s=params.timeout_s,
                   record={"binary": mine[0].record(), "compile_options": prepared.compile_options})

    def sanity(self, run: StoredRun) -> list[str]:
        """A result block, printed by a binary compiled the way its build says (its "Compile options")."""
        from ..npb import compile_option_mismatches

        try:
            parsed = _parse(run)
        except ParseError as exc:
            return [f"output has no result: {exc.message}"]
        expected = run.record.extra.get("compile_options") if run.record else None
        if not expected:
            return []
        return [f"binary printed {m}" for m in compile_option_mismatches(expected, parsed.records[0])]

    def extract(self, run: StoredRun) -> Extracted:
        parsed = _parse(run)
        record = parsed.records[0]
        return Extracted([{k: record.get(k) for k in ROW_KEYS}], [str(w) for w in parsed.warnings])


def _parse(run: StoredRun):
    kind = "mzdemo" if run.record.point.get("workload") == "mz-demo" else "npb"
    return get_parser(kind).parse(run.stdout(), str(run.stdout_path))


@dataclass(frozen=True)
class Prepared:
    """What every run of a stage needs: the verified copies on the hosts, and what their binaries must print."""

    deployments: list[Deployment]
    compile_options: dict[str, str | None] | None


def deployments(ctx: StageContext, runs: list[AppRun]) -> Prepared:
    """The binaries these runs need on every host: an earlier build of the campaign that has them all,
    else a new build (in this environment, or refused if it runs another environment's build)."""
    from ..npb import build_environment_of, build_in_environment, distribute_to_environment, matching_build
    from ..npb.builds import successful_builds

    builder = build_environment_of(ctx.inventory, ctx.environment)
    spec = ctx.inventory.environment(builder).benchmarks.npb
    assert spec is not None
    klass = runs[0].problem
    build = matching_build(successful_builds(ctx.store, ctx.campaign, builder), version=spec.version,
                           source=str(spec.source), klass=klass,
                           needs=[(r.workload, r.processes) for r in runs])
    if build is None:
        if builder != ctx.environment:
            raise InputError(f"environment {ctx.environment!r} runs the NPB-MZ build of {builder!r}, which has no "
                             f"build with what this stage needs: run this stage (or `vhpc npb build --env "
                             f"{builder}`) there first", key="benchmarks.npb.built_in")
        build = build_in_environment(ctx.inventory, builder, ctx.campaign,
                                     benchmarks=list(dict.fromkeys(r.workload for r in runs)), klass=klass,
                                     store=ctx.store, pool=ctx.pool, build_id=_next_build_id(ctx, spec.version, klass),
                                     nprocs=sweep_nprocs(runs) if spec.version == "3.3" else None)
    return Prepared(distribute_to_environment(ctx.inventory, ctx.environment, build, pool=ctx.pool),
                    build.record.get("compile_options"))


def _next_build_id(ctx: StageContext, version: str, klass: str) -> str:
    """A fresh build id: builds are raw data too, never replaced."""
    taken = {r.run_id.split(".failed-")[0] for r in ctx.store.runs(ctx.campaign, ctx.environment, "build")}
    n = 1
    while f"npb{version}-{klass}-b{n}" in taken:
        n += 1
    return f"npb{version}-{klass}-b{n}"


def scaling_sweep(benchmarks: Iterable[str] = PAPER_BENCHMARKS, klass: str = PAPER_CLASS,
                  processes: Iterable[int] = PAPER_PROCESSES, threads: int = PAPER_THREADS,
                  cores_per_node: int = 8) -> list[AppRun]:
    """Every run of a scaling sweep, benchmark by benchmark, smallest count first.

    Each node runs ``cores_per_node // threads`` processes (the paper: 8 cores, 2 threads,
    4 processes per node); a run smaller than one node uses one node.
    """
    if threads < 1 or cores_per_node < threads:
        raise InputError(f"{threads} threads per process do not fit {cores_per_node} cores per node",
                         key="threads")
    ppn = cores_per_node // threads
    counts = sorted(set(processes))
    return [AppRun(b, klass, p, threads, min(ppn, p)) for b in dict.fromkeys(benchmarks) for p in counts]


def sweep_nprocs(runs: Iterable[AppRun]) -> list[int]:
    """The process counts an NPB 3.3 build must bake in for these runs."""
    return sorted({r.processes for r in runs})
