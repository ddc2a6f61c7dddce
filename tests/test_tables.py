"""Processed tables are derived: rebuilt from raw logs at any time, and bad runs are excluded out loud."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def campaign_copy(tmp_path, monkeypatch):
    """The committed campaign copied to a scratch data folder (the repository is never touched)."""
    shutil.copytree(ROOT / "data/raw/embedded", tmp_path / "data/raw/embedded")
    monkeypatch.setenv("VHPC_DATA", str(tmp_path / "data"))
    return tmp_path


def vhpc(*args):
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=os.environ)


def test_reparse_rebuilds_the_committed_tables_byte_for_byte(campaign_copy):
    """The tables of the committed campaign, as the code before workload plugins wrote them (kept as fixtures)."""
    proc = vhpc("tables", "--campaign", "embedded", "--reparse")
    assert proc.returncode == 0, proc.stderr
    processed = campaign_copy / "data/processed/embedded"
    for name in ("microbench", "apps", "skipped"):
        expected = (ROOT / f"tests/fixtures/tables/embedded-{name}.csv").read_text()
        assert (processed / f"{name}.csv").read_text() == expected, name


def test_tables_of_a_missing_campaign_is_one_line(campaign_copy):
    proc = vhpc("tables", "--campaign", "nosuch")
    assert proc.returncode == 2 and proc.stderr.startswith("vhpc: error: ") and "nosuch" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_tables_are_rebuilt_from_the_committed_raw_logs(campaign_copy):
    proc = vhpc("tables", "--campaign", "embedded")
    assert proc.returncode == 0, proc.stderr
    processed = campaign_copy / "data/processed/embedded"
    micro = pd.read_csv(processed / "microbench.csv")
    apps = pd.read_csv(processed / "apps.csv")
    skipped = pd.read_csv(processed / "skipped.csv")
    assert set(micro["placement"]) == {"intra-socket"} and micro["run_id"].nunique() == 6
    assert set(apps["stage"]) == {"single-node", "scaling"} and apps["verified"].all()
    assert {"inter-socket", "inter-node", "NPB-MZ"} <= set(skipped["placement"])


def test_an_invalid_run_is_excluded_with_a_warning_naming_it(campaign_copy, monkeypatch):
    run = campaign_copy / "data/raw/embedded/local/single-node/blockss-small-p2-t1-r03/run.json"
    record = json.loads(run.read_text())
    record.update(status="invalid", invalid_reason="test: pretend the pin map contradicted the request")
    run.write_text(json.dumps(record))  # a scratch copy, standing in for a run the harness rejected
    assert vhpc("tables", "--campaign", "embedded").returncode == 0
    from vhpclib import paths
    from vhpclib.figures.artifacts import CampaignData

    monkeypatch.setattr(paths, "PROCESSED", campaign_copy / "data/processed")
    with pytest.warns(UserWarning, match="blockss-small-p2-t1-r03"):
        table = CampaignData("embedded").overhead()  # one environment: the A/A check
    assert table["n"].sum() == 4  # 5 valid runs, dealt alternately into equal halves of 2


def test_docs_tables_md_is_current():
    from vhpclib import table_docs

    actual = (Path(__file__).resolve().parent.parent / "docs/tables.md").read_text()
    assert actual == table_docs.render(), "docs/tables.md is out of date: run `make docs` and commit it"
