"""Tables kept incrementally: adding runs reads only the new ones, and the output is what a full build gives."""

import json
import shutil
from pathlib import Path

import pytest

from vhpclib import paths, table_cache, tables
from vhpclib.store import RawStore

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = "embedded-guest"


@pytest.fixture()
def raw(tmp_path, monkeypatch):
    """The committed campaign copied to a scratch data folder; processed tables go beside it."""
    shutil.copytree(ROOT / "data/raw" / CAMPAIGN, tmp_path / "raw" / CAMPAIGN)
    monkeypatch.setattr(paths, "PROCESSED", tmp_path / "processed")
    return tmp_path / "raw"


def full(raw: Path) -> dict[str, str]:
    built, _ = tables.collect_tables(CAMPAIGN, store=RawStore(raw), reparse=False)
    return {name: table.csv() for name, table in built.items()}


def counting(monkeypatch) -> list[str]:
    read: list[str] = []
    original = tables._part

    def part(store, key, path, reparse):
        read.append(key)
        return original(store, key, path, reparse)

    monkeypatch.setattr(tables, "_part", part)
    return read


def add_run(raw: Path, source: str, run_id: str, edit=None) -> None:
    """A copy of a stored run under a new id (as if measured later), its result edited by ``edit``."""
    src = raw / CAMPAIGN / source
    dest = src.parent / run_id
    shutil.copytree(src, dest)
    record = json.loads((dest / "run.json").read_text())
    record["run_id"] = run_id
    (dest / "run.json").write_text(json.dumps(record))
    if edit:
        result = json.loads((dest / "result.json").read_text())
        edit(result["rows"])
        (dest / "result.json").write_text(json.dumps(result))


def test_new_runs_are_the_only_ones_read_and_the_tables_equal_a_full_build(raw, monkeypatch):
    held = raw.parent / "held"
    stage = raw / CAMPAIGN / "local" / "microbench"
    later = sorted(p for p in stage.iterdir() if p.name.startswith("pingpong"))[-2:]
    held.mkdir()
    for p in later:
        p.rename(held / p.name)
    texts, _, changed = tables.table_texts(CAMPAIGN, store=RawStore(raw))
    assert changed and texts == full(raw)
    for p in later:
        (held / p.name).rename(p)
    read = counting(monkeypatch)
    texts, _, changed = tables.table_texts(CAMPAIGN, store=RawStore(raw))
    assert changed and sorted(read) == sorted(f"local/microbench/{p.name}" for p in later)
    assert texts == full(raw)
    read.clear()
    again, _, changed = tables.table_texts(CAMPAIGN, store=RawStore(raw))
    assert not changed and read == [] and again == texts


def test_a_value_that_changes_how_a_column_prints_rebuilds_everything(raw, monkeypatch):
    tables.table_texts(CAMPAIGN, store=RawStore(raw))
    source = "local/microbench/" + sorted((raw / CAMPAIGN / "local/microbench").glob("pingpong-intra*"))[0].name

    def fractional(rows):  # iterations are integers everywhere else: the column now prints as floats
        rows[0]["repetitions"] = 1000.5

    add_run(raw, source, source.rsplit("/", 1)[1].rsplit("-r", 1)[0] + "-r99", fractional)
    read = counting(monkeypatch)
    texts, _, _ = tables.table_texts(CAMPAIGN, store=RawStore(raw))
    assert len(read) > 1 and texts == full(raw)
    assert "1000.5" in texts["microbench"] and ",1000.0," in texts["microbench"]


def test_code_change_damaged_cache_and_removed_run_rebuild(raw, monkeypatch):
    first, _, _ = tables.table_texts(CAMPAIGN, store=RawStore(raw))
    read = counting(monkeypatch)
    table_cache.cache_path(CAMPAIGN).write_bytes(b"not a cache")
    monkeypatch.setattr(tables, "_MEMO", {})  # as a new process finds it
    assert tables.table_texts(CAMPAIGN, store=RawStore(raw))[0] == first and len(read) > 40
    read.clear()
    monkeypatch.setattr(table_cache, "code_version", lambda *a: "another parser")
    assert tables.table_texts(CAMPAIGN, store=RawStore(raw))[0] == first and len(read) > 40
    read.clear()
    gone = sorted((raw / CAMPAIGN / "guest/scaling").iterdir())[0]
    shutil.rmtree(gone)
    texts, _, changed = tables.table_texts(CAMPAIGN, store=RawStore(raw))
    assert changed and len(read) > 40 and texts == full(raw) and texts != first


def test_one_process_reads_the_cache_once_until_a_run_comes(raw, monkeypatch):
    first, _, _ = tables.table_texts(CAMPAIGN, store=RawStore(raw))
    loads = []
    monkeypatch.setattr(table_cache, "load", lambda *a: loads.append(a))
    assert tables.table_texts(CAMPAIGN, store=RawStore(raw))[0] == first and loads == []
    add_run(raw, "local/scaling/" + sorted((raw / CAMPAIGN / "local/scaling").iterdir())[0].name, "late-r01")
    tables.table_texts(CAMPAIGN, store=RawStore(raw))
    assert len(loads) == 1  # a new folder: the cache on disk is the one to extend


def test_many_new_runs_are_read_in_parallel_with_the_same_result(raw, monkeypatch):
    monkeypatch.setattr(table_cache, "_PARALLEL_MIN", 2)
    monkeypatch.setattr(tables.os, "sched_getaffinity", lambda pid: {0, 1})
    texts, warnings, _ = tables.table_texts(CAMPAIGN, store=RawStore(raw), reparse=True)
    built, expected_warnings = tables.collect_tables(CAMPAIGN, store=RawStore(raw), reparse=True)
    assert texts == {name: t.csv() for name, t in built.items()} and warnings == expected_warnings
