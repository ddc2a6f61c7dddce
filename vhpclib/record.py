"""The run record (``run.json``): one typed document per run, built in one place, read back through the same type.

Version 2 is what vHPC writes. Version-1 records (written before the record was
typed, e.g. the committed campaign ``embedded``) are read unchanged from disk and
mapped field by field into the same model, so every reader sees one shape.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .names import Stage

SCHEMA_VERSION = 2

Status = Literal["complete", "invalid", "skipped", "failed"]
COMPLETE, INVALID, SKIPPED, FAILED = "complete", "invalid", "skipped", "failed"
#: Statuses that count as a measured repetition (an invalid run was measured, then rejected).
MEASURED = (COMPLETE, INVALID)

_REPETITION = re.compile(r"^(?P<stem>.+)-r(?P<rep>\d+)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvironmentSummary(_Model):
    """What a run keeps of its environment's inventory entry, and what its provider read back at the run."""

    label: str
    vmm: str = "unknown"
    baseline: bool = False
    vcpu_pinning: str = "unknown"
    launcher: str = "mpirun"
    # Records written before providers kept a guest's vCPU map here; newer ones keep it in ``facts``.
    vcpu_map: dict[str, list[int]] | None = None
    #: The environment's provider (``host``, ``vm``...); None in records written before providers.
    provider: str | None = None
    #: What the provider read back at this run (``run_facts``: a guest's vCPU map, the layer seen inside...).
    facts: dict[str, Any] | None = None


class LaunchRecord(_Model):
    nprocs: int
    ppn: int | None = None
    hosts: list[str] = Field(default_factory=list)
    cpus: list[int] | None = None
    threads_per_proc: int = 1


class MpiRecord(_Model):
    flavour: str
    prefix: str
    mpirun: str


class Contention(_Model):
    """Other processes busy on the launch host while the job ran (``vhpclib.contention``)."""

    host: str
    threshold: float
    busy: list[dict[str, Any]] = Field(default_factory=list)
    #: Processes of the job still running after its launcher ended (killed by vhpc).
    leftovers: list[int] = Field(default_factory=list)


class Interference(_Model):
    """What else used the launch host while the job ran (``vhpclib.interference``): before/after deltas."""

    host: str
    wall_s: float
    cpus: int
    #: Non-idle CPU time of the whole machine over the run (s, all CPUs).
    busy_s: float
    #: Time the hypervisor ran something else while a vCPU wanted to run (s, all CPUs), and its share.
    steal_s: float
    steal_share: float | None = None
    #: CPU time of the job's process tree (s), and of every other process: busy minus the job's.
    job_cpu_s: float | None = None
    other_cpu_s: float | None = None
    #: ``other_cpu_s`` over the CPUs' capacity during the run (cpus x wall): what the analysis rule reads.
    other_share: float | None = None
    load_before: list[float] = Field(default_factory=list)
    load_after: list[float] = Field(default_factory=list)
    #: Involuntary / voluntary context switches of the job's processes (None where not readable).
    job_nivcsw: int | None = None
    job_nvcsw: int | None = None
    cpu_mhz_before: list[float] | None = None
    cpu_mhz_after: list[float] | None = None


class Injected(_Model):
    """A known slowdown's accounting (``vhpclib.injector``): what the job's cgroup counted over the run."""

    version: int
    group: str
    period_us: int
    quota_us: int | None = None
    nr_periods: int
    nr_throttled: int
    throttled_s: float
    usage_s: float
    #: The injected overhead measured: CPU time held back / CPU time used, in %.
    overhead_pct: float | None = None
    throttled_share: float | None = None
    exit_status: int | None = None


class Execution(_Model):
    """How the job ran: the command line a user could paste, where, when, and how it ended."""

    launcher: str = "mpirun"
    command: str = ""
    argv: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    launch: LaunchRecord | None = None
    launch_host: str | None = None
    hosts: list[str] = Field(default_factory=list)
    mpi: MpiRecord | None = None
    started_utc: str | None = None
    ended_utc: str | None = None
    duration_s: float | None = None
    exit_status: int | None = None
    timeout_s: float | None = None
    #: Why the job did not run to a normal end, in the launcher's words (e.g. the Slurm state); None otherwise.
    failure: str | None = None
    scheduler: dict[str, Any] | None = None
    #: True when vhpc stopped the job (timeout, signal, error) rather than the job ending by itself.
    killed: bool = False
    #: ``VHPC_JOB`` of every process of the job (how its ranks are found on any host).
    job_tag: str | None = None
    #: Where the job ran on an SSH launch host (removed after its logs were fetched).
    remote_dir: str | None = None
    contention: Contention | None = None
    interference: Interference | None = None
    injected: Injected | None = None


class PinRow(_Model):
    rank: int
    pid: int
    node: str
    cpus: list[int]


class PinCheck(_Model):
    """The placement MPI reported (its pin map) and whether it matches what the run asked for."""

    pin_map: list[PinRow] | None = None
    verification: str


class CodeVersion(_Model):
    vhpclib: str
    git_commit: str | None = None
    git_dirty: bool | None = None


class ResultSummary(_Model):
    """What extraction produced, kept in the record so a run can be judged without opening result.json."""

    table: str
    rows: int
    warnings: list[str] = Field(default_factory=list)


class RunRecord(_Model):
    schema_version: Literal[2] = SCHEMA_VERSION
    run_id: str
    campaign: str
    environment: str
    stage: str
    kind: Literal["run", "skip", "build"] = "run"
    status: Status = COMPLETE
    reasons: list[str] = Field(default_factory=list)
    workload: str | None = None
    point: dict[str, Any] = Field(default_factory=dict)
    repetition: int | None = None
    environment_spec: EnvironmentSummary | None = None
    execution: Execution | None = None
    pinning: PinCheck | None = None
    host_facts: dict[str, dict[str, Any]] = Field(default_factory=dict)
    topology: dict[str, int] | None = None
    lscpu: str | None = None
    result: ResultSummary | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    code: CodeVersion | None = None
    files: list[str] = Field(default_factory=list)
    #: Stored files in which secret values the run was given were replaced by ``***redacted***`` (file -> count).
    redactions: dict[str, int] = Field(default_factory=dict)
    #: 1 when this record was read from a version-1 ``run.json`` (not written to disk).
    source_schema: int = Field(default=SCHEMA_VERSION, exclude=True)

    @property
    def label(self) -> str:
        return self.environment_spec.label if self.environment_spec else self.environment

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    @property
    def stem(self) -> str:
        """The run id without its repetition suffix: what identifies a point across repetitions."""
        m = _REPETITION.match(self.run_id)
        return m["stem"] if m else self.run_id

    @property
    def duration_s(self) -> float | None:
        return self.execution.duration_s if self.execution else None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def split_run_id(run_id: str) -> tuple[str, int | None]:
    """``("pingpong-intra-socket-m0-22", 3)`` for ``pingpong-intra-socket-m0-22-r03``."""
    m = _REPETITION.match(run_id)
    return (m["stem"], int(m["rep"])) if m else (run_id, None)


def parse_record(data: Any) -> RunRecord:
    """A record from ``run.json`` data of either schema version (raises ValueError when neither fits)."""
    if not isinstance(data, dict):
        raise ValueError(f"run record is a {type(data).__name__}, not a mapping")
    version = data.get("schema_version", 1)
    if version == SCHEMA_VERSION:
        return RunRecord.model_validate(data)
    if version == 1:
        return RunRecord.model_validate(from_v1(data))
    raise ValueError(f"unknown run record schema_version {version!r}")


# ------------------------------------------------------------------ version 1

_V1_EXECUTION = ("command", "argv", "env", "launch", "launch_host", "hosts", "mpi", "started_utc", "ended_utc",
                 "duration_s", "exit_status", "timeout_s")
_V1_TOP = ("run_id", "campaign", "environment", "stage", "status", "schema_version", "code", "files",
           "host_facts", "topology", "lscpu", "environment_spec", "repetition", "pin_map", "pin_verification",
           "invalid_reason", "reason", "what", "placement", "app_run", "workload", "params_tag", "kind", "error")
_V1_NPB_WORKLOADS = {"sp-mz", "bt-mz", "lu-mz", "mz-demo"}


def _v1_workload(data: dict[str, Any]) -> str | None:
    app = data.get("app_run") or {}
    name = app.get("workload") or data.get("workload")
    if name:
        return "npb" if name in _V1_NPB_WORKLOADS else name
    if data.get("kind") == "npb-build":
        return "npb"
    if data.get("stage") == Stage.MICROBENCH:
        return "pingpong"
    what = str(data.get("what") or "")
    return "npb" if what.startswith("NPB") else None


def _v1_point(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("app_run"):
        return dict(data["app_run"])
    point: dict[str, Any] = {}
    placement = data.get("placement") or {}
    if placement:
        point.update({"placement": placement.get("name"), "cpus": placement.get("cpus"),
                      "hosts": placement.get("hosts")})
        point = {k: v for k, v in point.items() if v is not None}
    if data.get("params_tag"):
        point["params_tag"] = data["params_tag"]
    if data.get("what") and "placement" not in point:
        point["what"] = data["what"]
    return point


def _v1_execution(data: dict[str, Any]) -> dict[str, Any] | None:
    if "command" not in data and "exit_status" not in data:
        return None
    out = {k: data[k] for k in _V1_EXECUTION if k in data and data[k] is not None}
    out.setdefault("command", "")
    if "launch" in out:
        out["launch"] = {k: v for k, v in out["launch"].items() if k in LaunchRecord.model_fields}
    return out


def _v1_reasons(data: dict[str, Any]) -> list[str]:
    for key in ("invalid_reason", "reason", "error"):
        if data.get(key):
            return [str(data[key])]
    if data.get("status") == FAILED and data.get("exit_status") is not None:
        return [f"exit status {data['exit_status']}"]
    return []


def from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Map a version-1 record onto the version-2 fields (pure; the file on disk is never touched)."""
    status = data.get("status", COMPLETE)
    kind = "build" if data.get("kind") == "npb-build" else "skip" if status == SKIPPED else "run"
    spec = data.get("environment_spec") or {}
    pinning = None
    if "pin_verification" in data or data.get("pin_map"):
        pinning = {"pin_map": data.get("pin_map"), "verification": str(data.get("pin_verification"))}
    extra = {k: v for k, v in data.items() if k not in _V1_TOP and k not in _V1_EXECUTION}
    if kind == "build":  # a build's own fields stay where load_build reads them
        extra.update({k: data[k] for k in _V1_EXECUTION if k in data})
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": data["run_id"], "campaign": data["campaign"], "environment": data["environment"],
        "stage": data["stage"], "kind": kind, "status": status, "reasons": _v1_reasons(data),
        "workload": _v1_workload(data), "point": _v1_point(data), "repetition": data.get("repetition"),
        "environment_spec": ({"label": spec.get("label") or data["environment"],
                              **{k: spec[k] for k in ("vmm", "baseline", "vcpu_pinning") if k in spec}}
                             if spec else None),
        "execution": None if kind == "build" else _v1_execution(data),
        "pinning": pinning,
        "host_facts": data.get("host_facts") or {}, "topology": data.get("topology"), "lscpu": data.get("lscpu"),
        "extra": extra, "code": data.get("code"), "files": data.get("files") or [], "source_schema": 1,
    }


def summarize_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """The host facts a run record carries inline (the full fingerprint is referenced)."""
    keep = ("hostname", "kernel", "os", "topology", "virtualization", "mpi_version", "clocksource")
    summary = {k: facts.get(k) for k in keep}
    summary["cpu_model"] = (facts.get("cpu") or {}).get("model")
    summary["rdma_devices"] = [d.get("name", d) if isinstance(d, dict) else d
                               for d in (facts.get("rdma") or {}).get("devices", [])]
    return summary
