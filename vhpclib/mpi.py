"""MPI runtimes and launch commands for Intel MPI, Open MPI and MPICH.

The flavours differ in how ranks are placed and pinned; this module is the
one place that knows those flags. It only builds argv lists and environment
dictionaries: running them is the executors' job.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .config import Environment, default_mpi_prefix

FLAVOURS = ("intel", "openmpi", "mpich")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class MpiRuntime:
    """Where an environment's MPI lives and the variables it needs to run."""

    flavour: str
    prefix: Path
    mpirun: str
    options: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def binary(self, name: str) -> str:
        return str(self.prefix / "bin" / name)


def runtime_for(environment: Environment) -> MpiRuntime:
    """The MPI of an environment: its inventory ``mpi`` section, or this venv's impi-rt."""
    spec = environment.mpi
    prefix = Path(spec.prefix) if spec.prefix else default_mpi_prefix()
    mpirun = spec.mpirun or str(prefix / "bin" / "mpirun")
    # A fixed PATH (the MPI's bin first): mpirun scripts find their launcher through it, and a
    # run record with a fixed PATH does not depend on the shell it was started from.
    env: dict[str, str] = {"PATH": f"{prefix / 'bin'}:{SYSTEM_PATH}"}
    if spec.flavour == "intel":
        # impi-rt's IMB-MPI1 needs libmpi.so.12 from <prefix>/lib (RECIPES §2).
        env["LD_LIBRARY_PATH"] = str(prefix / "lib")
    elif spec.flavour == "openmpi":
        env["LD_LIBRARY_PATH"] = str(prefix / "lib")
    env.update(spec.env)
    return MpiRuntime(spec.flavour, prefix, mpirun, tuple(spec.options), env)


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


def hostfile_text(flavour: str, hosts: list[str] | tuple[str, ...], slots: int) -> str:
    """A machinefile in the flavour's own format, one line per host."""
    if flavour == "openmpi":
        return "".join(f"{h} slots={slots}\n" for h in hosts)
    return "".join(f"{h}:{slots}\n" for h in hosts)


def _cpu_list(cpus: tuple[int, ...]) -> str:
    return ",".join(str(c) for c in cpus)


def build_launch(runtime: MpiRuntime, spec: LaunchSpec, program: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment variables launching ``program`` as ``spec`` says."""
    if spec.host_cpus:
        return _mpmd(runtime, spec, program)
    builder = _BUILDERS[runtime.flavour]
    argv, env = builder(runtime, spec)
    merged = dict(runtime.env)
    merged.update(env)
    if spec.threads_per_proc >= 1:
        merged.update({"OMP_NUM_THREADS": str(spec.threads_per_proc)})
        if spec.threads_per_proc > 1:
            merged.update({"OMP_PLACES": "cores", "OMP_PROC_BIND": "close"})
    return [runtime.mpirun, *runtime.options, *argv, *program], merged


def _hydra_placement(spec: LaunchSpec) -> list[str]:
    """Rank count and hosts in the syntax Intel MPI and MPICH share (both launch with Hydra)."""
    argv = ["-n", str(spec.nprocs)]
    if spec.ppn:
        argv += ["-ppn", str(spec.ppn)]
    if spec.hostfile:
        argv += ["-f", spec.hostfile]
    elif spec.hosts:
        argv += ["-hosts", ",".join(dict.fromkeys(spec.hosts))]
    return argv


def _intel(runtime: MpiRuntime, spec: LaunchSpec) -> tuple[list[str], dict[str, str]]:
    argv = _hydra_placement(spec)
    env: dict[str, str] = {}
    if spec.report_binding:
        env["I_MPI_DEBUG"] = "4"  # prints the pin map we verify
    if spec.cpus is not None:
        env.update({"I_MPI_PIN": "1", "I_MPI_PIN_PROCESSOR_LIST": _cpu_list(spec.cpus)})
    elif spec.threads_per_proc > 1:
        env.update({"I_MPI_PIN": "1", "I_MPI_PIN_DOMAIN": "omp"})
    if not spec.multi_node and spec.single_node_fabric:
        env["I_MPI_FABRICS"] = "shm"
    return argv, env


def _openmpi(runtime: MpiRuntime, spec: LaunchSpec) -> tuple[list[str], dict[str, str]]:
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


def _mpich(runtime: MpiRuntime, spec: LaunchSpec) -> tuple[list[str], dict[str, str]]:
    argv = _hydra_placement(spec)
    if spec.cpus is not None:
        argv += ["-bind-to", "user:" + _cpu_list(spec.cpus)]
    elif spec.threads_per_proc > 1:
        argv += ["-bind-to", f"core:{spec.threads_per_proc}"]
    return argv, {}


_BUILDERS = {"intel": _intel, "openmpi": _openmpi, "mpich": _mpich}


def _mpmd(runtime: MpiRuntime, spec: LaunchSpec, program: list[str]) -> tuple[list[str], dict[str, str]]:
    """One ``host : host`` segment per host, each with its own pinning (colon MPMD syntax)."""
    assert spec.host_cpus is not None
    env = dict(runtime.env)
    env["OMP_NUM_THREADS"] = str(spec.threads_per_proc)
    argv = [runtime.mpirun, *runtime.options]
    if runtime.flavour == "intel":
        env["I_MPI_PIN"] = "1"
        if spec.report_binding:
            env["I_MPI_DEBUG"] = "4"
    elif runtime.flavour == "openmpi" and spec.report_binding:
        argv += ["--report-bindings"]
    for index, (host, cpus) in enumerate(spec.host_cpus):
        if index:
            argv.append(":")
        if runtime.flavour == "intel":
            argv += ["-host", host, "-n", str(len(cpus)), "-env", "I_MPI_PIN_PROCESSOR_LIST", _cpu_list(cpus)]
        elif runtime.flavour == "openmpi":
            argv += ["--host", f"{host}:{len(cpus)}", "-np", str(len(cpus)), "--cpu-set", _cpu_list(cpus),
                     "--bind-to", "core"]
        else:
            argv += ["-hosts", host, "-n", str(len(cpus)), "-bind-to", "user:" + _cpu_list(cpus)]
        argv += program
    return argv, env


def shell_command(argv: list[str]) -> str:
    """One shell-safe command line from an argv list."""
    return " ".join(shlex.quote(a) for a in argv)


def version_command(runtime: MpiRuntime) -> str:
    """A command printing the MPI library version on a host."""
    if runtime.flavour == "intel":
        return f"{shlex.quote(runtime.mpirun)} -V 2>/dev/null | head -n 1"
    return f"{shlex.quote(runtime.mpirun)} --version 2>/dev/null | head -n 1"
