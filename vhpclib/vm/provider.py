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
    from ..config import Environment, Inventory


def resolve_environment(inventory: Inventory, name: str) -> Environment:
    """Environment ``name`` as measured: a ``vm:`` one is its running guest's (``GuestNotRunning`` if none)."""
    return resolve(inventory.environment(name), source=str(inventory.source) if inventory.source else None,
                   key=f"environments.{name}.vm")


def resolve(declared: Environment, *, source: str | None = None, key: str | None = "vm") -> Environment:
    """The environment to measure: ``declared`` itself, or, for a guest, the running guest's environment
    under the declared label, baseline flag and description."""
    if declared.vm is None:
        return declared
    from .inventory import running_environment
    from .state import load_state

    name = declared.vm.name
    state = load_state(name)
    if state is None or not state.get("complete"):
        raise GuestNotRunning(
            f"guest {name!r} of environment {declared.label!r} is not running: boot it with `vhpc vm up --name {name} "
            f"--vcpus {declared.vm.vcpus} --memory {declared.vm.memory_mib}{_accel_option(declared)}"
            f"{_pin_option(declared)}`, or let `vhpc paper-figures --rerun` boot it",
            file=source, key=key)
    running = running_environment(state)
    mismatch = _differs(declared, state)
    if mismatch:
        raise GuestNotRunning(f"guest {name!r} runs with {mismatch}; `vhpc vm down --name {name}` and boot it as "
                              f"the inventory says", file=source, key=key)
    description = f"{declared.description}; {running.description}" if declared.description else running.description
    return running.model_copy(update={"label": declared.label, "baseline": declared.baseline, "vm": declared.vm,
                                      "description": description})


def _accel_option(declared: Environment) -> str:
    accel = declared.vm.accel if declared.vm else "auto"
    return "" if accel == "auto" else f" --accel {accel}"


def _pin_option(declared: Environment) -> str:
    pin = declared.vm.pin if declared.vm else None
    return f" --pin {','.join(map(str, pin))}" if pin else ""


def _differs(declared: Environment, state: dict) -> str:
    """What the running guest does differently from the declaration (empty when it matches)."""
    spec = declared.vm
    assert spec is not None
    wanted = {"vcpus": spec.vcpus, "memory_mib": spec.memory_mib, "pin": list(spec.pin) if spec.pin else None}
    got = {"vcpus": state.get("vcpus"), "memory_mib": state.get("memory_mib"), "pin": state.get("pin") or None}
    if spec.accel != "auto" and state.get("accel") != spec.accel:
        return f"accel {state.get('accel')} (the inventory asks for {spec.accel})"
    return ", ".join(f"{k} {got[k]} (the inventory asks for {v})" for k, v in wanted.items() if got[k] != v)


def declared_guests(inventory: Inventory, environments: Iterable[str]) -> list[Environment]:
    return [env for name in environments if (env := inventory.environment(name)).vm is not None]


@contextmanager
def guests_up(inventory: Inventory, environments: Iterable[str], log=print) -> Iterator[list[str]]:
    """Boot every declared guest of ``environments`` that is not running; stop, on exit, only those booted here."""
    from . import down, up
    from .state import load_state

    booted: list[str] = []
    try:
        for env in declared_guests(inventory, environments):
            spec = env.vm
            assert spec is not None
            state = load_state(spec.name)
            if state is not None and state.get("complete"):
                resolve(env, source=str(inventory.source) if inventory.source else None)  # as declared, else one line
                continue
            log(f"booting guest {spec.name!r} for environment {env.label!r} ...")
            pin = ",".join(map(str, spec.pin)) if spec.pin else None
            info = up(spec.name, vcpus=spec.vcpus, memory_mib=spec.memory_mib, accel=spec.accel, pin=pin)
            booted.append(spec.name)
            log(f"guest {spec.name!r} up in {info.ready_s:.0f} s ({info.vmm}, accel: {info.accel})")
        yield booted
    finally:
        for name in reversed(booted):
            down(name)
            log(f"guest {name!r} shut down")
