"""The project-run sshd: keys, config, start/stop by pid, known_hosts."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid

import pytest

from vhpclib.exceptions import TestbedError
from vhpclib.sshd import (SshServer, free_port, generate_keys, known_hosts_name, ssh_client_options,
                          sshd_available, write_known_hosts)

needs_sshd = pytest.mark.skipif(sshd_available() is not None and not os.environ.get("CI"),
                                reason=f"real sshd unavailable: {sshd_available()}")


def test_generate_keys_is_idempotent(tmp_path):
    first = generate_keys(tmp_path / "k")
    host_pub = first.host_pub.read_text()
    second = generate_keys(tmp_path / "k")
    assert second.host_pub.read_text() == host_pub
    assert first.authorized_keys.read_text().splitlines() == [first.client_pub.read_text().strip()]
    assert first.client_key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_known_hosts_lines_use_bracketed_address_and_port(tmp_path):
    keys = generate_keys(tmp_path / "k")
    write_known_hosts(tmp_path / "kh", [("127.0.0.3", 2222, keys.host_pub), ("node.example", 22, keys.host_pub)])
    key = " ".join(keys.host_pub.read_text().split()[:2])
    assert (tmp_path / "kh").read_text().splitlines() == [f"[127.0.0.3]:2222 {key}", f"node.example {key}"]
    assert known_hosts_name("::1", 2200) == "[::1]:2200"


def test_session_sshd_answers_on_every_loopback_address(sshd_hosts):
    for address in (sshd_hosts.addresses[0], sshd_hosts.addresses[-1]):
        done = subprocess.run(["ssh", *ssh_client_options(sshd_hosts.keys, sshd_hosts.port, sshd_hosts.known_hosts),
                               f"root@{address}", "echo $SSH_CONNECTION"], capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[2:] == [address, str(sshd_hosts.port)]


@needs_sshd
def test_stop_kills_only_its_own_sshd_and_frees_the_port(tmp_path, sshd_hosts):
    keys = generate_keys(tmp_path / "k")
    port = free_port("127.0.0.9")
    server = SshServer(tmp_path, keys, ["127.0.0.9"], port, name="own")
    pid = server.start()
    assert open(f"/proc/{pid}/comm").read().strip() == "sshd"
    assert (tmp_path / "own.pid").read_text().strip() == str(pid)
    server.stop()
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert server.pid is None
    assert sshd_hosts.server.running  # the session server is untouched
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.9", port))


@needs_sshd
def test_start_reports_a_port_already_in_use(tmp_path, sshd_hosts):
    keys = generate_keys(tmp_path / "k")
    server = SshServer(tmp_path, keys, [sshd_hosts.addresses[0]], sshd_hosts.port, name="clash")
    with pytest.raises(TestbedError, match="sshd"):
        server.start(timeout=5)
    assert not server.running


@needs_sshd
def test_start_rejects_a_bad_config_before_running(tmp_path):
    keys = generate_keys(tmp_path / "k")
    keys.host_key.unlink()
    server = SshServer(tmp_path, keys, ["127.0.0.1"], free_port(), name="bad")
    with pytest.raises(TestbedError, match="config"):
        server.start()
    assert server.pid is None


@needs_sshd
@pytest.mark.skipif(shutil.which("ip") is None or shutil.which("unshare") is None, reason="iproute2/unshare missing")
def test_sshd_in_a_namespace_has_its_own_hostname(tmp_path):
    ns = f"vhpc-t-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        keys = generate_keys(tmp_path / "k")
        server = SshServer(tmp_path, keys, ["127.0.0.1"], 2222, netns=ns, hostname="node7", name="ns")
        pid = server.start()
        try:
            assert open(f"/proc/{pid}/comm").read().strip() == "sshd"
            done = subprocess.run(["ip", "netns", "exec", ns, "ssh", *ssh_client_options(keys, 2222),
                                   "root@127.0.0.1", "hostname"], capture_output=True, text=True, timeout=30)
            assert done.stdout.strip() == "node7", done.stderr
        finally:
            server.stop()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_session_sshd_skips_this_machines_shell_rc(sshd_hosts):
    # SetEnv SHLVL=1: bash starts at level 2 and does not source ~/.bashrc for SSH commands.
    assert "SetEnv SHLVL=1" in sshd_hosts.server.config_text()
    done = subprocess.run(["ssh", *ssh_client_options(sshd_hosts.keys, sshd_hosts.port, sshd_hosts.known_hosts),
                           f"root@{sshd_hosts.addresses[1]}", "echo $SHLVL"], capture_output=True, text=True,
                          timeout=30)
    assert done.stdout.strip() == "2", done.stderr
