"""Shared fixtures. SSH: one real sshd on 127.0.0.1-8 for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from vhpclib.config import default_mpi_prefix
from vhpclib.sshd import SshKeys, SshServer, free_port, generate_keys, sshd_available, write_known_hosts

LOOPBACK_HOSTS = [f"127.0.0.{i}" for i in range(1, 9)]

# Test machines are shared (other suites, builds): runs of tests that are not about contention must not turn
# invalid because something else was busy. tests/reliability/ sets a threshold in its inventories explicitly.
os.environ.setdefault("VHPC_CONTENTION_THRESHOLD", "off")


@dataclass
class SshdHosts:
    """A running sshd reachable on ``addresses`` at ``port`` with ``keys.client_key``."""

    addresses: list[str]
    port: int
    keys: SshKeys
    known_hosts: Path
    folder: Path
    server: SshServer

    @property
    def client_key(self) -> Path:
        return self.keys.client_key

    def inventory_data(self, addresses: Sequence[str] | None = None, *, policy: str = "strict",
                       known_hosts: Path | None = None, name: str = "ssh", port: int | None = None) -> dict:
        """Inventory mapping: environment ``name`` whose launch host and hosts are reached over SSH."""
        addresses = list(addresses or self.addresses[:2])
        host = lambda a: {"address": a, "port": port or self.port, "user": "root",  # noqa: E731
                          "key_file": str(self.keys.client_key)}
        return {"name": "sshd-test", "environments": {name: {
            "label": "ssh-loopback", "baseline": True, "vcpu_pinning": "unknown",
            "host_key_policy": policy,
            "known_hosts": str(known_hosts or self.known_hosts),
            "launch": host(addresses[0]),
            "hosts": [host(a) for a in addresses],
            "mpi": {"flavour": "intel", "prefix": str(default_mpi_prefix())},
            "connect_timeout_s": 5,
        }}}

    def write_inventory(self, path: Path, addresses: Sequence[str] | None = None, **kw) -> Path:
        """Write a test inventory YAML (strict host keys by default) and return its path."""
        path = Path(path)
        path.write_text(yaml.safe_dump(self.inventory_data(addresses, **kw), sort_keys=False))
        return path


@pytest.fixture(scope="session")
def sshd_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdHosts]:
    """One real OpenSSH server on 127.0.0.1 ... 127.0.0.8 (skipped off-CI without root/sshd)."""
    reason = sshd_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"real sshd needed in CI: {reason}")
        pytest.skip(f"real sshd unavailable: {reason}")
    folder = tmp_path_factory.mktemp("sshd")
    keys = generate_keys(folder / "keys")
    port = free_port(LOOPBACK_HOSTS[0], addresses=LOOPBACK_HOSTS[1:])
    # shell_rc=False: the simulated hosts skip this machine's root ~/.bashrc (pyenv init, ~0.1 s a command).
    server = SshServer(folder, keys, LOOPBACK_HOSTS, port, name="sshd-tests", shell_rc=False)
    server.start()
    known_hosts = folder / "known_hosts"
    write_known_hosts(known_hosts, server.known_hosts_entries())
    try:
        yield SshdHosts(list(LOOPBACK_HOSTS), port, keys, known_hosts, folder, server)
    finally:
        server.stop()
