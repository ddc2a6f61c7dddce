"""Guest environments declared in an inventory (``vm:``) and resolved against the guest that is running.

An inventory may describe an environment as "a QEMU guest vHPC boots": its
``vm:`` section says how (vCPUs, memory, accelerator, pinning). Where the guest
is reached (SSH port, host key, Intel MPI inside it) is only known once it is
up, so the declared environment is resolved at run time against the guest's state
(the environment ``vhpc vm up`` also writes to ``inventories/vm-<name>.yml``). ``guests_up`` boots what
a re-measure needs and ``guests_down`` stops only what it booted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..exceptions import GuestNotRunning

if TYPE_CHECKING:
    from ..config import Environment, Inventory, VmSpec


def resolve_environment(inventory: Inventory, name: str) -> Environment:
    """Environment ``name`` as measured: a ``vm:`` one is its running guest's (``GuestNotRunning`` if none)."""
    return resolve(inventory.environment(name), source=str(inventory.source) if inventory.source else None,
                   key=f"environments.{name}.vm")


def resolve(declared: Environment, *, source: str | None = None, key: str | None = "vm") -> Environment:
    """The environment to measure: ``declared`` itself, or, for a guest, the running guest's environment
    under the declared label, baseline flag and description."""
    spec = declared.vm
    if spec is None:
        return declared
    from .inventory import running_environment
    from .state import load_state

    state = load_state(spec.name)
    if state is None or not state.get("complete"):
        accel = "" if spec.accel == "auto" else f" --accel {spec.accel}"
        pin = f" --pin {_pin_text(spec)}" if spec.pin else ""
        raise GuestNotRunning(
            f"guest {spec.name!r} of environment {declared.label!r} is not running: boot it with `vhpc vm up --name "
            f"{spec.name} --vcpus {spec.vcpus} --memory {spec.memory_mib}{accel}{pin}`, or let `vhpc paper-figures "
            f"--rerun` boot it", file=source, key=key)
    mismatch = _differs(spec, state)
    if mismatch:
        raise GuestNotRunning(f"guest {spec.name!r} runs with {mismatch}; `vhpc vm down --name {spec.name}` and boot "
                              f"it as the inventory says", file=source, key=key)
    running = running_environment(state)
    description = f"{declared.description}; {running.description}" if declared.description else running.description
    return running.model_copy(update={"label": declared.label, "baseline": declared.baseline, "vm": spec,
                                      "description": description})


def _pin_text(spec: VmSpec) -> str | None:
    """``vhpc vm up --pin`` as the inventory asks it (None: the host scheduler places vCPUs)."""
    return ",".join(map(str, spec.pin)) if spec.pin else None


def _differs(spec: VmSpec, state: dict) -> str:
    """What the running guest does differently from the declaration (empty when it matches)."""
    wanted = {"vcpus": spec.vcpus, "memory_mib": spec.memory_mib, "pin": list(spec.pin) if spec.pin else None}
    got = {"vcpus": state.get("vcpus"), "memory_mib": state.get("memory_mib"), "pin": state.get("pin") or None}
    if spec.accel != "auto" and state.get("accel") != spec.accel:
        return f"accel {state.get('accel')} (the inventory asks for {spec.accel})"
    return ", ".join(f"{k} {got[k]} (the inventory asks for {v})" for k, v in wanted.items() if got[k] != v)


@contextmanager
def guests_up(inventory: Inventory, environments: Iterable[str], log=print) -> Iterator[list[str]]:
    """Boot every declared guest of ``environments`` that is not running; stop, on exit, only those booted here."""
    from . import down, up
    from .state import load_state

    booted: list[str] = []
    try:
        for name in environments:
            declared = inventory.environment(name)
            spec = declared.vm
            if spec is None:
                continue
            state = load_state(spec.name)
            if state is not None and state.get("complete"):
                resolve_environment(inventory, name)  # running as declared, else one line
                continue
            log(f"booting guest {spec.name!r} for environment {declared.label!r} ...")
            info = up(spec.name, vcpus=spec.vcpus, memory_mib=spec.memory_mib, accel=spec.accel, pin=_pin_text(spec))
            booted.append(spec.name)
            log(f"guest {spec.name!r} up in {info.ready_s:.0f} s ({info.vmm}, accel: {info.accel})")
        yield booted
    finally:
        for name in reversed(booted):
            down(name)
            log(f"guest {name!r} shut down")
