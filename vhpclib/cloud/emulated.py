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
    from ..testbed import info
    from ..testbed.inventory import inventory_data
    from ..testbed.lifecycle import _load_state

    tb = info(testbed)  # TestbedError (one line, the command to run) when it is not up
    if len(tb.nodes) < len(instances):
        raise CloudInputError(f"testbed {testbed!r} has {len(tb.nodes)} node(s) for {len(instances)} instance(s)",
                              file=where.get("file"), key=f"{where.get('key')}.emulator.testbed")
    env = inventory_data(_load_state(testbed))["environments"]["testbed"]
    hosts = []
    for instance, host in zip(instances, env["hosts"]):
        hosts.append({**host, "name": instance["id"], "mpi_address": host["address"]})
    return {"hosts": hosts, "known_hosts": str(tb.known_hosts), "mpi_env": env["mpi"]["env"],
            "launch": dict(hosts[0]), "host_keys_from": f"testbed {testbed} (moto's console has none)"}
