"""Launchers: how a job's ranks are started (mpirun on a launch host today; a scheduler next).

A launcher is one class registered with ``@register_launcher``; an environment
names it in the inventory (``launcher: mpirun``). The stage loop hands it a
``Job`` and the run's temporary folder; the launcher runs the job, brings its
output into the folder and returns how it ran (an ``Execution``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel

from ..mpi import LaunchSpec
from ..registry import Registry

if TYPE_CHECKING:
    from ..config import Environment, HostSpec
    from ..mpi import MpiRuntime
    from ..record import Execution
    from ..remote import Executor
    from ..store import RunWriter


@dataclass(frozen=True)
class Job:
    """One MPI launch: what to run, where, and how it is placed."""

    program: list[str]
    launch: LaunchSpec
    env: Mapping[str, str] | None = None
    timeout_s: float | None = None
    # Files the program writes into its working folder that belong in the run folder (e.g. a JSON result).
    outputs: tuple[str, ...] = ()
    # Facts decided when the job was built that identify the point further (e.g. the cores chosen).
    point: Mapping[str, Any] = field(default_factory=dict)
    # Workload facts the run record keeps beside the point (e.g. the NPB binary and its build).
    record: Mapping[str, Any] = field(default_factory=dict)


class LaunchTarget(Protocol):
    """What a launcher needs of the stage: the environment, its MPI, and a way to reach its hosts."""

    env: Environment
    environment: str

    @property
    def runtime(self) -> MpiRuntime: ...

    def executor(self, host: HostSpec) -> Executor: ...


class Launcher(ABC):
    name: ClassVar[str]
    #: The launcher's own inventory section (key: its name, e.g. ``slurm:``), every field described; None: none.
    Section: ClassVar[type[BaseModel] | None] = None
    #: Whether an environment using this launcher must carry its section (at least ``<name>: {}``).
    section_required: ClassVar[bool] = False

    def wrapped(self, target: LaunchTarget, host: HostSpec, command: str) -> str:
        """``command`` as the environment's provider runs it on ``host`` (inside its layer)."""
        from ..providers import provider_for

        return provider_for(target.env).wrap(target.env, host, command)

    def host_facts(self, ctx: Any, hosts: list[HostSpec]) -> dict[str, dict[str, Any]] | None:
        """Host facts when the launcher's system gathers them itself (None: every host is fingerprinted over
        its executor, the default)."""
        return None

    def inventory_rows(self, env: Environment, pool: Any, timeout: float | None, answered: Any,
                       unanswered: Any) -> list[Any] | None:
        """``vhpc inventory check`` rows when the launcher's system answers for the hosts (None: SSH fan-out);
        the check's own ``answered(host, outcome)`` and ``unanswered(label, reason)`` make them."""
        return None

    def check(self, target: LaunchTarget) -> None:  # noqa: B027 - most launchers have nothing to check up front
        """Refuse, before any run, settings the launcher's system would refuse (``InputError``); default: none."""

    @abstractmethod
    def launch(self, target: LaunchTarget, job: Job, writer: RunWriter) -> Execution:
        """Run ``job``; its stdout/stderr (and ``job.outputs``) end up in ``writer.path``.

        A job that exits non-zero is returned, not raised (its ``exit_status`` says so);
        ``RemoteError`` means the launch itself could not be carried out.
        """


LAUNCHERS: Registry[Launcher] = Registry("launcher", "launcher")


register_launcher = LAUNCHERS.register_class  # class decorator: one instance available under ``cls.name``


get_launcher = LAUNCHERS.get
launcher_names = LAUNCHERS.names


def section_model(name: str) -> type[BaseModel] | None:
    """The inventory section model of launcher ``name`` (None: not a launcher, or one without a section)."""
    launcher = LAUNCHERS.find(name) if name in LAUNCHERS else None
    return launcher.Section if launcher is not None else None


def sections() -> dict[str, tuple[type[BaseModel], str]]:
    """Every launcher section an inventory may carry: key -> (model, what it sets)."""
    out = {}
    for name, launcher in LAUNCHERS.items():
        if launcher.Section is not None:
            doc = (launcher.Section.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
            need = "needed" if launcher.section_required else "read"
            out[name] = (launcher.Section, f"Settings of launcher `{name}`, {need} with `launcher: {name}`: {doc}")
    return out


# The built-in launchers register themselves when first used (the inventory schema resolves their names
# and sections without importing them).
LAUNCHERS.add_lazy("mpirun", "vhpclib.launchers.mpirun")
LAUNCHERS.add_lazy("slurm", "vhpclib.launchers.slurm")  # vhpc-slurm: one batch job per run
