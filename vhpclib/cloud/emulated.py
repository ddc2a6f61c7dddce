"""Tests against moto only: instance i of an emulated cluster is reached at testbed node i.

moto returns invented addresses (54.x, 10.x) that must never be contacted. When the inventory's
``cloud.emulator.testbed`` names a running vHPC testbed (network namespaces in 198.18.0.0/15, a real
sshd per node), each instance's SSH and MPI traffic goes to its node instead, with the node's real host
key. Refused unless the API itself is a local emulator (``VHPC_CLOUD_ENDPOINT``), so a real cloud run
can never be redirected.
"""

from __future__ import annotations

from ..exceptions import CloudInputError
from .session import ENDPOINT_VAR


def testbed_hosts(testbed: str, instances: list[dict], *, endpoint: str | None, where: dict) -> dict:
    """Hosts, known_hosts, MPI variables and launch host of ``instances`` mapped onto ``testbed``'s nodes."""
    if endpoint is None:
        raise CloudInputError(f"cloud.emulator maps instances onto testbed nodes, which only makes sense against a "
                              f"local emulator: set {ENDPOINT_VAR}, or remove 'emulator'",
                              file=where.get("file"), key=f"{where.get('key')}.emulator")
    import json

    from .. import paths
    from ..config import load_inventory

    # The testbed's own record of itself (its state file and the inventory `vhpc testbed up` wrote), read as
    # files: the cloud code never imports the testbed's.
    state_file = paths.TESTBEDS / testbed / "state.json"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = None
    if not isinstance(state, dict) or not state.get("complete"):
        raise CloudInputError(f"testbed {testbed!r} is not up (no complete state file {state_file}); run "
                              f"`vhpc testbed up --name {testbed}`", file=where.get("file"),
                              key=f"{where.get('key')}.emulator.testbed")
    env = load_inventory(state["inventories"]["node"]).environment("testbed")
    if len(env.hosts) < len(instances):
        raise CloudInputError(f"testbed {testbed!r} has {len(env.hosts)} node(s) for {len(instances)} instance(s)",
                              file=where.get("file"), key=f"{where.get('key')}.emulator.testbed")
    hosts = []
    for instance, host in zip(instances, env.hosts):
        node = host.model_dump(mode="json", exclude_defaults=True)
        hosts.append({**node, "name": instance["id"], "mpi_address": host.address})
    return {"hosts": hosts, "known_hosts": str(env.known_hosts or state["known_hosts"]), "mpi_env": dict(env.mpi.env),
            "launch": dict(hosts[0]), "host_keys_from": f"testbed {testbed} (moto's console has none)"}
