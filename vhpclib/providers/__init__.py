"""Environment providers: one registry of environment kinds (this machine and SSH hosts, QEMU guests, ...).

An environment in the inventory names its kind by the one provider section it carries, keyed by the
provider's name (``vm:`` is the QEMU guest's); without one it is plain hosts (``host``). The built-in
kinds are registered lazily (their module is imported the first time the name is used), so the inventory
schema resolves names and section models without importing any backend. A test or a plugin registers its
own with ``@register_provider`` (see README, "Adding an environment kind").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .base import PROVIDERS, EnvironmentProvider, Log, detected_names, vmm_names

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..config import Environment, Inventory

__all__ = ["PROVIDERS", "EnvironmentProvider", "register_provider", "provider_for", "provider_named",
           "section_model", "detected_names", "is_emulation", "is_cloud", "vmm_names", "environments_up",
           "system_packages", "resolve_environment"]

#: Kind when an environment carries no provider section.
DEFAULT = "host"

register_provider = PROVIDERS.register_class  # class decorator: one instance available under ``cls.name``
provider_named = PROVIDERS.get

PROVIDERS.add_lazy("host", "vhpclib.providers.host")
PROVIDERS.add_lazy("vm", "vhpclib.providers.qemu")
PROVIDERS.add_lazy("throttle", "vhpclib.providers.throttled")
PROVIDERS.add_lazy("cloud", "vhpclib.providers.ec2")
PROVIDERS.add_lazy("container", "vhpclib.providers.container")
PROVIDERS.add_lazy("gvisor", "vhpclib.providers.gvisor")
PROVIDERS.add_lazy("uml", "vhpclib.providers.uml")
# Namespace nodes and containers across them belong to the testbed package (the registry never imports it).
PROVIDERS.add_lazy("nodes", "vhpclib.testbed.provider")
PROVIDERS.add_lazy("container_cluster", "vhpclib.testbed.containers")


def section_model(name: str) -> type[BaseModel] | None:
    """The inventory section model of provider ``name`` (None: not a provider, or one without a section)."""
    provider = PROVIDERS.find(name) if name in PROVIDERS else None
    return provider.Section if provider is not None else None


def sections() -> dict[str, tuple[type[BaseModel], str]]:
    """Every provider section an inventory may carry: key -> (model, what it makes the environment)."""
    return {name: (p.Section, f"Makes this a `{name}` environment (one provider section at most): {p.summary}.")
            for name, p in PROVIDERS.items() if p.Section is not None}


def provider_for(env: Environment) -> EnvironmentProvider:
    """The provider of ``env``: the one whose section it carries, else plain hosts."""
    return PROVIDERS.get(env.kind)


def resolve_environment(inventory: Inventory, name: str) -> Environment:
    """Environment ``name`` as measured (``EnvironmentNotReady`` when its provider has not brought it up)."""
    return provider_for(inventory.environment(name)).resolve(inventory, name)


#: Fingerprint sections of the providers' layer probes start with this.
LAYER_PREFIX = "layer_"


def layer_probes() -> list[tuple[str, str, str]]:
    """Every provider's fingerprint probes (positive evidence of its layer from inside), each name once."""
    out: dict[str, tuple[str, str, str]] = {}
    for _, provider in PROVIDERS.items():
        for probe in provider.layer_probes:
            if not probe[0].startswith(LAYER_PREFIX):
                raise ValueError(f"provider {provider.name!r}: probe {probe[0]!r} must start with {LAYER_PREFIX!r}")
            out.setdefault(probe[0], probe)
    return list(out.values())


def detect_layer(evidence: dict[str, str | None]) -> str | None:
    """The provider whose layer the probes' evidence shows (None: none of them; plain hosts)."""
    return next((name for name, p in PROVIDERS.items() if name != DEFAULT and p.detected(evidence)), None)


def is_emulation(vmm: str | None) -> bool:
    """Whether a stored ``vmm`` is emulation (e.g. QEMU TCG), by asking every provider."""
    value = str(vmm or "").lower()
    return bool(value) and any(value in p.emulation_vmms for _, p in PROVIDERS.items())


def is_cloud(vmm: str | None) -> bool:
    """Whether a stored ``vmm`` is a cloud's instance, by asking every provider."""
    value = str(vmm or "").lower()
    return bool(value) and any(value in p.cloud_vmms for _, p in PROVIDERS.items())


def system_packages(inventory: Inventory, environments: Iterable[str] | None = None) -> list[str]:
    """Debian packages the providers of ``environments`` (default: all) need, each once, in order."""
    out: dict[str, None] = {}
    for name in environments or inventory.environments:
        env = inventory.environment(name)
        out.update(dict.fromkeys(provider_for(env).system_packages(env)))
    return list(out)


@contextmanager
def environments_up(inventory: Inventory, environments: Iterable[str], log: Log = print) -> Iterator[list[str]]:
    """Bring up what ``environments`` need; on exit, stop only what was started here (in reverse order)."""
    started: list[str] = []
    try:
        for name in environments:
            if provider_for(inventory.environment(name)).up(inventory, name, log):
                started.append(name)
        yield started
    finally:
        for name in reversed(started):
            provider_for(inventory.environment(name)).down(inventory, name, log)
