"""Jobs through Slurm: submit from the submit host, wait, account, cancel.

Every Slurm command runs through an ``Executor`` (this machine or the login
node over SSH), with ``SLURM_CONF`` from the settings when they name one.
``run_batch_job`` runs one job as one command on the submit host
(``session.py``: write the script, sbatch or salloc, wait where the job is,
sacct, send the output back), in a worker thread so that Ctrl-C or SIGTERM is
handled at once: the job is cancelled (``request_cancel``), what it wrote is
kept, and the interruption goes on. A refused submission becomes one line
naming the setting (``SlurmSettingError``/``SlurmUnreachable``, exit 2);
``check_submission`` asks the same of ``sbatch --test-only`` before a campaign.

The single-purpose pieces (``submit``, ``queue_state``, ``wait_for_job``,
``job_accounting``, ``cancel_job``, ``CancelOnInterrupt``) are what the session
falls back on when it is cut short, and what tests drive directly.
"""

from __future__ import annotations

import shlex
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from ..exceptions import (Interrupted, ParseError, RemoteError, SlurmError, SlurmJobPending, SlurmJobTimeout,
                          SlurmSettingError, SlurmUnreachable, VhpcError)
from ..remote import CommandResult, Executor, utc_now
from .sacct import SACCT_FIELDS, JobAccounting, Outcome, is_final, outcome_of, parse_sacct, state_word
from .script import LAYOUT, SCRIPT_NAME, STDERR, STDOUT, BatchJob, batch_script, extra_args, job_options
from .session import (CANCEL_FILE, JOB_ID_FILE, SCRIPT_WRITE_FAILED, SessionOutput, parse_session,
                      session_program)
from .settings import SlurmSettings

COMMAND_TIMEOUT_S = 60.0  # one Slurm client command (sbatch alone retries for ~10 s without a controller)
FIRST_POLL_S = 0.25
MIN_POLL_S = 0.1  # the first squeue poll after sbatch, and the shortest gap
POLL_FRACTION = 0.1
INTERRUPT_WAIT_S = 60.0  # how long an interrupted vhpc waits for its cancelled job's output
BACKSTOP_MARGIN_S = 300.0  # beyond pending limit + timeout, before vhpc stops waiting for the submit host
ACCOUNTING_TIMEOUT_S = 60.0  # slurmdbd may record a job's end a little after squeue forgets it
NO_ACCOUNTING = "accounting storage is disabled"
_UNREACHABLE = ("Unable to contact slurm controller", "Could not establish a configuration source",
                "Zero Bytes were transmitted", "Socket timed out on send/recv", "Connection refused")
_GONE = ("Invalid job id", "already completed", "Job has already finished")

# (pattern in sbatch's stderr, setting it is about); first match wins.
_SBATCH_REFUSALS: tuple[tuple[str, str], ...] = (
    ("invalid partition", "partition"),
    ("Invalid partition name", "partition"),
    ("Invalid --time specification", "time_limit"),
    ("Requested time limit is invalid", "time_limit"),
    ("Invalid account", "account"),
    ("Invalid qos", "qos"),
    ("Invalid feature specification", "constraint"),
    ("Node count specification invalid", "nodes"),
    ("Requested node configuration is not available", "nodes"),
    ("More processors requested than permitted", "ntasks_per_node"),
    ("unrecognized option", "sbatch_args"),
    ("invalid option", "sbatch_args"),
    ("option requires an argument", "sbatch_args"),
)


def slurm_env(settings: SlurmSettings) -> dict[str, str]:
    """Variables every Slurm command on the submit host gets."""
    return {"SLURM_CONF": settings.slurm_conf} if settings.slurm_conf else {}


def _slurm(executor: Executor, settings: SlurmSettings, command: str,
           timeout: float = COMMAND_TIMEOUT_S) -> CommandResult:
    return executor.run(command, env=slurm_env(settings), timeout=timeout, warn=True)


def _error_line(text: str) -> str:
    """The line of a Slurm client's stderr that says what went wrong."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if "error" in line.lower() or "unrecognized" in line or "invalid" in line.lower():
            return line
    return lines[-1] if lines else "no output"


def classify_sbatch_error(stderr: str, exit_code: int, settings: SlurmSettings | None = None) -> VhpcError:
    """The error for a refused ``sbatch``: one line naming the setting, from sbatch's own words."""
    line = _error_line(stderr)
    if exit_code == 127 or "command not found" in stderr:
        return SlurmSettingError(f"sbatch is not installed on the submit host ({line})", key="slurm.submit_host")
    if any(p in stderr for p in _UNREACHABLE):
        where = f" with SLURM_CONF={settings.slurm_conf}" if settings and settings.slurm_conf else ""
        return SlurmUnreachable(f"no slurmctld answered{where}: {line}", key="slurm.slurm_conf")
    for pattern, setting in _SBATCH_REFUSALS:
        if pattern.lower() in stderr.lower():
            value = getattr(settings, setting, None) if settings is not None else None
            shown = f" {value!r}" if value not in (None, []) else ""
            return SlurmSettingError(f"Slurm refused {setting}{shown}: {line}", key=f"slurm.{setting}")
    return SlurmError(f"sbatch failed (exit {exit_code}): {line}")


_BASES: dict[tuple[str, str], str] = {}  # (submit host, job_dir setting) -> its absolute path
# (submit host, SLURM_CONF) whose sacct said "accounting storage is disabled": ask --completion directly
_COMPLETION_ONLY: set[tuple[str, str | None]] = set()


def job_base_dir(executor: Executor, settings: SlurmSettings) -> str:
    """``settings.job_dir`` on the submit host as an absolute path, created if missing (asked once per host)."""
    key = (executor.name, settings.job_dir)
    if key not in _BASES:
        base = shlex.quote(settings.job_dir)
        result = executor.run(f"cd && mkdir -p {base} && cd {base} && pwd -P", timeout=COMMAND_TIMEOUT_S, warn=True)
        path = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        if result.exit_code != 0 or not path.startswith("/") or any(c.isspace() for c in path):
            raise SlurmSettingError(f"cannot use {settings.job_dir!r} on {executor.name} as the job folder: "
                                    f"{_error_line(result.stderr) if result.exit_code else path!r}",
                                    key="slurm.job_dir")
        _BASES[key] = path
    return _BASES[key]


def new_job_dir(executor: Executor, settings: SlurmSettings, name: str) -> str:
    """A fresh folder name for one job under the job folder (created when the job is submitted)."""
    return f"{job_base_dir(executor, settings)}/{name}.{uuid.uuid4().hex[:10]}"


def submit(executor: Executor, settings: SlurmSettings, script: str, job_dir: str) -> str:
    """Write ``script`` as ``<job_dir>/job.sbatch`` on the submit host and ``sbatch --parsable`` it; the job id.

    One command on the submit host (its folder, the script through a here-document, sbatch).
    """
    delimiter = f"VHPC_SCRIPT_{uuid.uuid4().hex}"
    path = shlex.quote(f"{job_dir}/{SCRIPT_NAME}")
    command = (f"mkdir -p {shlex.quote(job_dir)} && cat > {path} <<'{delimiter}' || "
               f"{{ echo 'vhpc: cannot write the job script' >&2; exit {SCRIPT_WRITE_FAILED}; }}\n"
               f"{script}{delimiter}\nsbatch --parsable {path}")
    result = _slurm(executor, settings, command)
    if result.exit_code == SCRIPT_WRITE_FAILED:
        raise SlurmSettingError(f"cannot write the job script into {job_dir} on {executor.name}: "
                                f"{_error_line(result.stderr)}", key="slurm.job_dir")
    if result.exit_code != 0:
        raise classify_sbatch_error(result.stderr + result.stdout, result.exit_code, settings)
    job_id = result.stdout.strip().splitlines()[-1].split(";")[0].strip() if result.stdout.strip() else ""
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job id: {result.stdout.strip()[:200]!r}")
    return job_id


def queue_state(executor: Executor, settings: SlurmSettings, job_id: str) -> tuple[str, str | None] | None:
    """``(state, reason)`` of a job slurmctld still knows, None once it has forgotten it."""
    result = _slurm(executor, settings, f"squeue -h -t all -j {shlex.quote(job_id)} -o '%T|%r'")
    text = result.stdout.strip()
    if result.exit_code == 0:
        if not text:
            return None
        state, _, reason = text.splitlines()[0].partition("|")
        reason = reason.strip()
        return state_word(state), None if reason in ("", "None") else reason
    if any(p in result.stderr for p in _GONE):
        return None
    if any(p in result.stderr for p in _UNREACHABLE):
        raise SlurmUnreachable(f"no slurmctld answered squeue: {_error_line(result.stderr)}", key="slurm.slurm_conf")
    raise SlurmError(f"squeue failed for job {job_id} (exit {result.exit_code}): {_error_line(result.stderr)}")


def cancel_job(executor: Executor, settings: SlurmSettings, job_id: str, *, wait_s: float = 30.0) -> None:
    """``scancel`` a job and wait (bounded) until Slurm no longer counts it as queued or running."""
    result = _slurm(executor, settings, f"scancel {shlex.quote(job_id)}")
    if result.exit_code != 0 and not any(p in result.stderr for p in _GONE):
        raise SlurmError(f"scancel {job_id} failed (exit {result.exit_code}): {_error_line(result.stderr)}")
    wait_until_gone(executor, settings, job_id, wait_s=wait_s)


def wait_until_gone(executor: Executor, settings: SlurmSettings, job_id: str, *, wait_s: float = 30.0) -> None:
    """Wait (bounded) until a cancelled job is no longer queued, running or completing."""
    deadline = time.monotonic() + wait_s
    delay = FIRST_POLL_S
    while time.monotonic() < deadline:
        state = queue_state(executor, settings, job_id)
        if state is None or is_final(state[0]):
            return
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
    raise SlurmError(f"job {job_id} still in the queue {wait_s:.0f} s after scancel")


@dataclass
class WaitResult:
    """How a wait ended: the last state squeue showed (None once slurmctld forgot the job) and times."""

    state: str | None
    waited_s: float
    pending_s: float | None  # submission until first seen not pending; None: never seen running
    polls: int


def next_poll_delay(elapsed_s: float, settings: SlurmSettings) -> float:
    """Seconds until the next squeue poll: a tenth of the time waited so far, from 0.1 s up to ``poll_interval_s``.

    vhpc notices a job's end at most ~10 % of its run time late (plus one squeue
    round trip), while the number of polls grows only with the logarithm of the
    job's length until the interval reaches ``poll_interval_s``.
    """
    return min(settings.poll_interval_s, max(MIN_POLL_S, POLL_FRACTION * elapsed_s))


def wait_for_job(executor: Executor, settings: SlurmSettings, job_id: str, *, timeout_s: float | None = None,
                 check_interrupt: Callable[[], None] | None = None) -> WaitResult:
    """Poll squeue until the job has ended; bounded by the pending limit and ``timeout_s``.

    Intervals follow ``next_poll_delay``. COMPLETING counts as ended (the job's
    processes are gone; its nodes are still cleaning up). A job still pending
    after ``settings.pending_limit_s`` is cancelled (``SlurmJobPending``, with
    Slurm's pending reason); one still running ``timeout_s`` after it was first
    seen running is cancelled too (``SlurmJobTimeout``). Three failed polls in a
    row raise. ``check_interrupt`` runs after every poll and sleep
    (``CancelOnInterrupt.raise_if_interrupted``).
    """
    check = check_interrupt or (lambda: None)
    started = time.monotonic()
    pending_s: float | None = None
    failures = polls = 0
    while True:
        try:
            state = queue_state(executor, settings, job_id)
            failures = 0
            answered = True
        except (SlurmError, SlurmUnreachable, RemoteError):
            failures += 1
            if failures >= 3:
                raise
            state, answered = None, False
        check()
        polls += 1
        now = time.monotonic() - started
        if answered:
            if state is None or is_final(state[0]) or state[0] == "COMPLETING":
                return WaitResult(state[0] if state else None, now, pending_s, polls)
            word, reason = state
            if word != "PENDING" and pending_s is None:
                pending_s = now
            if word == "PENDING" and settings.pending_limit_s is not None and now > settings.pending_limit_s:
                cancel_job(executor, settings, job_id)
                raise SlurmJobPending(
                    f"job {job_id} pended for more than {settings.pending_limit_s:g} s "
                    f"(Slurm's reason: {reason or 'none given'}); cancelled", job_id=job_id, pending_reason=reason,
                    waited_s=now)
        if timeout_s is not None and pending_s is not None and now - pending_s > timeout_s:
            cancel_job(executor, settings, job_id)
            raise SlurmJobTimeout(f"job {job_id} still running {timeout_s:g} s after it started; cancelled",
                                  job_id=job_id, waited_s=now)
        time.sleep(next_poll_delay(now, settings))
        check()


def job_accounting(executor: Executor, settings: SlurmSettings, job_id: str, *,
                   timeout_s: float = ACCOUNTING_TIMEOUT_S, then_remove: str | None = None) -> JobAccounting:
    """The job's sacct record once it shows a final state (retried, bounded: slurmdbd can lag).

    Without slurmdbd (``Slurm accounting storage is disabled``) the job
    completion file is read instead (``sacct --completion``; no step lines).
    ``then_remove``: a folder on the submit host removed in the same round trip.
    """
    fields = ",".join(SACCT_FIELDS)
    deadline = time.monotonic() + timeout_s
    delay = FIRST_POLL_S
    mode_key = (executor.name, settings.slurm_conf)
    completion = mode_key in _COMPLETION_ONLY
    last = "no answer"
    while True:
        flag = "--completion " if completion else ""
        command = f"sacct {flag}-P -n -j {shlex.quote(job_id)} -o {fields}"
        if then_remove:
            command += f"; rc=$?; rm -rf {shlex.quote(then_remove)}; exit $rc"
            then_remove = None
        result = _slurm(executor, settings, command)
        if result.exit_code != 0 or NO_ACCOUNTING in result.stdout + result.stderr:
            if NO_ACCOUNTING in result.stdout + result.stderr and not completion:
                completion = True
                _COMPLETION_ONLY.add(mode_key)
                continue
            if any(p in result.stderr for p in _UNREACHABLE):
                raise SlurmUnreachable(f"sacct: {_error_line(result.stderr)}", key="slurm.slurm_conf")
            last = _error_line(result.stderr + result.stdout)
        else:
            try:
                record = parse_sacct(result.stdout, job_id, source="sacct --completion" if completion else "sacct")
                if record.final:
                    return record
                last = f"state still {record.state}"
            except ParseError as exc:
                last = exc.message
        if time.monotonic() > deadline:
            raise SlurmError(f"no final sacct record for job {job_id} within {timeout_s:g} s ({last})")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


class CancelOnInterrupt:
    """Cancel the job in ``job_id`` when the block is left by Ctrl-C, SIGTERM or any error; re-raise.

    While the block runs in the main thread, SIGINT raises ``KeyboardInterrupt``
    and SIGTERM ``Interrupted`` (a ``KeyboardInterrupt``), and both are also
    remembered: invoke, which runs local commands, swallows a KeyboardInterrupt
    that lands while it waits for a command, so the wait loop calls
    ``raise_if_interrupted`` between polls. Set ``job_id`` right after
    submission and back to None once the job is over.
    """

    def __init__(self, executor: Executor, settings: SlurmSettings) -> None:
        self.executor = executor
        self.settings = settings
        self.job_id: str | None = None
        self.cancelled: str | None = None
        self.interrupted: int | None = None  # the signal that arrived
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = signum
        self.raise_if_interrupted()

    def raise_if_interrupted(self) -> None:
        """Raise the interruption a signal asked for (again, if something swallowed it)."""
        if self.interrupted == signal.SIGTERM:
            raise Interrupted(signal.SIGTERM)
        if self.interrupted is not None:
            raise KeyboardInterrupt

    def __enter__(self) -> "CancelOnInterrupt":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        if exc is not None and self.job_id is not None:
            job_id, self.job_id = self.job_id, None
            try:
                cancel_job(self.executor, self.settings, job_id)
                self.cancelled = job_id
            except (VhpcError, OSError) as failure:  # the interruption matters more; say why cancel failed
                exc.add_note(f"vhpc: could not cancel Slurm job {job_id}: {failure}")
        return False


@dataclass
class JobResult:
    """One finished (or cancelled) batch job as the run record needs it."""

    name: str
    job_id: str
    outcome: Outcome
    reason: str | None
    state: str
    accounting: JobAccounting | None
    submit_host: str
    job_dir: str  # on the submit host (removed after its files were copied, unless kept)
    run_dir: Path  # local: job.sbatch, stdout.log, stderr.log, slurm_env.txt
    submitted_utc: str
    ended_utc: str
    turnaround_s: float  # submission until vhpc saw the job finished
    pending_s: float | None  # submission until vhpc first saw it running (None: never saw it running)
    mpi_mode: str
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def script_path(self) -> Path:
        return self.run_dir / SCRIPT_NAME

    @property
    def stdout_path(self) -> Path:
        return self.run_dir / STDOUT

    @property
    def stderr_path(self) -> Path:
        return self.run_dir / STDERR

    def record(self) -> dict[str, Any]:
        """The ``slurm`` part of a run record (run.json)."""
        return {
            "job_id": self.job_id, "job_name": self.name, "outcome": self.outcome, "reason": self.reason,
            "state": self.state, "submit_host": self.submit_host, "job_dir": self.job_dir,
            "script": SCRIPT_NAME, "submitted_utc": self.submitted_utc, "ended_utc": self.ended_utc,
            "turnaround_s": round(self.turnaround_s, 3),
            "pending_s": None if self.pending_s is None else round(self.pending_s, 3),
            "mpi_mode": self.mpi_mode, "files": self.files,
            "sacct": self.accounting.to_dict() if self.accounting else None,
        }


def fetch_outputs(executor: Executor, job_dir: str, run_dir: Path, outputs: tuple[str, ...] = ()) -> list[str]:
    """Copy the job's output files into the run folder; a log the job never wrote becomes empty.

    ``outputs``: further files the program writes into its working folder (the
    job folder); one that is missing is simply not copied (the run's sanity
    check says what is missing).
    """
    copied = []
    for name in (STDOUT, STDERR, LAYOUT, *outputs):
        try:
            executor.get(f"{job_dir}/{name}", run_dir / name)
            copied.append(name)
        except (OSError, IOError):
            if name in (STDOUT, STDERR):
                (run_dir / name).write_text("")
    return copied


def _salvage(executor: Executor, job_dir: str, run_dir: Path, outputs: tuple[str, ...], keep: bool) -> None:
    """After an interruption: what the cancelled job wrote, copied into the run folder (best effort)."""
    try:
        fetch_outputs(executor, job_dir, run_dir, outputs)
        if not keep:
            executor.run(f"rm -rf {shlex.quote(job_dir)}", timeout=COMMAND_TIMEOUT_S, warn=True)
    except (VhpcError, OSError):
        pass


_CHECKED: dict[tuple[str, str, int | None], str] = {}  # (submit host, settings, nodes) -> Slurm's estimate


def check_submission(executor: Executor, settings: SlurmSettings, *, nodes: int | None = None) -> str:
    """``sbatch --test-only`` of a job as the settings describe it: raise when Slurm would refuse them.

    Checks the job folder, partition, account, QOS, time limit, constraint, node
    count and extra sbatch options, and that slurmctld answers, before any run is
    submitted: one command on the submit host, once per process and settings.
    Returns Slurm's estimate (``Job N to start at ...``).
    """
    key = (executor.name, settings.model_dump_json(), nodes)
    if key in _CHECKED:
        return _CHECKED[key]
    base_key = (executor.name, settings.job_dir)
    probe = BatchJob(name="vhpc-check", program=("true",), launch="none", nodes=nodes)
    delimiter = f"VHPC_SCRIPT_{uuid.uuid4().hex}"
    folder = shlex.quote(settings.job_dir)
    # The job folder first (as job_base_dir makes it), then the test submission (it writes nothing).
    command = (f"cd && mkdir -p {folder} && cd {folder} && echo \"@@vhpc base $(pwd -P)\" || "
               f"exit {SCRIPT_WRITE_FAILED}\n"
               f"sbatch --test-only <<'{delimiter}'\n{batch_script(settings, probe, '/tmp')}{delimiter}\n")
    result = _slurm(executor, settings, command)
    lines = result.stdout.splitlines()
    base = next((ln.split(" ", 2)[2] for ln in lines if ln.startswith("@@vhpc base ")), "")
    if result.exit_code == SCRIPT_WRITE_FAILED or not base.startswith("/") or any(c.isspace() for c in base):
        raise SlurmSettingError(f"cannot use {settings.job_dir!r} on {executor.name} as the job folder: "
                                f"{_error_line(result.stderr) if result.stderr.strip() else base!r}",
                                key="slurm.job_dir")
    _BASES[base_key] = base
    said = "\n".join([result.stderr.rstrip(), *(ln for ln in lines if not ln.startswith("@@vhpc "))]).strip()
    if result.exit_code != 0:
        raise classify_sbatch_error(said, result.exit_code, settings)
    _CHECKED[key] = _error_line(said)
    return _CHECKED[key]


def _write_files(run_dir: Path, files: dict[str, bytes]) -> list[str]:
    written = []
    for name, data in files.items():
        if "/" in name or name in ("", ".", ".."):
            continue
        (run_dir / name).write_bytes(data)
        written.append(name)
    for name in (STDOUT, STDERR):
        if not (run_dir / name).exists():
            (run_dir / name).write_text("")
    return written


def _after_interrupt(executor: Executor, settings: SlurmSettings, job_dir: str, run_dir: Path,
                     outputs: tuple[str, ...], keep: bool) -> str | None:
    """The session was cut off by an interruption: cancel its job (id from the job folder), keep its output."""
    try:
        found = executor.run(f"cat {shlex.quote(job_dir + '/job_id')} 2>/dev/null", timeout=COMMAND_TIMEOUT_S,
                             warn=True).stdout.strip()
    except (VhpcError, OSError):
        return None
    job_id = found if found.isdigit() else None
    if job_id is not None:
        try:
            cancel_job(executor, settings, job_id)
        except (VhpcError, OSError):
            pass
    _salvage(executor, job_dir, run_dir, outputs, keep)
    return job_id


def _accounting(executor: Executor, settings: SlurmSettings, job_id: str, session: SessionOutput,
                job_dir: str, keep: bool) -> JobAccounting:
    """The sacct record the session brought back, or (if it had none final) asked for again."""
    if session.sacct is not None:
        completion, code, text = session.sacct
        if completion:
            _COMPLETION_ONLY.add((executor.name, settings.slurm_conf))
        if code == 0:
            try:
                record = parse_sacct(text, job_id, source="sacct --completion" if completion else "sacct")
                if record.final:
                    return record
            except ParseError:
                pass
        elif any(p in text for p in _UNREACHABLE):
            raise SlurmUnreachable(f"sacct: {_error_line(text)}", key="slurm.slurm_conf")
    return job_accounting(executor, settings, job_id, then_remove=None if keep or session.done else job_dir)


def _session_reason(session: SessionOutput, settings: SlurmSettings, job_id: str,
                    timeout_s: float | None) -> str | None:
    if session.cancelled == "pending-limit":
        return (f"PENDING_LIMIT: job {job_id} pended for more than {settings.pending_limit_s:g} s "
                f"(Slurm's reason: {session.pending_reason or 'none given'}); cancelled")
    if session.cancelled == "timeout":
        return f"VHPC_TIMEOUT: job {job_id} still running {timeout_s:g} s after it started; cancelled"
    return None


class _SessionThread(threading.Thread):
    """The submit-host program of one job, run by a worker thread.

    The main thread only waits (``wait``), so a Ctrl-C or SIGTERM reaches it at
    once, whatever the executor (invoke would hold a local interruption until
    the command ends, Fabric would wait for the remote one to end).
    """

    def __init__(self, executor: Executor, settings: SlurmSettings, program: str, timeout: float | None) -> None:
        super().__init__(name="vhpc-slurm-session", daemon=True)
        self.executor, self.settings, self.program, self.timeout = executor, settings, program, timeout
        self._result: CommandResult | None = None
        self._error: BaseException | None = None
        # Waited on instead of join(): a KeyboardInterrupt inside Thread.join can leave the thread marked
        # as stopped while it still runs (CPython's _wait_for_tstate_lock releases a lock it does not hold).
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            self._result = _slurm(self.executor, self.settings, self.program, timeout=self.timeout)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            self._error = exc
        finally:
            self.finished.set()

    def wait(self, check: Callable[[], None], limit_s: float | None = None) -> bool:
        """Wait for the program (``check`` between short waits); False if ``limit_s`` passed first."""
        deadline = None if limit_s is None else time.monotonic() + limit_s
        while not self.finished.wait(0.2):
            check()
            if deadline is not None and time.monotonic() > deadline:
                return False
        return True

    @property
    def succeeded(self) -> bool:
        """The program ran to its end and its output is there."""
        return self.finished.is_set() and self._error is None and self._result is not None

    def result(self) -> CommandResult:
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def request_cancel(executor: Executor, settings: SlurmSettings, job_dir: str) -> None:
    """Ask a running session to cancel its job: the ``.cancel`` file, and ``scancel`` if its id is known."""
    folder = shlex.quote(job_dir)
    command = (f"touch {folder}/{CANCEL_FILE} 2>/dev/null; j=$(cat {folder}/{JOB_ID_FILE} 2>/dev/null) && "
               f"[ -n \"$j\" ] && scancel \"$j\"; true")
    try:
        _slurm(executor, settings, command)
    except (VhpcError, OSError):
        pass


def _interrupted(executor: Executor, settings: SlurmSettings, session_run: _SessionThread, job_dir: str,
                 run_dir: Path, outputs: tuple[str, ...], keep: bool,
                 on_submit: Callable[[str], None] | None) -> None:
    """vhpc was interrupted while its job ran: cancel it, keep what it wrote (the interruption then goes on)."""
    request_cancel(executor, settings, job_dir)
    try:
        finished = session_run.wait(lambda: None, limit_s=INTERRUPT_WAIT_S)
    except KeyboardInterrupt:  # asked twice: stop waiting for the session
        finished = False
    job_id = None
    if finished and session_run.succeeded:
        session = parse_session(session_run.result().stdout)
        _write_files(run_dir, session.files)
        job_id = session.job_id
        if job_id:  # the session saw the cancel; the job may still be completing (CG) on its node
            try:
                wait_until_gone(executor, settings, job_id)
            except (VhpcError, OSError, KeyboardInterrupt):
                pass
    else:
        job_id = _after_interrupt(executor, settings, job_dir, run_dir, outputs, keep)
    if job_id and on_submit is not None:
        on_submit(job_id)


def run_batch_job(executor: Executor, settings: SlurmSettings, job: BatchJob, run_dir: Path, *,
                  timeout_s: float | None = None, keep_job_dir: bool = False,
                  on_submit: Callable[[str], None] | None = None, outputs: tuple[str, ...] = ()) -> JobResult:
    """Submit ``job`` from ``executor``, wait for it, and return its outcome with the sacct record.

    The whole job is one command on the submit host (``session.py``): submit
    (sbatch, or salloc with ``submission: allocation``), wait, account, and send
    back ``stdout.log``, ``stderr.log``, ``slurm_env.txt`` and the job's
    ``outputs`` (files it writes into its working folder), which land in
    ``run_dir`` beside ``job.sbatch``. A job Slurm ends in any state but
    COMPLETED, one pending past ``pending_limit_s``, and one still running
    ``timeout_s`` after it started are returned as ``failed`` with the reason
    (the Slurm state, or which limit). Refused submissions raise
    (``SlurmSettingError``/``SlurmUnreachable``, exit 2). Ctrl-C/SIGTERM cancel
    the job, keep what it wrote in ``run_dir`` and propagate. ``on_submit`` is
    called with the job id once vhpc knows it.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    job_dir = new_job_dir(executor, settings, job.name)
    script = batch_script(settings, job, job_dir)
    (run_dir / SCRIPT_NAME).write_text(script)
    salloc = job_options(settings, job) if settings.submission == "allocation" else []
    program = session_program(settings, script, job_dir,
                              salloc=[f"{o}={v}" for o, v in salloc] + (extra_args(settings, job) if salloc else []),
                              files=outputs, timeout_s=timeout_s, keep_job_dir=keep_job_dir,
                              completion_only=(executor.name, settings.slurm_conf) in _COMPLETION_ONLY)
    backstop = None
    if settings.pending_limit_s is not None and timeout_s is not None:
        backstop = settings.pending_limit_s + timeout_s + BACKSTOP_MARGIN_S
    submitted = utc_now()
    t0 = time.monotonic()
    with CancelOnInterrupt(executor, settings) as guard:
        session_run = _SessionThread(executor, settings, program, backstop)
        session_run.start()
        try:
            session_run.wait(guard.raise_if_interrupted)
        except KeyboardInterrupt:
            _interrupted(executor, settings, session_run, job_dir, run_dir, outputs, keep_job_dir, on_submit)
            raise
        result = session_run.result()
        session = parse_session(result.stdout)
        if result.exit_code == SCRIPT_WRITE_FAILED:
            raise SlurmSettingError(f"cannot write the job script into {job_dir} on {executor.name}: "
                                    f"{_error_line(result.stderr)}", key="slurm.job_dir")
        if session.refused is not None:
            code, words = session.refused
            raise classify_sbatch_error(words, code, settings)
        if session.job_id is None:
            raise SlurmError(f"the job of {job.name} was not submitted (exit {result.exit_code}): "
                             f"{_error_line(result.stderr + result.stdout)}")
        job_id = session.job_id
        files = _write_files(run_dir, session.files)
        if on_submit is not None:
            on_submit(job_id)
        if guard.interrupted is not None:  # the program cancelled the job when vhpc asked; output is kept
            guard.raise_if_interrupted()
        guard.job_id = job_id if not session.done else None  # cut short (backstop): cancel on the way out
        reason = _session_reason(session, settings, job_id, timeout_s)
        if not session.done:
            cancel_job(executor, settings, job_id)
            files = fetch_outputs(executor, job_dir, run_dir, outputs)
            reason = reason or (f"VHPC_TIMEOUT: no answer from the submit host within {backstop:g} s; job "
                                f"{job_id} cancelled" if result.exit_code == 124 else None)
        if session.squeue_error:
            raise SlurmUnreachable(f"squeue: {_error_line(session.squeue_error)}", key="slurm.slurm_conf") \
                if any(p in session.squeue_error for p in _UNREACHABLE) else \
                SlurmError(f"squeue failed for job {job_id}: {_error_line(session.squeue_error)}")
        guard.job_id = None
    turnaround = time.monotonic() - t0
    accounting = _accounting(executor, settings, job_id, session, job_dir, keep_job_dir)
    outcome, state_reason = outcome_of(accounting.state)
    pending_s = session.running_ms / 1000 if session.running_ms is not None else None
    return JobResult(name=job.name, job_id=job_id, outcome="failed" if reason else outcome,
                     reason=reason or state_reason, state=accounting.state, accounting=accounting,
                     submit_host=executor.name, job_dir=job_dir, run_dir=run_dir, submitted_utc=submitted,
                     ended_utc=utc_now(), turnaround_s=turnaround, pending_s=pending_s,
                     mpi_mode=settings.mpi_mode, files=[SCRIPT_NAME, *files])
