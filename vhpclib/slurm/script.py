"""The sbatch script of one job: ``#SBATCH`` lines from the settings, the MPI launch line for the mode.

Pure text: nothing here runs. Every value is shell-quoted with ``shlex.quote``,
which sbatch's own ``#SBATCH`` tokenizer reads the same way as the shell does
(single quotes group; the settings forbid the backslashes where the two differ).
The script is kept in the run folder, so a run can be resubmitted by hand.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..exceptions import SlurmSettingError
from .settings import SlurmSettings, check_time_limit

SCRIPT_NAME = "job.sbatch"
STDOUT = "stdout.log"
STDERR = "stderr.log"
#: The job's ``SLURM_*`` variables (node list, tasks per node): the task layout Slurm gave it.
LAYOUT = "slurm_env.txt"
_JOB_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Launch = Literal["mpi", "srun", "none"]


@dataclass(frozen=True)
class BatchJob:
    """One batch job: what runs and how many tasks; placement defaults come from the settings.

    ``launch``: ``mpi`` starts ``program`` as MPI ranks the way the settings'
    ``mpi_mode`` says (``srun --mpi=pmi2|pmix`` or the MPI's own ``mpirun`` inside
    the allocation); ``srun`` starts one plain task per slot (no PMI: for
    non-MPI programs such as the fingerprint script); ``none`` runs ``program``
    once in the batch step.
    """

    name: str
    program: tuple[str, ...]
    ntasks: int | None = None  # None: what nodes x ntasks_per_node give
    nodes: int | None = None  # None: settings.nodes
    ntasks_per_node: int | None = None  # None: settings.ntasks_per_node
    cpus_per_task: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)  # exported before the launch line
    launch: Launch = "mpi"
    mpirun: str = "mpirun"  # mpi_mode mpirun: the MPI's mpirun (path on the compute nodes)
    launcher_args: tuple[str, ...] = ()  # extra arguments of srun or mpirun
    time_limit: str | None = None  # None: settings.time_limit
    exclusive: bool = False  # whole nodes (the run names CPUs, which must be free); added unless sbatch_args has it
    # The launch line as the environment's provider runs it (inside its layer); None: as it is.
    inside: Callable[[str], str] | None = None

    def __post_init__(self) -> None:
        if not _JOB_NAME.match(self.name):
            raise SlurmSettingError(f"job name must be letters, digits, '_', '.', '+', '-': {self.name!r}",
                                    key="job.name")
        if not self.program:
            raise SlurmSettingError("a batch job needs a program to run", key="job.program")
        for name in self.env:
            if not _ENV_NAME.match(name):
                raise SlurmSettingError(f"not a valid environment variable name: {name!r}", key="job.env")
        for value in (self.ntasks, self.nodes, self.ntasks_per_node, self.cpus_per_task):
            if value is not None and value < 1:
                raise SlurmSettingError(f"task, node and CPU counts must be at least 1, got {value}",
                                        key="job")
        if self.time_limit is not None:
            try:
                check_time_limit(self.time_limit)
            except ValueError as exc:
                raise SlurmSettingError(str(exc), key="job.time_limit") from None


def _quote(value: object) -> str:
    return shlex.quote(str(value))


def job_options(settings: SlurmSettings, job: BatchJob) -> list[tuple[str, object]]:
    """The job's allocation options (name, settings, counts) as ``(option, value)`` pairs, in order."""
    options: list[tuple[str, object]] = [("--job-name", job.name)]
    for option, value in (("--partition", settings.partition), ("--account", settings.account),
                          ("--qos", settings.qos), ("--time", job.time_limit or settings.time_limit),
                          ("--constraint", settings.constraint),
                          ("--nodes", job.nodes or settings.nodes),
                          ("--ntasks-per-node", job.ntasks_per_node or settings.ntasks_per_node),
                          ("--ntasks", job.ntasks), ("--cpus-per-task", job.cpus_per_task)):
        if value is not None:
            options.append((option, value))
    return options


def extra_args(settings: SlurmSettings, job: BatchJob) -> list[str]:
    """The settings' extra options, and ``--exclusive`` when the job needs whole nodes."""
    extra = list(settings.sbatch_args)
    if job.exclusive and not any(arg.startswith("--exclusive") for arg in extra):
        extra.append("--exclusive")
    return extra


def sbatch_directives(settings: SlurmSettings, job: BatchJob, job_dir: str) -> list[str]:
    """The ``#SBATCH`` lines: settings first, then the job's own counts, output into ``job_dir``."""
    options = job_options(settings, job)
    options += [("--chdir", job_dir), ("--output", f"{job_dir}/{STDOUT}"), ("--error", f"{job_dir}/{STDERR}")]
    lines = [f"#SBATCH {option}={_quote(value)}" for option, value in options]
    lines += [f"#SBATCH {_sbatch_arg(arg)}" for arg in extra_args(settings, job)]
    return lines


def _sbatch_arg(arg: str) -> str:
    if arg.startswith("--") and "=" in arg:
        name, value = arg.split("=", 1)
        return f"{name}={_quote(value)}"
    return _quote(arg)


def launch_env(settings: SlurmSettings, job: BatchJob) -> dict[str, str]:
    """Variables the launch mode itself needs (the PMI library Intel MPI loads under srun)."""
    if job.launch != "mpi" or settings.mpi_mode == "mpirun":
        return {}
    env = {"I_MPI_PMI_LIBRARY": settings.pmi_library}
    if settings.mpi_mode == "srun-pmix":
        env["I_MPI_PMI"] = "pmix"
    return env


def launch_argv(settings: SlurmSettings, job: BatchJob) -> list[str]:
    """The command line starting the job's tasks inside the allocation."""
    program = list(job.program)
    count = ["-n", str(job.ntasks)] if job.ntasks else []
    if job.launch == "none":
        return program
    if job.launch == "srun":
        return ["srun", *count, *job.launcher_args, *program]
    if settings.mpi_mode == "mpirun":
        # Hydra finds the allocation (SLURM_JOB_NODELIST) and starts its proxies through srun.
        per_node = job.ntasks_per_node or settings.ntasks_per_node
        ppn = ["-ppn", str(per_node)] if per_node else []
        return [job.mpirun, *count, *ppn, *job.launcher_args, *program]
    mpi = "pmi2" if settings.mpi_mode == "srun-pmi2" else "pmix"
    return ["srun", f"--mpi={mpi}", *count, *job.launcher_args, *program]


def batch_script(settings: SlurmSettings, job: BatchJob, job_dir: str) -> str:
    """The whole sbatch script of ``job``, writing its output into ``job_dir`` (a folder on the cluster)."""
    env = {**job.env, **launch_env(settings, job)}
    lines = ["#!/bin/bash", *sbatch_directives(settings, job, job_dir),
             f"# Written by vhpc for job {job.name} (launch: {job.launch}, mpi_mode: {settings.mpi_mode}).",
             "set -euo pipefail"]
    for name, value in env.items():
        # PATH: the MPI's folders first, then the job's own PATH (where a cluster keeps srun, e.g. /opt/slurm/bin).
        tail = "${PATH:+:$PATH}" if name == "PATH" else ""
        lines.append(f"export {name}={_quote(value)}{tail}")
    # The task layout Slurm gave the job, and when the launch line started and ended, kept beside the output.
    lines.append(f"VHPC_LAYOUT={_quote(job_dir + '/' + LAYOUT)}")
    lines.append("{ printenv | grep '^SLURM_' || true; } > \"$VHPC_LAYOUT\"")
    lines.append("trap 'vhpc_rc=$?; printf \"VHPC_LAUNCH_END=%s\\nVHPC_LAUNCH_STATUS=%s\\n\" \"$(date +%s.%N)\" "
                 "\"$vhpc_rc\" >> \"$VHPC_LAYOUT\"' EXIT")
    lines.append("echo \"VHPC_LAUNCH_START=$(date +%s.%N)\" >> \"$VHPC_LAYOUT\"")
    line = " ".join(_quote(a) for a in launch_argv(settings, job))
    lines.append(job.inside(line) if job.inside is not None else line)
    return "\n".join(lines) + "\n"
