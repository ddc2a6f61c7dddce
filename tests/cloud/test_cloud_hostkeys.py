"""Host keys from an EC2 console: cloud-init's block, wrapped at 80 columns as the console prints it.

The layout follows a real EC2 console capture (syslog-prefixed fingerprint lines, then the keys block
with keys and their comments wrapped mid-word at column 80); the keys are generated here by ssh-keygen
and must come back with the fingerprints ssh-keygen gives them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vhpclib.cloud.facts import hypervisor, parse_probe
from vhpclib.cloud.hostkeys import console_host_keys, known_hosts_lines


def _keys(tmp_path: Path) -> list[str]:
    out = []
    for kind in ("ecdsa", "ed25519", "rsa"):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@ip-10-0-0-11", "-f",
                        str(tmp_path / kind)], check=True)
        out.append((tmp_path / f"{kind}.pub").read_text().strip())
    return out


def _console(keys: list[str], newline: str = "\n") -> str:
    text = "\n".join(keys)
    wrapped = [line[i:i + 80] for line in text.splitlines() for i in range(0, len(line), 80)]
    lines = ["[  418.52] cloud-init[2185]: Cloud-init v. 20.2 running 'modules:config'",
             "<14>Jun  3 17:07:52 ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----",
             "<14>Jun  3 17:07:52 ec2: 256 SHA256:xxxx root@ip-10-0-0-11 (ED25519)",
             "<14>Jun  3 17:07:52 ec2: -----END SSH HOST KEY FINGERPRINTS-----",
             "-----BEGIN SSH HOST KEY KEYS-----", *wrapped, "-----END SSH HOST KEY KEYS-----",
             "[  418.87] cloud-init[2203]: Cloud-init v. 20.2 finished"]
    return newline.join(lines)


def _fingerprint(line: str) -> str:
    return subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=line, capture_output=True, text=True,
                          check=True).stdout.split()[1]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_wrapped_keys_and_comments_come_back_with_their_fingerprints(tmp_path: Path, newline: str) -> None:
    keys = _keys(tmp_path)
    found = console_host_keys(_console(keys, newline))
    assert [_fingerprint(k) for k in found] == [_fingerprint(k) for k in keys]


def test_no_block_yet_means_no_keys_and_a_cut_block_gives_none() -> None:
    assert console_host_keys("") == []
    assert console_host_keys("-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n") == []


def test_known_hosts_lines_name_the_port_off_22() -> None:
    assert known_hosts_lines(["198.51.100.7"], ["ssh-ed25519 AAAA"]) == ["198.51.100.7 ssh-ed25519 AAAA"]
    assert known_hosts_lines(["h"], ["ssh-ed25519 AAAA"], 2222) == ["[h]:2222 ssh-ed25519 AAAA"]


@pytest.mark.parametrize("lines,expected", [
    ("bios_vendor=Amazon EC2\nsys_vendor=Amazon EC2\nhypervisor_type=\n", "nitro"),
    ("bios_vendor=Xen\nhypervisor_type=xen\n", "xen"),
    ("bios_vendor=SeaBIOS\nhypervisor_type=\n", None),
])
def test_the_hypervisor_is_what_the_instance_reports(lines: str, expected: str | None) -> None:
    facts = parse_probe(lines + "ena_version=2.8.1g\nnic.ens5=ena\nrdma.efa_0=1: CA\n")
    assert facts["hypervisor"] == expected == hypervisor(facts)
    assert facts["nics"] == {"ens5": "ena"} and facts["rdma"] == {"efa_0": "1: CA"}
    assert facts["ena_version"] == "2.8.1g"


def test_an_ec2_instance_is_recognised_from_inside_only_by_positive_evidence() -> None:
    from vhpclib.providers import PROVIDERS

    cloud = PROVIDERS.get("cloud")
    assert cloud.detected({"layer_ec2_vendor": "Amazon EC2\n", "layer_ec2_xen_uuid": None})
    assert cloud.detected({"layer_ec2_vendor": "Xen\n", "layer_ec2_xen_uuid": "ec2e1916-9099-7caf-fd21-0123456789ab"})
    assert not cloud.detected({"layer_ec2_vendor": "QEMU\n", "layer_ec2_xen_uuid": None})
    assert not cloud.detected({"layer_ec2_vendor": None, "layer_ec2_xen_uuid": None})
    here = {}
    for name, guard, command in cloud.layer_probes:  # the probes as the fingerprint runs them, on this machine
        out = subprocess.run(["bash", "-c", f"{guard} && {command}"], capture_output=True, text=True)
        here[name] = out.stdout if out.returncode == 0 else None
    vendor = Path("/sys/devices/virtual/dmi/id/sys_vendor")
    on_ec2 = vendor.is_file() and vendor.read_text().strip() == "Amazon EC2"
    assert cloud.detected(here) is on_ec2
