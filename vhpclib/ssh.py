"""Hosts over SSH: Fabric connections (jump hosts, ~/.ssh/config) with verified keys, commands, jobs, SFTP.

Imported only when a host is reached over SSH (``remote.executor_for``): Fabric, paramiko
and what they pull in cost a fraction of a second a local run does not pay.
Everything is bounded: connects, execs and SFTP requests have timeouts, and
transports send keepalives while their sockets give up after ``DEAD_LINK_S``
seconds without an acknowledgement, so a dead link is noticed in well under 30 s.
"""

from __future__ import annotations

import io
import logging
import select
import shlex
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import IO, Any

import paramiko
from fabric import Config, Connection

from . import lifetime
from .config import HostSpec
from .exceptions import ConnectionLost, HostUnreachable, InputError, RemoteError
from .executor import KILL_WAIT_S, Executor, HostKeyPolicy

# paramiko logs transport-thread failures (e.g. a port that does not speak SSH) at ERROR with a
# traceback; with no handler, Python's last-resort handler would print them. vHPC reports one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

#: Seconds between SSH keepalives on an idle connection.
KEEPALIVE_S = 5
#: Seconds without a TCP acknowledgement after which a connection is declared dead (TCP_USER_TIMEOUT).
DEAD_LINK_S = 20
#: Upper bound of one SFTP request.
SFTP_TIMEOUT_S = 30.0
_SLICE_S = 5.0  # how often a waiting client checks that its connection still lives


def user_known_hosts() -> Path:
    """Where OpenSSH keeps the user's host keys; used when the inventory names no known_hosts."""
    return Path.home() / ".ssh" / "known_hosts"


def _timed_out(stderr: str, timeout: float | None) -> str:
    return stderr + f"\nvhpc: timed out after {timeout} s"


#: Wraps a command run over SSH: a watcher kills the command's process group when the client closes
#: its side of the channel (a timeout) or the connection ends (vhpc killed), so nothing outlives it.
#: (fd 3: an asynchronous command's own stdin is /dev/null in a shell without job control.)
_SSH_WRAPPER = """{{
exec 3<&0 </dev/null
{{ while read -r -u 3 _; do :; done; kill -TERM 0; }} >/dev/null 2>&1 &
vhpc_watch=$!
( {command}
) 3<&-
vhpc_rc=$?
kill "$vhpc_watch" 2>/dev/null
exit "$vhpc_rc"
}}
"""


class SshExecutor(Executor):
    """A host over SSH: a Fabric ``Connection`` (jump hosts, ~/.ssh/config aliases), host keys verified per
    policy, and every operation on its transport bounded."""

    is_local = False

    def __init__(self, spec: HostSpec, *, policy: HostKeyPolicy = "strict", known_hosts: Path | None = None,
                 connect_timeout: float = 10.0) -> None:
        self.name = spec.label
        self.spec = spec
        self.policy = policy
        self.known_hosts = known_hosts
        self.connect_timeout = connect_timeout
        if policy == "insecure":
            warnings.warn(f"{self.name}: host_key_policy 'insecure': SSH host keys are NOT verified "
                          "(anyone on the path can impersonate this host)", UserWarning, stacklevel=2)
        self.connection = self._connection()
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- connecting

    def _connection(self) -> Connection:
        """Fabric's ``Connection`` to the host (its jump host as a gateway); nothing is contacted yet."""
        spec, t = self.spec, self.connect_timeout
        config = Config(overrides={"load_ssh_configs": spec.ssh_alias is not None, "timeouts": {"connect": t}})
        gateway = None
        if spec.jump is not None:
            gateway = Connection(spec.jump.address, port=spec.jump.port, user=spec.jump.user, config=config,
                                 connect_kwargs=self._auth(spec.jump.key_file))
        target = Connection(spec.ssh_alias or spec.address, user=spec.user, config=config, gateway=gateway,
                            connect_kwargs=self._auth(spec.key_file),
                            **({} if spec.ssh_alias else {"port": spec.port}))
        for hop in (target, target.gateway):  # a ProxyJump of ~/.ssh/config is a gateway too
            if isinstance(hop, Connection):
                self._configure_host_keys(hop.client)
        return target

    def _auth(self, key_file: Path | None) -> dict[str, Any]:
        t = self.connect_timeout
        kwargs: dict[str, Any] = {"banner_timeout": t, "auth_timeout": t, "channel_timeout": t}
        if key_file:
            kwargs.update(key_filename=[str(key_file)], look_for_keys=False, allow_agent=False)
        return kwargs

    def _configure_host_keys(self, client: paramiko.SSHClient) -> None:
        """Fabric trusts any key by default: load the known_hosts and refuse (or, ``accept-new``, remember)."""
        if self.policy == "insecure":
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            return
        path = Path(self.known_hosts) if self.known_hosts is not None else user_known_hosts()
        if path.exists():
            check_known_hosts(path)
            client.load_host_keys(str(path))
        client.set_missing_host_key_policy(_AcceptNewPolicy(path) if self.policy == "accept-new"
                                           else paramiko.RejectPolicy())

    @property
    def known_hosts_label(self) -> str:
        return str(self.known_hosts) if self.known_hosts is not None else "~/.ssh/known_hosts"

    @property
    def where(self) -> str:
        return f"{self.spec.ssh_alias or self.spec.address}:{self.connection.port}"

    def describe_error(self, exc: BaseException) -> str:
        """Why connecting failed, in words naming the address and the known_hosts file."""
        return f"{self.where}: {self._reason(exc)}"

    def _reason(self, exc: BaseException) -> str:
        reason = _describe_ssh_error(exc, self.connect_timeout)
        if "known_hosts" in reason:
            reason = reason.replace("known_hosts", f"known_hosts {self.known_hosts_label}", 1)
        return reason

    @property
    def connected(self) -> bool:
        transport = self.connection.transport
        return transport is not None and transport.is_active()

    def open(self) -> None:
        """Connect (through the jump host if any); raise ``HostUnreachable`` with one line naming the hop."""
        with self._lock:
            if self.connected:
                return
            self._drop()
            gateway = self.connection.gateway if isinstance(self.connection.gateway, Connection) else None
            if gateway is not None:
                try:
                    gateway.open()
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    self._drop()
                    raise HostUnreachable(f"jump {gateway.host}:{gateway.port}: {self._reason(exc)}",
                                          host=self.name) from None
                _bound_transport(gateway.transport)
            try:
                self.connection.open()
            except (paramiko.SSHException, OSError, EOFError) as exc:
                jump_up = gateway is not None and gateway.is_connected
                self._drop()
                if gateway is not None and jump_up:
                    raise HostUnreachable(f"{self.where}: jump {gateway.host}:{gateway.port} could not reach it "
                                          f"({self._reason(exc)})", host=self.name) from None
                raise HostUnreachable(self.describe_error(exc), host=self.name) from None
            _bound_transport(self.connection.transport)

    def _drop(self) -> None:
        gateway = self.connection.gateway if isinstance(self.connection.gateway, Connection) else None
        for thing in (self._sftp, self.connection, gateway):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing a dead connection
                    pass
        self._sftp = None

    def forget_failed_connect(self) -> None:
        with self._lock:
            self._drop()

    def close(self) -> None:
        with self._lock:
            self._drop()

    # ---------------------------------------------------------------- commands

    def _session(self) -> paramiko.Channel:
        self.open()
        try:
            return self.connection.transport.open_session(timeout=self.connect_timeout)  # type: ignore[union-attr]
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.forget_failed_connect()
            raise ConnectionLost(f"{self.where}: connection lost ({_describe_ssh_error(exc, self.connect_timeout)})",
                                 host=self.name) from None

    def exec_script(self, script: str, *, keep_stdin: bool = False) -> paramiko.Channel:
        """Start ``bash -s`` with ``script`` on its stdin; with ``keep_stdin`` the client's side stays open
        (closing it later is how a watcher in the script learns to kill what it started)."""
        chan = self._session()
        try:
            chan.exec_command("exec bash -s")
            chan.sendall(script.encode())
            if not keep_stdin:
                chan.shutdown_write()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            chan.close()
            raise ConnectionLost(f"{self.where}: connection lost ({exc})", host=self.name) from None
        return chan

    def _run(self, script: str, timeout: float | None) -> tuple[int, str, str]:
        chan = self.exec_script(_SSH_WRAPPER.format(command=script), keep_stdin=True)
        pump = ChannelPump(chan, self)
        try:
            finished = pump.run(timeout)
            if not finished:
                pump.stop()
                return 124, pump.stdout(), _timed_out(pump.stderr(), timeout)
            return pump.exit_status(), pump.stdout(), pump.stderr()
        finally:
            chan.close()

    def start_job(self, script: str) -> "RemoteJob":
        """Start a job script (``lifetime``-style: prints its session id, watches its stdin) on this host."""
        return RemoteJob(self, self.exec_script(script, keep_stdin=True))

    def kill_job(self, tag: str, sid: int | None = None) -> list[int]:
        result = self.run(lifetime.remote_kill_script(lifetime.check_tag(tag), sid), timeout=30, warn=True)
        return [int(p) for p in result.stdout.split() if p.isdigit()]

    # ---------------------------------------------------------------- files

    def _sftp_client(self) -> paramiko.SFTPClient:
        with self._lock:
            self.open()
            if self._sftp is None:
                try:
                    self._sftp = self.connection.client.open_sftp()
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    raise ConnectionLost(f"{self.where}: SFTP failed ({exc})", host=self.name) from None
                self._sftp.get_channel().settimeout(SFTP_TIMEOUT_S)
            return self._sftp

    def put(self, local: str | Path | IO, remote: str) -> None:
        self.run(f"mkdir -p {shlex.quote(str(Path(remote).parent))}", timeout=60)
        sftp = self._sftp_client()
        try:
            if hasattr(local, "read"):
                data = local.read()  # type: ignore[union-attr]
                sftp.putfo(io.BytesIO(data.encode() if isinstance(data, str) else data), remote)
            else:
                sftp.put(str(local), remote)
        except (socket.timeout, paramiko.SSHException, EOFError) as exc:
            self.forget_failed_connect()
            raise ConnectionLost(f"{self.where}: SFTP put {remote} failed ({exc or type(exc).__name__})",
                                 host=self.name) from None

    def get(self, remote: str, local: str | Path) -> None:
        """Fetch a file; ``FileNotFoundError`` if it is not there, ``ConnectionLost`` if the host stops answering."""
        sftp = self._sftp_client()
        try:
            sftp.get(remote, str(local))
        except (socket.timeout, paramiko.SSHException, EOFError) as exc:
            self.forget_failed_connect()
            raise ConnectionLost(f"{self.where}: SFTP get {remote} failed ({exc or type(exc).__name__})",
                                 host=self.name) from None


class ChannelPump:
    """Reads a channel's stdout/stderr until it ends, sleeping in ``select`` (no busy wait).

    Raises ``ConnectionLost`` when the transport dies underneath (dead link, host gone).
    """

    def __init__(self, chan: paramiko.Channel, executor: SshExecutor) -> None:
        self.chan = chan
        self.executor = executor
        self._out = bytearray()
        self._err = bytearray()

    def _drain(self) -> None:
        while self.chan.recv_ready():
            self._out += self.chan.recv(65536)
        while self.chan.recv_stderr_ready():
            self._err += self.chan.recv_stderr(65536)

    def run(self, timeout: float | None) -> bool:
        """True when the command ended (EOF and exit status), False when ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.chan.fileno()
        while True:
            self._drain()
            if self.chan.eof_received or self.chan.closed:
                break
            if not self._wait_readable(fd, deadline):
                return False
        while not self.chan.exit_status_ready():  # exit status may trail EOF by a packet
            if not self._wait_status(deadline):
                return False
        self._drain()
        if not self.chan.status_event.is_set():  # closed without an exit status: did the connection die?
            self._check_alive()
        return True

    def _remaining(self, deadline: float | None) -> float:
        return _SLICE_S if deadline is None else min(_SLICE_S, deadline - time.monotonic())

    def _wait_readable(self, fd: int, deadline: float | None) -> bool:
        wait = self._remaining(deadline)
        if wait <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            self._check_alive()
        return True

    def _wait_status(self, deadline: float | None) -> bool:
        wait = self._remaining(deadline)
        if wait <= 0:
            return False
        if not self.chan.status_event.wait(wait):
            self._check_alive()
        return True

    def _check_alive(self) -> None:
        transport = self.chan.get_transport()
        if transport is None or not transport.is_active():
            self._drain()
            self.executor.forget_failed_connect()
            raise ConnectionLost(f"{self.executor.where}: connection lost (no answer for {DEAD_LINK_S} s)",
                                 host=self.executor.name)

    def stop(self) -> None:
        """Close our side of stdin: the script's watcher kills what it started; wait a little for that."""
        try:
            self.chan.shutdown_write()
            self.run(KILL_WAIT_S)
        except (ConnectionLost, OSError, EOFError, paramiko.SSHException):
            pass

    def exit_status(self) -> int:
        status = self.chan.exit_status
        return status if status is not None else -1

    def stdout(self) -> str:
        return self._out.decode(errors="replace")

    def stderr(self) -> str:
        return self._err.decode(errors="replace")

    def first_line(self, timeout: float) -> str | None:
        """The first stdout line (e.g. a session id the script announces), without consuming later output."""
        deadline = time.monotonic() + timeout
        fd = self.chan.fileno()
        while b"\n" not in self._out:
            self._drain()
            if b"\n" in self._out or self.chan.eof_received or self.chan.closed:
                break
            if not self._wait_readable(fd, deadline):
                return None
        line, sep, rest = bytes(self._out).partition(b"\n")
        if not sep:
            return None
        self._out = bytearray(rest)
        return line.decode(errors="replace")


class RemoteJob:
    """A job started on an SSH host by a ``lifetime`` job script; killing it closes the script's stdin."""

    def __init__(self, executor: SshExecutor, chan: paramiko.Channel) -> None:
        self.executor = executor
        self.chan = chan
        self.pump = ChannelPump(chan, executor)
        self.sid: int | None = None
        self.returncode: int | None = None
        self.tag: str | None = None
        self.timed_out = False
        lifetime.register(self)

    def announced_sid(self, timeout: float) -> int | None:
        line = self.pump.first_line(timeout)
        if line and line.startswith("@@vhpc-sid ") and line.endswith("@@"):
            value = line[len("@@vhpc-sid "):-2]
            self.sid = int(value) if value.isdigit() else None
        return self.sid

    def wait(self, timeout: float | None) -> int | None:
        """Exit status, or None when ``timeout`` passed; ``ConnectionLost`` when the link dies meanwhile."""
        if self.returncode is None:
            if not self.pump.run(timeout):
                return None
            self.returncode = self.pump.exit_status()
            self.close()
        return self.returncode

    def output(self) -> str:
        return self.pump.stdout()

    def kill(self) -> list[int]:
        """Stop the job: the watcher on the host kills its session; fall back to a separate kill."""
        self.pump.stop()
        killed: list[int] = []
        if not self.chan.exit_status_ready() and self.tag and self.executor.connected:
            try:
                killed = self.executor.kill_job(self.tag, self.sid)
            except RemoteError:
                pass
        self.close()
        return killed

    def close(self) -> None:
        lifetime.unregister(self)
        try:
            self.chan.close()
        except Exception:  # noqa: BLE001 - closing a dead channel
            pass


def _bound_transport(transport: paramiko.Transport | None) -> None:
    """Keepalives, and a socket that gives up after DEAD_LINK_S without an acknowledgement."""
    if transport is None:
        return
    transport.set_keepalive(KEEPALIVE_S)
    sock = getattr(transport, "sock", None)
    if not isinstance(sock, socket.socket):
        return  # a channel through a jump host: the jump's socket carries the bound
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, max(1, DEAD_LINK_S // KEEPALIVE_S))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, DEAD_LINK_S * 1000)
    except (OSError, AttributeError):
        pass


def check_known_hosts(path: Path) -> None:
    """Refuse a known_hosts file paramiko would choke on, naming the file and line (``InputError``)."""
    try:
        lines = Path(path).read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"known_hosts is not UTF-8 text (byte {exc.start})", file=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read known_hosts: {exc.strerror}", file=str(path)) from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            paramiko.hostkeys.HostKeyEntry.from_line(line, number)
        except paramiko.SSHException:
            continue  # paramiko skips these lines itself (e.g. an unknown key type)
        except Exception as exc:  # noqa: BLE001 - InvalidHostKey and friends
            detail = str(getattr(exc, "exc", "") or exc).strip() or type(exc).__name__
            raise InputError(f"corrupt known_hosts line ({detail})", file=str(path), line=number) from None


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


def _describe_ssh_error(exc: BaseException, timeout: float | None = None) -> str:
    if isinstance(exc, paramiko.BadHostKeyException):
        return ("host key does not match known_hosts (refused: the host's key changed, "
                "or this is not the host you expect)")
    if isinstance(exc, paramiko.AuthenticationException):
        return f"authentication failed ({exc})"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) and exc.errors:
        exc = next(iter(exc.errors.values()))  # what connect() really got (refused, no route, ...)
    text = str(exc) or type(exc).__name__
    if "not found in known_hosts" in text:
        return "host key not in known_hosts (strict policy refused an unknown host)"
    if "Error reading SSH protocol banner" in text or "No existing session" in text:
        # (paramiko says the latter when its transport thread gave up on the banner first)
        return f"no SSH handshake within {timeout:g} s (is an SSH server listening on this port?)"
    if "Indecipherable protocol version" in text or "Incompatible" in text:
        return "the port answers but does not speak SSH"
    if isinstance(exc, socket.gaierror):
        return f"host name does not resolve ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError) or "Unable to connect" in text or "refused" in text.lower():
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)) or "timed out" in text.lower():
        return "connection timed out"
    if isinstance(exc, EOFError) or "closed" in text.lower():
        return "the host closed the connection"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return text.splitlines()[0] if text else type(exc).__name__


