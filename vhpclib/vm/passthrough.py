"""PCI passthrough (VFIO): the checks a device needs before QEMU can be given ``-device vfio-pci``.

The paper gives each VM its InfiniBand HCA this way. A device can be assigned
only when the IOMMU is on (the device has an IOMMU group), the device and
every other endpoint of its group are bound to ``vfio-pci``, and the group's
``/dev/vfio/<group>`` node exists. Each failed check is one sentence that says
what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import VmInputError, VmUnavailable

SYSFS = Path("/sys")
DEV_VFIO = Path("/dev/vfio")
_BDF = re.compile(r"^(?:(?P<domain>[0-9a-fA-F]{4}):)?(?P<bus>[0-9a-fA-F]{2}):(?P<slot>[0-1][0-9a-fA-F])\."
                  r"(?P<function>[0-7])$")
# Bridges may stay with their own driver in a group (the kernel allows it for VFIO).
_BRIDGE_DRIVERS = {"pcieport", "shpchp", None}


@dataclass(frozen=True)
class PassthroughDevice:
    bdf: str  # full form 0000:bb:ss.f
    iommu_group: int
    driver: str
    vendor_device: str

    def qemu_args(self) -> list[str]:
        return ["-device", f"vfio-pci,host={self.bdf}"]


def normalise_bdf(text: str) -> str:
    """``bb:ss.f`` or ``dddd:bb:ss.f`` as ``dddd:bb:ss.f`` (lower case); ``VmInputError`` otherwise."""
    m = _BDF.match(text.strip())
    if not m:
        raise VmInputError(f"not a PCI address {text!r}; expected bus:slot.function like 0000:3b:00.0",
                           key="--passthrough")
    return f"{(m['domain'] or '0000').lower()}:{m['bus'].lower()}:{m['slot'].lower()}.{m['function']}"


def _driver(device: Path) -> str | None:
    link = device / "driver"
    return Path(link.resolve()).name if link.exists() else None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return "?"


def check_device(text: str, sysfs: Path = SYSFS, dev_vfio: Path = DEV_VFIO) -> PassthroughDevice:
    """Check one device for VFIO assignment; ``VmInputError``/``VmUnavailable`` say what is missing."""
    bdf = normalise_bdf(text)
    device = sysfs / "bus" / "pci" / "devices" / bdf
    if not device.exists():
        raise VmInputError(f"no PCI device {bdf} on this machine (`lspci -D` lists them)", key="--passthrough")
    vendor = f"{_read(device / 'vendor').removeprefix('0x')}:{_read(device / 'device').removeprefix('0x')}"
    group_link = device / "iommu_group"
    if not group_link.exists():
        raise VmUnavailable(f"{bdf} ({vendor}) has no IOMMU group: the IOMMU is off or absent, so it cannot be "
                            "passed through (enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on "
                            "or amd_iommu=on)", key="--passthrough")
    group = int(Path(group_link.resolve()).name)
    driver = _driver(device)
    if driver != "vfio-pci":
        raise VmUnavailable(f"{bdf} ({vendor}) is bound to {driver or 'no driver'}, not vfio-pci: bind it first "
                            f"(echo vfio-pci > {device}/driver_override; echo {bdf} > {device}/driver/unbind; "
                            f"echo {bdf} > {sysfs}/bus/pci/drivers_probe)", key="--passthrough")
    others = []
    for member in sorted((sysfs / "kernel" / "iommu_groups" / str(group) / "devices").glob("*")):
        if member.name != bdf and _driver(member) not in ("vfio-pci", *_BRIDGE_DRIVERS):
            others.append(f"{member.name} ({_driver(member)})")
    if others:
        raise VmUnavailable(f"IOMMU group {group} of {bdf} also holds {', '.join(others)}: every device of the group "
                            "must be bound to vfio-pci before one can be passed through", key="--passthrough")
    if not (dev_vfio / str(group)).exists():
        raise VmUnavailable(f"{dev_vfio / str(group)} is missing for {bdf} (load the vfio-pci module)",
                            key="--passthrough")
    return PassthroughDevice(bdf, group, driver, vendor)


def check_devices(texts: list[str], sysfs: Path = SYSFS, dev_vfio: Path = DEV_VFIO) -> list[PassthroughDevice]:
    """Check every ``--passthrough`` device (each at most once)."""
    devices = [check_device(t, sysfs, dev_vfio) for t in texts]
    seen = [d.bdf for d in devices]
    if len(set(seen)) != len(seen):
        raise VmInputError(f"a device is given twice: {', '.join(seen)}", key="--passthrough")
    return devices
