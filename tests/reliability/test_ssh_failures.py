"""SSH failures are one line naming the hop at fault: a port that does not speak SSH, a corrupt known_hosts,
a jump host that refuses. Nothing hangs, no paramiko traceback."""

from __future__ import annotations

import socket
import threading

import pytest
import yaml

from rl_helpers import assert_one_error_line, vhpc
from vhpclib.sshd import free_port

pytestmark = pytest.mark.ssh


class SilentPort:
    """A TCP port that accepts connections and then says ``greeting`` (or nothing)."""

    def __init__(self, address: str, greeting: bytes = b"") -> None:
        self.sock = socket.create_server((address, free_port(address)))
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.greeting:
                conn.sendall(self.greeting)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


def inventory(sshd_hosts, tmp_path, *, port=None, jump=None, known_hosts=None, address="127.0.0.2"):
    data = sshd_hosts.inventory_data([address], port=port, known_hosts=known_hosts)
    env = data["environments"]["ssh"]
    env["connect_timeout_s"] = 2
    if jump:
        for host in [env["launch"], *env["hosts"]]:
            host["jump"] = jump
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("greeting, reason", [
    (b"", "no SSH handshake within 2 s (is an SSH server listening"),
    (b"HTTP/1.1 400 Bad Request\r\n" * 120, "the port answers but does not speak SSH")])
def test_a_port_that_does_not_speak_ssh_is_one_line(sshd_hosts, tmp_path, greeting, reason):
    server = SilentPort("127.0.0.2", greeting)
    try:
        path = inventory(sshd_hosts, tmp_path, port=server.port)
        check = vhpc(["inventory", "check", str(path), "-c", "np"], tmp_path / "d", timeout=60)
        run = vhpc(["run", "microbench", "-i", str(path), "-e", "ssh", "-c", "np", "--no-figures", "--no-progress"],
                   tmp_path / "d", timeout=60)
    finally:
        server.close()
    assert check.returncode == 1 and "Traceback" not in check.stderr + check.stdout
    assert f"did not answer: 127.0.0.2:{server.port}: {reason}" in check.stderr
    assert_one_error_line(run, 1, f"127.0.0.2:{server.port}: {reason}")


def test_a_corrupt_known_hosts_line_is_one_line_naming_the_file_and_line(sshd_hosts, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(sshd_hosts.known_hosts.read_text()
                     + f"[127.0.0.2]:{sshd_hosts.port} ssh-ed25519 AAAA@@not-base64@@\n")
    lines = len(known.read_text().splitlines())
    path = inventory(sshd_hosts, tmp_path, known_hosts=known)
    run = vhpc(["run", "microbench", "-i", str(path), "-e", "ssh", "-c", "kh", "--no-figures", "--no-progress"],
               tmp_path / "d", timeout=60)
    assert_one_error_line(run, 2, f"{known}:{lines}", "corrupt known_hosts line")


def test_a_jump_host_that_refuses_is_named_as_the_jump_host(sshd_hosts, tmp_path):
    port = free_port("127.0.0.5")  # nothing listens there
    path = inventory(sshd_hosts, tmp_path, jump={"address": "127.0.0.5", "port": port, "user": "root",
                                                 "key_file": str(sshd_hosts.client_key)})
    run = vhpc(["run", "microbench", "-i", str(path), "-e", "ssh", "-c", "jh", "--no-figures", "--no-progress"],
               tmp_path / "d", timeout=60)
    assert_one_error_line(run, 1, f"jump 127.0.0.5:{port}: connection refused")
    check = vhpc(["inventory", "check", str(path)], tmp_path / "d", timeout=60)
    assert check.returncode == 1 and f"jump 127.0.0.5:{port}: connection refused" in check.stderr


def test_a_jump_host_that_cannot_reach_the_target_names_both(sshd_hosts, tmp_path):
    jump = {"address": "127.0.0.1", "port": sshd_hosts.port, "user": "root", "key_file": str(sshd_hosts.client_key)}
    path = inventory(sshd_hosts, tmp_path, port=free_port("127.0.0.6"), jump=jump, address="127.0.0.6")
    run = vhpc(["run", "microbench", "-i", str(path), "-e", "ssh", "-c", "jt", "--no-figures", "--no-progress"],
               tmp_path / "d", timeout=60)
    assert_one_error_line(run, 1, "jump 127.0.0.1", "could not reach it")
