"""The one stage loop: plan -> record skips -> count stored repetitions -> run -> sanity -> extract.

Every stage of the study is this loop over the workloads it names; ``driver.run_stage``
picks how its points are repeated (fixed, ``adaptive``, ``interleave``), and all three run
them through ``PointRunner``. This module imports none of the drivers. A run's
output is judged (``Workload.sanity``) and read (``Workload.extract``) inside its
temporary folder before the store makes it visible; whatever a run's output
does to those two, that run is invalid or failed and the loop goes on
(ReFrame's per-test isolation). Failures of one point never stop the others.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import ConnectionLost, InputError, StageStopped, VhpcError, interruption_name
from ..launchers import Job, get_launcher
from ..params import StageParams
from ..record import COMPLETE, FAILED, INVALID, Execution, RunRecord
from ..store import RunWriter, StoredRun
from ..workloads import Point, Skip, Workload, get_workload
from ..remote import utc_now
from .context import StageContext


@dataclass
class StageResult:
    """What one stage call did in one environment."""

    stage: str
    measured: int = 0
    reused: int = 0
    runs: list[StoredRun] = field(default_factory=list)
    invalid: list[StoredRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    #: Adaptive repetitions: per reported quantity, the interval reached, the runs used and why it stopped.
    stopping: list[Any] = field(default_factory=list)
    #: Interleaved calls: what happened in each environment.
    environments: dict[str, "StageResult"] = field(default_factory=dict)
    #: True when a failure came from bad input (the CLI then exits 2, after the other points ran).
    bad_input: bool = False
    #: Why the stage stopped early (the same failure on the same host run after run), else None.
    stopped: str | None = None

    def lines(self) -> list[str]:
        out = [f"{self.stage}: {self.measured} run(s) measured, {self.reused} reused, {len(self.invalid)} invalid, "
               f"{len(self.skipped)} skipped, {len(self.failures)} failed"]
        out += [f"skipped {s}" for s in self.skipped]
        out += [f"invalid {x.run_id}: {x.record.reason}" for x in self.invalid]
        out += [f"failed {f}" for f in self.failures]
        out += [f"topology: {f}" for f in self.findings]
        out += [line for env, sub in self.environments.items() for line in [f"{env}: {sub.lines()[0]}"]]
        out += [q.line() for q in self.stopping]
        out += [f"stopped: {self.stopped}"] if self.stopped else []
        return out

    def add(self, run: StoredRun, *, measured: bool) -> None:
        if run.status == FAILED:
            self.failures.append(f"{run.run_id}: {run.record.reason}")
        elif run.status == INVALID:
            self.invalid.append(run)
        else:
            self.runs.append(run)
        if measured:
            self.measured += run.status != FAILED
        else:
            self.reused += 1


class PointRunner:
    """Runs (or reuses) single repetitions of a stage's points in one environment, in any order.

    The fixed loop, the adaptive loop and the interleaving driver all go through it, so
    resume, per-workload preparation (once) and failure isolation behave the same everywhere.
    """

    def __init__(self, ctx: StageContext, stage: str, params: StageParams, result: StageResult,
                 points: list[tuple[Workload, list[Point]]]) -> None:
        self.ctx, self.stage, self.params, self.result, self.points = ctx, stage, params, result, points
        self.prepared: dict[str, Any] = {}
        self.broken: dict[str, str] = {}  # workload -> why it could not be prepared
        self.streak: tuple[tuple[str, str], int] | None = None  # (host, failure kind), runs in a row

    @property
    def environment(self) -> str:
        return self.ctx.environment

    def stored_counts(self) -> dict[str, int]:
        return self.ctx.store.measured_counts(self.ctx.campaign, self.ctx.environment, self.stage)

    def run(self, workload: Workload, point: Point, rep: int, params: StageParams | None = None) -> StoredRun | None:
        """Repetition ``rep`` of ``point``: reused when complete, else measured; None when it could not start."""
        ctx, result = self.ctx, self.result
        params = params or self.params
        run_id = point.run_id(rep)
        if ctx.store.is_complete(ctx.campaign, ctx.environment, self.stage, run_id):
            run = ctx.store.load(ctx.campaign, ctx.environment, self.stage, run_id)
            result.add(run, measured=False)
            return run
        if workload.name in self.broken:
            result.failures.append(f"{run_id}: {self.broken[workload.name]}")
            return None
        try:
            if workload.name not in self.prepared:
                mine = next((p for w, p in self.points if w.name == workload.name), [point])
                self.prepared[workload.name] = workload.prepare(ctx, mine, params)
            job = workload.job(ctx, point, rep, self.prepared[workload.name], params)
            facts = ctx.host_facts(ctx.env.hosts[:max(1, point.nodes)])
        except VhpcError as exc:
            result.bad_input |= isinstance(exc, InputError)
            if workload.name not in self.prepared:
                self.broken[workload.name] = str(exc)
            result.failures.append(f"{run_id}: {exc}")
            if workload.name in self.prepared:  # the same host refusing run after run stops the stage too
                self._streak(getattr(exc, "host", None) or ctx.env.launch_host.label, str(exc))
            return None
        run = measure(ctx, self.stage, workload, point, rep, job, facts)
        result.add(run, measured=True)
        self._count_failures(run)
        return run

    def _count_failures(self, run: StoredRun) -> None:
        """Stop the stage after ``SAME_FAILURES_TO_STOP`` runs in a row failed the same way on the same host."""
        if run.status != FAILED:
            self.streak = None
            return
        execution = run.record.execution
        host = (execution.launch_host if execution and execution.launch_host else None) or \
            self.ctx.env.launch_host.label
        self._streak(host, run.record.reason)

    def _streak(self, host: str, reason: str) -> None:
        key = (host, failure_kind(reason))
        count = self.streak[1] + 1 if self.streak and self.streak[0] == key else 1
        self.streak = (key, count)
        if count >= SAME_FAILURES_TO_STOP:
            raise StageStopped(f"{count} runs in a row failed on {host} with the same failure "
                               f"({reason[:200]}); the stage stopped, the {self.result.measured} "
                               "run(s) measured are kept", host=host, result=self.result)


#: Runs in a row failing the same way on the same host that stop the stage (a dead sshd, a broken install).
SAME_FAILURES_TO_STOP = 3


def failure_kind(reason: str) -> str:
    """A failure reason without its numbers and output tail: what makes two failures "the same kind"."""
    import re

    return re.sub(r"\d+(?:\.\d+)?", "#", reason.split("; last output")[0])[:160]


def _plan(ctx: StageContext, stage: str, params: StageParams,
          result: StageResult) -> list[tuple[Workload, list[Point]]]:
    """Points per workload; skips (the environment cannot provide them) are stored with their reason.

    The campaign's writer lock is taken once planning succeeded and before anything is stored or counted:
    a second writer started at the same moment (``--wait``) queues here, then reuses what the first stored.
    """
    out: list[tuple[Workload, list[Point]]] = []
    skips: list[Skip] = []
    nodes = len(ctx.env.hosts)
    for name in params.workloads:
        workload = get_workload(name)
        mine: list[Point] = []
        for item in workload.plan(stage, ctx, params):
            if isinstance(item, Point) and item.nodes > nodes:
                item = Skip(workload.name, item.stem, item.what,
                            f"needs {item.nodes} node(s), environment has {nodes}", item.fields)
            elif isinstance(item, Point):  # what the environment's layer cannot run (e.g. one vCPU only)
                reason = ctx.skip_reason(item.nodes, item.ranks_per_node or 1)
                if reason:
                    item = Skip(workload.name, item.stem, item.what, reason, item.fields)
            if isinstance(item, Skip):
                skips.append(item)
            else:
                mine.append(item)
        if mine:
            out.append((workload, mine))
    if out or skips:
        ctx.begin_writing()
    for item in skips:
        record_skip(ctx, stage, item)
        result.skipped.append(f"{item.what}: {item.reason}")
    return out


def record_skip(ctx: StageContext, stage: str, skip: Skip) -> None:
    """Store a skip once per campaign, so reports show why something is missing instead of hiding it."""
    ctx.store.record_skip(RunRecord(
        run_id=skip.run_id, campaign=ctx.campaign, environment=ctx.environment, stage=stage,
        workload=skip.workload, point={**skip.fields, "what": skip.what}, reasons=[skip.reason],
        environment_spec=ctx.environment_summary(), **ctx.topology_record()))


#: Per-run timeout derived from the benchmark: this many times its slowest stored run, at least FLOOR.
TIMEOUT_FACTOR = 5.0
TIMEOUT_FLOOR_S = 60.0
#: A point never measured before (nothing to derive from) gets this long.
FIRST_RUN_TIMEOUT_S = 1800.0


def run_timeout(ctx: StageContext, stage: str, point: Point, job: Job) -> float:
    """Seconds the run may take: the stage's ``--timeout``, else the inventory's ``timeout_s``, else derived
    from the durations of the point's stored runs (``TIMEOUT_FACTOR`` x the slowest, ``TIMEOUT_FLOOR_S`` at
    least), else ``FIRST_RUN_TIMEOUT_S`` (a dead host is noticed on its own within ~30 s in any case)."""
    if job.timeout_s:
        return float(job.timeout_s)
    if ctx.env.timeout_s:
        return float(ctx.env.timeout_s)
    durations = ctx.durations(stage).get(point.stem)
    if durations:
        return max(TIMEOUT_FLOOR_S, TIMEOUT_FACTOR * max(durations))
    return FIRST_RUN_TIMEOUT_S


def measure(ctx: StageContext, stage: str, workload: Workload, point: Point, repetition: int, job: Job,
            facts: dict[str, dict[str, Any]]) -> StoredRun:
    """Launch one repetition and store it: complete, invalid (kept with its reasons) or failed (kept aside).

    A failed run always records why, when it started and ended and how long it took. A run whose
    launch host stopped answering stays in its temporary folder (see ``launchers.mpirun``).
    """
    ctx.begin_writing()
    job = dataclasses.replace(job, timeout_s=run_timeout(ctx, stage, point, job))
    record = RunRecord(
        run_id=point.run_id(repetition), campaign=ctx.campaign, environment=ctx.environment, stage=stage,
        workload=workload.name, point={**point.fields, **job.point}, repetition=repetition,
        environment_spec=ctx.environment_summary(), host_facts=facts, extra=dict(job.record),
        **ctx.topology_record())
    interrupted: KeyboardInterrupt | None = None
    with ctx.store.new_run(record) as writer:
        writer.secrets = given_secrets(ctx, job)
        started = utc_now()
        t0 = time.perf_counter()
        try:
            record.execution = get_launcher(ctx.env.launcher).launch(ctx, job, writer)
        except KeyboardInterrupt as exc:  # kept as a failed run (never half-counted), re-raised below
            record.execution = record.execution or _failed_execution(ctx, job, started, t0)
            writer.fail(record.execution.failure or f"interrupted ({interruption_name(exc)})")
            interrupted = exc
        except ConnectionLost as exc:
            writer.keep_partial = True
            record.execution = _failed_execution(ctx, job, started, t0)
            writer.fail(f"connection lost while the job ran ({exc}); its folder is kept and its logs are "
                        "fetched when the campaign is resumed")
        except VhpcError as exc:
            record.execution = _failed_execution(ctx, job, started, t0)
            writer.fail(f"launch failed: {exc}")
        else:
            _judge_exit(workload, writer)
    if interrupted is not None:  # the run is committed; now stop the campaign
        raise interrupted
    if record.status != FAILED and record.execution is not None and record.execution.duration_s:
        ctx.durations(stage).setdefault(point.stem, []).append(record.execution.duration_s)
    return StoredRun(writer.path, writer.record)


def given_secrets(ctx: StageContext, job: Job) -> set[str]:
    """Secret values a job is given (vhpc's own environment, the inventory's, the job's): hidden at store time."""
    import os

    from ..secrets import secret_parts

    variables = {**os.environ, **ctx.env.env, **ctx.env.mpi.env, **(job.env or {})}
    return secret_parts(variables, ctx.inventory.redaction_allow)


def _judge_exit(workload: Workload, writer: RunWriter) -> None:
    execution = writer.record.execution
    assert execution is not None
    status = execution.exit_status
    if execution.failure:  # the launcher's own words (e.g. the Slurm state)
        writer.fail(execution.failure)
    elif execution.killed:
        writer.fail(f"timed out after {execution.timeout_s:g} s (the job was killed: exit status {status})")
    elif status != 0:
        writer.fail(f"exit status {status}")
    else:
        judge(workload, writer)


def _failed_execution(ctx: StageContext, job: Job, started: str, t0: float) -> Execution:
    """What is known of a launch that did not complete: when, how long, with which limit."""
    return Execution(launcher=ctx.env.launcher, started_utc=started, ended_utc=utc_now(),
                     duration_s=round(time.perf_counter() - t0, 6), timeout_s=job.timeout_s,
                     launch_host=ctx.env.launch_host.label)


def judge(workload: Workload, run: RunWriter) -> None:
    """Sanity, then extraction, of a finished run; never raises (a surprise fails only this run).

    A run measured while other processes were busy on its cores (``contention``) or yielding
    no result rows is kept but invalid, with the reason; it is never silently complete.
    """
    try:
        reasons = workload.sanity(run)
    except Exception as exc:  # noqa: BLE001 - per-run isolation: the campaign goes on
        run.fail(f"sanity check raised {type(exc).__name__}: {exc}")
        return
    if reasons:
        run.invalidate(reasons)
    try:
        extracted = workload.extract(run)
    except Exception as exc:  # noqa: BLE001
        if run.record.status == COMPLETE:
            run.fail(f"extraction raised {type(exc).__name__}: {exc}")
        return
    run.keep_result(workload.table, extracted.rows, extracted.warnings)
    if not extracted.rows and run.record.status == COMPLETE:
        run.invalidate(["the output holds no result rows"])
    undeclared = _undeclared(workload, extracted.rows)
    if undeclared:  # a plugin's bug, said where it is: the rows are kept, the run is not a result
        run.invalidate([f"workload {workload.name!r} extracted column(s) its table {workload.table!r} does not "
                        f"declare: {', '.join(undeclared)} (declare them in {type(workload).__name__}.columns)"])
    busy = run.record.execution.contention if run.record.execution else None
    if busy is not None and busy.busy:
        from ..contention import reasons as contention_reasons

        run.invalidate(contention_reasons(busy.busy, busy.host))


def _undeclared(workload: Workload, rows: list[dict[str, Any]]) -> list[str]:
    from ..schema import TABLES, undeclared_columns
    from ..tables import layout

    if TABLES.find(workload.table) is None:
        return []
    return undeclared_columns(rows, layout(workload.table).names)


def stage_points(ctx: StageContext, stage: str, params: StageParams) -> Iterable[tuple[str, Point]]:
    """The points a stage would measure (without storing skips): for planning tools and tests."""
    for name in params.workloads:
        for item in get_workload(name).plan(stage, ctx, params):
            if isinstance(item, Point):
                yield name, item
