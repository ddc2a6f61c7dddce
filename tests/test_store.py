"""The raw store is write-once, never shows a half-written run, and reads every record through one type."""

import json
from pathlib import Path

import pytest

from vhpclib.exceptions import InvalidName, StoreError
from vhpclib.record import RunRecord, parse_record, split_run_id
from vhpclib.store import REDACTED, RawStore, redact_env

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "data/raw/embedded"


def record(run_id="r1", stage="microbench", **kw) -> RunRecord:
    return RunRecord(run_id=run_id, campaign="c", environment="local", stage=stage, **kw)


def test_run_becomes_visible_only_when_its_block_completes(tmp_path):
    store = RawStore(tmp_path)
    with store.new_run(record(point={"x": 1})) as writer:
        writer.stdout_path.write_text("out")
        assert not store.is_complete("c", "local", "microbench", "r1")
        assert list(store.runs("c")) == []
    assert store.is_complete("c", "local", "microbench", "r1")
    data = json.loads((tmp_path / "c/local/microbench/r1/run.json").read_text())
    assert data["schema_version"] == 2 and data["point"] == {"x": 1} and data["status"] == "complete"
    assert data["files"] == ["stdout.log"] and data["code"]["vhpclib"]
    assert store.load("c", "local", "microbench", "r1").record.point == {"x": 1}


def test_failed_block_leaves_nothing_behind(tmp_path):
    store = RawStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.new_run(record()) as writer:
            writer.stdout_path.write_text("half")
            raise RuntimeError("interrupted")
    assert not store.is_complete("c", "local", "microbench", "r1")
    assert list((tmp_path / "c/local/microbench").iterdir()) == []


def test_a_failed_run_is_kept_aside_with_its_logs_and_reason(tmp_path):
    store = RawStore(tmp_path)
    with store.new_run(record("pingpong-x-r01")) as writer:
        writer.stdout_path.write_text("what the job printed")
        writer.fail("exit status 3")
    assert not store.is_complete("c", "local", "microbench", "pingpong-x-r01")  # resume measures it again
    [kept] = list(store.runs("c"))
    assert kept.run_id.startswith("pingpong-x-r01.failed-") and kept.status == "failed"
    assert kept.record.reasons == ["exit status 3"] and kept.stdout() == "what the job printed"
    assert store.measured_counts("c", "local", "microbench") == {}


def test_partial_folder_of_a_killed_run_is_not_a_run(tmp_path):
    store = RawStore(tmp_path)
    partial = tmp_path / "c/local/microbench/.r1.partial-123-abcd"
    partial.mkdir(parents=True)
    (partial / "run.json").write_text("{}")
    assert not store.is_complete("c", "local", "microbench", "r1")
    assert list(store.runs("c")) == []


def test_complete_run_is_never_overwritten(tmp_path):
    store = RawStore(tmp_path)
    with store.new_run(record(stage="s")):
        pass
    with pytest.raises(StoreError, match="write-once"):
        with store.new_run(record(stage="s")):
            pass


def test_a_damaged_record_is_one_warning_and_the_other_runs_are_read(tmp_path):
    store = RawStore(tmp_path)
    for run_id in ("a-r01", "b-r01"):
        with store.new_run(record(run_id)):
            pass
    (tmp_path / "c/local/microbench/a-r01/run.json").write_text("")  # what a power cut can leave
    with pytest.warns(UserWarning, match="a-r01/run.json: damaged run record"):
        runs = list(store.runs("c"))
    assert [r.run_id for r in runs] == ["b-r01"]


@pytest.mark.parametrize("bad", ["../up", "a/b", "", ".hidden", "x;rm"])
def test_ids_that_could_escape_the_store_are_refused(tmp_path, bad):
    with pytest.raises(InvalidName):
        RawStore(tmp_path).run_path("c", "local", "s", bad)


def test_secret_looking_variables_are_redacted():
    env = {"API_TOKEN": "t", "db_password": "p", "MY_SECRET": "s", "SSH_KEY": "k", "OMP_NUM_THREADS": "2"}
    assert redact_env(env) == {"API_TOKEN": REDACTED, "db_password": REDACTED, "MY_SECRET": REDACTED,
                               "SSH_KEY": REDACTED, "OMP_NUM_THREADS": "2"}


def test_version_1_records_of_the_committed_campaign_read_as_version_2_unchanged():
    before = {p: p.read_bytes() for p in COMMITTED.rglob("run.json")}
    runs = list(RawStore(COMMITTED.parent).runs("embedded"))
    assert len(runs) == len(before) and all(r.record.source_schema == 1 for r in runs)
    by_id = {r.run_id: r.record for r in runs}
    ping = by_id["pingpong-intra-socket-m0-22-r01"]
    assert ping.workload == "pingpong" and ping.point["placement"] == "intra-socket"
    assert ping.pinning.verification == "verified" and ping.execution.exit_status == 0
    assert ping.execution.env["I_MPI_PIN_PROCESSOR_LIST"] == "0,1" and ping.stem == "pingpong-intra-socket-m0-22"
    app = by_id["blockss-small-p2-t1-r01"]
    assert app.workload == "blockss" and app.point == {"ppn": 2, "problem": "small", "processes": 2, "threads": 1,
                                                       "workload": "blockss"}
    assert app.label == "local" and app.environment_spec.baseline and app.duration_s > 0
    skip = by_id["npb-mz-skipped"]
    assert skip.kind == "skip" and skip.status == "skipped" and "benchmarks.npb" in skip.reason
    assert {p: p.read_bytes() for p in COMMITTED.rglob("run.json")} == before  # nothing written


def test_a_record_of_an_unknown_schema_is_refused():
    with pytest.raises(ValueError, match="schema_version 9"):
        parse_record({"schema_version": 9})
    assert split_run_id("blockss-small-p2-t1-r03") == ("blockss-small-p2-t1", 3)
    assert split_run_id("npb-mz-skipped") == ("npb-mz-skipped", None)
