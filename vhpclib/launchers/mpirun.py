"""``mpirun`` on the environment's launch host, locally or over SSH.

The job runs in a session of its own (``vhpclib.lifetime``) with its output going
straight to files: no pipes through Python while it runs, and the harness sleeps
on the process (locally a pidfd, over SSH the channel) instead of polling it.
A job past its timeout, an error or a signal in vhpc kills the whole session on
the launch host and every process carrying the job's tag on the other hosts.

Over SSH, the job's folder on the launch host lives under the environment's
``work_root`` (mode 0700); its logs are fetched with SFTP (no shared filesystem
assumed) and the folder is removed afterwards. When the connection dies while
the job runs, the run's temporary folder is kept with a marker: the next vhpc on
the campaign fetches the finished job's logs and stores it as a failed run.
"""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .. import contention, interference, lifetime
from ..config import secure_dir_command
from ..exceptions import ConnectionLost, HostUnreachable, InputError, RemoteError
from ..linkwatch import watch_links
from ..mpi import build_launch, shell_command
from ..injector import ACCOUNTING_FILE, parse_accounting
from ..record import Contention, Execution, Injected, Interference, LaunchRecord, MpiRecord
from ..remote import exports, utc_now
from ..secrets import redact_argv, redact_env, redact_text
from . import Job, LaunchTarget, Launcher, register_launcher

if TYPE_CHECKING:
    from ..config import Environment
    from ..remote import Executor
    from ..ssh import RemoteJob, SshExecutor
    from ..store import RunWriter

LOGS = ("stdout.log", "stderr.log")
#: Process names (``/proc/<pid>/comm``) of the MPI launchers themselves: a job whose other processes are all
#: gone while these run is waiting on descriptors held by something the ranks left behind.
LAUNCHER_PROCESSES = frozenset({"mpirun", "mpiexec", "mpiexec.hydra", "hydra_pmi_proxy", "prterun", "prted",
                                "orterun", "orted"})
#: Seconds per run when neither the job, the stage nor the inventory says (see stages.loop.run_timeout).
DEFAULT_TIMEOUT_S = 1800.0


@register_launcher
class MpirunLauncher(Launcher):
    name = "mpirun"

    def launch(self, target: LaunchTarget, job: Job, writer: RunWriter) -> Execution:
        env_spec, runtime = target.env, target.runtime
        host = target.executor(env_spec.launch_host)
        spec = job.launch
        argv, mpi_env = build_launch(runtime, spec, job.program)
        command = shell_command(argv)
        wrapped = self.wrapped(target, env_spec.launch_host, command)  # inside the environment's layer
        variables = {**env_spec.env, **mpi_env, **(job.env or {})}
        hosts = list(dict.fromkeys(spec.hosts))
        inventory = getattr(target, "inventory", None)
        allow = inventory.redaction_allow if inventory is not None else ()
        execution = Execution(
            launcher=self.name, command=redact_text(wrapped), argv=redact_argv(argv),
            env=redact_env(variables, allow),
            launch=LaunchRecord(nprocs=spec.nprocs, ppn=spec.ppn, hosts=list(spec.hosts),
                                cpus=list(spec.cpus) if spec.cpus is not None else None,
                                threads_per_proc=spec.threads_per_proc),
            launch_host=host.name, hosts=hosts or [host.name],
            mpi=MpiRecord(flavour=runtime.flavour, prefix=str(runtime.prefix), mpirun=runtime.mpirun),
            timeout_s=job.timeout_s or env_spec.timeout_s or DEFAULT_TIMEOUT_S)
        files = {}
        if spec.hostfile is None and len(hosts) > 1:
            files["hostfile"] = runtime.impl.hostfile_text(hosts, spec.ppn or 1)
            writer.add_file("hostfile", files["hostfile"])
        others = _other_hosts(target, env_spec, hosts, host)
        run_argv = argv if wrapped == command else ["bash", "-c", wrapped]
        run = _Run(host, run_argv, variables, execution, writer, others, env_spec.contention_limit, job)
        if wrapped != command:  # the layer's own processes (a sandbox's kernel) work for the job: not contention
            from ..providers import provider_for

            run.layer_pids = lambda: provider_for(env_spec).own_processes(env_spec, env_spec.launch_host)
        if not host.is_local:
            return run.remote(f"{env_spec.work_root}/{writer.record.campaign}-{uuid.uuid4().hex[:12]}", files)
        return run.local()


def _other_hosts(target: LaunchTarget, env_spec: Environment, hosts: list[str], launch: Executor) -> list[Executor]:
    """Executors of the job's hosts other than the launch host (where its ranks may be left running)."""
    out: dict[int, Executor] = {}
    for spec in env_spec.hosts:
        if spec.mpi_name in hosts:
            executor = target.executor(spec)
            if executor is not launch:
                out[id(executor)] = executor
    return list(out.values())


class _Run:
    """One launch: start, wait (bounded), kill what is left, record how it went."""

    def __init__(self, host: Executor, argv: list[str], variables: Mapping[str, str], execution: Execution,
                 writer: RunWriter, others: list[Executor], threshold: float | None, job: Job) -> None:
        self.host, self.argv, self.variables = host, argv, variables
        self.execution, self.writer, self.others = execution, writer, others
        self.threshold, self.job = threshold, job
        self.tag = lifetime.new_tag()
        execution.job_tag = self.tag
        self.timeout = float(execution.timeout_s or DEFAULT_TIMEOUT_S)
        self.layer_pids: Any = set  # () -> pids of the environment's layer itself (the provider's own_processes)

    def marker(self, **extra: Any) -> None:
        lifetime.write_marker(self.writer.path, {
            "tag": self.tag, "host": self.host.name, "local": self.host.is_local,
            "hosts": [o.name for o in self.others], "execution": self.execution.model_dump(mode="json"),
            "record": self.writer.record.to_json(), "outputs": list(self.job.outputs), **extra})

    # ------------------------------------------------------------------ this machine

    def local(self) -> Execution:
        out, err = self.writer.path / LOGS[0], self.writer.path / LOGS[1]
        before = contention.local_snapshot() if self.threshold else None
        sample, usage = interference.local_sample(), interference.children_usage()
        layer = self.layer_pids()  # long-lived: only processes alive before and after count (layer_cpu_between)
        layer_before = interference.process_cpu_s(layer)
        self.marker()
        self.execution.started_utc = utc_now()
        t0 = time.perf_counter()
        try:
            job = self.host.start_job(self.argv, cwd=self.writer.path, env=self.variables,  # type: ignore[attr-defined]
                                      stdout=out, stderr=err, tag=self.tag, launcher_processes=LAUNCHER_PROCESSES)
        except OSError as exc:
            with open(err, "a") as fh:
                fh.write(f"vhpc: cannot start {self.argv[0]}: {exc.strerror or exc}\n")
            return self._finish(t0, 127, killed=False)
        self.marker(sid=job.sid, identity=job.identity)
        status = None
        try:
            with watch_links(self.others, self._link_died(job.kill)):
                status = job.wait(self.timeout)
        finally:
            if status is None:  # timed out, or an error/signal unwinding through here: nothing may outlive it
                job.kill()
                self._sweep_others()
        leftovers = lifetime.terminate(lifetime.session_pids(job.sid))  # ranks still in the session
        leftovers += job.end_orphans()  # daemons that left the session and cleared the tag (env -i setsid ...)
        execution = self._finish(t0, _shell_status(status) if status is not None else 124, killed=status is None)
        layer_cpu_s = interference.layer_cpu_between(layer_before, interference.process_cpu_s(layer))
        execution.interference = Interference(**interference.measure(
            self.host.name, sample, interference.local_sample(), execution.duration_s or 0.0,
            interference.usage_between(usage, interference.children_usage(), layer_cpu_s)))
        self._injected()
        if job.ranks_gone:
            execution.failure = (f"the ranks ended but mpirun did not: a process they started kept its output "
                                 f"open; the job was ended {lifetime.RANKS_GONE_S:g} s after the last rank")
        if before is not None:
            busy = contention.busy_processes(before, contention.local_snapshot(), execution.duration_s or 0.0,
                                             threshold=self.threshold, exclude_sids={job.sid},
                                             exclude_pids=self.layer_pids())
            cpus = self.job.launch.cpus if not self.job.launch.hosts else None
            execution.contention = Contention(host=self.host.name, threshold=self.threshold,
                                              busy=contention.drop_local(busy, self.tag, cpus), leftovers=leftovers)
        lifetime.remove_marker(self.writer.path)
        return execution

    def _link_died(self, end_job: Callable[[], Any]) -> Callable[[str, str], None]:
        """What the link watch does when another host of the job is gone: say so on the run, end the job."""
        def died(host: str, why: str) -> None:
            self.execution.failure = f"the link to {host}, a host of this job, died while it ran: {why}"
            try:
                end_job()
            except Exception:  # noqa: BLE001 - the job may be ending on its own meanwhile
                pass

        return died

    def _finish(self, t0: float, status: int, *, killed: bool) -> Execution:
        self.execution.duration_s = round(time.perf_counter() - t0, 6)
        self.execution.ended_utc = utc_now()
        self.execution.exit_status = status
        self.execution.killed = killed
        if status != 0 and not killed:
            self._sweep_others()
        return self.execution

    def _sweep_others(self) -> None:
        for other in self.others:
            try:
                other.kill_job(self.tag)
            except (RemoteError, OSError):
                pass  # an unreachable host: its leftovers are found on resume or by the next run's check

    # ------------------------------------------------------------------ SSH launch host

    def remote(self, remote_dir: str, files: Mapping[str, str]) -> Execution:
        host: SshExecutor = self.host  # type: ignore[assignment]
        self.execution.remote_dir = remote_dir
        script = lifetime.job_script(workdir=remote_dir, command=shell_command(self.argv),
                                     exports=exports(self.variables), tag=self.tag, snapshot=bool(self.threshold),
                                     setup=secure_dir_command(remote_dir), files=files)
        self.marker(remote_dir=remote_dir)
        self.execution.started_utc = utc_now()
        t0 = time.perf_counter()
        job = host.start_job(script)
        job.tag = self.tag
        status = sid = None
        lost = False
        try:
            sid = job.announced_sid(timeout=host.connect_timeout + 30)
            self.marker(remote_dir=remote_dir, sid=sid)
            with watch_links(self.others, self._link_died(job.chan.shutdown_write)):  # the script kills the job
                status = job.wait(self.timeout)
            job.timed_out = status is None
        except ConnectionLost as exc:
            lost = True  # nothing to kill from here: the job may still finish; resume fetches its logs
            job.close()
            self._lost(t0, exc)
            raise
        finally:
            if status is None and not lost and job.returncode is None:
                job.kill()
                self._sweep_others()
                if not job.timed_out:  # an error or a signal unwinds: this run folder is never fetched
                    _remove_quietly(host, remote_dir)
        killed = status is None
        execution = self._finish(t0, 124 if killed else _shell_status(status), killed=killed)
        self._remote_contention(job, sid)
        self._remote_interference(job)
        self._fetch(host, remote_dir, job)
        self._injected()
        lifetime.remove_marker(self.writer.path)
        return execution

    def _remote_contention(self, job: RemoteJob, sid: int | None) -> None:
        if not self.threshold:
            return
        hz, before, after = parse_job_output(job.output())
        if before is None or after is None:
            return
        busy = contention.busy_processes(contention.parse_snapshot(before, hz), contention.parse_snapshot(after, hz),
                                         self.execution.duration_s or 0.0, threshold=self.threshold,
                                         exclude_sids={sid} if sid else ())
        self.execution.contention = Contention(host=self.host.name, threshold=self.threshold, busy=busy)

    def _remote_interference(self, job: RemoteJob) -> None:
        _, sections = job_sections(job.output())
        if "sample-before" not in sections or "sample-after" not in sections:
            return
        usage = interference.JobUsage(cpu_s=interference.parse_times(sections.get("times", "")))
        self.execution.interference = Interference(**interference.measure(
            self.host.name, interference.parse_sample(sections["sample-before"]),
            interference.parse_sample(sections["sample-after"]), self.execution.duration_s or 0.0, usage))

    def _injected(self) -> None:
        """A layer that injected a known slowdown left its cgroup's accounting beside the logs."""
        path = self.writer.path / ACCOUNTING_FILE
        if path.exists() and path.stat().st_size:
            try:
                acc = parse_accounting(path.read_text(), str(path))
            except InputError:  # the run then carries no measured truth; the analysis counts it as such
                return
            self.execution.injected = Injected(**{k: v for k, v in acc.to_json().items() if k in Injected.model_fields})

    def _fetch(self, host: SshExecutor, remote_dir: str, job: RemoteJob) -> None:
        """Logs and outputs into the run folder; the remote folder goes once they are here."""
        try:
            for name in (*LOGS, ACCOUNTING_FILE, *self.job.outputs):
                try:
                    host.get(f"{remote_dir}/{name}", self.writer.path / name)
                except FileNotFoundError:
                    if name == ACCOUNTING_FILE:  # only a layer that injects writes it: no empty stand-in
                        (self.writer.path / name).unlink(missing_ok=True)
        except HostUnreachable as exc:  # the link died after the job ended: its logs wait on the host
            lost = exc if isinstance(exc, ConnectionLost) else ConnectionLost(exc.message, host=exc.host)
            self._lost(None, lost)
            raise lost from None
        for name in LOGS:
            if not (self.writer.path / name).exists():
                (self.writer.path / name).write_text("")
        said = job.pump.stderr().strip()
        if said and self.execution.exit_status != 0:  # the script itself failed (folder refused, cd): keep it
            with open(self.writer.path / LOGS[1], "a") as fh:
                fh.write(said + "\n")
        host.run(f"rm -rf {shlex.quote(remote_dir)}", timeout=60, warn=True)

    def _lost(self, t0: float | None, exc: ConnectionLost) -> None:
        """Keep the run's folder and say where the job's logs are, for the next vhpc on the campaign."""
        if t0 is not None:
            self.execution.duration_s = round(time.perf_counter() - t0, 6)
            self.execution.ended_utc = utc_now()
        self.marker(remote_dir=self.execution.remote_dir, state="lost", reason=exc.message)


def _remove_quietly(host: SshExecutor, remote_dir: str) -> None:
    try:
        host.run(f"rm -rf {shlex.quote(remote_dir)}", timeout=10, warn=True)
    except (RemoteError, OSError):
        pass


def _shell_status(status: int) -> int:
    """Exit status as a shell reports it (killed by signal N: 128 + N)."""
    return 128 - status if status < 0 else status


def job_sections(text: str) -> tuple[int, dict[str, str]]:
    """Clock ticks per second and every ``@@vhpc-load NAME@@`` section a job script printed after its job."""
    hz = 100
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@vhpc-hz ") and line.endswith("@@"):
            value = line[10:-2]
            hz = int(value) if value.isdigit() and int(value) > 0 else 100
            current = None
        elif line.startswith("@@vhpc-load ") and line.endswith("@@"):
            current = sections.setdefault(line[12:-2], [])
        elif current is not None:
            current.append(line)
    return hz, {k: "\n".join(v) for k, v in sections.items()}


def parse_job_output(text: str) -> tuple[int, str | None, str | None]:
    """Clock ticks per second and the two CPU snapshots a job script printed after its job."""
    hz, sections = job_sections(text)
    return hz, sections.get("before"), sections.get("after")
