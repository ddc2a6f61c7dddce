"""moto in server mode on 127.0.0.1 (a free port), started once per module and stopped by its PID.

moto checks credentials (``INITIAL_NO_AUTH_ACTION_COUNT``: the first three calls create an IAM user
with an access key and an allow-all policy; every later call must be signed with that key) and instance
types (``MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION``). Tests reach it only through
``VHPC_CLOUD_ENDPOINT``; nothing else ever leaves this machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vhpclib.sshd import free_port

pytest.importorskip("moto", reason="moto[server] is a dev dependency (pip install -e '.[dev]')")

ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@dataclass
class Moto:
    url: str
    pid: int
    key_id: str
    secret: str

    def env(self) -> dict[str, str]:
        return {"VHPC_CLOUD_ENDPOINT": self.url, "AWS_ACCESS_KEY_ID": self.key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret}

    def ec2(self, region: str = "us-east-1"):
        import boto3

        return boto3.client("ec2", endpoint_url=self.url, region_name=region, aws_access_key_id=self.key_id,
                            aws_secret_access_key=self.secret)

    def tagged(self, inventory: str, region: str = "us-east-1") -> dict[str, list[str]]:
        """Everything of ``inventory`` vHPC tagged that still exists (terminated instances are gone)."""
        ec2 = self.ec2(region)
        f = [{"Name": "tag:vhpc:inventory", "Values": [inventory]}]
        live = [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped",
                                                            "shutting-down"]}]
        instances = [i["InstanceId"] for r in ec2.describe_instances(Filters=f + live)["Reservations"]
                     for i in r["Instances"]]
        groups = [g["GroupId"] for g in ec2.describe_security_groups(Filters=f)["SecurityGroups"]]
        return {"instances": instances, "security_groups": groups}


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("moto server did not listen in time")


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    import boto3

    port = free_port("127.0.0.1")
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(INITIAL_NO_AUTH_ACTION_COUNT="3", MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION="true")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_port(port, proc)
        url = f"http://127.0.0.1:{port}"
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIDBOOTSTRAP",
                           aws_secret_access_key="bootstrap")
        iam.create_user(UserName="vhpc-test")
        key = iam.create_access_key(UserName="vhpc-test")["AccessKey"]
        iam.put_user_policy(UserName="vhpc-test", PolicyName="all", PolicyDocument=ALLOW_ALL)
        yield Moto(url, proc.pid, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture()
def cloud_env(moto_server: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """This process talks to moto with the test user's key; cloud state goes to tmp; no ~/.aws is read."""
    from vhpclib import paths

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setattr(paths, "CLOUD", tmp_path / "cloud")
    monkeypatch.setenv("VHPC_CLOUD", str(tmp_path / "cloud"))
    return moto_server
