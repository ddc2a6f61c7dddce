"""Fingerprint of a cloud host: what the API says of the instance, and what the instance says of itself.

On EC2 the instance is asked from inside (over SSH): its metadata service (IMDSv2, from the instance
itself, never from this machine) for type, placement group and zone, and sysfs for the hypervisor
(``bios_vendor`` "Amazon EC2" is Nitro; ``/sys/hypervisor/type`` "xen" is Xen; the API's ``Hypervisor``
says "xen" for both), the network drivers (ena, efa) and their versions. On instances an emulator
invented, the hosts are testbed nodes of this machine: only what the emulator said is recorded, marked
emulated, and nothing is probed.
"""

from __future__ import annotations

#: Runs on the instance. Every line ``key=value``; a missing file or service gives an empty value.
PROBE = r"""
t=$(curl -s -m 2 -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' || true)
md() { curl -s -m 2 -H "X-aws-ec2-metadata-token: $t" "http://169.254.169.254/latest/meta-data/$1" || true; }
echo "instance_type=$(md instance-type)"
echo "instance_id=$(md instance-id)"
echo "placement_group=$(md placement/group-name | grep -v '<' || true)"
echo "availability_zone=$(md placement/availability-zone)"
echo "bios_vendor=$(cat /sys/devices/virtual/dmi/id/bios_vendor 2>/dev/null)"
echo "sys_vendor=$(cat /sys/devices/virtual/dmi/id/sys_vendor 2>/dev/null)"
echo "hypervisor_type=$(cat /sys/hypervisor/type 2>/dev/null)"
echo "ena_version=$(cat /sys/module/ena/version 2>/dev/null)"
echo "efa_version=$(cat /sys/module/efa/version 2>/dev/null)"
for n in /sys/class/net/*; do
  d=$(readlink "$n/device/driver" 2>/dev/null) && echo "nic.${n##*/}=${d##*/}"
done
for e in /sys/class/infiniband/*; do [ -e "$e" ] && echo "rdma.${e##*/}=$(cat "$e/node_type" 2>/dev/null)"; done
true
"""


def parse_probe(text: str) -> dict:
    """The probe's ``key=value`` lines; ``nic.*``/``rdma.*`` grouped; the hypervisor classified."""
    facts: dict = {"nics": {}, "rdma": {}}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if key.startswith("nic."):
            facts["nics"][key[4:]] = value
        elif key.startswith("rdma."):
            facts["rdma"][key[5:]] = value
        else:
            facts[key.strip()] = value or None
    facts["hypervisor"] = hypervisor(facts)
    return facts


def hypervisor(facts: dict) -> str | None:
    """``nitro``, ``xen`` or None (not said), as the instance reports it."""
    if (facts.get("bios_vendor") or "").strip() == "Amazon EC2":
        return "nitro"
    if (facts.get("hypervisor_type") or "").strip() == "xen" or (facts.get("bios_vendor") or "").startswith("Xen"):
        return "xen"
    return None


def emulated_facts(state: dict) -> dict:
    """What the emulator said of the instances (nothing probed: the hosts are testbed nodes of this machine)."""
    return {"emulated": True, "api_endpoint": state.get("endpoint"), "region": state.get("region"),
            "host_keys_from": state.get("host_keys_from"), "instances": state.get("instances", []),
            "note": "instances invented by an AWS API emulator; hosts are testbed nodes of this machine"}
