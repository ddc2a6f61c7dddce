"""What ``vhpc cloud up`` refuses before creating anything, against moto: each refusal creates nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vhpclib.cloud.provision import up
from vhpclib.cloud.target import Target
from vhpclib.cloud.spec import CloudSpec
from vhpclib.exceptions import CloudInputError

BASE = {"region": "us-east-1", "instance_type": "c5n.18xlarge", "count": 2,
        "image": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64", "user": "ec2-user",
        "key_pair": "vhpc-test", "key_file": "/nonexistent/key.pem", "placement_group": "none",
        "ssh_from": "127.0.0.1/32", "max_instances": 4, "max_hours": 1, "ssh_timeout_s": 30,
        "emulator": {"testbed": "nonexistent"}}


def _target(inventory: str, **changes) -> Target:
    return Target(inventory, "ec2", CloudSpec(**{**BASE, **changes}), "c1", "inv.yml")


def test_unknown_instance_type_is_refused_by_the_api_naming_the_key(cloud_env) -> None:
    with pytest.raises(CloudInputError) as err:
        up(_target("g-type", instance_type="zz9.huge"), yes=True, log=lambda m: None)
    assert err.value.key == "environments.ec2.cloud.instance_type"
    assert "zz9.huge" in str(err.value) and "\n" not in str(err.value)
    assert cloud_env.tagged("g-type") == {"instances": [], "security_groups": []}


def test_bad_credentials_are_refused_by_the_api_as_one_line(cloud_env, monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(CloudInputError, match="AWS refused the credentials"):
        up(_target("g-creds"), yes=True, log=lambda m: None)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", cloud_env.secret)
    assert cloud_env.tagged("g-creds") == {"instances": [], "security_groups": []}


def test_max_instances_counts_the_new_instances(cloud_env) -> None:
    with pytest.raises(CloudInputError, match="exceed max_instances 1") as err:
        up(_target("g-max", max_instances=1), yes=True, log=lambda m: None)
    assert err.value.key == "environments.ec2.cloud.max_instances"
    assert cloud_env.tagged("g-max") == {"instances": [], "security_groups": []}


def test_without_yes_the_estimate_is_printed_and_nothing_is_created(cloud_env) -> None:
    said: list[str] = []
    with pytest.raises(CloudInputError, match="pass --yes"):
        up(_target("g-yes"), yes=False, log=said.append)
    assert any("2 x c5n.18xlarge" in s and "$7.78/h" in s and "1 h" in s for s in said), said
    assert cloud_env.tagged("g-yes") == {"instances": [], "security_groups": []}


def test_an_instance_type_without_a_known_price_needs_hourly_usd(cloud_env) -> None:
    with pytest.raises(CloudInputError, match="no price known for c5.xlarge") as err:
        up(_target("g-price", instance_type="c5.xlarge"), yes=True, log=lambda m: None)
    assert err.value.key == "environments.ec2.cloud.hourly_usd"


def test_an_image_parameter_that_does_not_exist_names_the_image_key(cloud_env) -> None:
    with pytest.raises(CloudInputError) as err:
        up(_target("g-image", image="/aws/service/debian/release/99/latest/amd64"), yes=True, log=lambda m: None)
    assert err.value.key == "environments.ec2.cloud.image" and "ParameterNotFound" in str(err.value)


def test_the_emulator_mapping_is_refused_against_a_real_endpoint(cloud_env, monkeypatch) -> None:
    monkeypatch.delenv("VHPC_CLOUD_ENDPOINT")
    with pytest.raises(CloudInputError, match="only makes sense against a local emulator"):
        up(_target("g-emu"), yes=True, log=lambda m: None)


def test_an_endpoint_off_loopback_is_refused(cloud_env, monkeypatch) -> None:
    monkeypatch.setenv("VHPC_CLOUD_ENDPOINT", "http://ec2.us-east-1.amazonaws.com")
    with pytest.raises(CloudInputError, match="loopback"):
        up(_target("g-endpoint"), yes=True, log=lambda m: None)


def _inventory(tmp_path, name: str, **cloud) -> str:
    import yaml

    data = {"name": name, "environments": {"ec2": {"label": "EC2", "vmm": "ec2", "cloud": {**BASE, **cloud}}}}
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


@pytest.mark.parametrize("case,expect", [
    ("type", "environments.ec2.cloud.instance_type: DescribeInstanceTypes: InvalidInstanceType"),
    ("creds", "AWS refused the credentials"),
])
def test_cli_refuses_with_one_line_and_exit_2(cloud_env, tmp_path, monkeypatch, case: str, expect: str) -> None:
    name = f"g-cli-{case}"
    if case == "creds":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOTAKEYATALL0000")
    inv = _inventory(tmp_path, name, instance_type="zz9.huge" if case == "type" else "c5n.18xlarge",
                     hourly_usd=1.0)
    out = _cli("cloud", "up", "-i", inv, "-e", "ec2", "--yes")
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"vhpc: error: {inv}") and expect in line, line
    assert "Traceback" not in out.stderr
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", cloud_env.key_id)
    assert cloud_env.tagged(name) == {"instances": [], "security_groups": []}


def test_cli_bad_section_is_one_line_naming_file_line_and_key(tmp_path) -> None:
    inv = _inventory(tmp_path, "g-bad", count=0)
    out = _cli("cloud", "up", "-i", inv, "-e", "ec2")
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert f"{inv}:" in line and "environments.ec2.cloud.count" in line
