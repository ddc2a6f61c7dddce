"""Namespace nodes as an environment (inventory section ``nodes:``): a testbed vHPC brings up around the runs.

The bare counterpart of a virtualized cluster on one machine: ``count`` network-namespace nodes on a
bridge, each with its own host name and sshd, the links shaped to ``rate`` (a ceiling at every message
size, no latency emulation). ``up`` starts the testbed unless it is up as declared and ``down`` removes
it again; the environment's hosts, keys and MPI settings are the running testbed's (``inventory.py``),
under the declared label and description. Kept in the testbed package (registered by module path), so
the provider registry never imports the testbed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..exceptions import EnvironmentNotReady, TestbedError
from ..providers import register_provider
from ..providers.base import EnvironmentProvider, Log

if TYPE_CHECKING:
    from ..config import Environment, Inventory


class NodesSection(BaseModel):
    """Network-namespace nodes vHPC starts on this machine (``vhpc testbed up``), reached over SSH."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    count: int = Field(2, ge=1, le=32, description="How many nodes (network namespaces, an sshd each).")
    rate: str | None = Field(None, description="Shape every node's link to this rate (tc syntax, e.g. `1gbit`): "
                             "a ceiling at every message size; omitted: unshaped veth links.")
    testbed: str = Field("nodes", description="Name of the testbed (1-8 lower-case letters or digits); its "
                         "namespaces are vtb-NAME-*.")

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        from ..exceptions import InputError
        from .shaping import normalise_rate

        try:
            return None if value is None else normalise_rate(value)
        except InputError as exc:  # pydantic wants a ValueError to name the file, line and key
            raise ValueError(str(exc).removeprefix("rate: ")) from None

    @field_validator("testbed")
    @classmethod
    def _name(cls, value: str) -> str:
        from .netns import validate_name

        from ..exceptions import InputError

        try:
            return validate_name(value)
        except InputError as exc:
            raise ValueError(str(exc).removeprefix("name: ")) from None


@register_provider
class Nodes(EnvironmentProvider):
    name = "nodes"
    Section = NodesSection
    summary = ("network-namespace nodes on a bridge vHPC starts on this machine (an sshd each, links shaped "
               "to `rate`); MPI between them over TCP")
    brings_hosts = "namespace nodes vHPC starts"
    hosts_owner = "nodes"
    starts_with_run = True

    def system_packages(self, env: Environment) -> list[str]:
        return ["iproute2", "openssh-server", "openssh-client"]

    def _running(self, spec: NodesSection) -> dict | None:
        from .lifecycle import state

        try:
            return state(spec.testbed)
        except TestbedError:
            return None

    def _differs(self, spec: NodesSection, running: dict) -> str:
        got = {"count": len(running.get("nodes", [])), "rate": running.get("rate")}
        wanted = {"count": spec.count, "rate": spec.rate}
        return ", ".join(f"{k} {got[k]} (the inventory asks for {v})" for k, v in wanted.items() if got[k] != v)

    def resolve(self, inventory: Inventory, name: str) -> Environment:
        """The running testbed's hosts and MPI settings under the declared label, baseline and description."""
        from ..config import Environment as EnvironmentModel
        from .inventory import ENVIRONMENT, inventory_data

        declared = inventory.environment(name)
        spec: NodesSection = self.section(declared)
        where = {"file": str(inventory.source or "") or None, "key": f"environments.{name}.nodes"}
        running = self._running(spec)
        if running is None:
            raise EnvironmentNotReady(f"the nodes of environment {declared.label!r} (testbed {spec.testbed!r}) are "
                                      "not up: `vhpc run` and `vhpc paper-figures --rerun` start them", **where)
        if (mismatch := self._differs(spec, running)):
            raise EnvironmentNotReady(f"testbed {spec.testbed!r} runs with {mismatch}; `vhpc testbed down --name "
                                      f"{spec.testbed}` and let vhpc start it as the inventory says", **where)
        data: dict[str, Any] = inventory_data(running)["environments"][ENVIRONMENT]
        description = f"{declared.description}; {data['description']}" if declared.description else data["description"]
        data.update(label=declared.label, baseline=declared.baseline, description=description)
        if declared.vmm != "none":
            data["vmm"] = declared.vmm
        return EnvironmentModel.model_validate(data).with_section(self.name, spec)

    def up(self, inventory: Inventory, name: str, log: Log) -> bool:
        """Start the testbed unless it is up as declared (then only check it is)."""
        from .lifecycle import up

        spec: NodesSection = self.section(inventory.environment(name))
        if self._running(spec) is not None:
            self.resolve(inventory, name)  # up as declared, else one line
            return False
        info = up(spec.count, name=spec.testbed, rate=spec.rate)
        log(f"testbed {spec.testbed!r} up: {spec.count} nodes, links {spec.rate or 'unshaped'} "
            f"({info.seconds:.1f} s)")
        return True

    def down(self, inventory: Inventory, name: str, log: Log) -> None:
        from .lifecycle import down

        spec: NodesSection = self.section(inventory.environment(name))
        down(spec.testbed)
        log(f"testbed {spec.testbed!r} removed")
