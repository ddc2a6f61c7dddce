"""Resume planning counts stored repetitions from an index the store keeps, checked against the folder."""

import shutil
from pathlib import Path

import pytest

from vhpclib import run_index, store as store_mod
from vhpclib.record import RunRecord
from vhpclib.store import MEASURED, RawStore

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = "embedded-guest"


@pytest.fixture()
def raw(tmp_path):
    shutil.copytree(ROOT / "data/raw" / CAMPAIGN, tmp_path / CAMPAIGN)
    return tmp_path


def by_reading(store: RawStore, env: str, stage: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in store.runs(CAMPAIGN, env, stage):
        if run.status in MEASURED and run.record.kind == "run":
            counts[run.record.stem] = counts.get(run.record.stem, 0) + 1
    return counts


def reads(monkeypatch) -> list[Path]:
    seen: list[Path] = []
    original = RawStore._read

    def counted(self, path):
        seen.append(path)
        return original(self, path)

    monkeypatch.setattr(RawStore, "_read", counted)
    monkeypatch.setattr(store_mod, "_RECORDS", {})
    return seen


def test_counts_equal_reading_every_run_and_the_index_spares_the_reads(raw, monkeypatch):
    store = RawStore(raw)
    for env in ("local", "guest"):
        for stage in ("microbench", "single-node", "scaling"):
            expected = by_reading(store, env, stage)
            assert expected and store.measured_counts(CAMPAIGN, env, stage) == expected
    seen = reads(monkeypatch)
    assert store.measured_counts(CAMPAIGN, "local", "scaling") == by_reading(RawStore(raw), "local", "scaling")
    assert len(seen) == len(list((raw / CAMPAIGN / "local/scaling").iterdir()))  # by_reading's, not the index's
    assert run_index.index_path(raw / CAMPAIGN / "local/scaling").is_file()


def test_a_stale_or_damaged_index_is_corrected_from_the_folder(raw, monkeypatch):
    store = RawStore(raw)
    stage = raw / CAMPAIGN / "local/scaling"
    before = store.measured_counts(CAMPAIGN, "local", "scaling")
    run = sorted(p for p in stage.iterdir() if p.is_dir())[0]
    stem = run.name.rsplit("-r", 1)[0]
    shutil.copytree(run, stage / f"{stem}-r77")  # stored by something that did not write the index
    assert store.measured_counts(CAMPAIGN, "local", "scaling")[stem] == before[stem] + 1
    shutil.rmtree(stage / f"{stem}-r77")
    assert store.measured_counts(CAMPAIGN, "local", "scaling") == before
    run_index.index_path(stage).write_text("garbage\nhalf\ta line\n")
    assert store.measured_counts(CAMPAIGN, "local", "scaling") == before
    lines = run_index.index_path(stage).read_text().splitlines()
    assert len(lines) == len([p for p in stage.iterdir() if p.is_dir() and not p.name.startswith(".")])


def test_the_store_appends_each_stored_run(raw, monkeypatch):
    store = RawStore(raw)
    store.measured_counts(CAMPAIGN, "local", "scaling")
    record = RunRecord(run_id="extra-point-r01", campaign=CAMPAIGN, environment="local", stage="scaling",
                       status="complete", kind="run")
    with store.new_run(record):
        pass
    assert run_index.index_path(raw / CAMPAIGN / "local/scaling").read_text().endswith(
        "extra-point-r01\tcomplete\trun\textra-point\n")
    seen = reads(monkeypatch)
    assert store.measured_counts(CAMPAIGN, "local", "scaling")["extra-point"] == 1 and seen == []
