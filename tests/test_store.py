"""The raw store is write-once and never shows a half-written run."""

import json

import pytest

from vhpclib.exceptions import InvalidName, StoreError
from vhpclib.store import REDACTED, RawStore, redact_env


def test_run_becomes_visible_only_when_its_block_completes(tmp_path):
    store = RawStore(tmp_path)
    with store.new_run("c", "local", "microbench", "r1", {"x": 1}) as writer:
        writer.stdout_path.write_text("out")
        assert not store.is_complete("c", "local", "microbench", "r1")
        assert list(store.runs("c")) == []
    assert store.is_complete("c", "local", "microbench", "r1")
    record = json.loads((tmp_path / "c/local/microbench/r1/run.json").read_text())
    assert record["x"] == 1 and record["status"] == "complete" and record["files"] == ["stdout.log"]
    assert record["code"]["vhpclib"]


def test_failed_block_leaves_nothing_behind(tmp_path):
    store = RawStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.new_run("c", "local", "microbench", "r1") as writer:
            writer.stdout_path.write_text("half")
            raise RuntimeError("interrupted")
    assert not store.is_complete("c", "local", "microbench", "r1")
    assert list((tmp_path / "c/local/microbench").iterdir()) == []


def test_partial_folder_of_a_killed_run_is_not_a_run(tmp_path):
    store = RawStore(tmp_path)
    partial = tmp_path / "c/local/microbench/.r1.partial-123-abcd"
    partial.mkdir(parents=True)
    (partial / "run.json").write_text("{}")
    assert not store.is_complete("c", "local", "microbench", "r1")
    assert list(store.runs("c")) == []


def test_complete_run_is_never_overwritten(tmp_path):
    store = RawStore(tmp_path)
    with store.new_run("c", "local", "s", "r1"):
        pass
    with pytest.raises(StoreError, match="write-once"):
        with store.new_run("c", "local", "s", "r1"):
            pass


@pytest.mark.parametrize("bad", ["../up", "a/b", "", ".hidden", "x;rm"])
def test_ids_that_could_escape_the_store_are_refused(tmp_path, bad):
    with pytest.raises(InvalidName):
        RawStore(tmp_path).run_path("c", "local", "s", bad)


def test_secret_looking_variables_are_redacted():
    env = {"API_TOKEN": "t", "db_password": "p", "MY_SECRET": "s", "SSH_KEY": "k", "OMP_NUM_THREADS": "2"}
    assert redact_env(env) == {"API_TOKEN": REDACTED, "db_password": REDACTED, "MY_SECRET": REDACTED,
                               "SSH_KEY": REDACTED, "OMP_NUM_THREADS": "2"}
