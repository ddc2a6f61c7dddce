"""Plain hosts: this machine, hosts over SSH and testbed nodes (an environment without a provider section).

The inventory lists the hosts (``hosts:``, ``launch:``) and says what they run on (``vmm``); nothing is
started or stopped, commands run as they are, and the hosts' fingerprints say what the layer is.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache

from . import register_provider
from .base import EnvironmentProvider

#: What ``systemd-detect-virt --vm`` says -> the inventory's vmm; anything else is "unknown" (no claim).
_DETECTED_VMM = {"none": "none", "kvm": "kvm", "xen": "xen", "vmware": "vmware", "qemu": "qemu-tcg"}


@register_provider
class Hosts(EnvironmentProvider):
    name = "host"
    summary = "hosts the inventory lists: this machine (local: true), SSH hosts, testbed nodes"
    # vmm -> what systemd-detect-virt (or lscpu's hypervisor vendor) reports for it
    vmms = {"none": (), "kvm": ("kvm",), "xen": ("xen",), "xen-hvm": ("xen",), "qemu": ("qemu", "kvm"),
            "ec2": ("amazon", "xen", "kvm"), "vmware": ("vmware",), "hyperv": ("microsoft", "hyperv"),
            "virtualbox": ("oracle", "virtualbox"), "container": (), "unknown": ()}
    cloud_vmms = ("ec2", "aws", "gce", "azure")


@lru_cache(maxsize=1)
def machine_vmm() -> str:
    """The hypervisor this machine runs under, as an inventory's ``vmm``.

    Testbed nodes are namespaces of this machine, so they are exactly as virtualized as it is:
    writing ``none`` on a VM made the testbed's own inventory fail its check.
    """
    try:
        out = subprocess.run(["systemd-detect-virt", "--vm"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return _DETECTED_VMM.get(out.stdout.strip(), "unknown")
