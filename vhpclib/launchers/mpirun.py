"""``mpirun`` on the environment's launch host, locally or over SSH.

The job's stdout/stderr go straight to files on the launch host (no pipes
through Python while it runs, so the harness adds no work to what it
measures). Remote logs are brought back with SFTP: no shared filesystem is
assumed, and the remote scratch folder is removed afterwards.
"""

from __future__ import annotations

import shlex
import time
import uuid
from typing import TYPE_CHECKING

from ..mpi import build_launch, shell_command
from ..record import Execution, LaunchRecord, MpiRecord
from ..remote import utc_now
from ..store import redact_env
from . import Job, LaunchTarget, Launcher, register_launcher

if TYPE_CHECKING:
    from ..store import RunWriter

LOGS = ("stdout.log", "stderr.log")


@register_launcher
class MpirunLauncher(Launcher):
    name = "mpirun"

    def launch(self, target: LaunchTarget, job: Job, writer: RunWriter) -> Execution:
        env_spec, runtime = target.env, target.runtime
        host = target.executor(env_spec.launch_host)
        spec = job.launch
        argv, mpi_env = build_launch(runtime, spec, job.program)
        variables = {**env_spec.env, **mpi_env, **(job.env or {})}
        timeout = job.timeout_s or env_spec.timeout_s
        if host.is_local:
            remote_dir = str(writer.path)
        else:
            remote_dir = f"{env_spec.workdir.rstrip('/')}/{writer.record.campaign}-{uuid.uuid4().hex[:12]}"
            host.run(f"mkdir -p {shlex.quote(remote_dir)}", timeout=60)
        hosts = list(dict.fromkeys(spec.hosts))
        if spec.hostfile is None and len(hosts) > 1:
            text = runtime.impl.hostfile_text(hosts, spec.ppn or 1)
            host.put_text(text, f"{remote_dir}/hostfile")
            writer.add_file("hostfile", text)
        command = (f"cd {shlex.quote(remote_dir)} && {shell_command(argv)} "
                   f"> {shlex.quote(remote_dir + '/stdout.log')} 2> {shlex.quote(remote_dir + '/stderr.log')}")
        started = utc_now()
        t0 = time.perf_counter()
        result = host.run(command, env=variables, timeout=timeout, warn=True)
        duration = time.perf_counter() - t0
        ended = utc_now()
        if not host.is_local:
            for name in (*LOGS, *job.outputs):
                try:
                    host.get(f"{remote_dir}/{name}", writer.path / name)
                except OSError:
                    pass
            host.run(f"rm -rf {shlex.quote(remote_dir)}", warn=True, timeout=60)
        for name in LOGS:
            if not (writer.path / name).exists():
                (writer.path / name).write_text("")
        if result.stderr.strip() and result.exit_code != 0:
            with open(writer.path / "stderr.log", "a") as fh:  # the shell itself failed (e.g. cd): keep what it said
                fh.write(result.stderr)
        return Execution(
            launcher=self.name, command=shell_command(argv), argv=argv, env=redact_env(variables),
            launch=LaunchRecord(nprocs=spec.nprocs, ppn=spec.ppn, hosts=list(spec.hosts),
                                cpus=list(spec.cpus) if spec.cpus is not None else None,
                                threads_per_proc=spec.threads_per_proc),
            launch_host=host.name, hosts=hosts or [host.name],
            mpi=MpiRecord(flavour=runtime.flavour, prefix=str(runtime.prefix), mpirun=runtime.mpirun),
            started_utc=started, ended_utc=ended, duration_s=round(duration, 6), exit_status=result.exit_code,
            timeout_s=timeout)
