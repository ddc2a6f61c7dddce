"""A real OpenSSH server started by the project, for tests and network-namespace testbeds.

The server runs as ``/usr/sbin/sshd -D`` with its own generated ed25519 host key,
its own ``authorized_keys`` and a config written here. It can run
inside a network namespace with its own host name (``unshare --uts``); every
wrapper ``exec``s, so the PID we track is sshd's own and ``stop`` kills only it.
"""

from __future__ import annotations

import os
import random
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .fsutil import atomic_write
from .exceptions import TestbedError

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class SshKeys:
    """Key files of a project-run sshd: one host key, one client key, the authorized_keys."""

    client_key: Path
    client_pub: Path
    host_key: Path
    host_pub: Path
    authorized_keys: Path


def sshd_available() -> str | None:
    """None if an sshd can be started here, else the reason it cannot."""
    if not SSHD.is_file():
        return f"{SSHD} is missing (Debian package openssh-server)"
    if os.geteuid() != 0:
        return "starting sshd for other users needs root"
    try:
        subprocess.run([SSH_KEYGEN, "-?"], capture_output=True, timeout=10)
    except OSError:
        return "ssh-keygen is missing (Debian package openssh-client)"
    return None


def keygen(path: Path, comment: str) -> None:
    if path.is_file() and path.with_suffix(".pub").is_file():
        return
    for stale in (path, path.with_suffix(".pub")):
        stale.unlink(missing_ok=True)
    done = subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise TestbedError(f"ssh-keygen failed: {done.stderr.strip()}", file=str(path))


def generate_keys(folder: Path) -> SshKeys:
    """Create (or reuse) a host key, a client key and an authorized_keys in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    keys = SshKeys(client_key=folder / "client_ed25519", client_pub=folder / "client_ed25519.pub",
                   host_key=folder / "host_ed25519", host_pub=folder / "host_ed25519.pub",
                   authorized_keys=folder / "authorized_keys")
    keygen(keys.host_key, "vhpc-host")
    keygen(keys.client_key, "vhpc-client")
    client_line = keys.client_pub.read_text().strip()
    existing = keys.authorized_keys.read_text().splitlines() if keys.authorized_keys.exists() else []
    if client_line not in existing:
        with open(keys.authorized_keys, "a") as fh:
            fh.write(client_line + "\n")
    keys.authorized_keys.chmod(0o600)
    return keys


def host_key_line(host_pub: Path) -> str:
    """``ssh-ed25519 AAAA...`` (type and key, no comment) of a public key file."""
    fields = Path(host_pub).read_text().split()
    if len(fields) < 2:
        raise TestbedError("not an OpenSSH public key", file=str(host_pub))
    return f"{fields[0]} {fields[1]}"


def known_hosts_name(address: str, port: int) -> str:
    """The name OpenSSH and paramiko look a host up by: ``addr`` on port 22, else ``[addr]:port``."""
    return address if port == 22 else f"[{address}]:{port}"


def write_known_hosts(path: Path, entries: Iterable[tuple[str, int, Path]]) -> None:
    """Write a known_hosts file with one ``[address]:port ssh-ed25519 AAAA...`` line per entry."""
    lines = [f"{known_hosts_name(address, port)} {host_key_line(pub)}\n" for address, port, pub in entries]
    atomic_write(path, "".join(lines))


def free_port(address: str = "127.0.0.1", *, addresses: Iterable[str] = ()) -> int:
    """A TCP port free on ``address`` (and every one of ``addresses``), outside the ephemeral range."""
    wanted = [address, *addresses]
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        sockets = []
        try:
            for addr in wanted:
                s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(s)
                s.bind((addr, port))
            return port
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise TestbedError(f"no free TCP port found on {', '.join(wanted)}")


def ssh_client_options(keys: SshKeys, port: int, known_hosts: Path | None = None) -> list[str]:
    """OpenSSH client options reaching a project sshd (e.g. for MPI's ssh bootstrap).

    With ``known_hosts`` host keys are checked strictly; without, they are not
    (only acceptable for throwaway loopback/namespace testbeds).
    """
    opts = ["-p", str(port), "-i", str(keys.client_key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"]
    if known_hosts is not None:
        opts += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}"]
    else:
        opts += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    return opts


class SshServer:
    """One sshd process listening on ``listen`` addresses at ``port``.

    Files live in ``folder``: ``<name>.conf``, ``<name>.log``, ``<name>.pid``.
    """

    def __init__(self, folder: Path, keys: SshKeys, listen: list[str], port: int, *,
                 netns: str | None = None, hostname: str | None = None, name: str = "sshd",
                 shell_rc: bool = True) -> None:
        if not listen:
            raise ValueError("an sshd needs at least one ListenAddress")
        self.folder = Path(folder)
        self.keys = keys
        self.listen = list(listen)
        self.port = int(port)
        self.netns = netns
        self.hostname = hostname
        self.name = name
        self.shell_rc = shell_rc
        self.config_path = self.folder / f"{name}.conf"
        self.log_path = self.folder / f"{name}.log"
        self.pid_file = self.folder / f"{name}.pid"
        self.pid: int | None = None
        self._process: subprocess.Popen | None = None

    def config_text(self) -> str:
        """The sshd_config: key-only root login, no PAM, many parallel sessions."""
        lines = [f"Port {self.port}"]
        lines += [f"ListenAddress {a}" for a in self.listen]
        lines += [
            f"HostKey {self.keys.host_key}",
            f"PidFile {self.pid_file}",
            f"AuthorizedKeysFile {self.keys.authorized_keys}",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "X11Forwarding no",
            "PermitUserEnvironment no",
            "MaxStartups 50:30:100",
            "MaxSessions 50",
            "LogLevel INFO",
            f"Subsystem sftp {SFTP_SERVER}",
        ]
        if not self.shell_rc:
            # Debian's bash sources ~/.bashrc for commands run over SSH only at shell level 1; starting
            # sessions at SHLVL=1 skips it. For simulated nodes sharing this machine's home folder,
            # whose .bashrc belongs to the machine, not to the node.
            lines.append("SetEnv SHLVL=1")
        return "\n".join(lines) + "\n"

    def _argv(self) -> list[str]:
        sshd = [str(SSHD), "-D", "-f", str(self.config_path), "-E", str(self.log_path)]
        if self.hostname is not None:
            inner = f"hostname {shlex.quote(self.hostname)} && exec {' '.join(shlex.quote(a) for a in sshd)}"
            sshd = ["unshare", "--uts", "sh", "-c", inner]  # unshare and sh exec: the pid stays sshd's
        if self.netns is not None:
            sshd = ["ip", "netns", "exec", self.netns, *sshd]
        return sshd

    def start(self, timeout: float = 10.0) -> int:
        """Check the config, start sshd, wait until it listens on every address; return its pid."""
        if self._process is not None and self._process.poll() is None:
            return self._process.pid
        self.folder.mkdir(parents=True, exist_ok=True)
        PRIVSEP_DIR.mkdir(parents=True, exist_ok=True)  # sshd refuses to start without it
        self.config_path.write_text(self.config_text())
        check = subprocess.run([str(SSHD), "-t", "-f", str(self.config_path)], capture_output=True,
                               text=True, timeout=30)
        if check.returncode != 0:
            raise TestbedError(f"sshd rejected its config: {check.stderr.strip()}", file=str(self.config_path))
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._process = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, start_new_session=True)
        self.pid = self._process.pid
        try:
            self._wait_listening(log_offset, timeout)
        except BaseException:
            self.stop()
            raise
        return self.pid

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                fh.seek(offset)
                return fh.read()
        except OSError:
            return ""

    def _wait_listening(self, log_offset: int, timeout: float) -> None:
        # sshd logs "Server listening on ADDR port PORT." once per bound address; reading the log
        # works inside a namespace too, where we could not connect from here.
        wanted = {f"Server listening on {a} port {self.port}." for a in self.listen}
        deadline = time.monotonic() + timeout
        while True:
            assert self._process is not None
            log = self._log_since(log_offset)
            if all(w in log for w in wanted):
                return
            if self._process.poll() is not None:
                err = (self._process.stderr.read().decode(errors="replace") if self._process.stderr else "")
                detail = " | ".join((log + err).strip().splitlines()[-3:])
                raise TestbedError(f"sshd exited with {self._process.returncode}: {detail}",
                                   file=str(self.log_path))
            if "Bind to port" in log and "failed" in log:
                raise TestbedError(f"sshd could not bind port {self.port}: "
                                   + " | ".join(line for line in log.splitlines() if "Bind to port" in line),
                                   file=str(self.log_path))
            if time.monotonic() > deadline:
                raise TestbedError(f"sshd did not listen on {', '.join(self.listen)} port {self.port} "
                                   f"within {timeout} s", file=str(self.log_path))
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate this sshd (its PID only) and wait for it; open sessions end on their own."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGTERM)
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout)
            except ProcessLookupError:
                pass
        if process.stderr:
            process.stderr.close()
        self.pid = None

    def known_hosts_entries(self) -> list[tuple[str, int, Path]]:
        """Entries for ``write_known_hosts``: every listen address with this server's host key."""
        return [(a, self.port, self.keys.host_pub) for a in self.listen]

    def __enter__(self) -> "SshServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
