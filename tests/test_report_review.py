"""The report a reviewer reads: every measured row names its hardware, Python warnings become the report's own
notes, the distributions are linked (committed campaigns are read, never written: edits go to tmp copies)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from vhpclib import paths
from vhpclib.report import build_report

COMMITTED = Path(__file__).resolve().parent.parent / "data/raw/embedded-guest"


@pytest.fixture
def tmp_data(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(paths, "RAW", tmp_path / "data/raw")
    monkeypatch.setattr(paths, "PROCESSED", tmp_path / "data/processed")
    monkeypatch.setattr(paths, "FIGURES", tmp_path / "figures")
    return tmp_path / "data/raw"


def test_paper_vs_measured_names_the_hardware_of_the_emulated_guest() -> None:
    report = build_report("embedded-guest", write=False)
    pvm = report.paper_vs_measured
    measured = pvm[pvm["measured_value"].notna()]
    assert set(measured["environment"]) >= {"local", "guest (emulation: qemu-tcg)"}
    blank = measured[measured["measured_hardware"].fillna("") == ""]
    assert blank.empty, blank[["artifact", "environment"]].to_string()


def test_python_warnings_become_notes_of_the_report_not_stderr(tmp_data) -> None:
    shutil.copytree(COMMITTED, tmp_data / "noted")
    run = sorted((tmp_data / "noted/local/single-node").glob("blockss-*/run.json"))[0]
    record = json.loads(run.read_text())
    record["status"] = "invalid"  # as a run whose sanity check failed is stored
    run.write_text(json.dumps(record))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping the report fails here
        report = build_report("noted", write=False)
        sections = [report.header(), report.how_to_read(), report.paper_vs_measured_html(), report.skipped_html(),
                    report.cloud_html(), report.files_html()]
    text = "\n".join(sections)
    assert run.parent.name in " ".join(report.warnings), report.warnings
    assert "Notes" in text and run.parent.name in text
    assert str(paths.PROJECT_ROOT) not in text and "UserWarning" not in text


def test_the_report_links_the_distribution_figures() -> None:
    report = build_report("embedded-guest", write=False)
    links = report.files_html()
    assert 'href="distribution_latency.html"' in links and 'href="distribution_single_node.html"' in links


def test_what_was_measured_counts_valid_runs_and_says_how_many_are_not(tmp_data) -> None:
    shutil.copytree(COMMITTED, tmp_data / "aa")
    for run in sorted((tmp_data / "aa/local/single-node").glob("blockss-*/run.json"))[:4]:
        record = json.loads(run.read_text())
        record["status"] = "invalid"
        run.write_text(json.dumps(record))
    report = build_report("aa", write=False)
    text = report.measured_html()
    assert "valid runs per point (n)" in text
    assert "<td>2 (+4 not valid)</td>" in text, text
