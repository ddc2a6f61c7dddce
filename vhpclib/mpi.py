"""MPI flavours (Intel MPI, Open MPI, MPICH) as a registry, and the runtime of an environment.

A flavour is the one place that knows its own flags: how ranks are placed and
pinned, how a hostfile looks, how the library reports its version and the
placement it applied. Everything here builds argv lists and environment
dictionaries; running them is the executors' job. A new flavour is one class
registered with ``@register_flavour``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from .config import Environment, default_mpi_prefix
from .registry import Registry

if TYPE_CHECKING:
    from .parsers.impi_pinmap import PinEntry

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class LaunchSpec:
    """What to launch: ranks, hosts, and where each rank (and its threads) should run.

    ``cpus`` pins node-local rank i to logical CPU ``cpus[i]``; ``threads_per_proc`` > 1
    gives every rank a domain of that many cores for its OpenMP threads.
    """

    nprocs: int
    hosts: tuple[str, ...] = ()
    ppn: int | None = None
    cpus: tuple[int, ...] | None = None
    threads_per_proc: int = 1
    hostfile: str | None = None
    report_binding: bool = True
    single_node_fabric: bool = True  # Intel MPI: shared memory only when all ranks share a node
    # Per-host pinning (host, cpus of its local ranks): launched as one MPMD segment per host, for
    # placements where hosts share one machine (namespaces) and must not share a core.
    host_cpus: tuple[tuple[str, tuple[int, ...]], ...] | None = None

    @property
    def multi_node(self) -> bool:
        return len(set(self.hosts)) > 1


def _cpu_list(cpus: tuple[int, ...]) -> str:
    return ",".join(str(c) for c in cpus)


class MpiFlavour:
    """Base of the flavours: the behaviour Hydra-based MPIs share; subclasses override what differs."""

    name: ClassVar[str]

    def runtime_env(self, prefix: Path) -> dict[str, str]:
        """Variables every command of this MPI needs (a fixed PATH with the MPI's bin first)."""
        return {"PATH": f"{prefix / 'bin'}:{SYSTEM_PATH}"}

    def build_env(self, prefix: Path) -> dict[str, str]:
        """Extra variables a compiler wrapper of this MPI needs."""
        return {}

    def placement(self, spec: LaunchSpec) -> tuple[list[str], dict[str, str]]:
        """Rank count, hosts and pinning as arguments and variables."""
        argv = ["-n", str(spec.nprocs)]
        if spec.ppn:
            argv += ["-ppn", str(spec.ppn)]
        if spec.hostfile:
            argv += ["-f", spec.hostfile]
        elif spec.hosts:
            argv += ["-hosts", ",".join(dict.fromkeys(spec.hosts))]
        return argv, {}

    def mpmd_common(self, spec: LaunchSpec) -> tuple[list[str], dict[str, str]]:
        """Arguments and variables before the first segment of a per-host (MPMD) launch."""
        return [], {}

    def mpmd_segment(self, host: str, cpus: tuple[int, ...]) -> list[str]:
        return ["-hosts", host, "-n", str(len(cpus)), "-bind-to", "user:" + _cpu_list(cpus)]

    def hostfile_text(self, hosts: list[str] | tuple[str, ...], slots: int) -> str:
        """A machinefile in the flavour's own format, one line per host."""
        return "".join(f"{h}:{slots}\n" for h in hosts)

    def version_command(self, mpirun: str) -> str:
        return f"{shlex.quote(mpirun)} --version 2>/dev/null | head -n 1"

    def pin_map(self, stdout: str, file: str = "<text>") -> list[PinEntry] | None:
        """The placement the library printed; None when this flavour prints no map we can read.

        Raises ``ParseError`` when a printed map is damaged.
        """
        return None


FLAVOURS: Registry[MpiFlavour] = Registry("MPI flavour", "mpi.flavour")


register_flavour = FLAVOURS.register_class  # class decorator: one instance available under ``cls.name``


flavour = FLAVOURS.get
flavour_names = FLAVOURS.names


@register_flavour
class IntelMpi(MpiFlavour):
    name = "intel"

    def runtime_env(self, prefix: Path) -> dict[str, str]:
        # impi-rt's IMB-MPI1 needs libmpi.so.12 from <prefix>/lib.
        return {**super().runtime_env(prefix), "LD_LIBRARY_PATH": str(prefix / "lib")}

    def build_env(self, prefix: Path) -> dict[str, str]:
        # The impi-devel wheel's mpif90 has no install prefix of its own.
        return {"I_MPI_ROOT": str(prefix)}

    def placement(self, spec: LaunchSpec) -> tuple[list[str], dict[str, str]]:
        argv, env = super().placement(spec)
        if spec.report_binding:
            env["I_MPI_DEBUG"] = "4"  # prints the pin map we verify
        if spec.cpus is not None:
            env.update({"I_MPI_PIN": "1", "I_MPI_PIN_PROCESSOR_LIST": _cpu_list(spec.cpus)})
        elif spec.threads_per_proc > 1:
            env.update({"I_MPI_PIN": "1", "I_MPI_PIN_DOMAIN": "omp"})
        if not spec.multi_node and spec.single_node_fabric:
            env["I_MPI_FABRICS"] = "shm"
        return argv, env

    def mpmd_common(self, spec: LaunchSpec) -> tuple[list[str], dict[str, str]]:
        env = {"I_MPI_PIN": "1"}
        if spec.report_binding:
            env["I_MPI_DEBUG"] = "4"
        return [], env

    def mpmd_segment(self, host: str, cpus: tuple[int, ...]) -> list[str]:
        return ["-host", host, "-n", str(len(cpus)), "-env", "I_MPI_PIN_PROCESSOR_LIST", _cpu_list(cpus)]

    def version_command(self, mpirun: str) -> str:
        return f"{shlex.quote(mpirun)} -V 2>/dev/null | head -n 1"

    def pin_map(self, stdout: str, file: str = "<text>") -> list[PinEntry] | None:
        from .parsers.impi_pinmap import parse_pin_map

        return parse_pin_map(stdout, file)


@register_flavour
class OpenMpi(MpiFlavour):
    name = "openmpi"

    def runtime_env(self, prefix: Path) -> dict[str, str]:
        return {**super().runtime_env(prefix), "LD_LIBRARY_PATH": str(prefix / "lib")}

    def placement(self, spec: LaunchSpec) -> tuple[list[str], dict[str, str]]:
        argv = ["-np", str(spec.nprocs)]
        if spec.hostfile:
            argv += ["--hostfile", spec.hostfile]
        elif spec.hosts:
            argv += ["--host", ",".join(f"{h}:{spec.ppn or spec.nprocs}" for h in dict.fromkeys(spec.hosts))]
        if spec.cpus is not None:
            argv += ["--cpu-set", _cpu_list(spec.cpus), "--bind-to", "core"]
        elif spec.threads_per_proc > 1:
            ppr = f"ppr:{spec.ppn}:node:" if spec.ppn else "slot:"
            argv += ["--map-by", f"{ppr}PE={spec.threads_per_proc}", "--bind-to", "core"]
        elif spec.ppn:
            argv += ["--map-by", f"ppr:{spec.ppn}:node", "--bind-to", "core"]
        if spec.report_binding:
            argv += ["--report-bindings"]
        for name in ("OMP_NUM_THREADS", "OMP_PLACES", "OMP_PROC_BIND"):
            argv += ["-x", name]  # Open MPI forwards only what it is told to
        return argv, {}

    def mpmd_common(self, spec: LaunchSpec) -> tuple[list[str], dict[str, str]]:
        return (["--report-bindings"] if spec.report_binding else []), {}

    def mpmd_segment(self, host: str, cpus: tuple[int, ...]) -> list[str]:
        return ["--host", f"{host}:{len(cpus)}", "-np", str(len(cpus)), "--cpu-set", _cpu_list(cpus),
                "--bind-to", "core"]

    def hostfile_text(self, hosts: list[str] | tuple[str, ...], slots: int) -> str:
        return "".join(f"{h} slots={slots}\n" for h in hosts)


@register_flavour
class Mpich(MpiFlavour):
    name = "mpich"

    def placement(self, spec: LaunchSpec) -> tuple[list[str], dict[str, str]]:
        argv, env = super().placement(spec)
        if spec.cpus is not None:
            argv += ["-bind-to", "user:" + _cpu_list(spec.cpus)]
        elif spec.threads_per_proc > 1:
            argv += ["-bind-to", f"core:{spec.threads_per_proc}"]
        return argv, env


@dataclass(frozen=True)
class MpiRuntime:
    """Where an environment's MPI lives and the variables it needs to run."""

    flavour: str
    prefix: Path
    mpirun: str
    options: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def impl(self) -> MpiFlavour:
        return flavour(self.flavour)

    def binary(self, name: str) -> str:
        return str(self.prefix / "bin" / name)


def runtime_for(environment: Environment) -> MpiRuntime:
    """The MPI of an environment: its inventory ``mpi`` section, or this venv's impi-rt."""
    spec = environment.mpi
    prefix = Path(spec.prefix) if spec.prefix else default_mpi_prefix()
    mpirun = spec.mpirun or str(prefix / "bin" / "mpirun")
    # A fixed PATH: mpirun scripts find their launcher through it, and a run record with a
    # fixed PATH does not depend on the shell it was started from.
    env = flavour(spec.flavour).runtime_env(prefix)
    env.update(spec.env)
    return MpiRuntime(spec.flavour, prefix, mpirun, tuple(spec.options), env)


def hostfile_text(flavour_name: str, hosts: list[str] | tuple[str, ...], slots: int) -> str:
    return flavour(flavour_name).hostfile_text(hosts, slots)


def build_launch(runtime: MpiRuntime, spec: LaunchSpec, program: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment variables launching ``program`` as ``spec`` says."""
    impl = runtime.impl
    merged = dict(runtime.env)
    if spec.host_cpus:  # one ``host : host`` segment per host, each with its own pinning (colon MPMD syntax)
        argv, env = impl.mpmd_common(spec)
        merged.update(env)
        merged["OMP_NUM_THREADS"] = str(spec.threads_per_proc)
        out = [runtime.mpirun, *runtime.options, *argv]
        for index, (host, cpus) in enumerate(spec.host_cpus):
            out += ([":"] if index else []) + impl.mpmd_segment(host, cpus) + program
        return out, merged
    argv, env = impl.placement(spec)
    merged.update(env)
    merged["OMP_NUM_THREADS"] = str(spec.threads_per_proc)
    if spec.threads_per_proc > 1:
        merged.update({"OMP_PLACES": "cores", "OMP_PROC_BIND": "close"})
    return [runtime.mpirun, *runtime.options, *argv, *program], merged


def shell_command(argv: list[str]) -> str:
    """One shell-safe command line from an argv list."""
    return " ".join(shlex.quote(a) for a in argv)


def version_command(runtime: MpiRuntime) -> str:
    """A command printing the MPI library version on a host."""
    return runtime.impl.version_command(runtime.mpirun)

