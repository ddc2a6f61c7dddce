"""Which accelerator a guest runs on: KVM only where it really boots a guest, else TCG, and why.

``/dev/kvm`` is not proof: on some cloud VMs it is ``kvm_pvm`` (a paravirtual
KVM for nested guests), under which a stock Debian kernel never boots (its
decompressor crawls for minutes, then ``KVM internal error ... emulation
failure``). So ``auto`` uses KVM only when a real kernel module (kvm_intel /
kvm_amd) drives ``/dev/kvm`` and, when a kernel is given, a short probe boot
prints the kernel banner. TCG is QEMU's emulator, not hardware
virtualization; its environment is labelled ``qemu-tcg`` everywhere.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import VmInputError, VmUnavailable
from .names import ACCELS  # the one list: the inventory's vm.accel takes the same

KVM_DEVICE = Path("/dev/kvm")
SYS_MODULE = Path("/sys/module")
QEMU = "qemu-system-x86_64"
VMM = {"kvm": "kvm", "tcg": "qemu-tcg"}
PROBE_BANNER = "Linux version"


def check_accel(requested: str) -> str:
    """``requested`` if it is an accelerator (``ACCELS``), else ``VmInputError`` (exit 2)."""
    if requested not in ACCELS:
        raise VmInputError(f"unknown accelerator {requested!r}; use one of {', '.join(ACCELS)}", key="--accel")
    return requested


@dataclass(frozen=True)
class AccelChoice:
    """The accelerator a guest runs on, the ``vmm`` its inventory names, and the reason it was chosen."""

    accel: str  # "kvm" | "tcg"
    reason: str

    @property
    def vmm(self) -> str:
        return VMM[self.accel]


def kvm_status(device: Path = KVM_DEVICE, sys_module: Path = SYS_MODULE) -> tuple[bool, str]:
    """(usable, why): whether KVM can run a stock guest kernel here, judged without booting one."""
    if not device.exists():
        return False, f"{device} does not exist (no KVM kernel module loaded, or no hardware virtualization)"
    try:
        os.close(os.open(device, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        return False, f"{device} cannot be opened ({exc.strerror})"
    if (sys_module / "kvm_pvm").exists():
        return False, (f"{device} is kvm_pvm (paravirtual KVM), which cannot boot a stock Debian kernel "
                       "(KVM internal error, emulation failure)")
    for module in ("kvm_intel", "kvm_amd"):
        if (sys_module / module).exists():
            return True, f"{device} is driven by {module}"
    return False, f"{device} exists but neither kvm_intel nor kvm_amd is loaded"


def probe_kvm(kernel: Path, timeout: float = 15.0) -> tuple[bool, str]:
    """Boot ``kernel`` under KVM with no disk for at most ``timeout`` s: does it print its banner?

    Under a KVM that can run it, the banner comes in well under a second; the
    probe's QEMU is always killed before returning.
    """
    with tempfile.TemporaryDirectory(prefix="vhpc-kvm-probe-") as tmp:
        serial = Path(tmp) / "serial.log"
        argv = [QEMU, "-accel", "kvm", "-cpu", "host", "-m", "256", "-smp", "1", "-display", "none",
                "-monitor", "none", "-no-reboot", "-nodefaults", "-serial", f"file:{serial}", "-kernel", str(kernel),
                "-append", "console=ttyS0 panic=-1"]
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                text = serial.read_text(errors="replace") if serial.exists() else ""
                if PROBE_BANNER in text:
                    return True, f"a probe kernel booted under KVM in {timeout - (deadline - time.monotonic()):.1f} s"
                if process.poll() is not None:
                    err = process.stderr.read().decode(errors="replace").strip() if process.stderr else ""
                    last = err.splitlines()[-1] if err else "no message"
                    return False, f"KVM probe: QEMU exited with {process.returncode}: {last}"
                time.sleep(0.1)
            return False, f"KVM probe: the guest kernel printed nothing within {timeout:.0f} s under KVM"
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stderr:
                process.stderr.close()


def choose_accel(requested: str, *, kernel: Path | None = None, probe_timeout: float = 15.0) -> AccelChoice:
    """Resolve ``--accel``: ``tcg`` always works, ``kvm`` must be usable, ``auto`` picks and says why."""
    check_accel(requested)
    if requested == "tcg":
        return AccelChoice("tcg", "requested with --accel tcg (emulation, not hardware virtualization)")
    usable, why = kvm_status()
    if usable and kernel is not None and requested == "auto":
        usable, probe = probe_kvm(kernel, probe_timeout)
        why = f"{why}; {probe}"
    if requested == "kvm":
        if not usable:
            raise VmUnavailable(f"--accel kvm cannot work here: {why}; use --accel tcg (emulation) or auto")
        return AccelChoice("kvm", why)
    if usable:
        return AccelChoice("kvm", why)
    return AccelChoice("tcg", f"KVM not used: {why}; TCG is emulation, not hardware virtualization")
