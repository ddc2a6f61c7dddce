"""The QEMU command line of a guest, and starting it as a daemon whose PID we know.

One pure function builds the argv from a ``GuestSpec`` (tested as is); ``start``
runs it with ``-daemonize``: QEMU's parent exits only once the machine is set
up, so errors such as a port in use or a VFIO device that cannot be opened
come back synchronously on its stderr, and the PID comes from ``-pidfile``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import VmError
from .image import GuestImage

QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
GUEST_SSH_PORT = 22


@dataclass(frozen=True)
class GuestSpec:
    """Everything the QEMU command line of one guest depends on."""

    name: str
    hostname: str
    vcpus: int
    memory_mib: int
    accel: str  # "kvm" | "tcg"
    image: GuestImage
    overlay: Path
    ssh_port: int
    qmp_socket: Path
    serial_log: Path
    pidfile: Path
    seed: Path | None = None
    passthrough: tuple[str, ...] = ()
    extra_append: tuple[str, ...] = field(default_factory=tuple)


def kernel_cmdline(spec: GuestSpec) -> str:
    """Kernel arguments of a built image: serial console, root on the virtio disk, the guest's host name.

    ``panic=-1`` with ``-no-reboot`` makes a panicking guest end QEMU at once,
    so ``up`` reports it instead of waiting for SSH.
    """
    return " ".join(["console=ttyS0", "root=/dev/vda", "rw", "net.ifnames=0", "panic=-1",
                     f"systemd.hostname={spec.hostname}", *spec.extra_append])


def qemu_argv(spec: GuestSpec) -> list[str]:
    """The full QEMU command line of ``spec`` (``-daemonize``, QMP socket, SSH forwarded to loopback)."""
    accel = ["-accel", "kvm", "-cpu", "host"] if spec.accel == "kvm" else ["-accel", "tcg,thread=multi", "-cpu", "max"]
    argv = [QEMU, "-name", f"vhpc-{spec.name},debug-threads=on", "-machine", "q35", *accel,
            "-smp", f"{spec.vcpus},sockets=1,cores={spec.vcpus},threads=1", "-m", str(spec.memory_mib),
            "-nodefaults", "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", f"file:{spec.serial_log}",
            "-qmp", f"unix:{spec.qmp_socket},server=on,wait=off",
            "-pidfile", str(spec.pidfile), "-daemonize"]
    if spec.image.kernel is not None:
        argv += ["-kernel", str(spec.image.kernel), "-initrd", str(spec.image.initrd),
                 "-append", kernel_cmdline(spec)]
    argv += ["-drive", f"file={spec.overlay},if=virtio,format=qcow2,discard=unmap"]
    if spec.seed is not None:
        argv += ["-drive", f"file={spec.seed},if=virtio,format=raw,readonly=on"]
    # restrict=on: the guest reaches nothing outside (no internet); the SSH forward still works.
    argv += ["-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:{GUEST_SSH_PORT}",
             "-device", "virtio-net-pci,netdev=n0"]
    for bdf in spec.passthrough:
        argv += ["-device", f"vfio-pci,host={bdf}"]
    return argv


def create_overlay(image: GuestImage, overlay: Path) -> None:
    """A copy-on-write qcow2 over the image: the guest writes here, the cached image stays untouched."""
    done = subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", str(image.disk), "-F", image.disk_format,
                           str(overlay)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise VmError(f"qemu-img create failed: {done.stderr.strip()}", file=str(overlay))


def start(spec: GuestSpec, timeout: float = 60.0) -> int:
    """Start QEMU daemonized; return its PID. ``VmError`` with QEMU's own message when it refuses."""
    argv = qemu_argv(spec)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise VmError(f"{QEMU} is missing (Debian package qemu-system-x86)") from None
    except subprocess.TimeoutExpired:
        raise VmError(f"QEMU did not finish starting within {timeout:.0f} s") from None
    if done.returncode != 0:
        message = " | ".join(line.strip() for line in done.stderr.strip().splitlines()[-3:]) or "no message"
        raise VmError(f"QEMU refused to start (exit {done.returncode}): {message}")
    try:
        return int(spec.pidfile.read_text().strip())
    except (OSError, ValueError):
        raise VmError("QEMU started but wrote no PID file", file=str(spec.pidfile)) from None
