"""The write-once raw store: ``data/raw/<campaign>/<environment>/<stage>/<run_id>/``.

A run is written into a hidden temporary folder and renamed into place only
when its record is complete, so an interrupted run never looks finished and a
rerun of the campaign measures it again. Complete runs are never modified.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import paths
from .exceptions import InvalidName, StoreError

SCHEMA_VERSION = 1
RECORD = "run.json"
_SECRET = re.compile(r"PASSWORD|TOKEN|SECRET|KEY", re.IGNORECASE)
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
REDACTED = "***redacted***"

#: Status values of a run record.
COMPLETE, INVALID, SKIPPED, FAILED = "complete", "invalid", "skipped", "failed"


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """Hide values of variables whose names look secret (PASSWORD, TOKEN, SECRET, KEY)."""
    return {k: (REDACTED if _SECRET.search(k) else v) for k, v in env.items()}


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """vhpclib version and the git commit of the project (with a dirty flag)."""
    from . import __version__

    info: dict[str, Any] = {"vhpclib": __version__, "git_commit": None, "git_dirty": None}
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
    return info


def check_id(kind: str, value: str) -> str:
    if not _SAFE_ID.match(value) or ".." in value:
        raise InvalidName(f"{kind} must be letters, digits and '_.=+-' (got {value!r})", key=kind)
    return value


@dataclass
class RunRecord:
    """A complete run read back from the store."""

    path: Path
    record: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def status(self) -> str:
        return self.record.get("status", COMPLETE)

    @property
    def stdout_path(self) -> Path:
        return self.path / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.path / "stderr.log"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""


@dataclass
class RunWriter:
    """A run being written: files go to a temporary folder until ``commit``."""

    final: Path
    tmp: Path
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def stdout_path(self) -> Path:
        return self.tmp / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.tmp / "stderr.log"

    def add_file(self, name: str, data: str | bytes) -> Path:
        target = self.tmp / check_id("file name", name)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        return target


class RawStore:
    """Write-once store of raw runs under ``root`` (default ``data/raw``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else paths.RAW

    def run_path(self, campaign: str, environment: str, stage: str, run_id: str) -> Path:
        for kind, value in (("campaign", campaign), ("environment", environment), ("stage", stage),
                            ("run_id", run_id)):
            check_id(kind, value)
        return self.root / campaign / environment / stage / run_id

    def is_complete(self, campaign: str, environment: str, stage: str, run_id: str) -> bool:
        return (self.run_path(campaign, environment, stage, run_id) / RECORD).is_file()

    def load(self, campaign: str, environment: str, stage: str, run_id: str) -> RunRecord:
        path = self.run_path(campaign, environment, stage, run_id)
        return RunRecord(path, json.loads((path / RECORD).read_text()))

    @contextmanager
    def new_run(self, campaign: str, environment: str, stage: str, run_id: str,
                record: Mapping[str, Any] | None = None) -> Iterator[RunWriter]:
        """Open a run for writing; it becomes visible only if the block ends without error."""
        final = self.run_path(campaign, environment, stage, run_id)
        if final.exists():
            raise StoreError(f"run already exists and raw data is write-once: {final}", file=str(final))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{run_id}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        writer = RunWriter(final=final, tmp=tmp, record={
            "schema_version": SCHEMA_VERSION, "run_id": run_id, "campaign": campaign,
            "environment": environment, "stage": stage, **(record or {})})
        try:
            yield writer
            writer.record.setdefault("status", COMPLETE)
            writer.record["code"] = code_version()
            writer.record["files"] = sorted(p.name for p in tmp.iterdir())
            (tmp / RECORD).write_text(json.dumps(writer.record, indent=2, sort_keys=True, default=str) + "\n")
            os.rename(tmp, final)  # atomic on one filesystem; fails if final appeared meanwhile
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def runs(self, campaign: str | None = None, environment: str | None = None,
             stage: str | None = None) -> Iterator[RunRecord]:
        """Complete runs, sorted by path; partial folders are never listed."""
        pattern = "/".join([campaign or "*", environment or "*", stage or "*", "*", RECORD])
        for record_path in sorted(self.root.glob(pattern)):
            if record_path.parent.name.startswith("."):
                continue
            yield RunRecord(record_path.parent, json.loads(record_path.read_text()))
