"""QEMU guests vHPC builds, boots, measures and removes (``vhpc vm``), one module per job.

``image`` builds the cached Debian image (``apt_sources``: this machine's mirror;
``provision``: Intel MPI, IMB and blockss put into it; ``mounts``: safe clean-up),
``accel`` decides KVM or TCG and why, ``qemu`` and ``qmp`` start and talk to QEMU,
``pinning`` pins vCPU threads and reads the map back, ``passthrough`` checks VFIO
devices, ``seed`` makes cloud-init seeds for user images, ``guest_ssh`` reaches the
guest with a strict host key, ``state``/``inventory`` record it (``vhpclib.providers.qemu``
resolves inventories' ``vm:`` environments) and ``lifecycle`` ties them together
(``up``, ``status``, ``down``, ``vcpu_map_for``).

The names below are loaded on first use: the CLI registers ``vhpc vm`` on every
call, and a measurement on bare metal should not pay for the guest machinery.
"""

from __future__ import annotations

from typing import Any

__all__ = ["up", "down", "status", "info", "vcpu_map", "vcpu_map_for", "GuestInfo", "GuestStatus"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import lifecycle

        return getattr(lifecycle, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
