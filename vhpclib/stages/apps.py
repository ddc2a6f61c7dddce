"""Application stages: single-node overhead (Table 3) and scaling (Figures 3 and 4).

Workloads: ``blockss`` (the block Sakurai–Sugiura eigensolver shipped in
``apps/blockss``, the paper's Bloss) everywhere, and NPB-MZ (``sp-mz``,
``bt-mz``) wherever the inventory gives ``benchmarks.npb`` (built once, copied
to every environment, checksums verified before each run).
"""

from __future__ import annotations

import math
import shlex
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from ..exceptions import InputError, ParseError, RemoteError, StoreError
from ..launcher import Job, run_job
from ..mpi import LaunchSpec, runtime_for
from ..parsers import get_parser
from ..store import COMPLETE, INVALID, RunRecord, RunWriter
from .context import StageContext, record_skip

SINGLE_NODE, SCALING = "single-node", "scaling"
STAGES = (SINGLE_NODE, SCALING)
NPB_WORKLOADS = ("sp-mz", "bt-mz")
BLOCKSS_RESULT = "blockss.json"


@dataclass(frozen=True)
class AppRun:
    """One point of a stage: a workload at processes x threads, ``ppn`` processes per node."""

    workload: str
    problem: str
    processes: int
    threads: int
    ppn: int

    @property
    def nodes(self) -> int:
        return math.ceil(self.processes / self.ppn)

    def run_id(self, repetition: int) -> str:
        return f"{self.workload}-{self.problem}-p{self.processes}-t{self.threads}-r{repetition:02d}"


@dataclass
class AppStageResult:
    stage: str
    runs: list[RunRecord] = field(default_factory=list)
    measured: int = 0
    reused: int = 0
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.stage}: {self.measured} run(s) measured, {self.reused} reused, "
               f"{len(self.failures)} failed"]
        out += [f"skipped {s}" for s in self.skipped]
        out += [f"failed {f}" for f in self.failures]
        return out


def blockss_plan(stage: str, *, cores_per_node: int, nodes: int, preset: str,
                 processes: list[int] | None = None) -> list[AppRun]:
    """The paper's Bloss layout scaled to the hardware: 2 processes per node, cores/2 threads each.

    On a one-node environment the scaling sweep runs 1 and 2 processes inside the node,
    so the stage still yields an efficiency and an ideal curve.
    """
    threads = max(1, cores_per_node // 2)
    if stage == SINGLE_NODE:
        return [AppRun("blockss", preset, 2, threads, 2)]
    if processes is None:
        processes = [1, 2] if nodes == 1 else [2 * n for n in _powers_of_two(nodes)]
    return [AppRun("blockss", preset, p, threads, 2) for p in processes]


def npb_plan(stage: str, *, cores_per_node: int, nodes: int, klass: str, processes: list[int] | None = None,
             benchmarks: tuple[str, ...] = NPB_WORKLOADS) -> list[AppRun]:
    """The paper's NPB-MZ layout: 2 threads per process, cores/2 processes per node."""
    ppn = max(1, cores_per_node // 2)
    if stage == SINGLE_NODE:
        return [AppRun(b, klass, ppn, 2, ppn) for b in benchmarks]
    if processes is None:
        processes = [ppn * n for n in _powers_of_two(nodes)]
    return [AppRun(b, klass, p, 2, ppn) for b in benchmarks for p in processes]


def parser_for(workload: str) -> str:
    """Registry name of the parser reading a workload's output."""
    return {"blockss": "app", "mz-demo": "mzdemo"}.get(workload, "npb")


def _powers_of_two(limit: int) -> list[int]:
    out, n = [], 1
    while n <= limit:
        out.append(n)
        n *= 2
    return out


def run_app_stage(ctx: StageContext, stage: str, *, workloads: tuple[str, ...] = ("blockss", "npb"),
                  blockss_preset: str = "small", npb_class: str = "C", processes: list[int] | None = None,
                  repetitions: int = 3, rerun: bool = False, timeout_s: float | None = None,
                  progress: bool = True) -> AppStageResult:
    """Run (or reuse) every workload point of ``stage``; NPB-MZ is skipped, with the reason, where absent."""
    if stage not in STAGES:
        raise InputError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}", key="stage")
    if processes is not None and (not processes or min(processes) < 1):
        raise InputError(f"process counts must be positive integers, got {processes}", key="processes")
    if repetitions < 1:
        raise InputError(f"repetitions must be at least 1, got {repetitions}", key="repetitions")
    if "blockss" in workloads:
        from blockss.generate import PRESETS

        if blockss_preset not in PRESETS:
            raise InputError(f"unknown blockss preset {blockss_preset!r}; known: {', '.join(PRESETS)}",
                             key="preset")
    unknown = set(workloads) - {"blockss", "npb"}
    if unknown:
        raise InputError(f"unknown workload(s) {', '.join(sorted(unknown))}; known: blockss, npb", key="workload")
    result = AppStageResult(stage)
    topology = ctx.topology()
    cores, nodes = topology.cores, len(ctx.env.hosts)
    plan: list[AppRun] = []
    if "blockss" in workloads:
        plan += blockss_plan(stage, cores_per_node=cores, nodes=nodes, preset=blockss_preset, processes=processes)
    deployments = None
    if "npb" in workloads:
        if ctx.env.benchmarks.npb is None:
            reason = ("the inventory gives no benchmarks.npb for this environment "
                      "(NPB's source cannot be downloaded here; see README)")
            record_skip(ctx, stage, "npb-mz-skipped", "NPB-MZ", reason)
            result.skipped.append(f"NPB-MZ: {reason}")
        else:
            npb_runs = npb_plan(stage, cores_per_node=cores, nodes=nodes, klass=npb_class, processes=processes,
                                benchmarks=tuple(ctx.env.benchmarks.npb.benchmarks))
            deployments = _npb_deployments(ctx, npb_runs)
            plan += npb_runs
    for run in plan:
        if run.nodes > nodes:
            reason = f"needs {run.nodes} node(s), environment has {nodes}"
            record_skip(ctx, stage, f"{run.workload}-{run.problem}-p{run.processes}-t{run.threads}-skipped",
                        f"{run.workload} p={run.processes}", reason, app_run=_run_dict(run))
            result.skipped.append(f"{run.workload} p={run.processes}: {reason}")
    plan = [r for r in plan if r.nodes <= nodes]

    todo: list[tuple[AppRun, int]] = []
    stored = Counter(tuple(sorted(r.record["app_run"].items()))
                     for r in ctx.store.runs(ctx.campaign, ctx.environment, stage)
                     if r.record.get("app_run") and r.status in (COMPLETE, INVALID))
    for run in plan:
        first = stored[tuple(sorted(_run_dict(run).items()))] if rerun else 0
        todo += [(run, rep) for rep in range(first + 1, first + repetitions + 1)]

    facts = None
    problem = None
    for run, rep in tqdm(todo, desc=f"{stage} [{ctx.environment}]", unit="run", disable=not progress):
        run_id = run.run_id(rep)
        if ctx.store.is_complete(ctx.campaign, ctx.environment, stage, run_id):
            result.runs.append(ctx.store.load(ctx.campaign, ctx.environment, stage, run_id))
            result.reused += 1
            continue
        facts = facts or ctx.host_facts(ctx.env.hosts)
        try:
            hosts = ctx.mpi_hosts(run.nodes)
            if run.workload == "blockss":
                problem = problem or prepare_blockss_problem(ctx, blockss_preset)
                job, binary = _blockss_job(ctx, run, problem, hosts, timeout_s), {}
            else:
                job, binary = _npb_job(ctx, run, deployments, hosts, timeout_s)
            record = {"workload": run.workload, "app_run": _run_dict(run), "repetition": rep,
                      "host_facts": facts, **ctx.topology_record(), **binary}
            stored = run_job(ctx.inventory, ctx.environment, job, campaign=ctx.campaign, stage=stage,
                             run_id=run_id, store=ctx.store, pool=ctx.pool, record=record,
                             validate=_validator(run))
        except RemoteError as exc:
            result.failures.append(f"{run_id}: {exc}")
            continue
        result.runs.append(stored)
        result.measured += 1
    return result


def _run_dict(run: AppRun) -> dict[str, Any]:
    return {"workload": run.workload, "problem": run.problem, "processes": run.processes,
            "threads": run.threads, "ppn": run.ppn}


def blockss_command(ctx: StageContext) -> list[str]:
    """How the environment runs vhpc-blockss: the inventory's command, else the venv's script."""
    configured = ctx.env.benchmarks.blockss
    return shlex.split(configured) if configured else [runtime_for(ctx.env).binary("vhpc-blockss")]


def prepare_blockss_problem(ctx: StageContext, preset: str) -> str:
    """Generate the preset's matrices once on every host that may run ranks (every rank reads them;
    the generator is deterministic and the log records each matrix's sha256); returns problem.json's path."""
    folder = f"{ctx.env.workdir.rstrip('/')}/blockss-problems/{preset}"
    problem = f"{folder}/problem.json"
    generate = " ".join(shlex.quote(a) for a in [*blockss_command(ctx), "generate", "--preset", preset,
                                                  "--outdir", folder])
    hosts = list(dict.fromkeys([ctx.env.launch_host, *ctx.env.hosts]))
    ctx.run_on(hosts, f"test -s {shlex.quote(problem)} || {generate}", env=runtime_for(ctx.env).env, timeout=1800)
    return problem


def _blockss_job(ctx: StageContext, run: AppRun, problem: str, hosts: tuple[str, ...],
                 timeout_s: float | None) -> Job:
    program = [*blockss_command(ctx), "solve", "--problem", problem, "--out", BLOCKSS_RESULT]
    launch = LaunchSpec(run.processes, hosts, run.ppn if run.nodes > 1 else None, threads_per_proc=run.threads)
    return Job(program, launch, timeout_s=timeout_s, outputs=(BLOCKSS_RESULT,),
               parameters={**_run_dict(run), "preset": run.problem, "problem_json": problem})


def _npb_deployments(ctx: StageContext, runs: list[AppRun]):
    """The binaries these runs need on every host: reuse the campaign's build if it has them all,
    else build them once (in this environment, or refuse if it runs another environment's build)."""
    from ..npb import MzRun, sweep_nprocs
    from ..npb.campaign import build_environment_of, build_for, build_in_environment, distribute_to_environment

    builder = build_environment_of(ctx.inventory, ctx.environment)
    spec = ctx.inventory.environment(builder).benchmarks.npb
    mz = [MzRun(r.workload, r.problem, r.processes, r.threads, r.ppn) for r in runs]
    try:
        build = build_for(ctx.inventory, ctx.environment, ctx.campaign, store=ctx.store)
        for r in mz:
            build.binary(r.benchmark, r.klass, r.processes)
    except (InputError, StoreError) as missing:
        if builder != ctx.environment:
            raise InputError(f"environment {ctx.environment!r} runs the NPB-MZ build of {builder!r}, which lacks "
                             f"what this stage needs ({missing.message}): run this stage (or `vhpc npb build "
                             f"--env {builder}`) there first", key="benchmarks.npb.built_in") from None
        build = build_in_environment(ctx.inventory, builder, ctx.campaign,
                                     benchmarks=list(dict.fromkeys(r.benchmark for r in mz)), klass=mz[0].klass,
                                     store=ctx.store, pool=ctx.pool, build_id=_next_build_id(ctx, spec, mz[0].klass),
                                     nprocs=sweep_nprocs(mz) if spec and spec.version == "3.3" else None)
    return distribute_to_environment(ctx.inventory, ctx.environment, build, pool=ctx.pool)


def _next_build_id(ctx: StageContext, spec, klass: str) -> str:
    """A fresh build id: builds are raw data too, never replaced."""
    taken = {r.run_id for r in ctx.store.runs(ctx.campaign, ctx.environment, "build")}
    n = 1
    while f"npb{spec.version}-{klass}-b{n}" in taken:
        n += 1
    return f"npb{spec.version}-{klass}-b{n}"


def _npb_job(ctx: StageContext, run: AppRun, deployments, hosts: tuple[str, ...],
             timeout_s: float | None) -> tuple[Job, dict[str, Any]]:
    """The run's job and the record of the binary it runs, after verifying every host's copy."""
    from ..npb import MzRun, mz_job, verify_deployment

    mz = MzRun(run.workload, run.problem, run.processes, run.threads, run.ppn)
    mine = [d for d in deployments if d.binary.benchmark == run.workload and d.binary.klass == run.problem
            and d.binary.nprocs in (None, run.processes)]
    if not mine:
        raise InputError(f"no NPB-MZ binary for {mz.run_id} in the build", key="benchmarks.npb")
    for deployment in mine:  # checksums verified on every host before every run
        host = next(h for h in ctx.env.hosts if h.label == deployment.host)
        verify_deployment(ctx.executor(host), deployment)
    return mz_job(mz, mine[0], hosts, timeout_s=timeout_s), {"binary": mine[0].record()}


def _validator(run: AppRun):
    kind = parser_for(run.workload)

    def validate(writer: RunWriter) -> dict[str, Any]:
        try:
            get_parser(kind).parse(writer.stdout_path.read_text(errors="replace"), str(writer.stdout_path))
        except ParseError as exc:
            return {"status": INVALID, "invalid_reason": f"output has no result: {exc.message}"}
        return {}

    return validate
