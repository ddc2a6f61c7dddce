"""The QEMU guest vHPC boots for an environment (inventory section ``vm:``; ``vhpc vm up``).

Where the guest is reached (SSH port, host key, Intel MPI inside it) is only known once it is up, so
the declared environment is resolved at run time against the guest's state file (``vhpclib.vm``, loaded
on first use). Every run reads the guest's vCPU -> host CPU map back from the host kernel (the guest
cannot see it) into its record. TCG is QEMU's emulator and is labelled ``qemu-tcg`` everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..exceptions import GuestNotRunning
from ..vm.names import ACCELS, GUEST_NAME
from . import register_provider
from .base import EnvironmentProvider, Log

if TYPE_CHECKING:
    from ..config import Environment, HostSpec, Inventory

#: Below about 2.5 GiB Intel MPI cannot map its shared-memory segment even for one rank (README).
DEFAULT_MEMORY_MIB = 4096


class VmSpec(BaseModel):
    """A QEMU guest vHPC boots for this environment (``vhpc vm up``); its hosts are the guest's."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=GUEST_NAME, description="Guest name: 1-20 of a-z, 0-9, '-', starting with a "
                      "letter (host name, QEMU name and folder vms/<name>/).")
    vcpus: int = Field(ge=1, le=64, description="Virtual CPUs of the guest.")
    memory_mib: int = Field(DEFAULT_MEMORY_MIB, ge=256, description="Guest memory in MiB; Intel MPI needs about "
                            "2.5 GiB even for one rank, hence 4096.")
    accel: Literal[ACCELS] = Field("auto", description="auto (KVM only where it really boots a guest, else TCG "  # type: ignore[valid-type]
                                   "emulation), kvm or tcg.")
    pin: list[int] | None = Field(None, description="Host CPU of each vCPU (vCPU i on pin[i]); omitted: the host "
                                  "scheduler places vCPUs.")

    @model_validator(mode="after")
    def _one_cpu_per_vcpu(self) -> VmSpec:
        from ..config import _Located

        if self.pin is not None and len(self.pin) != self.vcpus:
            raise _Located(("pin",), f"pin names {len(self.pin)} host CPU(s) for {self.vcpus} vCPU(s)")
        if self.pin is not None and (len(set(self.pin)) != len(self.pin) or min(self.pin) < 0):
            raise _Located(("pin",), f"pin needs distinct host CPU numbers, got {self.pin}")
        return self

    @property
    def pin_text(self) -> str | None:
        """``vhpc vm up --pin`` as the inventory asks it (None: the host scheduler places vCPUs)."""
        return ",".join(map(str, self.pin)) if self.pin else None


@register_provider
class QemuGuest(EnvironmentProvider):
    name = "vm"
    Section = VmSpec
    emulation = True  # under TCG; with KVM it is hardware virtualization (``vmm`` says which ran)
    summary = "a QEMU guest vHPC boots (KVM where it really boots, else TCG emulation) and measures over SSH"
    vmms = {"qemu-tcg": ("qemu",)}
    brings_hosts = "guest vHPC boots"
    hosts_owner = "guest"
    emulation_vmms = ("qemu-tcg", "tcg")

    def commands(self) -> tuple[str, Any]:
        """``vhpc vm up|status|down``: build, boot and remove guests."""
        from ..vm.cli import vm_app

        return "vm", vm_app

    def system_packages(self, env: Environment) -> list[str]:
        return ["qemu-system-x86", "qemu-utils", "debootstrap", "genisoimage"]

    def guest_label(self, env: Environment) -> str:
        return f"guest {self.section(env).name}"

    def resolve(self, inventory: Inventory, name: str) -> Environment:
        """The running guest's environment under the declared label, baseline flag and description."""
        declared = inventory.environment(name)
        spec: VmSpec = self.section(declared)
        source = str(inventory.source) if inventory.source else None
        key = f"environments.{name}.vm"
        from ..vm.inventory import running_environment
        from ..vm.state import load_state

        state = load_state(spec.name)
        if state is None or not state.get("complete"):
            accel = "" if spec.accel == "auto" else f" --accel {spec.accel}"
            pin = f" --pin {spec.pin_text}" if spec.pin else ""
            raise GuestNotRunning(
                f"guest {spec.name!r} of environment {declared.label!r} is not running: boot it with `vhpc vm up "
                f"--name {spec.name} --vcpus {spec.vcpus} --memory {spec.memory_mib}{accel}{pin}`, or let `vhpc "
                f"paper-figures --rerun` boot it", file=source, key=key)
        mismatch = _differs(spec, state)
        if mismatch:
            raise GuestNotRunning(f"guest {spec.name!r} runs with {mismatch}; `vhpc vm down --name {spec.name}` and "
                                  f"boot it as the inventory says", file=source, key=key)
        running = running_environment(state)
        description = (f"{declared.description}; {running.description}" if declared.description
                       else running.description)
        return running.with_section(self.name, spec, label=declared.label, baseline=declared.baseline,
                                    description=description)

    def up(self, inventory: Inventory, name: str, log: Log) -> bool:
        """Boot the declared guest unless it runs as declared (then only check it does)."""
        from ..vm import up
        from ..vm.state import load_state

        declared = inventory.environment(name)
        spec: VmSpec = self.section(declared)
        state = load_state(spec.name)
        if state is not None and state.get("complete"):
            self.resolve(inventory, name)  # running as declared, else one line
            return False
        log(f"booting guest {spec.name!r} for environment {declared.label!r} ...")
        info = up(spec.name, vcpus=spec.vcpus, memory_mib=spec.memory_mib, accel=spec.accel, pin=spec.pin_text)
        log(f"guest {spec.name!r} up in {info.ready_s:.0f} s ({info.vmm}, accel: {info.accel})")
        return True

    def down(self, inventory: Inventory, name: str, log: Log) -> None:
        from ..vm import down

        spec: VmSpec = self.section(inventory.environment(name))
        down(spec.name)
        log(f"guest {spec.name!r} shut down")

    def _placement(self, env: Environment) -> dict[str, Any] | None:
        spec: VmSpec | None = self.section(env)
        if spec is None:
            return None
        from ..vm import vcpu_map_for
        from ..vm.state import state_path

        return vcpu_map_for(state_path(spec.name))

    def run_facts(self, ctx: Any, hosts: list[HostSpec]) -> dict[str, Any]:
        """The guest's vCPU -> host CPU map as the host kernel reports it now."""
        placed = self._placement(ctx.env)
        return {"vcpu_map": placed["map"]} if placed else {}

    def host_facts(self, env: Environment, facts: dict[str, Any]) -> dict[str, Any]:
        """Add the guest's vCPU placement as the host kernel reports it (the guest cannot see it)."""
        placed = self._placement(env)
        if placed is None:
            return facts
        return {**facts, "vcpu_pinning": {k: placed[k] for k in ("policy", "accel", "map", "verified")}}


def _differs(spec: VmSpec, state: dict) -> str:
    """What the running guest does differently from the declaration (empty when it matches)."""
    wanted = {"vcpus": spec.vcpus, "memory_mib": spec.memory_mib, "pin": list(spec.pin) if spec.pin else None}
    got = {"vcpus": state.get("vcpus"), "memory_mib": state.get("memory_mib"), "pin": state.get("pin") or None}
    if spec.accel != "auto" and state.get("accel") != spec.accel:
        return f"accel {state.get('accel')} (the inventory asks for {spec.accel})"
    return ", ".join(f"{k} {got[k]} (the inventory asks for {v})" for k, v in wanted.items() if got[k] != v)
