"""Tables kept incrementally: what each stored run contributed, so adding runs costs O(new runs).

``vhpc tables`` (and every ``vhpc run``) rewrites a campaign's tables. Raw runs are write-once, so what a
run contributes to the tables never changes while the code that extracts it does not: the cache
(``data/processed/<campaign>/.tables-cache``) keeps, per run folder, its rows already rendered as CSV
text, its skip row, its environment facts and its warnings, plus, per table, the columns and what their
values looked like (whether a column holds floats, missing values, text), which decides how pandas would
print them. It is keyed by

- the run folders it holds: a new folder is read (in parallel when there are many), a folder gone makes
  it rebuild;
- a version of the code that makes rows (hash of the parser, workload, schema and table modules and of
  every registered workload's module, and the tables' declared columns): any change rebuilds.

A new run whose values change a column's printed form (an integer column meeting its first float) or
bring a column not yet in the table rebuilds everything, as ``--reparse`` does. The output is byte for
byte what ``tables.collect_tables`` gives. A damaged or unreadable cache is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths
from .fsutil import atomic_write

CACHE = ".tables-cache"
_FORMAT = 1
_PARALLEL_MIN = 2000  # new runs below this are read in this process (a pool costs more than it saves)


@dataclass
class Part:
    """What one run folder contributes: enough to rebuild its share of every table without reading it."""

    key: str  # "<environment>/<stage>/<run folder>": runs are merged in this (record path) order
    env: tuple | None = None  # (environment, label, vmm, baseline, vcpu_pinning, launcher, facts, started, is_run)
    skip: dict[str, Any] | None = None
    table: str | None = None
    order: int = 0
    rows: list[dict[str, Any]] | None = None  # only while being built; rendered into ``text``
    text: str = ""
    warnings: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    where: str = ""  # the run folder (rows are ordered by it within a stage)
    damaged: str | None = None  # a record that cannot be read: warned about on every build, never in a table
    workload: tuple[str, str] | None = None  # (name, class name): for the undeclared-columns warning
    facts: tuple | None = None  # (environment, stage, status, kind, "commit (vhpclib x)" or None, dirty)
    host: dict[str, Any] | None = None  # the record's first host facts (the report's hardware lines)


@dataclass
class Cache:
    version: str
    columns: dict[str, list[str]]
    stats: dict[str, dict[str, list[bool]]]  # table -> column -> [present, missing, non-number, float]
    parts: dict[str, Part]
    sizes: dict[str, int] = field(default_factory=dict)  # table -> bytes of the CSV last written


def code_version(names: list[str], columns: dict[str, list[str]]) -> str:
    """A hash of the code that turns runs into rows: any edit to it (or a new plugin) rebuilds the tables."""
    from .workloads import WORKLOADS

    root = Path(__file__).resolve().parent
    files = {root / n for n in ("tables.py", "table_cache.py", "schema.py", "record.py", "store.py")}
    for folder in ("parsers", "workloads", "npb"):
        files.update((root / folder).glob("*.py"))
    for _, workload in WORKLOADS.items():
        module = sys.modules.get(type(workload).__module__)
        if module is not None and getattr(module, "__file__", None):
            files.add(Path(module.__file__))
    digest = hashlib.sha256(repr((_FORMAT, names, sorted(columns.items()))).encode())
    for path in sorted(files):
        try:
            digest.update(str(path.name).encode() + path.read_bytes())
        except OSError:
            digest.update(str(path).encode())
    return digest.hexdigest()[:24]


def cache_path(campaign: str) -> Path:
    return paths.processed_dir(campaign) / CACHE


def load(campaign: str, version: str) -> Cache | None:
    """The campaign's cache when it was made by this code, else None (rebuilt)."""
    try:
        with open(cache_path(campaign), "rb") as fh:
            header = pickle.load(fh)
            if header != (_FORMAT, version):
                return None
            cache = pickle.load(fh)
    except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
        return None
    return cache if isinstance(cache, Cache) else None


def save(campaign: str, cache: Cache) -> None:
    blob = pickle.dumps((_FORMAT, cache.version), protocol=pickle.HIGHEST_PROTOCOL) + \
        pickle.dumps(cache, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        atomic_write(cache_path(campaign), blob, durable=False)
    except OSError:
        pass  # a cache that cannot be written costs time next run, never a table


def run_folders(root: Path, campaign: str) -> dict[str, str]:
    """Complete run folders of a campaign by key, without opening them (hidden partials left out).

    A run folder is renamed into place only once its record is written, so a visible folder under
    ``<environment>/<stage>/`` is a complete run; one without ``run.json`` is checked when first read.
    """
    out: dict[str, str] = {}  # strings, not Paths: building 100k Path objects costs seconds
    base = root / campaign
    for env in _dirs(base):
        for stage in _dirs(env):
            for run in _dirs(stage):
                out[f"{env.name}/{stage.name}/{run.name}"] = run.path
    return out


def _dirs(folder: Path | os.DirEntry) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return [e for e in it if not e.name.startswith(".") and e.is_dir()]
    except OSError:
        return []


def sort_key(key: str) -> str:
    """The order ``RawStore.runs`` lists runs in: by the path of their ``run.json``."""
    return key + "/run.json"


def missing(value: Any) -> bool:
    """A value pandas prints as an empty cell (None, NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def merge_stats(stats: dict[str, list[bool]], columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Fold rows into the per-column facts that decide how a column prints (see ``tables._column_format``)."""
    for c in columns:
        s = stats.setdefault(c, [False, False, False, False, False])
        if len(s) < 5:
            s.append(False)
        for row in rows:
            v = row.get(c)
            if missing(v):
                s[1] = True
                continue
            s[0] = True
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                s[2] = True
            else:
                s[4] = True  # a number: a column holding numbers and text is one some run got wrong
                if isinstance(v, float):
                    s[3] = True


def mixed_columns(stats: dict[str, list[bool]]) -> list[str]:
    """Columns where some runs gave numbers and others text or booleans (``tables._consistent_kinds`` decides
    which runs are wrong; the cached text cannot)."""
    return [c for c, s in stats.items() if len(s) > 4 and s[2] and s[4]]


def formats(stats: dict[str, list[bool]], columns: list[str]) -> list[bool]:
    """Per column: printed as float (True) or as text (False), as pandas would for the whole column."""
    out = []
    for c in columns:
        present, missing, other, floats = stats.get(c, [False, False, False, False])[:4]
        out.append(present and not other and (missing or floats))
    return out
