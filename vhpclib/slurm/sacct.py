"""``sacct -P -n`` output → typed records, and Slurm job states → run outcomes (pure functions).

Tested on output captured from a real slurmctld (``tests/fixtures/slurm/``).
The same fields come from ``sacct`` (slurmdbd) and ``sacct --completion`` (the
job completion file of a cluster without slurmdbd, which has no step lines).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..exceptions import ParseError

#: What vhpc asks sacct for, in this order (``-o``); Reason last since it is free text.
SACCT_FIELDS = ("JobID", "JobName", "Partition", "Account", "QOS", "State", "ExitCode", "DerivedExitCode",
                "Elapsed", "ElapsedRaw", "Submit", "Start", "End", "NodeList", "NNodes", "AllocCPUS", "NTasks",
                "Timelimit", "Reason")
OK_STATES = frozenset({"COMPLETED"})
#: Final states of a job that did not complete; the state is the failed run's reason.
FAILED_STATES = frozenset({"FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "CANCELLED", "PREEMPTED",
                           "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"})
#: States of a job Slurm is still working on (squeue's and sacct's long names).
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
                           "SUSPENDED", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "STOPPED",
                           "RESV_DEL_HOLD", "POWER_UP_NODE", "UPDATE_DB"})
_EXIT = re.compile(r"^(\d+):(\d+)$")
_ELAPSED = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$")

Outcome = Literal["ok", "failed"]


def state_word(state: str) -> str:
    """``CANCELLED by 0`` → ``CANCELLED``; ``OUT_OF_MEMORY`` stays; blanks → ``UNKNOWN``."""
    return (state.split() or ["UNKNOWN"])[0].rstrip("+").upper()


def is_final(state: str) -> bool:
    return state_word(state) not in ACTIVE_STATES


def outcome_of(state: str) -> tuple[Outcome, str | None]:
    """A finished job's outcome: COMPLETED → ok; any other final state → failed, with that state as reason."""
    word = state_word(state)
    if word in OK_STATES:
        return "ok", None
    if word in ACTIVE_STATES:
        raise ValueError(f"job state {word} is not final")
    return "failed", word if word in FAILED_STATES else f"{word} (state unknown to vhpc)"


def _int(value: str) -> int | None:
    return int(value) if value.strip().isdigit() else None


def _none(value: str) -> str | None:
    value = value.strip()
    return None if value in ("", "Unknown", "None", "(null)") else value


def elapsed_seconds(value: str) -> int | None:
    """``[D-][HH:]MM:SS`` → seconds."""
    m = _ELAPSED.match(value.strip())
    if not m:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


@dataclass(frozen=True)
class SacctRecord:
    """One line of sacct: the job itself, or one of its steps (``123.batch``, ``123.0``)."""

    job_id: str
    job_name: str | None
    partition: str | None
    account: str | None
    qos: str | None
    state: str  # the state word (CANCELLED, not "CANCELLED by 0")
    state_detail: str  # as sacct printed it
    exit_code: int | None
    exit_signal: int | None
    derived_exit_code: str | None
    elapsed: str
    elapsed_s: int | None
    submit: str | None
    start: str | None
    end: str | None
    node_list: str | None
    nnodes: int | None
    alloc_cpus: int | None
    ntasks: int | None
    time_limit: str | None
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobAccounting:
    """Slurm's record of one job: its own line and its steps' lines, and which sacct gave them."""

    job: SacctRecord
    steps: tuple[SacctRecord, ...] = ()
    source: str = "sacct"  # or "sacct --completion"

    @property
    def state(self) -> str:
        return self.job.state

    @property
    def final(self) -> bool:
        return is_final(self.job.state)

    def to_dict(self) -> dict[str, Any]:
        """The ``sacct`` part of a run record."""
        return {"source": self.source, **self.job.to_dict(), "steps": [s.to_dict() for s in self.steps]}


def _record(values: dict[str, str]) -> SacctRecord:
    exit_code = exit_signal = None
    if m := _EXIT.match(values.get("ExitCode", "").strip()):
        exit_code, exit_signal = int(m.group(1)), int(m.group(2))
    elapsed = values.get("Elapsed", "").strip()
    raw_elapsed = _int(values.get("ElapsedRaw", ""))
    return SacctRecord(
        job_id=values["JobID"].strip(), job_name=_none(values.get("JobName", "")),
        partition=_none(values.get("Partition", "")), account=_none(values.get("Account", "")),
        qos=_none(values.get("QOS", "")), state=state_word(values.get("State", "")),
        state_detail=values.get("State", "").strip(), exit_code=exit_code, exit_signal=exit_signal,
        derived_exit_code=_none(values.get("DerivedExitCode", "")), elapsed=elapsed,
        elapsed_s=raw_elapsed if raw_elapsed is not None else elapsed_seconds(elapsed),
        submit=_none(values.get("Submit", "")), start=_none(values.get("Start", "")),
        end=_none(values.get("End", "")), node_list=_none(values.get("NodeList", "")),
        nnodes=_int(values.get("NNodes", "")), alloc_cpus=_int(values.get("AllocCPUS", "")),
        ntasks=_int(values.get("NTasks", "")), time_limit=_none(values.get("Timelimit", "")),
        reason=_none(values.get("Reason", "")))


def parse_sacct(text: str, job_id: str, *, fields: tuple[str, ...] = SACCT_FIELDS, source: str = "sacct",
                file: str = "sacct") -> JobAccounting:
    """The record of ``job_id`` in ``sacct -P -n -o <fields>`` output.

    Lines of other jobs are ignored; a line with the wrong number of fields, or
    no line for the job itself, raises ``ParseError`` naming the line.
    """
    job: SacctRecord | None = None
    steps: list[SacctRecord] = []
    last = len(fields) - 1
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if fields[last] == "Reason" and len(parts) > len(fields):  # a '|' inside the free-text reason
            parts = parts[:last] + ["|".join(parts[last:])]
        if len(parts) != len(fields):
            raise ParseError(f"sacct line has {len(parts)} fields, expected {len(fields)} "
                             f"({','.join(fields)}): {line[:120]!r}", file=file, line=number)
        values = dict(zip(fields, parts))
        record = _record(values)
        if record.job_id == job_id:
            job = record
        elif record.job_id.startswith(f"{job_id}."):
            steps.append(record)
    if job is None:
        raise ParseError(f"no sacct line for job {job_id}", file=file)
    return JobAccounting(job, tuple(steps), source)


_BRACKET = re.compile(r"\[([^\[\]]*)\]")


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, current = [], 0, []
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in (s.strip() for s in parts) if p]


def _expand_ranges(body: str) -> list[str]:
    out = []
    for part in body.split(","):
        lo, sep, hi = part.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"bad range {part!r}")
        width = len(lo)
        out += [str(n).zfill(width) for n in range(int(lo), int(hi if sep else lo) + 1)]
    return out


def expand_hostlist(text: str | None) -> list[str]:
    """Slurm's compressed node list (``node[1-3,07],login``, ``r[1-2]n[1-2]``) as node names, in order.

    ValueError when the list is malformed; ``None``/``(null)``/``None assigned`` give ``[]``.
    """
    if not text or text.strip() in ("(null)", "None assigned", "None"):
        return []
    names: list[str] = []
    for item in _split_top(text.strip()):
        match = _BRACKET.search(item)
        if match is None:
            if "[" in item or "]" in item:
                raise ValueError(f"unbalanced brackets in {item!r}")
            names.append(item)
            continue
        head, tail = item[:match.start()], item[match.end():]
        for value in _expand_ranges(match[1]):
            names += expand_hostlist(head + value + tail)
    return names
