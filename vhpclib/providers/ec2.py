"""An EC2 cluster vHPC creates for an environment (inventory section ``cloud:``; ``vhpc cloud up``).

The machinery is ``vhpclib.cloud`` (loaded on first use: boto3 is not imported to validate an
inventory). The hosts are only known once the instances run, so the declared environment is resolved
against the state ``vhpc cloud up`` recorded. ``up`` creates only with ``VHPC_CLOUD_YES=1`` (the estimated
cost is printed first); ``down`` terminates everything tagged for the environment. Instances an emulator
invented (tests against moto) are reached at testbed nodes, recorded as ``ec2-moto`` and labelled emulated.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..cloud.spec import CloudSpec
from ..exceptions import CloudInputError, EnvironmentNotReady
from . import register_provider
from .base import EnvironmentProvider, Log

if TYPE_CHECKING:
    from ..config import Environment, HostSpec, Inventory

YES_VAR = "VHPC_CLOUD_YES"
EMULATED_VMM = "ec2-moto"


def inventory_name(inventory: Inventory) -> str:
    """What the cloud state and tags call an inventory (``vhpclib.cloud.target.inventory_name``)."""
    from ..cloud.target import inventory_name as name_of

    return name_of(inventory)


def target(inventory: Inventory, name: str, campaign: str = ""):  # noqa: ANN201 - a cloud.target.Target
    """The cloud environment ``name`` of ``inventory`` (``vhpclib.cloud.target.target``)."""
    from ..cloud.target import target as target_of

    return target_of(inventory, name, campaign)


@register_provider
class Ec2Cluster(EnvironmentProvider):
    name = "cloud"
    Section = CloudSpec
    summary = "an EC2 cluster vHPC creates through boto3 (`vhpc cloud up`), measures over SSH and terminates"
    vmms = {"ec2": ("amazon", "xen", "kvm"), EMULATED_VMM: ()}
    cloud_vmms = ("ec2", EMULATED_VMM)
    emulation_vmms = (EMULATED_VMM,)
    # Positive evidence of an EC2 instance from inside: Nitro's DMI vendor, or a Xen instance's uuid ("ec2...").
    layer_probes = (("layer_ec2_vendor", "[ -r /sys/devices/virtual/dmi/id/sys_vendor ]",
                     "cat /sys/devices/virtual/dmi/id/sys_vendor"),
                    ("layer_ec2_xen_uuid", "[ -r /sys/hypervisor/uuid ]", "cat /sys/hypervisor/uuid"))
    brings_hosts = "cloud cluster vHPC creates"
    hosts_owner = "cloud instances"

    def commands(self) -> tuple[str, Any]:
        """``vhpc cloud up|status|down``: create, list and tear down cloud clusters."""
        from ..cloud.cli import cloud_app

        return "cloud", cloud_app

    def _state(self, inventory: Inventory, name: str) -> dict:
        from ..cloud import state as st

        state = st.load(inventory_name(inventory), name)
        if state is None or not state.get("complete"):
            source = inventory.source or "INVENTORY"
            raise EnvironmentNotReady(f"cloud environment {name!r} is not up: `vhpc cloud up -i {source} -e {name} "
                                      f"--yes` (prints the estimated cost), or `vhpc paper-figures --rerun` with "
                                      f"{YES_VAR}=1", file=str(inventory.source) if inventory.source else None,
                                      key=f"environments.{name}.cloud")
        return state

    def resolve(self, inventory: Inventory, name: str) -> Environment:
        """The declared environment with the running instances as hosts, their keys as known_hosts (strict)."""
        from ..config import Environment

        declared = inventory.environment(name)
        spec: CloudSpec = self.section(declared)
        state = self._state(inventory, name)
        data = declared.model_dump(exclude_none=True)
        for key in declared.sections:
            data.pop(key, None)
        mpi = data.setdefault("mpi", {})
        mpi["env"] = {**(state.get("mpi_env") or {}), **mpi.get("env", {})}
        emulated = bool(state.get("emulated"))
        facts = state.get("instances") or [{}]
        data.update(hosts=state["hosts"], known_hosts=state["known_hosts"], host_key_policy="strict",
                    vmm=EMULATED_VMM if emulated else (declared.vmm if declared.vmm != "none" else "ec2"),
                    description=(f"{declared.description}; " if declared.description else "") +
                    f"{len(state['hosts'])} x {spec.instance_type} in {spec.region}"
                    f" (placement group {facts[0].get('placement_group') or 'none'})"
                    + ("; EMULATED: instances invented by moto, hosts are testbed nodes of this machine"
                       if emulated else ""))
        if state.get("launch"):
            data["launch"] = state["launch"]
        prefix = (state.get("install") or {}).get("prefix")
        if prefix:  # what `vhpc cloud up` installed, unless the inventory says otherwise
            mpi.setdefault("prefix", prefix)
            data["benchmarks"] = {"imb": f"{prefix}/bin/IMB-MPI1", "blockss": f"{prefix}/bin/vhpc-blockss",
                                  **data.get("benchmarks", {})}
        return Environment.model_validate(data).with_section(self.name, spec)

    def vmm(self, env: Environment) -> str:
        return env.vmm

    def up(self, inventory: Inventory, name: str, log: Log) -> bool:
        """Create the cluster unless it is up (only with ``VHPC_CLOUD_YES=1``: the estimate is printed first)."""
        from ..cloud import state as st
        from ..cloud.provision import connect, still_running, up

        existing = st.load(inventory_name(inventory), name)
        if existing and existing.get("complete"):
            t = target(inventory, name)
            still_running(t, connect(t), existing)  # a state left from a cluster that ended is one line
            return False
        if os.environ.get(YES_VAR) != "1":
            raise CloudInputError(f"cloud environment {name!r} is not up; set {YES_VAR}=1 to let vHPC create it "
                                  f"(`vhpc cloud up -i {inventory.source} -e {name}` prints the estimated cost)",
                                  file=str(inventory.source) if inventory.source else None,
                                  key=f"environments.{name}.cloud")
        up(target(inventory, name), yes=True, log=log)
        return True

    def down(self, inventory: Inventory, name: str, log: Log) -> None:
        from ..cloud.teardown import down

        down(target(inventory, name), log)

    def run_facts(self, ctx: Any, hosts: list[HostSpec]) -> dict[str, Any]:
        """Instance type, hypervisor, ENA/EFA drivers and placement of every host (emulated: what moto said)."""
        from ..cloud.facts import emulated_facts

        state = self._state(ctx.inventory, ctx.environment)
        if state.get("emulated"):
            return {"cloud": emulated_facts(state)}
        probed = getattr(ctx, "_cloud_facts", None)  # once per stage context: the hosts do not change
        if probed is None:
            probed = self._probe(ctx, hosts, state)
            ctx._cloud_facts = probed
        return {"cloud": probed}

    def _probe(self, ctx: Any, hosts: list[HostSpec], state: dict) -> dict[str, Any]:
        from ..cloud.facts import PROBE, parse_probe

        results = ctx.run_on(hosts, PROBE, timeout=60)
        by_id = {f["id"]: f for f in state.get("instances", [])}
        return {"emulated": False, "region": state.get("region"),
                "hosts": {h.label: {"api": by_id.get(h.label, {}), "instance": parse_probe(r.stdout)}
                          for h, r in zip(hosts, results)}}

    def detected(self, evidence: dict[str, str | None]) -> bool:
        vendor = (evidence.get("layer_ec2_vendor") or "").strip()
        return vendor == "Amazon EC2" or (evidence.get("layer_ec2_xen_uuid") or "").strip().lower().startswith("ec2")

    def layer_findings(self, env: Environment, facts: dict[str, Any]) -> list[str]:
        if env.vmm == EMULATED_VMM:
            return []  # testbed nodes of this machine stand in for instances: no hypervisor claim to check
        return super().layer_findings(env, facts)
