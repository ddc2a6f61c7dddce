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
    proc = subprocess.run([sys.executable, "-m", "vhpclib.cli", "paper-figures", "--campaign", "embedded"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Kernel is running over TCP" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr
    report = tmp / "figures/embedded/report.html"
    yield tmp, report, elapsed, before


def test_committed_campaign_is_reused_not_remeasured(pipeline):
    tmp, _, _, before = pipeline
    after = {p: p.stat().st_mtime_ns for p in (tmp / "data/raw").rglob("*")}
    assert set(after) == set(before), "nothing is added to the campaign"
    assert all(after[p] == before[p] for p in before)


def test_every_paper_artifact_is_written_in_four_formats_in_the_campaign_folder(pipeline):
    tmp = pipeline[0]
    for name in ARTIFACTS:
        for ext in ("pdf", "svg", "png", "html"):
            assert (tmp / "figures/embedded" / f"{name}.{ext}").stat().st_size > 1000, f"{name}.{ext}"
    table = (tmp / "data/processed/embedded/paper_vs_measured.csv").read_text()
    assert "table2" in table and "paper_hardware" in table.splitlines()[0]
    assert (tmp / "figures/latest").resolve() == (tmp / "figures/embedded").resolve()


def test_plotly_js_is_in_the_report_folder_once_and_no_page_is_big(pipeline):
    folder = pipeline[0] / "figures/embedded"
    assert [p.name for p in folder.rglob("plotly*.js")] == ["plotly.min.js"]
    big = {p.name: p.stat().st_size for p in folder.glob("*.html") if p.stat().st_size > 200_000}
    assert big == {}
    executed = pipeline[0] / "executed/embedded/05-paper-figures.ipynb"
    assert executed.stat().st_size < 1_000_000, "the executed notebook carries no plotly.js"


def test_report_renders_its_plots_in_headless_chromium(pipeline, tmp_path):
    _, report, _, _ = pipeline
    html = report.read_text()
    assert "cdnjs" not in html and 'src="http' not in html, "the report must render offline"
    shot = browser.screenshot(report, tmp_path / "report.png", width=1200, height=1600)
    assert shot.console_errors == []
    assert "Every paper artifact, measured beside the paper" in shot.dom
    assert shot.dom.count('class="plot-container plotly"') >= len(ARTIFACTS)
    assert not browser.png_is_blank(tmp_path / "report.png")


def test_report_says_which_campaign_when_and_how_many_runs(pipeline, tmp_path):
    import re

    _, report, _, _ = pipeline
    shot = browser.screenshot(report, tmp_path / "top.png", width=1200, height=900)
    assert shot.title == "vHPC report: campaign embedded"
    text = re.sub(r"<[^>]+>", " ", shot.dom)
    text = re.sub(r"\s+", " ", text)
    assert "Campaign embedded" in text
    assert re.search(r"Measured 2026-11-26 \d\d:\d\d:\d\d UTC – 2026-11-26", text), "dates of the runs"
    assert "code: b0e87353ec (vhpclib 0.1.0)" in text
    assert "Intel(R) Xeon(R)" in text, "the environment's hardware"
    measured = text.split("What was measured", 1)[1][:500]
    assert "IMB PingPong, intra-socket" in measured and "blockss small" in measured, "problem sizes"
    # every measured value carries n: the subtitle of each measured artifact, and the tables' n columns
    for title in ("Table 2: PingPong one-way latency", "Figure 2: PingPong throughput", "Table 3: single-node",
                  "Figure 4: blockss"):
        part = text.split(title, 1)[1][:600]
        assert "median of n = " in part, title
    assert "min–max, 96.8 %" in text and "min–max, 93.7 %" in text, "intervals with their true coverage"
    assert "A/A check" in text and "local/A (runs 1, 3, 5...)" in text
    assert "How to read this report" in text and "Cloud comparison" in text
    assert "not measured here" not in text.split("Paper vs measured", 1)[1].split("What was skipped", 1)[0]
    assert not browser.png_is_blank(tmp_path / "top.png")


def test_one_figure_page_renders_in_headless_chromium(pipeline, tmp_path):
    page = pipeline[0] / "figures/embedded/figure4_blockss.html"
    shot = browser.screenshot(page, tmp_path / "fig4.png")
    assert shot.console_errors == []
    assert "Figure 4" in shot.dom and not browser.png_is_blank(tmp_path / "fig4.png")


def test_report_is_rebuilt_from_its_executed_copy_when_nothing_changed(pipeline):
    tmp, report, _, _ = pipeline
    env = {**os.environ, "VHPC_DATA": str(tmp / "data"), "VHPC_FIGURES": str(tmp / "figures"),
           "VHPC_EXECUTED": str(tmp / "executed")}
    before = report.stat().st_mtime_ns
    proc = subprocess.run([sys.executable, "-m", "vhpclib.cli", "figures", "-c", "embedded", "--no-progress"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "executed copy reused" in proc.stdout and report.stat().st_mtime_ns > before
    assert "Kernel is running over TCP" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr


@pytest.mark.parametrize("args, expected", [
    ([], "vhpc figures --campaign embedded-layers"),
    (["CAMPAIGN=ux1"], "vhpc figures --campaign ux1"),
    (["RERUN=1"], "vhpc paper-figures --rerun --inventory inventories/host-and-guest.yml"),
    (["RERUN=1", "CAMPAIGN=ux2"], "--campaign ux2"),
])
def test_make_paper_figures_builds_the_report_of_the_campaign_asked_for(args, expected):
    proc = subprocess.run(["make", "-n", "-B", "paper-figures", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout
    if not any(a.startswith("RERUN") for a in args):
        assert "--rerun" not in proc.stdout, "figures alone never measure"


GUEST_CAMPAIGN = "embedded-guest"


def test_committed_host_and_guest_campaign_measures_a_real_overhead_of_an_emulated_guest():
    """The committed default: this machine (baseline) and the TCG guest vHPC booted, read from raw logs only."""
    from vhpclib import analysis
    from vhpclib.store import RawStore
    from vhpclib.tables import build_tables

    tables = build_tables(GUEST_CAMPAIGN, store=RawStore(ROOT / "data/raw")).tables
    envs = tables["environments"].set_index("environment")
    assert envs.loc["local", "baseline"] and envs.loc["guest", "vmm"] == "qemu-tcg"
    assert envs.loc["guest", "vcpu_pinning"] == "pinned" and envs.loc["guest", "virtualization"] == "qemu"
    overhead = analysis.overhead_table(tables["apps"], "local")
    guest = overhead[(overhead["environment"] == "guest") & (overhead["workload"] == "blockss")].iloc[0]
    assert guest["significant"] and guest["overhead_pct_ci_low"] > 0, "emulation costs, with an interval above zero"
    latency = analysis.latency_table(tables["microbench"]).set_index("environment")
    assert set(latency.index) == {"local", "guest"}
    scaling = tables["apps"][tables["apps"]["stage"] == "scaling"]
    assert {(e, p) for e, p in zip(scaling["environment"], scaling["nprocs"])} >= {
        ("local", 1), ("local", 2), ("guest", 1), ("guest", 2)}


def test_every_run_of_the_committed_guest_keeps_its_vcpu_map():
    import json

    runs = [p for p in (ROOT / "data/raw" / GUEST_CAMPAIGN / "guest").glob("*/*/run.json")]
    assert len(runs) == 28  # 24 runs and 4 skip records
    for path in runs:
        record = json.loads(path.read_text())
        if record["kind"] == "run":
            assert record["environment_spec"]["vcpu_map"] == {"0": [0], "1": [1]}, path


def test_the_default_report_shows_host_and_guest_and_says_the_guest_is_emulated(tmp_path):
    shutil.copytree(ROOT / "data/raw" / GUEST_CAMPAIGN, tmp_path / "data/raw" / GUEST_CAMPAIGN)
    env = {**os.environ, "VHPC_DATA": str(tmp_path / "data"), "VHPC_FIGURES": str(tmp_path / "figures"),
           "VHPC_EXECUTED": str(tmp_path / "executed")}
    proc = subprocess.run([sys.executable, "-m", "vhpclib.cli", "figures", "-c", GUEST_CAMPAIGN, "--no-progress"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "figures" / GUEST_CAMPAIGN
    for name in ("table2_latency", "figure2_throughput", "table3_single_node", "figure4_blockss"):
        page = (folder / f"{name}.html").read_text()
        assert "guest (emulation: qemu-tcg)" in page and "local" in page, name
    report = (folder / "report.html").read_text()
    assert "<title>vHPC report: campaign embedded-guest</title>" in report
    assert "<td>guest (emulation: qemu-tcg)</td><td>qemu-tcg</td>" in report, "the hardware table names the emulator"


LAYERS_CAMPAIGN = "embedded-layers"
LAYERS = {"local", "guest", "container", "uml", "gvisor", "nodes", "node-containers"}


@pytest.fixture(scope="module")
def layers_tables():
    from vhpclib.store import RawStore
    from vhpclib.tables import build_tables

    return build_tables(LAYERS_CAMPAIGN, store=RawStore(ROOT / "data/raw")).tables


def test_committed_default_measures_every_layer_this_machine_can_run(layers_tables):
    """The committed default: the host, the TCG guest, a container, UML, gVisor, and two namespace nodes bare and
    with a container each, read from raw logs only."""
    envs = layers_tables["environments"].set_index("environment")
    assert set(envs.index) == LAYERS and envs.loc["local", "baseline"]
    assert {e: envs.loc[e, "vmm"] for e in ("guest", "container", "uml", "gvisor", "node-containers")} == {
        "guest": "qemu-tcg", "container": "container", "uml": "uml", "gvisor": "gvisor", "node-containers": "container"}
    from vhpclib import analysis

    one_rank = analysis.overhead_table(layers_tables["apps"], "local", stage="scaling")
    one_rank = one_rank[(one_rank["workload"] == "blockss") & (one_rank["nprocs"] == 1)].set_index("environment")
    assert one_rank.loc["guest", "overhead_pct_ci_low"] > 1000, "TCG emulation: thousands of percent"
    assert one_rank.loc["uml", "overhead_pct_ci_low"] > 50, "UML: a kernel as a process costs"
    assert abs(one_rank.loc["container", "overhead_pct"]) < 25, "a container runs native code"
    for env in ("container", "uml", "gvisor", "guest"):
        assert one_rank.loc[env, "overhead_pct_ci_low"] <= one_rank.loc[env, "overhead_pct"] <= \
            one_rank.loc[env, "overhead_pct_ci_high"], env


def test_committed_default_has_inter_node_and_multi_node_points_beside_bare_nodes(layers_tables):
    from vhpclib import analysis

    latency = analysis.latency_table(layers_tables["microbench"])
    assert set(latency.loc[latency["placement"] == "inter-node", "environment"]) == {"nodes", "node-containers"}
    scaling = layers_tables["apps"][layers_tables["apps"]["stage"] == "scaling"]
    across = scaling[(scaling["nodes"] == 2) & scaling["verified"].astype(bool)]
    assert set(across["environment"]) == {"nodes", "node-containers"} and set(across["nprocs"]) == {2}


def test_committed_default_says_what_each_layer_could_not_run(layers_tables):
    skipped = layers_tables["skipped"]
    reasons = {(e, str(r)) for e, r in zip(skipped["environment"], skipped["reason"])}
    assert any(e == "uml" and "a node has 1" in r for e, r in reasons), reasons  # its one vCPU
    assert any(e == "gvisor" and "segfault" in r.lower() for e, r in reasons), reasons
