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


# The built-in launchers register themselves on import (papermill's engines are filled the same way).
from . import mpirun as _mpirun  # noqa: E402,F401
from . import slurm as _slurm  # noqa: E402,F401  (vhpc-slurm: one batch job per run)
