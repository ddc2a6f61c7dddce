"""Slurm: every run is one batch job, submitted from the environment's submit host.

The job's sbatch script (kept in the run folder as ``job.sbatch``, so the run
can be resubmitted by hand) starts the ranks the way the environment's
``slurm.mpi_mode`` says: ``srun --mpi=pmi2|pmix`` with Slurm binding the ranks
to the CPUs the placement names (``vhpclib.slurm.placement``), or the MPI's own
``mpirun`` inside the allocation. Output, the ``SLURM_*`` layout and the job's
declared outputs come back into the run folder; the run record keeps the job
id, the sacct record and the task binding srun reported.

A job Slurm ends in any state but COMPLETED is returned with that state as
``Execution.failure`` (the stage records the run as failed and goes on).
Ctrl-C/SIGTERM cancel the job; the interrupted run's execution (job id, what
the job wrote) is left on the run record before the interruption goes on, so
the stage can keep it as a failed run. Host facts come from one srun step over
the environment's nodes (``slurm_host_facts``); each run record keeps the facts
of the nodes its job actually got.
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import SlurmSettingError, SlurmUnreachable, interruption_name
from ..mpi import LaunchSpec, build_launch, shell_command
from ..record import Execution, LaunchRecord, MpiRecord
from ..providers.base import EnvironmentProvider
from ..remote import utc_now
from ..slurm.settings import SlurmSettings
from ..store import redact_env
from . import Job, LaunchTarget, Launcher, register_launcher

if TYPE_CHECKING:
    from ..config import Environment
    from ..remote import Executor
    from ..slurm.jobs import JobResult
    from ..slurm.placement import SrunPlacement
    from ..slurm.script import BatchJob
    from ..store import RunWriter

_JOB_NAME_BAD = re.compile(r"[^A-Za-z0-9_.+-]")
#: Minutes added to a run's timeout for the job's time limit (startup, output flushing).
TIME_LIMIT_MARGIN_MIN = 1
_FACTS = "_slurm_node_facts"  # where slurm_host_facts keeps a campaign's node facts on its stage context


def job_name(run_id: str) -> str:
    """A Slurm job name from a run id (letters, digits, ``_.+-``; at most 128 characters)."""
    name = _JOB_NAME_BAD.sub("_", run_id).lstrip(".-+") or "vhpc-run"
    return name[:128]


def submit_executor(target: LaunchTarget) -> Executor:
    """Where sbatch, squeue and sacct run: ``slurm.submit_host``, else the environment's launch host."""
    env = target.env
    return target.executor(env.slurm.submit_host or env.launch_host)


def time_limit_for(settings: SlurmSettings, timeout_s: float | None) -> str | None:
    """The job's ``--time``: the environment's ``time_limit`` when set, else the run's timeout in minutes."""
    if settings.time_limit is not None or timeout_s is None:
        return None  # the settings' own limit (or the partition default) applies
    return str(math.ceil(timeout_s / 60) + TIME_LIMIT_MARGIN_MIN)


def _utc(epoch: str | None) -> str | None:
    try:
        value = float(epoch) if epoch is not None else None
    except ValueError:
        return None
    if value is None:
        return None
    return datetime.fromtimestamp(value, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def read_layout(path: Path) -> dict[str, str]:
    """``slurm_env.txt`` (``NAME=value`` lines written by the job) as a mapping; empty when missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name and name.replace("_", "").isalnum():
            out[name] = value
    return out


@dataclass(frozen=True)
class JobPlan:
    """The batch job of one run, and what the record needs to explain it."""

    batch: BatchJob
    variables: dict[str, str]  # what the script exports (the record keeps them, secrets redacted)
    placement: SrunPlacement | None  # how srun binds (None: mpirun inside the allocation)
    argv: list[str]  # the launch line inside the job


def plan_job(target: LaunchTarget, job: Job, name: str) -> JobPlan:
    """The ``BatchJob`` running ``job`` under the environment's ``mpi_mode``, and its variables."""
    from ..slurm.placement import srun_placement
    from ..slurm.script import BatchJob, launch_argv, launch_env

    env_spec, runtime, settings = target.env, target.runtime, target.env.slurm
    spec = job.launch
    limit = time_limit_for(settings, job.timeout_s or env_spec.timeout_s)
    if settings.mpi_mode == "mpirun":
        # Hydra finds the allocation's nodes itself: no host names (the inventory's are not Slurm's).
        inner = replace(spec, hosts=(), hostfile=None, host_cpus=_without_hosts(spec.host_cpus))
        nodes = max(1, len(dict.fromkeys(spec.hosts)) or len(spec.host_cpus or ()))
        argv, mpi_env = build_launch(runtime, inner, list(job.program))
        if spec.host_cpus:
            argv = _strip_host_options(argv)
        ppn = spec.ppn or (len(spec.host_cpus[0][1]) if spec.host_cpus else math.ceil(spec.nprocs / nodes))
        variables = {**env_spec.env, **mpi_env, **(job.env or {})}
        batch = BatchJob(name=name, program=tuple(argv), ntasks=spec.nprocs, nodes=nodes, ntasks_per_node=ppn,
                         cpus_per_task=spec.threads_per_proc if spec.threads_per_proc > 1 else None,
                         env=variables, launch="none", time_limit=limit,
                         exclusive=spec.cpus is not None or bool(spec.host_cpus), inside=_inside(target))
        return JobPlan(batch, variables, None, argv)
    placement = srun_placement(spec)
    # The MPI's own variables without its pinning (srun binds; Intel MPI would only report): placement-free spec.
    bare = LaunchSpec(nprocs=spec.nprocs, hosts=spec.hosts, ppn=spec.ppn, report_binding=spec.report_binding,
                      single_node_fabric=spec.single_node_fabric)
    _, mpi_env = build_launch(runtime, bare, list(job.program))
    mpi_env["OMP_NUM_THREADS"] = str(spec.threads_per_proc)
    if spec.threads_per_proc > 1:
        mpi_env.update({"OMP_PLACES": "cores", "OMP_PROC_BIND": "close"})
    variables = {**env_spec.env, **mpi_env, **(job.env or {})}
    batch = BatchJob(name=name, program=(*placement.program_prefix, *job.program), ntasks=placement.ntasks,
                     nodes=placement.nodes, ntasks_per_node=placement.ntasks_per_node,
                     cpus_per_task=placement.cpus_per_task, env=variables, launch="mpi",
                     mpirun=runtime.mpirun, launcher_args=placement.srun_args, time_limit=limit,
                     exclusive=placement.exclusive, inside=_inside(target))
    # What the script exports, as the record keeps it: the run's variables and the launch mode's (PMI library).
    return JobPlan(batch, {**variables, **launch_env(settings, batch)}, placement, launch_argv(settings, batch))


def _inside(target: LaunchTarget) -> Callable[[str], str] | None:
    """The launch line inside the environment's layer (its provider's ``wrap`` on the first node)."""
    from ..providers import provider_for

    env = target.env
    provider = provider_for(env)
    if type(provider).wrap is EnvironmentProvider.wrap:  # plain hosts: the script stays as it always was
        return None
    return lambda command: provider.wrap(env, env.hosts[0], command)


def _without_hosts(host_cpus: tuple[tuple[str, tuple[int, ...]], ...] | None):
    return tuple(("", cpus) for _, cpus in host_cpus) if host_cpus else None


def _strip_host_options(argv: list[str]) -> list[str]:
    """An MPMD mpirun line without per-segment host options: Hydra places segments on the allocation in order."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-host", "-hosts", "--host"):
            skip = True
            continue
        out.append(arg)
    return out


@register_launcher
class SlurmLauncher(Launcher):
    name = "slurm"
    Section = SlurmSettings
    section_required = True

    def host_facts(self, ctx: Any, hosts: list) -> dict[str, dict[str, Any]] | None:
        """Every node fingerprinted by one srun step (``slurm_host_facts``)."""
        return slurm_host_facts(ctx, hosts)

    def inventory_rows(self, env: Environment, pool: Any, timeout: float | None, answered: Any,
                       unanswered: Any) -> list[Any] | None:
        """Slurm nodes answer through one srun step (``vhpclib.slurm.node_fingerprints.slurm_rows``)."""
        from ..slurm.node_fingerprints import slurm_rows

        return slurm_rows(env, pool, timeout, answered, unanswered)

    def check(self, target: LaunchTarget) -> None:
        """Ask Slurm (``sbatch --test-only``) whether it accepts the environment's settings; raise if not."""
        from ..slurm.jobs import check_submission

        env = target.env
        try:
            check_submission(submit_executor(target), env.slurm, nodes=len(env.hosts))
        except (SlurmSettingError, SlurmUnreachable) as exc:  # name the inventory and the environment's key
            source = getattr(getattr(target, "inventory", None), "source", None)
            key, message = exc.key, exc.message
            if key == "slurm.nodes" and env.slurm.nodes is None:  # the node count came from the host list
                key, message = "hosts", f"{message} (the environment lists {len(env.hosts)} hosts: the " \
                                        f"stages ask Slurm for up to as many nodes)"
            raise type(exc)(message, file=str(source) if source else None,
                            key=f"environments.{target.environment}.{key}" if key else None) from None

    def launch(self, target: LaunchTarget, job: Job, writer: RunWriter) -> Execution:
        from ..slurm.jobs import run_batch_job

        env_spec, runtime, settings = target.env, target.runtime, target.env.slurm
        host = submit_executor(target)
        plan = plan_job(target, job, job_name(writer.record.run_id))
        timeout = job.timeout_s or env_spec.timeout_s
        submitted: list[str] = []
        base = self._execution(env_spec, runtime, job, plan, host.name, timeout)
        try:
            result = run_batch_job(host, settings, plan.batch, writer.path, timeout_s=timeout,
                                   outputs=job.outputs, on_submit=submitted.append)
        except KeyboardInterrupt as exc:
            how = interruption_name(exc)
            base.failure = f"interrupted ({how}): Slurm job {submitted[0]} cancelled" if submitted else \
                f"interrupted ({how}) before the job was submitted"
            base.ended_utc = utc_now()
            base.scheduler = {"job_id": submitted[0] if submitted else None, "state": "CANCELLED" if submitted
                              else None, "submit_host": host.name, "script": "job.sbatch",
                              "mpi_mode": settings.mpi_mode}
            writer.record.execution = base  # kept on the record: the stage stores the run as failed
            raise
        execution = self._finish(base, result, plan, writer)
        _facts_of_allocated_nodes(target, writer, execution)
        return execution

    @staticmethod
    def _execution(env_spec: Environment, runtime: Any, job: Job, plan: JobPlan, submit_host: str,
                   timeout: float) -> Execution:
        spec = job.launch
        return Execution(
            launcher="slurm", command=shell_command(plan.argv), argv=list(plan.argv),
            env=redact_env(plan.variables),
            launch=LaunchRecord(nprocs=spec.nprocs, ppn=spec.ppn, hosts=list(spec.hosts),
                                cpus=list(spec.cpus) if spec.cpus is not None else None,
                                threads_per_proc=spec.threads_per_proc),
            launch_host=submit_host,
            mpi=MpiRecord(flavour=runtime.flavour, prefix=str(runtime.prefix), mpirun=runtime.mpirun),
            started_utc=utc_now(), timeout_s=timeout)

    @staticmethod
    def _finish(execution: Execution, result: JobResult, plan: JobPlan, writer: RunWriter) -> Execution:
        from ..slurm.placement import binding_problems, parse_binding
        from ..slurm.sacct import expand_hostlist

        layout = read_layout(writer.path / "slurm_env.txt")
        acct = result.accounting.job if result.accounting else None
        try:
            nodes = expand_hostlist(acct.node_list if acct else layout.get("SLURM_JOB_NODELIST"))
        except ValueError:
            nodes = []
        start, end = layout.get("VHPC_LAUNCH_START"), layout.get("VHPC_LAUNCH_END")
        execution.hosts = nodes
        execution.started_utc = _utc(start) or result.submitted_utc
        execution.ended_utc = _utc(end) or result.ended_utc
        if start and end and _utc(start) and _utc(end):
            execution.duration_s = round(float(end) - float(start), 6)
        elif acct is not None and acct.elapsed_s is not None:
            execution.duration_s = float(acct.elapsed_s)
        if acct is not None and acct.exit_code is not None:
            execution.exit_status = acct.exit_code if not acct.exit_signal else 128 + acct.exit_signal
        if not result.ok:
            execution.failure = f"Slurm job {result.job_id}: {result.reason}"
        scheduler = result.record()
        if plan.placement is not None:
            bindings = parse_binding(_read(result.stderr_path))
            scheduler["task_binding"] = [b.to_dict() for b in bindings]
            if result.ok:
                problems = binding_problems(bindings, plan.placement, nodes)
                scheduler["binding_verification"] = "contradicts placement" if problems else "verified"
                if problems:
                    writer.invalidate([f"Slurm binding: {p}" for p in problems])
        execution.scheduler = scheduler
        return execution


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def slurm_host_facts(ctx: Any, hosts: list) -> dict[str, dict[str, Any]]:
    """Host facts of a Slurm environment: every node fingerprinted by one ``srun --ntasks-per-node=1`` step.

    The first call fingerprints as many nodes as the environment lists (one job
    for the whole campaign); facts are keyed by Slurm node name and reused.
    ``hosts`` says how many nodes a run uses: the first ``len(hosts)`` are returned.
    """
    from ..fingerprint import store_fingerprint
    from ..slurm.node_fingerprints import fingerprint_nodes
    from ..record import summarize_facts

    if getattr(ctx, _FACTS, None) is None:
        env = ctx.env
        with tempfile.TemporaryDirectory(prefix="vhpc-fingerprint-") as tmp:
            facts, _ = fingerprint_nodes(submit_executor(ctx), env.slurm, len(env.hosts), Path(tmp),
                                         runtime=ctx.runtime, timeout_s=300)
        summaries = {}
        for node, node_facts in facts.items():
            path = store_fingerprint(node_facts, ctx.campaign, ctx.environment, store_root=ctx.store.root)
            summaries[node] = {"fingerprint": str(Path(path).relative_to(ctx.store.root)),
                               "slurm_job_id": node_facts.get("slurm_job_id"), **summarize_facts(node_facts)}
        setattr(ctx, _FACTS, summaries)
    summaries = getattr(ctx, _FACTS)
    wanted = max(1, len(hosts))
    return dict(list(summaries.items())[:wanted])


def _facts_of_allocated_nodes(target: Any, writer: RunWriter, execution: Execution) -> None:
    """The run record's host facts: those of the nodes the job got (Slurm chooses them, not the inventory)."""
    known = getattr(target, _FACTS, None) or {}
    if not execution.hosts or not known:
        return
    writer.record.host_facts = {node: known[node] for node in execution.hosts if node in known}
    missing = [node for node in execution.hosts if node not in known]
    if missing and execution.scheduler is not None:
        execution.scheduler["nodes_without_fingerprint"] = missing


__all__ = ["SlurmLauncher", "job_name", "plan_job", "read_layout", "slurm_host_facts", "submit_executor",
           "time_limit_for"]
