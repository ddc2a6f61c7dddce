"""The inventory a running guest is used through: one environment, reached over SSH with a strict host key.

``inventories/vm-<name>.yml`` declares the guest as it was started (its ``vm:``
section); the QEMU provider (``vhpclib.providers.qemu``) resolves it to the
running guest's environment (``running_environment``), which names the VMM as run
(``kvm`` or ``qemu-tcg``: TCG is emulation and is never called KVM), the vCPU
placement as run (``pinned`` or ``scheduler``), the Intel MPI copied into the
guest and the command running blockss there. The vCPU map is read back from
the guest's state file at every run.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .. import paths
from ..config import Environment, parse_inventory
from ..fsutil import atomic_write
from .provision import GUEST_PREFIX


def environment_name(name: str) -> str:
    return f"vm-{name}"


def inventory_path(name: str) -> Path:
    return paths.INVENTORIES / f"vm-{name}.yml"


def describe(state: dict) -> str:
    accel = state["accel"]
    engine = ("KVM (hardware virtualization)" if accel == "kvm"
              else "QEMU TCG (emulation, not hardware virtualization)")
    pin = state.get("pin")
    placement = (f"vCPUs pinned 1:1 to host CPUs {','.join(map(str, pin))}" if pin
                 else "vCPUs placed by the host scheduler")
    return (f"vHPC guest '{state['name']}': {engine}, {state['vcpus']} vCPU(s), {state['memory_mib']} MiB, "
            f"{placement}; accelerator: {state['accel_reason']}")


def inventory_data(state: dict) -> dict:
    """The inventory mapping ``vhpc vm up`` writes: the guest as declared, resolved while it runs."""
    spec = {"name": state["name"], "vcpus": state["vcpus"], "memory_mib": state["memory_mib"],
            "accel": state["accel"], "pin": list(state["pin"]) if state.get("pin") else None}
    env = {"label": environment_name(state["name"]), "vm": {k: v for k, v in spec.items() if v is not None}}
    return {"name": f"vm-{state['name']}", "environments": {environment_name(state["name"]): env}}


def running_data(state: dict) -> dict:
    """The inventory mapping of a guest that is up: its one host, reached over SSH."""
    host = {"name": state["hostname"], "address": "127.0.0.1", "port": state["ssh_port"], "user": "root",
            "key_file": state["client_key"]}
    env = {
        "label": environment_name(state["name"]),
        "description": describe(state),
        "vmm": "kvm" if state["accel"] == "kvm" else "qemu-tcg",
        "vcpu_pinning": "pinned" if state.get("pin") else "scheduler",
        "host_key_policy": "strict",
        "known_hosts": state["known_hosts"],
        "hosts": [host],
        "topology": {"sockets": 1, "cores_per_socket": state["vcpus"], "threads_per_core": 1},
        "mpi": {"flavour": "intel", "prefix": GUEST_PREFIX},
        "benchmarks": {"imb": f"{GUEST_PREFIX}/bin/IMB-MPI1", "blockss": f"{GUEST_PREFIX}/bin/vhpc-blockss"},
        "connect_timeout_s": 20,
        "timeout_s": 3600,
    }
    return {"name": f"vm-{state['name']}", "environments": {environment_name(state["name"]): env}}


def running_environment(state: dict) -> Environment:
    """The environment of a guest that is up, as its inventory file says it (validated the same way)."""
    text = yaml.safe_dump(running_data(state), sort_keys=False)
    return parse_inventory(text, inventory_path(state["name"])).environment(environment_name(state["name"]))


def write_inventory(state: dict, path: Path) -> Path:
    """Validate and atomically write the guest's inventory YAML."""
    header = (f"# Written by `vhpc vm up --name {state['name']}`; removed by `vhpc vm down --name {state['name']}`.\n"
              f"# Do not edit: it describes the guest as it was started; while it runs, the environment is\n"
              f"# the running guest's ({describe(state)}).\n")
    text = header + yaml.safe_dump(inventory_data(state), sort_keys=False)
    parse_inventory(text, path)  # never write an inventory the loader would reject
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)
    return path
