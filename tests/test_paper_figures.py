"""`make paper-figures` from the committed raw logs: every artifact, the report, checked in a real browser."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import browser

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "data/raw/embedded"
ARTIFACTS = ("table2_latency", "figure2_throughput", "table3_single_node", "figure3_npb", "figure4_blockss",
             "section23_io")
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The pipeline on a copy of the committed campaign: nothing is measured, nothing in the repo changes."""
    tmp = tmp_path_factory.mktemp("paper")
    shutil.copytree(COMMITTED, tmp / "data/raw/embedded")
    before = {p: p.stat().st_mtime_ns for p in (tmp / "data/raw").rglob("*")}
    env = {**os.environ, "VHPC_DATA": str(tmp / "data"), "VHPC_FIGURES": str(tmp / "figures"),
           "VHPC_EXECUTED": str(tmp / "executed")}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vhpclib.pipeline", "--campaign", "embedded"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = tmp / "figures/report.html"
    yield tmp, report, elapsed, before


def test_committed_campaign_is_reused_not_remeasured(pipeline):
    tmp, _, _, before = pipeline
    after = {p: p.stat().st_mtime_ns for p in (tmp / "data/raw").rglob("*")}
    assert {p for p in after if p.suffix in (".log", ".json") and "fingerprint" not in p.parts} == \
        {p for p in before if p.suffix in (".log", ".json") and "fingerprint" not in p.parts}
    assert all(after[p] == before[p] for p in before)


def test_every_paper_artifact_is_written_in_four_formats(pipeline):
    tmp = pipeline[0]
    for name in ARTIFACTS:
        for ext in ("pdf", "svg", "png", "html"):
            assert (tmp / "figures" / f"{name}.{ext}").stat().st_size > 1000, f"{name}.{ext}"
    table = (tmp / "data/processed/embedded/paper_vs_measured.csv").read_text()
    assert "table2" in table and "paper_hardware" in table.splitlines()[0]


def test_report_renders_its_plots_in_headless_chromium(pipeline, tmp_path):
    _, report, _, _ = pipeline
    html = report.read_text()
    assert "cdnjs" not in html and 'src="http' not in html, "the report must render offline"
    shot = browser.screenshot(report, tmp_path / "report.png", width=1200, height=1600)
    assert shot.console_errors == []
    assert "Every paper artifact, measured beside the paper" in shot.dom
    assert shot.dom.count('class="plot-container plotly"') >= len(ARTIFACTS)
    assert not browser.png_is_blank(tmp_path / "report.png")


def test_one_figure_page_renders_in_headless_chromium(pipeline, tmp_path):
    page = pipeline[0] / "figures/figure4_blockss.html"
    shot = browser.screenshot(page, tmp_path / "fig4.png")
    assert shot.console_errors == []
    assert "Figure 4" in shot.dom and not browser.png_is_blank(tmp_path / "fig4.png")
