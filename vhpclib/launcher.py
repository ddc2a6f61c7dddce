"""Run one MPI job on an environment's launch host and capture it into the raw store.

The job's stdout/stderr go straight to files on the launch host (no pipes
through Python while it runs, so the harness adds no work to what it
measures). Remote logs are brought back with SFTP: no shared filesystem is
assumed. A failed job is kept, under a ``.failed-<stamp>`` id, for diagnosis,
and does not count as complete, so a rerun of the campaign measures it again.
"""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .config import Environment, Inventory
from .exceptions import RemoteError
from .mpi import LaunchSpec, MpiRuntime, build_launch, hostfile_text, runtime_for, shell_command
from .remote import ConnectionPool, Executor, utc_now
from .store import FAILED, RawStore, RunRecord, RunWriter, redact_env

#: Hook deciding a run's status after it finished: returns extra record fields.
Validator = Callable[[RunWriter], Mapping[str, Any]]


@dataclass(frozen=True)
class Job:
    """One MPI launch: what to run, where, and how it is placed."""

    program: list[str]
    launch: LaunchSpec
    env: Mapping[str, str] | None = None
    timeout_s: float | None = None
    parameters: Mapping[str, Any] | None = None
    # Files the program writes into its working folder that belong in the run folder (e.g. a JSON result).
    outputs: tuple[str, ...] = ()


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def run_job(inventory: Inventory, environment: str, job: Job, *, campaign: str, stage: str, run_id: str,
            store: RawStore, pool: ConnectionPool, record: Mapping[str, Any] | None = None,
            validate: Validator | None = None) -> RunRecord:
    """Run ``job`` on the launch host of ``environment`` and store it as one complete run.

    Raises ``RemoteError`` when the job exits non-zero (its logs are kept under a
    ``.failed-`` run id).
    """
    env_spec = inventory.environment(environment)
    runtime = runtime_for(env_spec)
    launch_host = pool.get(env_spec.launch_host, env_spec)
    spec = job.launch
    variables = {**env_spec.env}
    argv, mpi_env = build_launch(runtime, spec, job.program)
    variables.update(mpi_env)
    variables.update(job.env or {})
    timeout = job.timeout_s or env_spec.timeout_s
    base_record = {
        "parameters": dict(job.parameters or {}),
        "mpi": {"flavour": runtime.flavour, "prefix": str(runtime.prefix), "mpirun": runtime.mpirun},
        "launch": {"nprocs": spec.nprocs, "ppn": spec.ppn, "hosts": list(spec.hosts), "cpus": spec.cpus,
                   "threads_per_proc": spec.threads_per_proc},
        "launch_host": launch_host.name,
        "hosts": list(dict.fromkeys(spec.hosts)) or [launch_host.name],
        "environment_spec": {"label": env_spec.label, "vmm": env_spec.vmm, "baseline": env_spec.baseline,
                             "vcpu_pinning": env_spec.vcpu_pinning},
        **(record or {}),
    }
    try:
        with store.new_run(campaign, environment, stage, run_id, base_record) as writer:
            _execute(launch_host, env_spec, runtime, spec, argv, variables, timeout, writer, job.outputs)
            if writer.record["exit_status"] != 0:
                raise RemoteError("MPI job failed", host=launch_host.name, command=writer.record["command"],
                                  exit_code=writer.record["exit_status"],
                                  stdout=_read(writer.stdout_path), stderr=_read(writer.stderr_path))
            if validate is not None:
                writer.record.update(validate(writer))
    except RemoteError as failure:
        _keep_failed(store, campaign, environment, stage, run_id, base_record, failure)
        raise
    return store.load(campaign, environment, stage, run_id)


def _execute(host: Executor, env_spec: Environment, runtime: MpiRuntime, spec: LaunchSpec, argv: list[str],
             variables: dict[str, str], timeout: float, writer: RunWriter, outputs: tuple[str, ...] = ()) -> None:
    """Run argv on the launch host with output to files; fill the record."""
    if host.is_local:
        workdir = writer.tmp
        remote_dir = str(workdir)
    else:
        remote_dir = f"{env_spec.workdir.rstrip('/')}/{writer.final.parent.parent.parent.name}-{uuid.uuid4().hex[:12]}"
        host.run(f"mkdir -p {shlex.quote(remote_dir)}", timeout=60)
    if spec.hostfile is None and len(set(spec.hosts)) > 1:
        hostfile = f"{remote_dir}/hostfile"
        host.put_text(hostfile_text(runtime.flavour, list(dict.fromkeys(spec.hosts)), spec.ppn or 1), hostfile)
        writer.add_file("hostfile", hostfile_text(runtime.flavour, list(dict.fromkeys(spec.hosts)), spec.ppn or 1))
    command = (f"cd {shlex.quote(remote_dir)} && {shell_command(argv)} "
               f"> {shlex.quote(remote_dir + '/stdout.log')} 2> {shlex.quote(remote_dir + '/stderr.log')}")
    started = utc_now()
    t0 = time.perf_counter()
    result = host.run(command, env=variables, timeout=timeout, warn=True)
    duration = time.perf_counter() - t0
    ended = utc_now()
    if not host.is_local:
        for name in ("stdout.log", "stderr.log", *outputs):
            try:
                host.get(f"{remote_dir}/{name}", writer.tmp / name)
            except (OSError, IOError):
                if name in ("stdout.log", "stderr.log"):
                    (writer.tmp / name).write_text("")
        host.run(f"rm -rf {shlex.quote(remote_dir)}", warn=True, timeout=60)
    for name in ("stdout.log", "stderr.log"):
        if not (writer.tmp / name).exists():
            (writer.tmp / name).write_text("")
    if result.stderr.strip() and result.exit_code != 0:
        # The shell itself failed (e.g. cd): keep what it said.
        with open(writer.tmp / "stderr.log", "a") as fh:
            fh.write(result.stderr)
    writer.record.update({
        "command": shell_command(argv),
        "argv": argv,
        "env": redact_env(variables),
        "started_utc": started,
        "ended_utc": ended,
        "duration_s": round(duration, 6),
        "exit_status": result.exit_code,
        "timeout_s": timeout,
    })


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _keep_failed(store: RawStore, campaign: str, environment: str, stage: str, run_id: str,
                 record: Mapping[str, Any], failure: RemoteError) -> None:
    """Keep a failed job's output for diagnosis under an id resume does not count as complete."""
    with store.new_run(campaign, environment, stage, f"{run_id}.failed-{_stamp()}",
                       {**record, "status": FAILED, "command": failure.command,
                        "exit_status": failure.returncode}) as writer:
        writer.add_file("stdout.log", failure.stdout)
        writer.add_file("stderr.log", failure.stderr)
