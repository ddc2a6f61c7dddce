"""Without an explicit endpoint and credentials, ``vhpc cloud`` sends nothing anywhere: not to AWS, not to the
instance metadata service (169.254.169.254), not to checkip. Every socket connection and every botocore send
is recorded by a guard that refuses it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from vhpclib.cloud.provision import up
from vhpclib.cloud.target import Target
from vhpclib.cloud.spec import CloudSpec
from vhpclib.exceptions import CloudInputError

SPEC = {"region": "us-east-1", "instance_type": "c5n.18xlarge", "count": 2,
        "image": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64", "user": "ec2-user",
        "key_pair": "k", "key_file": "/nonexistent/key.pem"}


@pytest.fixture()
def guard(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Record and refuse every outgoing connection and every request botocore would send."""
    import botocore.endpoint

    attempts: list[str] = []

    def refuse_connect(self, address, *a, **k):
        attempts.append(f"connect {address}")
        raise OSError("network guard: no connection allowed in this test")

    def refuse_send(self, request, *a, **k):
        attempts.append(f"botocore send {getattr(request, 'url', request)}")
        raise OSError("network guard: botocore may not send in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_connect)
    monkeypatch.setattr(botocore.endpoint.Endpoint, "_send", refuse_send)
    for name in ("VHPC_CLOUD_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_EC2_METADATA_DISABLED", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    return attempts


def test_the_guard_itself_records_a_connection(guard: list[str]) -> None:
    with pytest.raises(OSError, match="network guard"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    assert guard, "the guard must see connections, or the tests below prove nothing"


@pytest.mark.parametrize("extra", [{}, {"ssh_from": "auto"}, {"placement_group": "create", "efa": "on"}])
def test_no_endpoint_and_no_credentials_sends_nothing_anywhere(guard: list[str], tmp_path: Path, monkeypatch,
                                                              extra: dict) -> None:
    from vhpclib import paths

    monkeypatch.setattr(paths, "CLOUD", tmp_path / "cloud")
    target = Target("nonet", "ec2", CloudSpec(**{**SPEC, **extra}), "c", "inv.yml")
    with pytest.raises(CloudInputError, match="no AWS credentials") as err:
        up(target, yes=True, log=lambda m: None)
    assert "instance metadata" in str(err.value)
    assert guard == []
    assert not (tmp_path / "cloud").exists()  # nothing recorded either: nothing was created


def test_the_metadata_service_is_not_asked_even_for_the_credential_chain(guard: list[str]) -> None:
    from vhpclib.cloud.session import _botocore_session

    assert _botocore_session().get_credentials() is None
    assert guard == []


def test_the_cli_without_endpoint_and_credentials_sends_nothing(guard: list[str], tmp_path: Path, monkeypatch,
                                                               capsys) -> None:
    import yaml

    from vhpclib import paths
    from vhpclib.cli import main

    monkeypatch.setattr(paths, "CLOUD", tmp_path / "cloud")
    inv = tmp_path / "nonet.yml"
    inv.write_text(yaml.safe_dump({"name": "nonet", "environments": {"ec2": {"label": "EC2", "vmm": "ec2",
                                                                             "cloud": SPEC}}}))
    for command in (["cloud", "up", "-i", str(inv), "-e", "ec2", "--yes"], ["cloud", "status", "-i", str(inv)],
                    ["cloud", "down", "-i", str(inv), "-e", "ec2"]):
        assert main(command) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert "no AWS credentials" in line
    assert guard == []
