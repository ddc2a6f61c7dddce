"""Reaching a guest over SSH with its host key checked strictly from the first connection on.

The guest makes its SSH host key at first boot and prints it on the serial
console (our image's ``vhpc-hostkey`` unit, or cloud-init's key block). We
read it there, an out-of-band channel only QEMU writes, and write
``known_hosts`` before the first connection: no trust-on-first-use.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import RemoteError, VmError, VmNotReady
from ..sshd import known_hosts_name
LOOPBACK = "127.0.0.1"
HOST_KEY_BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"  # the block cloud-init prints; our image prints the same
HOST_KEY_END = "-----END SSH HOST KEY KEYS-----"


@dataclass(frozen=True)
class GuestSsh:
    """How to reach one guest: forwarded loopback port, root, our key, its known_hosts."""

    port: int
    client_key: Path
    known_hosts: Path
    address: str = LOOPBACK
    user: str = "root"

    def options(self, connect_timeout: int = 5) -> list[str]:
        """OpenSSH client options (no user config, strict host key, key only, never a prompt)."""
        return ["-F", "/dev/null", "-p", str(self.port), "-i", str(self.client_key), "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", f"ConnectTimeout={connect_timeout}",
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}"]

    def argv(self, command: str, connect_timeout: int = 5) -> list[str]:
        return ["ssh", *self.options(connect_timeout), f"{self.user}@{self.address}", command]

    def run(self, command: str, *, timeout: float = 600.0, stdin_path: Path | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command in the guest; ``RemoteError`` with its output when it fails (unless ``check``)."""
        stdin = open(stdin_path, "rb") if stdin_path is not None else subprocess.DEVNULL
        try:
            done = subprocess.run(self.argv(command), stdin=stdin, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"timed out after {timeout:.0f} s: {command[:120]}", host=self.label,
                              command=command) from None
        finally:
            if stdin_path is not None:
                stdin.close()
        if check and done.returncode != 0:
            raise RemoteError(f"command failed: {command[:120]}", host=self.label, command=command,
                              exit_code=done.returncode, stdout=done.stdout, stderr=done.stderr)
        return done

    @property
    def label(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"


def host_keys_from_serial(text: str) -> list[str]:
    """``type base64`` of every key printed between the host-key markers (latest block wins)."""
    keys: list[str] = []
    inside = False
    block: list[str] = []
    for raw in text.splitlines():
        line = raw.strip().strip("\r")
        if HOST_KEY_BEGIN in line:
            inside, block = True, []
        elif HOST_KEY_END in line and inside:
            inside = False
            keys = block
        elif inside:
            fields = line.split()
            if len(fields) >= 2 and fields[0].startswith(("ssh-", "ecdsa-")):
                block.append(f"{fields[0]} {fields[1]}")
    return keys


def write_known_hosts(path: Path, address: str, port: int, keys: list[str]) -> None:
    name = known_hosts_name(address, port)
    path.write_text("".join(f"{name} {key}\n" for key in keys))
    path.chmod(0o600)


def serial_tail(serial_log: Path, lines: int = 8) -> str:
    """Last lines of the guest's serial console, for error messages."""
    try:
        text = serial_log.read_text(errors="replace")
    except OSError:
        return "(no serial output)"
    tail = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "(no serial output)"


def wait_for_ssh(ssh: GuestSsh, serial_log: Path, *, alive, timeout: float) -> float:
    """Wait until the guest printed its host key and answers SSH with it; return the seconds waited.

    ``alive()`` tells whether QEMU still runs (a guest that died is reported at
    once). ``VmNotReady`` with the serial log tail when ``timeout`` passes.
    """
    started = time.monotonic()
    deadline = started + timeout
    keys: list[str] = []
    last_error = "no host key on the serial console yet"
    while time.monotonic() < deadline:
        if not alive():
            raise VmError(f"QEMU exited before the guest answered SSH; serial console: {serial_tail(serial_log)}",
                          file=str(serial_log))
        if not keys:
            try:
                keys = host_keys_from_serial(serial_log.read_text(errors="replace"))
            except OSError:
                keys = []
            if keys:
                write_known_hosts(ssh.known_hosts, ssh.address, ssh.port, keys)
        if keys:
            remaining = max(1, int(min(5, deadline - time.monotonic())))
            try:
                done = subprocess.run(ssh.argv("true", connect_timeout=remaining), stdin=subprocess.DEVNULL,
                                      capture_output=True, text=True, timeout=remaining + 5)
                if done.returncode == 0:
                    return time.monotonic() - started
                last_error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
            except subprocess.TimeoutExpired:
                last_error = "ssh timed out"
        time.sleep(0.5)
    raise VmNotReady(f"the guest did not answer SSH on {ssh.address}:{ssh.port} within {timeout:.0f} s "
                     f"({last_error}); serial console: {serial_tail(serial_log)}", serial_tail=serial_tail(serial_log),
                     file=str(serial_log))


def quote(command: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in command)
