"""The inventory a running testbed is used through: its nodes over SSH with strict host keys.

Main form (``launch="node"``): mpirun runs on node 1, reached over SSH; Hydra
starts the other ranks over SSH from there, inside node 1's namespace, so it
binds to that node's ``eth0`` and its ssh needs the testbed key and known_hosts.
Variant (``launch="local"``): mpirun runs in the root namespace of this machine
and reaches the nodes through the bridge (``I_MPI_HYDRA_IFACE=<bridge>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml

from ..fsutil import atomic_write
from ..config import parse_inventory
from ..exceptions import TestbedError
from ..providers.host import machine_vmm
from ..sshd import SshKeys, ssh_client_options

Launch = Literal["node", "local"]
ENVIRONMENT = "testbed"
SLURM_ENVIRONMENT = "slurm"


def inventory_path(inventories: Path, name: str, launch: Launch = "node") -> Path:
    return inventories / (f"testbed-{name}.yml" if launch == "node" else f"testbed-{name}-local.yml")


def bootstrap_args(state: dict) -> str:
    """``I_MPI_HYDRA_BOOTSTRAP_EXEC_EXTRA_ARGS``: Hydra's ssh to the nodes, host keys checked strictly."""
    keys = SshKeys(client_key=Path(state["client_key"]), client_pub=Path(state["client_key"] + ".pub"),
                   host_key=Path(), host_pub=Path(), authorized_keys=Path())
    options = ssh_client_options(keys, state["port"], Path(state["known_hosts"]))
    if any(any(c.isspace() for c in o) for o in options):
        # Hydra splits this variable on blanks; it has no quoting.
        raise TestbedError("testbed folder path contains whitespace; Hydra's ssh options cannot carry it",
                           file=state["folder"])
    return " ".join(options)


def inventory_data(state: dict, launch: Launch = "node") -> dict:
    """The inventory mapping of a testbed state (see module doc for ``launch``)."""
    hosts = [{"name": n["hostname"], "address": n["address"], "port": state["port"], "user": "root",
              "key_file": state["client_key"]} for n in state["nodes"]]
    rate = state.get("rate")
    iface = "eth0" if launch == "node" else state["bridge"]["name"]
    env = {
        "I_MPI_HYDRA_IFACE": iface,
        "I_MPI_HYDRA_BOOTSTRAP": "ssh",
        "I_MPI_HYDRA_BOOTSTRAP_EXEC_EXTRA_ARGS": bootstrap_args(state),
        "FI_PROVIDER": "tcp",
    }
    where = "node 1 over SSH" if launch == "node" else "this machine's root namespace"
    description = (f"vHPC testbed '{state['name']}': {len(hosts)} network-namespace nodes on bridge "
                   f"{state['bridge']['name']} ({state['subnet']}), Intel MPI over TCP, "
                   f"links {'shaped to ' + rate + ' (tbf, a ceiling at every size)' if rate else 'unshaped'}, "
                   "no latency emulation; "
                   f"mpirun on {where}.")
    environment: dict = {
        "label": "testbed",
        "vmm": state.get("vmm") or machine_vmm(),
        "baseline": True,
        "vcpu_pinning": "unknown",
        "host_key_policy": "strict",
        "known_hosts": state["known_hosts"],
        "hosts": hosts,
        "mpi": {"flavour": "intel", "env": env},
        "connect_timeout_s": 10,
        "description": description,
    }
    environment["launch"] = dict(hosts[0]) if launch == "node" else {"local": True}
    environments = {ENVIRONMENT: environment}
    if state.get("slurm", {}).get("partition"):
        environments[SLURM_ENVIRONMENT] = slurm_environment(state, hosts)
    return {"name": f"testbed-{state['name']}", "environments": environments}


def slurm_environment(state: dict, hosts: list[dict]) -> dict:
    """Environment ``slurm``: the same nodes through the testbed's private Slurm cluster.

    Jobs are submitted from node 1 over SSH (its namespace reaches slurmctld), MPI
    ranks are started by ``srun --mpi=pmi2`` and talk over TCP between nodes.
    """
    slurm = state["slurm"]
    return {
        "label": "testbed-slurm",
        "vmm": "none",
        "baseline": False,
        "vcpu_pinning": "unknown",
        "host_key_policy": "strict",
        "known_hosts": state["known_hosts"],
        "hosts": [dict(h) for h in hosts],
        "launch": dict(hosts[0]),
        "mpi": {"flavour": "intel", "env": {"FI_PROVIDER": "tcp"}},
        "connect_timeout_s": 10,
        "launcher": "slurm",
        "slurm": {"partition": slurm["partition"], "slurm_conf": slurm["conf"], "job_dir": slurm["job_dir"],
                  "submit_host": dict(hosts[0]), "mpi_mode": "srun-pmi2", "poll_interval_s": 1.0,
                  "pending_limit_s": 300,
                  # The nodes share this machine's CPUs: a 1-CPU allocation is CPU 0 on every node, so ranks
                  # of different nodes would share one core. Whole nodes let their ranks spread.
                  "sbatch_args": ["--exclusive"]},
        "description": (f"vHPC testbed '{state['name']}' through its private Slurm cluster "
                        f"{slurm.get('cluster', '')}: slurmctld on node 1, a slurmd in each of the "
                        f"{len(hosts)} namespace nodes; jobs submitted from node 1 over SSH; "
                        "Intel MPI ranks started by srun --mpi=pmi2, TCP between nodes."),
    }


def write_inventory(state: dict, path: Path, launch: Launch = "node") -> Path:
    """Validate and atomically write the inventory YAML of a testbed."""
    header = (f"# Written by vhpclib.testbed for testbed '{state['name']}' (launch: {launch}).\n"
              f"# Removed by `vhpc testbed down --name {state['name']}`; do not edit.\n")
    text = header + yaml.safe_dump(inventory_data(state, launch), sort_keys=False)
    parse_inventory(text, path)  # never write an inventory the loader would reject
    return atomic_write(path, text)
