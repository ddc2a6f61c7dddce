"""The write-once raw store: ``data/raw/<campaign>/<environment>/<stage>/<run_id>/``.

A run is written into a hidden temporary folder and renamed into place only
when its record is complete (files and folder synced to disk first), so an
interrupted run never looks finished and a rerun of the campaign measures it
again. Complete runs are never modified. A run that failed is kept, logs and
all, under ``<run_id>.failed-<stamp>``: it is evidence, not a repetition.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import paths, run_index
from .exceptions import CampaignBusy, StoreError, UnsafePath
from .fsutil import atomic_write, fsync_dir, fsync_tree
from .names import Campaign, check_id
from .record import (COMPLETE, FAILED, INVALID, MEASURED, SKIPPED, CodeVersion, ResultSummary, RunRecord,
                     parse_record)
from .secrets import REDACTED, redact_bytes, redact_env

RECORD = "run.json"
RESULT = "result.json"
LOCK = ".lock"
_PARTIAL = re.compile(r"^\.(?P<run_id>.+)\.partial-(?P<pid>\d+)-[0-9a-f]+$")

__all__ = ["RawStore", "StoredRun", "RunWriter", "RECORD", "RESULT", "COMPLETE", "INVALID", "SKIPPED", "FAILED",
           "MEASURED", "REDACTED", "redact_env", "check_id", "campaign_lock", "code_version",
           "utc_stamp"]


def utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


@lru_cache(maxsize=1)
def code_version() -> CodeVersion:
    """vhpclib version and the git commit of the project (with a dirty flag)."""
    from . import __version__

    info: dict[str, Any] = {"vhpclib": __version__}
    try:
        commit = subprocess.run(["git", "-C", str(paths.PROJECT_ROOT), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "-C", str(paths.PROJECT_ROOT), "status", "--porcelain",
                                     "--untracked-files=no", "--", "vhpclib", "apps"],
                                    capture_output=True, text=True, timeout=10)
            info["git_dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return CodeVersion(**info)


def refuse_symlinks(root: Path, *parts: str) -> None:
    """Refuse a campaign, environment or stage folder that is a symlink (writes would land outside the store).

    ``root`` itself (the data folder the user chose) may be a link; what vHPC creates below it may not.
    """
    path = Path(root)
    for kind, part in zip(("campaign", "environment", "stage"), parts):
        path = path / part
        if path.is_symlink():
            raise UnsafePath(f"the {kind} folder is a symlink (to {os.readlink(path)}); vhpc writes only into "
                             "real folders of the data folder: remove the link or point VHPC_DATA elsewhere",
                             file=str(path))


#: Records already parsed in this process, by run.json path and its (inode, mtime, size): one invocation reads a
#: campaign's records several times (resume counts, timeouts, tables). Readers share these objects: a record read
#: from the store is never modified (raw data is write-once).
_RECORDS: dict[Path, tuple[tuple[int, int, int], RunRecord]] = {}
_RECORDS_MAX = 50_000


# ------------------------------------------------------------------ one writer per campaign

_HELD: dict[Path, list] = {}  # lock file -> [fd, count]: flock is per open file, so one fd per process
_HELD_GUARD = threading.Lock()


@contextmanager
def campaign_lock(campaign: str, *, root: Path | None = None, wait: bool = False) -> Iterator[Path]:
    """Hold the campaign's writer lock (``flock`` on ``<raw>/<campaign>/.lock``) for the block.

    Re-entrant within a process. Another process holding it raises ``CampaignBusy`` naming
    it, or, with ``wait``, blocks until it is free.
    """
    path = (Path(root) if root else paths.RAW) / Campaign(campaign) / LOCK
    refuse_symlinks(path.parent.parent, campaign)
    _acquire(path, wait)
    try:
        yield path
    finally:
        _release(path)


def _acquire(path: Path, wait: bool) -> None:
    with _HELD_GUARD:
        held = _HELD.get(path)
        if held is not None:
            held[1] += 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                holder = _holder(fd)
                os.close(fd)
                raise CampaignBusy(f"campaign {path.parent.name!r} is being written by another vhpc{holder}; "
                                   "one writer per campaign (use --wait to queue behind it)") from None
        except BaseException:
            os.close(fd)
            raise
        else:
            _HELD[path] = [fd, 1]
            _write_holder(fd)
            return
    try:  # waiting happens outside the guard, so other campaigns stay usable meanwhile
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    with _HELD_GUARD:
        _HELD[path] = [fd, 1]
    _write_holder(fd)


def _release(path: Path) -> None:
    with _HELD_GUARD:
        held = _HELD.get(path)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _HELD[path]
            os.close(held[0])  # closing the only descriptor releases the flock


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
    except OSError:
        return ""
    return f" (pid {text[0]} on {text[1]}, since {text[2]})" if len(text) >= 3 else ""


def _write_holder(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {utc_stamp()}\n".encode(), 0)
    except OSError:
        pass


def holds_lock(campaign: str, root: Path | None = None) -> bool:
    """Whether this process holds the campaign's writer lock."""
    path = (Path(root) if root else paths.RAW) / campaign / LOCK
    with _HELD_GUARD:
        return path in _HELD


@dataclass
class StoredRun:
    """A run folder and its record: a complete run read back, or one still being written."""

    path: Path
    record: RunRecord

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def stdout_path(self) -> Path:
        return self.path / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.path / "stderr.log"

    def text(self, name: str) -> str:
        """A file of the run as text ('' when it does not exist)."""
        try:
            return (self.path / name).read_text(errors="replace")
        except OSError:
            return ""

    def stdout(self) -> str:
        return self.text("stdout.log")

    def stderr(self) -> str:
        return self.text("stderr.log")

    def result_rows(self) -> list[dict[str, Any]] | None:
        """Rows extracted when the run was stored (None for runs stored before extraction was kept).

        A ``result.json`` of another shape raises ``MalformedResult`` (see ``vhpclib.results``)."""
        from .results import read_result

        path = self.path / RESULT
        if not path.is_file():
            return None
        return read_result(path, self.record.workload)  # MalformedResult names the file


@dataclass
class RunWriter(StoredRun):
    """A run being written: files go to a temporary folder until the store commits it."""

    final: Path = field(default=Path())
    rows: list[dict[str, Any]] | None = None
    table: str | None = None
    #: Leave the temporary folder as it is (neither stored nor removed): a job on a host that stopped
    #: answering; the next vhpc on the campaign fetches its logs and stores it (``recover``).
    keep_partial: bool = False
    #: Secret values the run was given (``secrets.secret_parts``): hidden in every stored file at commit.
    secrets: set[str] = field(default_factory=set)

    @property
    def tmp(self) -> Path:
        return self.path

    def add_file(self, name: str, data: str | bytes) -> Path:
        target = self.path / check_id("file name", name)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        return target

    def keep_result(self, table: str, rows: list[dict[str, Any]], warnings_: list[str]) -> None:
        """Rows extracted from this run's output, stored beside its logs as ``result.json``."""
        self.table, self.rows = table, rows
        self.record.result = ResultSummary(table=table, rows=len(rows), warnings=warnings_)

    def fail(self, reason: str) -> None:
        self.record.status = FAILED
        self.record.reasons.append(reason)

    def invalidate(self, reasons: list[str]) -> None:
        if self.record.status != FAILED:
            self.record.status = INVALID
        self.record.reasons.extend(reasons)


class RawStore:
    """Write-once store of raw runs under ``root`` (default ``data/raw``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else paths.RAW

    def run_path(self, campaign: str, environment: str, stage: str, run_id: str) -> Path:
        Campaign(campaign)  # where a campaign becomes a path: the one guard below the edge (free for a Campaign)
        for kind, value in (("environment", environment), ("stage", stage), ("run_id", run_id)):
            check_id(kind, value)
        refuse_symlinks(self.root, campaign, environment, stage)
        return self.root / campaign / environment / stage / run_id

    def is_complete(self, campaign: str, environment: str, stage: str, run_id: str) -> bool:
        return (self.run_path(campaign, environment, stage, run_id) / RECORD).is_file()

    def load(self, campaign: str, environment: str, stage: str, run_id: str) -> StoredRun:
        """A complete run; a damaged record is warned about once and read as an invalid run (never raised)."""
        path = self.run_path(campaign, environment, stage, run_id)
        try:
            return self._read(path)
        except StoreError as exc:
            warnings.warn(f"{exc}; run counted as invalid", stacklevel=2)
            record = RunRecord(run_id=run_id, campaign=campaign, environment=environment, stage=stage,
                               status=INVALID, reasons=[exc.message])
            return StoredRun(path, record)

    def lock(self, campaign: str, *, wait: bool = False):
        """The campaign's writer lock (see ``campaign_lock``)."""
        return campaign_lock(campaign, root=self.root, wait=wait)

    def _read(self, path: Path) -> StoredRun:
        """A stored run's record, parsed once per process (complete runs never change; see ``_RECORDS``)."""
        record_path = path / RECORD
        try:
            info = os.stat(record_path)
            key = (info.st_ino, info.st_mtime_ns, info.st_size)
            cached = _RECORDS.get(record_path)
            if cached is not None and cached[0] == key:
                return StoredRun(path, cached[1])
            record = parse_record(json.loads(record_path.read_bytes()))
        except (OSError, ValueError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(f"damaged run record: {detail}", file=str(record_path)) from None
        if len(_RECORDS) >= _RECORDS_MAX:
            _RECORDS.clear()
        _RECORDS[record_path] = (key, record)
        return StoredRun(path, record)

    @contextmanager
    def new_run(self, record: RunRecord) -> Iterator[RunWriter]:
        """Open a run for writing; it becomes visible only if the block ends without error.

        When the writer's status is ``failed`` at the end of the block, the run is kept under
        ``<run_id>.failed-<stamp>`` instead, so resuming the campaign measures it again.
        """
        final = self.run_path(record.campaign, record.environment, record.stage, record.run_id)
        with self.lock(record.campaign):
            if final.exists():
                raise StoreError(f"run already exists and raw data is write-once: {final}", file=str(final))
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.parent / f".{record.run_id}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            writer = RunWriter(path=tmp, record=record, final=final)
            try:
                yield writer
                if not writer.keep_partial:
                    self._commit(writer)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise

    def _commit(self, writer: RunWriter) -> None:
        record = writer.record
        if record.status == FAILED:
            record.run_id = f"{record.run_id}.failed-{utc_stamp()}"
            writer.final = writer.final.with_name(record.run_id)
        if writer.rows is not None:
            (writer.path / RESULT).write_text(json.dumps({"table": writer.table, "rows": writer.rows},
                                                         indent=1, default=str) + "\n")
        record.code = code_version()
        record.files = sorted(p.name for p in writer.path.iterdir() if p.name != RECORD and not p.name.startswith("."))
        record.redactions.update(_redact_files(writer.path, writer.secrets))
        text = json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n"
        if writer.secrets:  # a reason quoting a log tail, a point field: the record is hidden from too
            data, count = redact_bytes(text.encode(), _json_forms(writer.secrets))
            if count:
                record.redactions[RECORD] = count
                text = json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n"
                text = redact_bytes(text.encode(), _json_forms(writer.secrets))[0].decode()
        (writer.path / RECORD).write_text(text)
        fsync_tree(writer.path)
        os.rename(writer.path, writer.final)  # atomic on one filesystem; fails if final appeared meanwhile
        fsync_dir(writer.final.parent)
        writer.path = writer.final
        run_index.note(writer.final.parent, writer.final.name, record.status, record.kind, record.stem)

    def record_skip(self, record: RunRecord) -> bool:
        """Store a skip once per campaign (reports show why something is missing); False if already there."""
        if self.is_complete(record.campaign, record.environment, record.stage, record.run_id):
            return False
        record.status, record.kind = SKIPPED, "skip"
        with self.new_run(record):
            pass
        return True

    def runs(self, campaign: str | None = None, environment: str | None = None,
             stage: str | None = None) -> Iterator[StoredRun]:
        """Complete runs, sorted by path; partial folders are never listed.

        A run whose record cannot be read (a zero-byte ``run.json`` after a power cut,
        hand-edited JSON) is excluded with one warning naming it, never an exception.
        """
        pattern = "/".join([campaign or "*", environment or "*", stage or "*", "*", RECORD])
        for record_path in sorted(self.root.glob(pattern)):
            if record_path.parent.name.startswith("."):
                continue
            try:
                yield self._read(record_path.parent)
            except StoreError as exc:
                warnings.warn(f"{exc}; run excluded", stacklevel=2)

    def partials(self, campaign: str, environment: str | None = None) -> list[Path]:
        """Temporary run folders of the campaign left by other processes (a killed or crashed vhpc).

        Only meaningful while holding the campaign's lock: then no other writer can own one.
        """
        pattern = "/".join([Campaign(campaign), environment or "*", "*", ".*.partial-*"])
        me = str(os.getpid())
        out = []
        for path in sorted(self.root.glob(pattern)):
            m = _PARTIAL.match(path.name)
            if m and path.is_dir() and m["pid"] != me:
                out.append(path)
        return out

    def store_recovered(self, partial: Path, record: RunRecord) -> StoredRun:
        """Store a run a dead vhpc left in ``partial`` (kept aside as failed: evidence, not a repetition)."""
        final = self.run_path(record.campaign, record.environment, record.stage, record.run_id)
        with self.lock(record.campaign):
            record.status = FAILED
            writer = RunWriter(path=partial, record=record, final=final)
            self._commit(writer)
        return StoredRun(writer.path, writer.record)

    def measured_counts(self, campaign: str, environment: str, stage: str) -> dict[str, int]:
        """Measured repetitions (complete or invalid) per point stem, in one pass over the store."""
        counts: dict[str, int] = {}
        stage_dir = self.root / Campaign(campaign) / check_id("environment", environment) / \
            check_id("stage", stage)
        for status, kind, stem in run_index.entries(self, stage_dir).values():  # not every run folder read
            if status in MEASURED and kind == "run":
                counts[stem] = counts.get(stem, 0) + 1
        return counts


def _redact_files(folder: Path, secrets: set[str]) -> dict[str, int]:
    """Hide ``secrets`` in every file of a run folder (logs too); file name -> replacements made."""
    found: dict[str, int] = {}
    if not secrets:
        return found
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink() or path.name == RECORD:
            continue
        data = path.read_bytes()
        hidden, count = redact_bytes(data, secrets)
        if count:
            path.write_bytes(hidden)
            found[str(path.relative_to(folder))] = count
    return found


def _json_forms(secrets: set[str]) -> set[str]:
    """Each secret as it appears inside a JSON string (quotes, backslashes, newlines escaped)."""
    return set(secrets) | {json.dumps(s)[1:-1] for s in secrets}


def write_json(path: Path, data: Any) -> Path:
    """A JSON document written atomically (processed data, state files)."""
    return atomic_write(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
