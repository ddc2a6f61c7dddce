"""QEMU guests vHPC builds, boots, measures and removes (``vhpc vm``), one module per job.

``image`` builds the cached Debian image (``apt_sources``: this machine's mirror;
``provision``: Intel MPI, IMB and blockss put into it; ``mounts``: safe clean-up),
``accel`` decides KVM or TCG and why, ``qemu`` and ``qmp`` start and talk to QEMU,
``pinning`` pins vCPU threads and reads the map back, ``passthrough`` checks VFIO
devices, ``seed`` makes cloud-init seeds for user images, ``guest_ssh`` reaches the
guest with a strict host key, ``state``/``inventory`` record it and
``lifecycle`` ties them together (``up``, ``status``, ``down``, ``vcpu_map_for``).
"""

from .lifecycle import GuestInfo, GuestStatus, down, info, status, up, vcpu_map, vcpu_map_for

__all__ = ["up", "down", "status", "info", "vcpu_map", "vcpu_map_for", "GuestInfo", "GuestStatus"]
