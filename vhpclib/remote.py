"""Run commands on hosts, locally through invoke or over SSH through Fabric (``vhpclib.ssh``), behind one interface.

Every command returns a ``CommandResult``; a non-zero exit raises ``RemoteError``
unless the caller passes ``warn=True``. ``fan_out`` runs one command on many
hosts in one thread pool and reports every host's outcome, failures included,
each with its own duration.

Everything is bounded: a connect, an exec and every SFTP transfer have a timeout;
SSH transports send keepalives and their sockets give up after
``DEAD_LINK_S`` seconds without an acknowledgement, so a dead link is noticed in
well under 30 s instead of hanging. A command that times out is killed with its
whole process group on the host, not merely abandoned.

Variables never appear on a command line (``/proc/<pid>/cmdline`` is readable by
everyone): a command and its ``export`` lines travel to ``bash -s`` on its
standard input, locally and over SSH.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import lifetime
from .config import Environment, HostSpec, Inventory
from .executor import (KILL_WAIT_S, CommandResult, Executor, HostKeyPolicy, _guarded, _timed_out,  # noqa: F401
                       exports, utc_now, with_env)

#: The SSH side lives in ``vhpclib.ssh`` (paramiko is imported only when a host is reached over SSH).
_SSH_NAMES = ("SshExecutor", "RemoteJob", "ChannelPump", "check_known_hosts", "user_known_hosts", "KEEPALIVE_S",
              "DEAD_LINK_S", "SFTP_TIMEOUT_S")


def __getattr__(name: str) -> Any:
    if name in _SSH_NAMES:
        from . import ssh

        return getattr(ssh, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------ local

class LocalExecutor(Executor):
    """This machine, through invoke: ``bash -s`` in a session of its own, the script on its stdin.

    (A measured job does not go through here: ``start_job`` runs it with output straight to files
    and the harness asleep until it ends, see ``lifetime.LocalJob``.)
    """

    is_local = True

    def __init__(self, name: str = "localhost") -> None:
        self.name = name

    def _run(self, script: str, timeout: float | None) -> tuple[int, str, str]:
        import invoke

        runner = _session_runner()(invoke.Context())
        try:
            result = runner.run("bash -s", in_stream=io.StringIO(_guarded(script)), hide=True, warn=True,
                                timeout=timeout, echo_stdin=False)
        except invoke.exceptions.CommandTimedOut as exc:
            return 124, exc.result.stdout, _timed_out(exc.result.stderr, timeout)
        if runner.interrupted is not None:  # invoke forwards Ctrl-C to the command and goes on waiting
            raise runner.interrupted
        return result.exited, result.stdout, result.stderr

    def start_job(self, argv: list[str], *, cwd: str | Path, env: Mapping[str, str], stdout: Path, stderr: Path,
                  tag: str, launcher_processes: Collection[str] = ()) -> lifetime.LocalJob:
        """Start a job in its own session, output straight to files (see ``lifetime.LocalJob``)."""
        return lifetime.LocalJob(argv, cwd=cwd, env=env, stdout=stdout, stderr=stderr, tag=tag,
                                 launcher_processes=launcher_processes)

    def kill_job(self, tag: str, sid: int | None = None) -> list[int]:
        return lifetime.kill_local_job(sid, tag)

    def put(self, local: str | Path | IO, remote: str) -> None:
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
        if hasattr(local, "read"):
            data = local.read()  # type: ignore[union-attr]
            Path(remote).write_bytes(data.encode() if isinstance(data, str) else data)
        elif Path(local).resolve() != Path(remote).resolve():
            shutil.copyfile(local, remote)

    def get(self, remote: str, local: str | Path) -> None:
        if Path(remote).resolve() != Path(local).resolve():
            shutil.copyfile(remote, local)


_RUNNER: type | None = None


def _session_runner() -> type:
    """invoke's local runner, with the command in a session of its own that a timeout or Ctrl-C ends whole.

    (invoke kills only the shell it started; a command's children would outlive it.)
    """
    global _RUNNER
    if _RUNNER is None:
        import invoke

        class SessionLocal(invoke.runners.Local):
            interrupted: BaseException | None = None

            def start(self, command: str, shell: str, env: dict[str, Any]) -> None:
                self.process = subprocess.Popen(command, shell=True, executable=shell, env=env,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                stdin=subprocess.PIPE, start_new_session=True)

            def read_our_stdin(self, input_: Any) -> str:
                # The script is in memory: hand it over whole (invoke reads one byte, then naps 10 ms).
                return input_.read(1 << 20)

            def kill(self) -> None:
                lifetime.terminate(lifetime.session_pids(self.process.pid))

            def send_interrupt(self, interrupt: KeyboardInterrupt) -> None:
                self.interrupted = interrupt
                self.kill()

        _RUNNER = SessionLocal
    return _RUNNER


def executor_for(spec: HostSpec, env: Environment, inventory: Inventory | None = None) -> Executor:
    """The executor reaching ``spec`` as the environment says (local or SSH with its key policy)."""
    if spec.local:
        return LocalExecutor(spec.label)
    from .ssh import SshExecutor

    known = (inventory.known_hosts_for(env) if inventory else env.known_hosts)
    return SshExecutor(spec, policy=env.host_key_policy, known_hosts=known, connect_timeout=env.connect_timeout_s)


class ConnectionPool:
    """Reuses one executor per host for a whole campaign."""

    def __init__(self, inventory: Inventory | None = None) -> None:
        self.inventory = inventory
        self._executors: dict[tuple, Executor] = {}
        self._lock = threading.Lock()

    def get(self, spec: HostSpec, env: Environment) -> Executor:
        key = (spec, env.host_key_policy, env.known_hosts)
        with self._lock:
            if key not in self._executors:
                self._executors[key] = executor_for(spec, env, self.inventory)
            return self._executors[key]

    def close(self) -> None:
        for executor in self._executors.values():
            executor.close()
        self._executors.clear()

    def __enter__(self) -> "ConnectionPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class HostOutcome:
    host: str
    result: CommandResult | None
    error: Exception | None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.ok


_POOL_MAX = 32


def fan_out(executors: Iterable[Executor], command: str, *, env: Mapping[str, str] | None = None,
            timeout: float | None = None) -> list[HostOutcome]:
    """Run ``command`` on every host at once (one thread pool); every host's outcome is returned, none hidden.

    Outcomes are in the order of ``executors``, each with the wall time of that host alone.
    """
    return fan_out_each([(e, command) for e in executors], env=env, timeout=timeout)


def fan_out_each(jobs: Iterable[tuple[Executor, str]], *, env: Mapping[str, str] | None = None,
                 timeout: float | None = None) -> list[HostOutcome]:
    """Like ``fan_out`` with one command per executor (e.g. a script that differs per environment)."""
    jobs = list(jobs)
    if not jobs:
        return []
    if len(jobs) == 1:
        return [_run_one(jobs[0][0], jobs[0][1], env, timeout)]
    with ThreadPoolExecutor(max_workers=min(_POOL_MAX, len(jobs))) as pool:
        return list(pool.map(lambda job: _run_one(job[0], job[1], env, timeout), jobs))


def _run_one(executor: Executor, command: str, env: Mapping[str, str] | None,
             timeout: float | None) -> HostOutcome:
    t0 = time.perf_counter()
    try:
        result = executor.run(command, env=env, timeout=timeout, warn=True)
        return HostOutcome(executor.name, result, None, time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - reported per host, never dropped
        return HostOutcome(executor.name, None, exc, time.perf_counter() - t0)
