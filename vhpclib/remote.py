"""Run commands on hosts, locally through invoke or over SSH through Fabric, behind one interface.

Every command returns a ``CommandResult``; a non-zero exit raises ``RemoteError``
unless the caller passes ``warn=True``. ``fan_out`` runs one command on many
hosts in parallel and reports every host's outcome, failures included.
"""

from __future__ import annotations

import io
import shlex
import shutil
import socket
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import invoke
import paramiko

from .config import Environment, HostSpec, Inventory
from .exceptions import HostUnreachable, RemoteError

HostKeyPolicy = str  # "strict" | "accept-new" | "insecure"


def user_known_hosts() -> Path:
    """Where OpenSSH keeps the user's host keys; used when the inventory names no known_hosts."""
    return Path.home() / ".ssh" / "known_hosts"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class CommandResult:
    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    started_utc: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def with_env(command: str, env: Mapping[str, str] | None) -> str:
    """Prefix a shell command with quoted variable assignments."""
    if not env:
        return command
    assigns = " ".join(f"{name}={shlex.quote(str(value))}" for name, value in env.items())
    return f"export {assigns}; {command}"


class Executor(ABC):
    """One host a command can run on."""

    name: str
    is_local: bool

    def run(self, command: str, *, env: Mapping[str, str] | None = None, timeout: float | None = None,
            warn: bool = False) -> CommandResult:
        """Run a shell command; raise ``RemoteError`` on non-zero exit unless ``warn``."""
        started = utc_now()
        t0 = time.perf_counter()
        exit_code, out, err = self._run(with_env(command, env), timeout)
        result = CommandResult(self.name, command, exit_code, out, err, time.perf_counter() - t0, started)
        if not warn and exit_code != 0:
            raise RemoteError("command failed: " + command[:200], host=self.name, command=command,
                              exit_code=exit_code, stdout=out, stderr=err)
        return result

    @abstractmethod
    def _run(self, command: str, timeout: float | None) -> tuple[int, str, str]: ...

    @abstractmethod
    def put(self, local: str | Path | IO, remote: str) -> None: ...

    @abstractmethod
    def get(self, remote: str, local: str | Path) -> None: ...

    def put_text(self, text: str, remote: str) -> None:
        self.put(io.StringIO(text), remote)

    def close(self) -> None:  # noqa: B027 - nothing to release unless a subclass holds a connection
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _QuietLocal(invoke.runners.Local):
    """invoke's local runner waking 5 times a second instead of 100 while a command runs.

    The measured program has the cores to itself: on a 2-core node, a harness thread
    waking every 10 ms preempts a busy-polling MPI rank and shows up in IMB's latency.
    Output still streams through blocking reads; only the exit is noticed up to 0.2 s later.
    """

    input_sleep = 0.2


class LocalExecutor(Executor):
    """This machine, through invoke."""

    is_local = True

    def __init__(self, name: str = "localhost") -> None:
        self.name = name
        self._context = invoke.Context(config=invoke.Config(overrides={"runners": {"local": _QuietLocal}}))

    def _run(self, command: str, timeout: float | None) -> tuple[int, str, str]:
        try:
            r = self._context.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
        except invoke.exceptions.CommandTimedOut as exc:
            return 124, exc.result.stdout, exc.result.stderr + f"\nvhpc: timed out after {timeout} s"
        return r.exited, r.stdout, r.stderr

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


class SshExecutor(Executor):
    """A host over SSH with Fabric, host keys verified per policy."""

    is_local = False

    def __init__(self, spec: HostSpec, *, policy: HostKeyPolicy = "strict", known_hosts: Path | None = None,
                 connect_timeout: float = 10.0) -> None:
        from fabric import Config, Connection  # imported here: fabric is slow to import

        self.name = spec.label
        self.spec = spec
        self.policy = policy
        self.known_hosts = known_hosts
        use_ssh_config = spec.ssh_alias is not None
        config = Config(overrides={"load_ssh_configs": use_ssh_config, "timeouts": {"connect": connect_timeout}})
        connect_kwargs: dict = {"banner_timeout": connect_timeout, "auth_timeout": connect_timeout}
        if spec.key_file:
            connect_kwargs.update(key_filename=str(spec.key_file), look_for_keys=False, allow_agent=False)
        gateway = None
        if spec.jump is not None:
            jump_kwargs: dict = {}
            if spec.jump.key_file:
                jump_kwargs.update(key_filename=str(spec.jump.key_file), look_for_keys=False, allow_agent=False)
            gateway = Connection(spec.jump.address, port=spec.jump.port, user=spec.jump.user,
                                 connect_kwargs=jump_kwargs, config=config)
            self._configure_host_keys(gateway)
        target = spec.ssh_alias or spec.address
        kwargs = {} if use_ssh_config else {"port": spec.port}
        self.connection = Connection(target, user=spec.user, connect_kwargs=connect_kwargs, config=config,
                                     gateway=gateway, **kwargs)
        self._configure_host_keys(self.connection)

    def _configure_host_keys(self, connection) -> None:
        client: paramiko.SSHClient = connection.client
        if self.policy == "insecure":
            warnings.warn(f"{self.name}: host_key_policy 'insecure': SSH host keys are NOT verified "
                          "(anyone on the path can impersonate this host)", UserWarning, stacklevel=3)
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            return
        if self.known_hosts is not None:
            if Path(self.known_hosts).exists():
                client.load_host_keys(str(self.known_hosts))
        else:
            if user_known_hosts().exists():
                client.load_host_keys(str(user_known_hosts()))  # ~/.ssh/known_hosts, like OpenSSH
        client.set_missing_host_key_policy(
            _AcceptNewPolicy(self.known_hosts or user_known_hosts()) if self.policy == "accept-new"
            else paramiko.RejectPolicy())

    @property
    def known_hosts_label(self) -> str:
        return str(self.known_hosts) if self.known_hosts is not None else "~/.ssh/known_hosts"

    def describe_error(self, exc: BaseException) -> str:
        """Why connecting failed, in words naming the address and the known_hosts file."""
        where = f"{self.spec.ssh_alias or self.spec.address}:{self.spec.port}"
        reason = _describe_ssh_error(exc)
        if "known_hosts" in reason:
            reason = reason.replace("known_hosts", f"known_hosts {self.known_hosts_label}", 1)
        return f"{where}: {reason}"

    def forget_failed_connect(self) -> None:
        """Close what a failed connect left behind (paramiko keeps the transport thread alive)."""
        try:
            self.connection.client.close()
            gateway = self.connection.gateway
            if gateway is not None and hasattr(gateway, "client"):
                gateway.client.close()
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass

    def open(self) -> None:
        if self.connection.is_connected:
            return
        try:
            self.connection.open()
        except (paramiko.SSHException, OSError, EOFError, socket.timeout) as exc:
            self.forget_failed_connect()
            raise HostUnreachable(self.describe_error(exc), host=self.name) from None

    def _run(self, command: str, timeout: float | None) -> tuple[int, str, str]:
        self.open()
        t0 = time.perf_counter()
        try:
            r = self.connection.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
        except invoke.exceptions.CommandTimedOut as exc:
            return 124, exc.result.stdout, exc.result.stderr + f"\nvhpc: timed out after {timeout} s"
        if _killed_by_timer(r.exited, time.perf_counter() - t0, timeout):
            return 124, r.stdout, r.stderr + f"\nvhpc: timed out after {timeout} s"
        return r.exited, r.stdout, r.stderr

    def put(self, local: str | Path | IO, remote: str) -> None:
        self.open()
        self.connection.run(f"mkdir -p {shlex.quote(str(Path(remote).parent))}", hide=True, in_stream=False)
        self.connection.put(local if hasattr(local, "read") else str(local), remote=remote)

    def get(self, remote: str, local: str | Path) -> None:
        self.open()
        self.connection.get(remote, local=str(local))

    def close(self) -> None:
        self.connection.close()


def _killed_by_timer(exited: int, elapsed: float, timeout: float | None) -> bool:
    """invoke closes the channel on timeout but may report exit -1 instead of raising (a race
    between its timer thread and the wait loop); a -1 at the deadline is that timeout."""
    return exited == -1 and timeout is not None and elapsed >= timeout * 0.99


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """OpenSSH's ``accept-new``: trust an unknown host once and remember it; a changed key still fails."""

    def __init__(self, known_hosts: Path | None) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        if self.known_hosts is not None:
            Path(self.known_hosts).parent.mkdir(parents=True, exist_ok=True)
            with open(self.known_hosts, "a") as fh:
                fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def _describe_ssh_error(exc: BaseException) -> str:
    if isinstance(exc, paramiko.BadHostKeyException):
        return ("host key does not match known_hosts (refused: the host's key changed, "
                "or this is not the host you expect)")
    if isinstance(exc, paramiko.AuthenticationException):
        return f"authentication failed ({exc})"
    text = str(exc) or type(exc).__name__
    if "not found in known_hosts" in text:
        return "host key not in known_hosts (strict policy refused an unknown host)"
    if isinstance(exc, socket.gaierror):
        return f"host name does not resolve ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError) or "Unable to connect" in text or "refused" in text.lower():
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)) or "timed out" in text.lower():
        return "connection timed out"
    return text


def executor_for(spec: HostSpec, env: Environment, inventory: Inventory | None = None) -> Executor:
    """The executor reaching ``spec`` as the environment says (local or SSH with its key policy)."""
    if spec.local:
        return LocalExecutor(spec.label)
    known = (inventory.known_hosts_for(env) if inventory else env.known_hosts)
    return SshExecutor(spec, policy=env.host_key_policy, known_hosts=known, connect_timeout=env.connect_timeout_s)


class ConnectionPool:
    """Reuses one executor per host for a whole campaign."""

    def __init__(self, inventory: Inventory | None = None) -> None:
        self.inventory = inventory
        self._executors: dict[tuple, Executor] = {}

    def get(self, spec: HostSpec, env: Environment) -> Executor:
        key = (spec, env.host_key_policy, env.known_hosts)
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

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.ok


def fan_out(executors: Iterable[Executor], command: str, *, env: Mapping[str, str] | None = None,
            timeout: float | None = None) -> list[HostOutcome]:
    """Run ``command`` on every host at once; every host's outcome is returned, none hidden.

    SSH hosts run through one Fabric ``ThreadingGroup`` (a host that cannot be
    reached comes back as ``HostUnreachable``); other executors run in threads
    alongside. Outcomes are in the order of ``executors``. The ``duration_s`` of
    an SSH result is the wall time of its whole group (Fabric does not time
    hosts separately).
    """
    executors = list(executors)
    if not executors:
        return []
    ssh = [(i, e) for i, e in enumerate(executors) if isinstance(e, SshExecutor)]
    other = [(i, e) for i, e in enumerate(executors) if not isinstance(e, SshExecutor)]
    outcomes: dict[int, HostOutcome] = {}
    pool = ThreadPoolExecutor(max_workers=min(32, len(other))) if other else None
    try:
        futures = {i: pool.submit(_run_one, e, command, env, timeout) for i, e in other} if pool else {}
        for batch in _distinct_batches(ssh):
            outcomes.update(_run_group(batch, command, env, timeout))
        for i, future in futures.items():
            outcomes[i] = future.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return [outcomes[i] for i in range(len(executors))]


def _run_one(executor: Executor, command: str, env: Mapping[str, str] | None,
             timeout: float | None) -> HostOutcome:
    try:
        return HostOutcome(executor.name, executor.run(command, env=env, timeout=timeout, warn=True), None)
    except Exception as exc:  # noqa: BLE001 - reported per host, never dropped
        return HostOutcome(executor.name, None, exc)


_GROUP_MAX = 64


def _distinct_batches(items: list[tuple[int, "SshExecutor"]]) -> list[list[tuple[int, "SshExecutor"]]]:
    """Split so no batch holds two equal Connections (user, host, port): a GroupResult would merge them."""
    batches: list[tuple[set, list]] = []
    for index, executor in items:
        identity = executor.connection._identity()
        for seen, members in batches:
            if identity not in seen and len(members) < _GROUP_MAX:
                seen.add(identity)
                members.append((index, executor))
                break
        else:
            batches.append(({identity}, [(index, executor)]))
    return [members for _, members in batches]


def _run_group(batch: list[tuple[int, "SshExecutor"]], command: str, env: Mapping[str, str] | None,
               timeout: float | None) -> dict[int, HostOutcome]:
    from fabric import ThreadingGroup
    from fabric.exceptions import GroupException

    group = ThreadingGroup.from_connections([e.connection for _, e in batch])
    started = utc_now()
    t0 = time.perf_counter()
    try:
        results = group.run(with_env(command, env), hide=True, warn=True, timeout=timeout, in_stream=False)
    except GroupException as exc:
        results = exc.result
    elapsed = time.perf_counter() - t0
    out: dict[int, HostOutcome] = {}
    for index, executor in batch:
        value = results.get(executor.connection)
        if isinstance(value, invoke.runners.Result) and _killed_by_timer(value.exited, elapsed, timeout):
            result = CommandResult(executor.name, command, 124, value.stdout,
                                   value.stderr + f"\nvhpc: timed out after {timeout} s", elapsed, started)
            out[index] = HostOutcome(executor.name, result, None)
        elif isinstance(value, invoke.runners.Result):
            result = CommandResult(executor.name, command, value.exited, value.stdout, value.stderr, elapsed, started)
            out[index] = HostOutcome(executor.name, result, None)
        elif isinstance(value, invoke.exceptions.CommandTimedOut):
            r = value.result
            result = CommandResult(executor.name, command, 124, r.stdout,
                                   r.stderr + f"\nvhpc: timed out after {timeout} s", elapsed, started)
            out[index] = HostOutcome(executor.name, result, None)
        elif isinstance(value, BaseException) and not executor.connection.is_connected:
            executor.forget_failed_connect()
            out[index] = HostOutcome(executor.name, None,
                                     HostUnreachable(executor.describe_error(value), host=executor.name))
        else:
            detail = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else "no result"
            out[index] = HostOutcome(executor.name, None,
                                     RemoteError(f"command did not complete ({detail})", host=executor.name,
                                                 command=command))
    return out
