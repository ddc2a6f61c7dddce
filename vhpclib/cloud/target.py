"""One cloud environment of one inventory: its tags, its filters, its API clients and its live instances.

Shared by provisioning (``provision``) and teardown (``teardown``), which import this module and not each other's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .session import Clients, clients
from .spec import CloudSpec

if TYPE_CHECKING:
    from ..config import Inventory

POLL_S = 2.0
TAG_PREFIX = "vhpc:"


@dataclass
class Target:
    """One cloud environment of one inventory, and where errors about it point."""

    inventory: str
    environment: str
    spec: CloudSpec
    campaign: str = ""
    source: str | None = None

    @property
    def where(self) -> dict:
        return {"file": self.source, "key": f"environments.{self.environment}.cloud"}

    @property
    def name(self) -> str:
        """Name of the security and placement groups vHPC creates (AWS allows 255 characters)."""
        return f"vhpc-{self.inventory}-{self.environment}"[:255]

    def tags(self) -> dict[str, str]:
        return {f"{TAG_PREFIX}managed": "true", f"{TAG_PREFIX}inventory": self.inventory,
                f"{TAG_PREFIX}environment": self.environment, f"{TAG_PREFIX}campaign": self.campaign or "-"}

    def tag_specs(self, *kinds: str) -> list[dict]:
        tags = [{"Key": k, "Value": v} for k, v in self.tags().items()] + [{"Key": "Name", "Value": self.name}]
        return [{"ResourceType": kind, "Tags": tags} for kind in kinds]

    def filters(self) -> list[dict]:
        """Filters matching everything of this environment (any campaign)."""
        return [{"Name": f"tag:{TAG_PREFIX}inventory", "Values": [self.inventory]},
                {"Name": f"tag:{TAG_PREFIX}environment", "Values": [self.environment]}]


def connect(target: Target) -> Clients:
    return clients(target.spec.region, where=target.where)


def live_instances(aws: Clients, filters: list[dict]) -> list[dict]:
    """Instances matching ``filters`` that are not terminated (pending, running, stopping, stopped...)."""
    states = ["pending", "running", "shutting-down", "stopping", "stopped"]
    out = aws.call(aws.ec2, "describe_instances",
                   Filters=filters + [{"Name": "instance-state-name", "Values": states}])
    return [i for r in out.get("Reservations", []) for i in r.get("Instances", [])]


def inventory_name(inventory: Inventory) -> str:
    """What the cloud state and tags call an inventory: its ``name``, else its file's stem."""
    return inventory.name or (Path(inventory.source).stem if inventory.source else "inventory")


def target(inventory: Inventory, name: str, campaign: str = "") -> Target:
    """The cloud environment ``name`` of ``inventory``, tagged with ``campaign``."""
    spec = inventory.environment(name).section("cloud")
    return Target(inventory_name(inventory), name, spec, campaign,
                  str(inventory.source) if inventory.source else None)
