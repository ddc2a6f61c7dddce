"""The ``slurm:`` section of an environment: where and how vhpc submits its batch jobs.

Every value ends up on an ``#SBATCH`` line or a Slurm command line, so each is
checked here against Slurm's own syntax (time limits as ``sbatch --time`` takes
them, names without blanks or quotes) before anything is submitted. Values are
still shell-quoted where they are used.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config import HostSpec

#: Debian's (libpmi2-0) PMI-2 client library: what Intel MPI loads to talk to ``srun --mpi=pmi2``.
DEBIAN_PMI2_LIBRARY = "/usr/lib/x86_64-linux-gnu/libpmi2.so.0"
MPI_MODES = ("srun-pmi2", "srun-pmix", "mpirun")

# sbatch --time: "minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours",
# "days-hours:minutes" and "days-hours:minutes:seconds" (sbatch(1)); plus no limit at all.
_TIME_FORMATS = (
    re.compile(r"^\d+$"),
    re.compile(r"^\d+:\d{1,2}$"),
    re.compile(r"^\d+:\d{1,2}:\d{1,2}$"),
    re.compile(r"^\d+-\d{1,2}$"),
    re.compile(r"^\d+-\d{1,2}:\d{1,2}$"),
    re.compile(r"^\d+-\d{1,2}:\d{1,2}:\d{1,2}$"),
)
_UNLIMITED = ("UNLIMITED", "INFINITE")
# Partition, account and QOS names: what Slurm lets an administrator create, nothing a shell or
# sbatch's own #SBATCH tokenizer would read specially.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
# Node features with Slurm's constraint operators: & | , * [ ] ( ) and counts.
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.&|,*\[\]():!-]+$")
_OPTION = re.compile(r"^(--[A-Za-z][A-Za-z0-9-]*(=.*)?|-[A-Za-z].*)$")
# Options vhpc writes itself: from dedicated settings, or what it needs to find the job's output.
_OWNED = {
    "--output": "vhpc sends output into the run folder", "-o": "vhpc sends output into the run folder",
    "--error": "vhpc sends errors into the run folder", "-e": "vhpc sends errors into the run folder",
    "--parsable": "vhpc reads the job id", "--wrap": "vhpc writes the job script",
    "--job-name": "vhpc names each job after its run", "-J": "vhpc names each job after its run",
    "--chdir": "vhpc runs each job in its job folder", "-D": "vhpc runs each job in its job folder",
    "--partition": "use the 'partition' setting", "-p": "use the 'partition' setting",
    "--account": "use the 'account' setting", "-A": "use the 'account' setting",
    "--qos": "use the 'qos' setting", "-q": "use the 'qos' setting",
    "--time": "use the 'time_limit' setting", "-t": "use the 'time_limit' setting",
    "--constraint": "use the 'constraint' setting", "-C": "use the 'constraint' setting",
    "--nodes": "use the 'nodes' setting", "-N": "use the 'nodes' setting",
    "--ntasks-per-node": "use the 'ntasks_per_node' setting",
    "--ntasks": "the number of ranks comes from the stage", "-n": "the number of ranks comes from the stage",
    "--wait": "vhpc waits for the job itself", "-W": "vhpc waits for the job itself",
    "--array": "vhpc submits one job per run", "-a": "vhpc submits one job per run",
}


def check_time_limit(value: str) -> str:
    """Accept exactly the time formats ``sbatch --time`` documents, and UNLIMITED/INFINITE."""
    text = value.strip()
    if text.upper() in _UNLIMITED:
        return text.upper()
    if any(p.match(text) for p in _TIME_FORMATS):
        return text
    raise ValueError(f"not a Slurm time limit: {value!r} (use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, "
                     f"D-HH:MM:SS or UNLIMITED)")


def time_limit_minutes(value: str) -> int | None:
    """The limit in whole minutes as Slurm rounds it (seconds round up); None when unlimited."""
    text = check_time_limit(value)
    if text in _UNLIMITED:
        return None
    days, _, clock = text.rpartition("-") if "-" in text else ("0", "", text)
    parts = [int(p) for p in clock.split(":")]
    if "-" in text:  # D-HH[:MM[:SS]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 1:
        hours, minutes, seconds = 0, parts[0], 0
    elif len(parts) == 2:
        hours, minutes, seconds = 0, parts[0], parts[1]
    else:
        hours, minutes, seconds = parts
    total_s = ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    return -(-total_s // 60)


def check_sbatch_arg(arg: str) -> str:
    """One extra sbatch option: one token (``--name=value`` or ``-x``), nothing vhpc sets itself."""
    if not isinstance(arg, str) or not _OPTION.match(arg):
        raise ValueError(f"not an sbatch option (write each as one item like '--exclusive' or "
                         f"'--mem=4G'): {arg!r}")
    if any(ord(c) < 32 or c == "\\" for c in arg):
        raise ValueError(f"sbatch option contains a control character or backslash: {arg!r}")
    name = arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]
    if name in _OWNED:
        raise ValueError(f"sbatch option {name} is set by vhpc ({_OWNED[name]}): {arg!r}")
    if arg.startswith("--") and any(c.isspace() for c in name):
        raise ValueError(f"sbatch option name contains a blank: {arg!r}")
    return arg


class SlurmSettings(BaseModel):
    """How an environment's jobs go through Slurm (the inventory's ``slurm:`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition: str | None = Field(None, description="Partition (sbatch --partition); none: the cluster's default "
                                  "partition.")
    account: str | None = Field(None, description="Account charged (sbatch --account); none: the user's default.")
    qos: str | None = Field(None, description="Quality of service (sbatch --qos); none: the default.")
    time_limit: str | None = Field(None, description="Job time limit in sbatch --time syntax (quoted, e.g. "
                                   "'1:00:00'); none: the run's timeout plus a margin, or the partition's default.")
    constraint: str | None = Field(None, description="Node features (sbatch --constraint), with Slurm's & | , "
                                   "[ ] ( ) * operators.")
    nodes: int | None = Field(None, ge=1, description="Nodes of a job that names no count; the launcher's jobs "
                              "always name theirs (the run's placement).")
    ntasks_per_node: int | None = Field(None, ge=1, description="Tasks per node of a job that names no count.")
    sbatch_args: list[Annotated[str, AfterValidator(check_sbatch_arg)]] = Field(
        default_factory=list, description="Further sbatch options (not those vhpc sets itself, e.g. --output).")
    mpi_mode: Literal["srun-pmi2", "srun-pmix", "mpirun"] = Field(
        "srun-pmi2", description="How ranks start: srun --mpi=pmi2 or pmix (Slurm binds them), or the MPI's own "
        "mpirun inside the allocation.")
    submission: Literal["batch", "allocation"] = Field(
        "batch", description="How a job is submitted: batch (sbatch; Slurm starts it on its next scheduling "
        "pass, up to ~1 s later) or allocation (salloc running the same script on the submit host: nodes "
        "allocated at once when free). Either way vhpc waits for each run's job.")
    pmi_library: str = Field(DEBIAN_PMI2_LIBRARY, description="PMI client library Intel MPI loads under srun "
                             "(I_MPI_PMI_LIBRARY), an absolute path on the compute nodes.")
    poll_interval_s: float = Field(5.0, ge=0.1, le=600, description="Longest gap between two squeue polls.")
    pending_limit_s: float | None = Field(None, gt=0, description="Cancel a job pending longer than this; none: "
                                          "wait.")
    submit_host: HostSpec | None = Field(None, description="Where sbatch runs; none: the environment's launch "
                                         "host.")
    slurm_conf: str | None = Field(None, description="SLURM_CONF for the Slurm commands on the submit host; none: "
                                   "the host's own configuration.")
    job_dir: str = Field("vhpc-jobs", description="Folder on the submit host, shared with the compute nodes, for "
                         "job scripts and output; relative to the submit user's home folder.")

    @field_validator("partition", "account", "qos")
    @classmethod
    def _slurm_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(f"not a Slurm name (letters, digits, '_', '.', '+', '-'): {value!r}")
        return value

    @field_validator("constraint")
    @classmethod
    def _constraint_syntax(cls, value: str | None) -> str | None:
        if value is not None and not _CONSTRAINT.match(value):
            raise ValueError(f"not a Slurm constraint (features joined by & | , with [ ] ( ) *): {value!r}")
        return value

    @field_validator("time_limit", mode="before")
    @classmethod
    def _time_limit_syntax(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, str):
            # YAML reads an unquoted 1:00:00 as the number 3600 (base 60): a number is ambiguous.
            raise ValueError(f"write the time limit as a quoted string such as '30' (minutes) or "
                             f"'1:00:00'; got the number {value!r} (unquoted, YAML reads 1:00:00 as 3600)")
        return check_time_limit(value)

    @field_validator("pmi_library", "slurm_conf")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or any(ord(c) < 32 for c in value)):
            raise ValueError(f"must be an absolute path: {value!r}")
        return value

    @field_validator("job_dir")
    @classmethod
    def _job_dir(cls, value: str) -> str:
        if not value or any(ord(c) < 32 or c.isspace() for c in value) or value.startswith("~"):
            # no blanks: Slurm's job completion file (sacct --completion) splits records on them
            raise ValueError(f"must be a path without blanks (absolute, or relative to the submit user's "
                             f"home): {value!r}")
        return value

    @model_validator(mode="after")
    def _pmix_library(self) -> "SlurmSettings":
        if self.mpi_mode == "srun-pmix" and "pmi_library" not in self.model_fields_set:
            raise ValueError("mpi_mode srun-pmix needs pmi_library: the PMIx library on the compute nodes "
                             "(e.g. /usr/lib/x86_64-linux-gnu/libpmix.so.2)")
        return self
