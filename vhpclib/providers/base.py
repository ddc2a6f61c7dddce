"""What an environment kind owns: its inventory section, how it resolves to reachable hosts, what it starts
and stops, how a command runs inside it, and what is read back at every run.

A provider is one class registered with ``@register_provider`` (``vhpclib.providers``); an environment
names its kind by the one provider section it carries (``vm:`` for a QEMU guest), keyed by the provider's
``name``; no section is the plain ``host`` kind. The core (inventory schema, stage context, fingerprint,
inventory check, notebook runner, figures, report) asks the provider and never names a kind.

Provider modules keep heavy imports inside their methods: the inventory schema imports a provider to
validate its section, and a run on bare metal should not pay for a hypervisor's machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from ..registry import Registry

if TYPE_CHECKING:
    from ..config import Environment, HostSpec, Inventory

Log = Callable[[str], None]


class EnvironmentProvider:
    """One environment kind. Every default here is what plain hosts need (identity wrap, nothing to start)."""

    #: Registry key, and the key of the provider's section in an inventory environment.
    name: ClassVar[str]
    #: The provider's inventory section (every field with a description), or None when it has none.
    Section: ClassVar[type[BaseModel] | None] = None
    #: Whether what it runs is emulated (e.g. QEMU TCG): figures and the report label it so.
    emulation: ClassVar[bool] = False
    #: A line for docs/inventory.md and ``vhpc deps``: what this kind is.
    summary: ClassVar[str] = ""
    #: The ``vmm`` values an environment of this kind may declare, each with what ``systemd-detect-virt``
    #: (or lscpu's hypervisor vendor) reports for it; ``inventory check`` compares the two.
    vmms: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Stored ``vmm`` values (run records, tables) that are this provider's emulation (figures label them).
    emulation_vmms: ClassVar[tuple[str, ...]] = ()
    #: Probes the fingerprint runs on every host, ``(name, guard, command)`` like ``fingerprint._PROBES``
    #: (names start with ``layer_``; shell builtins where possible): positive evidence of this layer from
    #: inside (never ``/.dockerenv`` or ``systemd-detect-virt``'s ``docker``: this machine's own root has both).
    layer_probes: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    #: What brings this kind's hosts when it does (e.g. "guest vHPC boots"); None: the inventory lists them.
    brings_hosts: ClassVar[str | None] = None
    #: Whose hosts they are then, for the error when an inventory lists hosts anyway (e.g. "guest").
    hosts_owner: ClassVar[str] = "provider"
    #: Whether ``vhpc run`` (and a measuring notebook) brings the environment up and down around the stage
    #: itself, because that takes seconds (a container); False: it must be up already (a QEMU guest).
    starts_with_run: ClassVar[bool] = False
    #: Stored ``vmm`` values that are a cloud's instances (the report compares them with the paper's EC2).
    cloud_vmms: ClassVar[tuple[str, ...]] = ()

    def commands(self) -> tuple[str, Any] | None:
        """``(name, typer app)`` of the provider's own ``vhpc NAME ...`` commands (None: it has none)."""
        return None

    def section(self, env: Environment) -> Any:
        """This provider's validated section of ``env`` (None when ``env`` does not carry it)."""
        return env.section(self.name)

    def vmm(self, env: Environment) -> str:
        """What run records and figures call the layer (``none``, ``kvm``, ``qemu-tcg``, ``container``...)."""
        return env.vmm

    def system_packages(self, env: Environment) -> list[str]:
        """Debian packages this environment needs on this machine (``vhpc deps``, the Makefile ask)."""
        return []

    def resolve(self, inventory: Inventory, name: str) -> Environment:
        """Environment ``name`` as measured: hosts an executor reaches.

        Raises ``EnvironmentNotReady`` (one line naming the command that brings it up) when the
        environment needs something started that is not running.
        """
        return inventory.environment(name)

    def guest_label(self, env: Environment) -> str:
        """What an ``inventory check`` row calls the environment when it is not up (default: its label)."""
        return env.label

    def up(self, inventory: Inventory, name: str, log: Log) -> bool:
        """Start what the environment needs; True if something was started here (``down`` stops it)."""
        return False

    def down(self, inventory: Inventory, name: str, log: Log) -> None:
        """Stop what ``up`` started; leave nothing behind."""

    def wrap(self, env: Environment, host: HostSpec, command: str) -> str:
        """The shell command that runs ``command`` inside the layer on ``host`` (quote with shlex)."""
        return command

    def run_facts(self, ctx: Any, hosts: list[HostSpec]) -> dict[str, Any]:
        """Read back at every run and stored in the run record's ``environment_spec.facts``."""
        return {}

    def host_facts(self, env: Environment, facts: dict[str, Any]) -> dict[str, Any]:
        """A host's fingerprint with what only the provider can see added (a guest's vCPU placement)."""
        return facts

    def own_processes(self, env: Environment, host: HostSpec) -> set[int]:
        """Processes on ``host`` that are the layer itself working for the job (a gVisor sandbox's kernel): the
        contention check does not count them as another process's load. Default: none."""
        return set()

    def skip_reason(self, env: Environment, nodes: int, ranks_per_node: int) -> str | None:
        """Why this layer cannot run ``nodes`` x ``ranks_per_node`` ranks (None: it can); recorded as a skip."""
        return None

    def detected(self, evidence: dict[str, str | None]) -> bool:
        """Whether a host's ``layer_*`` probe outputs (None: probe guard false) show this layer from inside."""
        return False

    def layer_findings(self, env: Environment, facts: dict[str, Any]) -> list[str]:
        """What a host's fingerprint says that contradicts the environment's declared layer (``inventory check``)."""
        return virtualization_findings(env.vmm, facts.get("virtualization") or {}, detected_names(env.vmm))


def virtualization_findings(vmm: str, virt: dict[str, Any], detected: tuple[str, ...]) -> list[str]:
    """Findings when the declared ``vmm`` and what the host detects disagree (``detected``: names it may report)."""
    vm = virt.get("vm")
    if vmm == "unknown":  # the inventory makes no claim (e.g. the embedded default): nothing to compare
        return []
    if vmm == "container":
        return ["inventory says container but host reports none"] if virt.get("container") in (None, "none") else []
    if vmm == "none":
        return [f"inventory says bare metal (vmm {vmm!r}) but host reports a VM ({vm})"] if virt.get("is_vm") else []
    if vm in (None, "none"):
        return [f"inventory says vmm {vmm!r} but host reports no virtual machine"]
    if not any(name in str(vm).lower() for name in detected or (vmm,)):
        return [f"inventory says vmm {vmm!r} but host reports {vm!r}"]
    return []


#: The environment kinds (``vhpclib.providers`` fills it with the built-in ones, lazily; plugins register theirs).
PROVIDERS: Registry[EnvironmentProvider] = Registry("environment provider", "provider")


def vmm_names() -> dict[str, tuple[str, ...]]:
    """Every ``vmm`` an inventory may declare, with what a host's detection reports for it."""
    out: dict[str, tuple[str, ...]] = {}
    for _, provider in PROVIDERS.items():
        for vmm, names in provider.vmms.items():
            out.setdefault(vmm, names)
    return out


def detected_names(vmm: str) -> tuple[str, ...]:
    """What ``systemd-detect-virt``/lscpu may report for a declared ``vmm`` (empty: compare the name itself)."""
    return vmm_names().get(vmm, ())
