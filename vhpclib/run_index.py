"""An index of a stage's stored runs, so resume planning does not read every run folder.

``<raw>/<campaign>/.runs-index.<environment>.<stage>`` (a hidden file beside the campaign's lock, so a
stage folder holds run folders only) holds one line per run folder: its name, status,
kind and point stem (tab-separated). The store appends a line each time it stores a run (under the
campaign's lock); readers never trust it blindly: each read lists the stage folder (names only, no
record opened) and reads the records of folders the index does not know, dropping names that are gone,
then rewrites the index if it was missing or stale. A line that cannot be parsed is ignored (its run is
read again). Counting 100,000 stored repetitions then costs one directory listing.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from .fsutil import atomic_write

INDEX = ".runs-index"


def _line(name: str, status: str, kind: str, stem: str) -> str:
    return f"{name}\t{status}\t{kind}\t{stem}\n"


def _read(path: Path) -> tuple[dict[str, tuple[str, str, str]], int]:
    """The index's entries (the last line of a name wins) and its number of lines (-1: no index)."""
    entries: dict[str, tuple[str, str, str]] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return entries, -1
    for line in lines:
        fields = line.split("\t")
        if len(fields) == 4 and all(fields):
            entries[fields[0]] = (fields[1], fields[2], fields[3])
    return entries, len(lines)


def index_path(stage_dir: Path) -> Path:
    """The index of ``<raw>/<campaign>/<environment>/<stage>``."""
    return stage_dir.parent.parent / f"{INDEX}.{stage_dir.parent.name}.{stage_dir.name}"


def note(stage_dir: Path, name: str, status: str, kind: str, stem: str) -> None:
    """Record a run just stored in ``stage_dir`` (appended; the next read checks it like every line)."""
    if "\t" in name + status + kind + stem or "\n" in name + status + kind + stem:
        return
    try:
        with open(index_path(stage_dir), "a") as fh:
            fh.write(_line(name, status, kind, stem))
    except OSError:
        pass  # a missing index line costs one record read later, never a wrong count


def entries(store: Any, stage_dir: Path) -> dict[str, tuple[str, str, str]]:
    """``{run folder: (status, kind, stem)}`` of every complete run in ``stage_dir``, brought up to date."""
    index = index_path(stage_dir)
    known, lines = _read(index)
    try:
        with os.scandir(stage_dir) as it:
            names = {e.name for e in it if not e.name.startswith(".") and e.is_dir()}
    except OSError:
        return {}
    stale = set(known) - names
    current = {n: known[n] for n in names if n in known}
    for name in sorted(names - set(known)):
        folder = stage_dir / name
        if not (folder / "run.json").is_file():
            continue
        try:
            rec = store._read(folder).record
        except Exception as exc:  # noqa: BLE001 - a damaged record is excluded out loud, as RawStore.runs does
            warnings.warn(f"{exc}; run excluded", stacklevel=3)
            continue
        current[name] = (rec.status, rec.kind, rec.stem)
    if stale or len(current) != len(known) or len(known) != lines:
        text = "".join(_line(n, *current[n]) for n in sorted(current))
        try:
            atomic_write(index, text, durable=False)
        except OSError:
            pass
    return current
