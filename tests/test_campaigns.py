"""Campaigns never mix: a new measurement gets a new campaign, committed and other machines' campaigns are refused,
figures never measure, and one campaign's report never shows another's hosts (real IMB, real papermill)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vhpclib import campaigns
from vhpclib.store import RawStore

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED = ROOT / "data/raw/embedded"
TINY = ["run", "microbench", "--msglog", "0:2", "--iterations", "20", "--repetitions", "1", "--no-progress",
        "--no-figures"]
OTHER_HOST, OTHER_CPU = "other-host", "Example CPU 9999 (another machine)"


def vhpc(tmp: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "VHPC_DATA": str(tmp / "data"), "VHPC_FIGURES": str(tmp / "figures"),
           "VHPC_EXECUTED": str(tmp / "executed")}
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vhpc: error: ") and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def campaign_from_another_machine(raw: Path, name: str) -> Path:
    """The committed campaign as if measured elsewhere: every record names another host and CPU."""
    target = raw / name
    shutil.copytree(EMBEDDED, target)
    sample = json.loads(next(target.glob("local/microbench/*-r01/run.json")).read_text())
    facts = next(iter(sample["host_facts"].values()))
    for record in target.rglob("run.json"):
        text = record.read_text()
        text = text.replace(json.dumps(facts["hostname"]), json.dumps(OTHER_HOST))
        text = text.replace(json.dumps(facts["cpu_model"]), json.dumps(OTHER_CPU))
        record.write_text(text)
    return target


def tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.mpi
def test_a_users_run_goes_into_a_new_campaign_named_by_the_utc_time(tmp_path):
    first = vhpc(tmp_path, *TINY)
    assert first.returncode == 0, first.stderr
    name = re.search(r"^campaign: (\S+) \(new\)$", first.stdout, re.M).group(1)
    assert re.fullmatch(r"\d{8}T\d{6}Z(-\d+)?", name)
    assert (tmp_path / f"data/raw/{name}/local/microbench/pingpong-intra-socket-m0-2-i20-r01/run.json").is_file()
    second = vhpc(tmp_path, *TINY)
    other = re.search(r"^campaign: (\S+) \(new\)$", second.stdout, re.M).group(1)
    assert other != name, "every run without --campaign starts a campaign of its own"
    assert f"vhpc figures -c {other}" in second.stdout


@pytest.mark.mpi
def test_naming_an_existing_campaign_of_this_machine_resumes_it(tmp_path):
    assert vhpc(tmp_path, *TINY, "--campaign", "mine").returncode == 0
    again = vhpc(tmp_path, *TINY, "--campaign", "mine")
    assert again.returncode == 0 and "0 run(s) measured, 1 reused" in again.stdout
    assert "campaign: mine\n" in again.stdout


def test_a_committed_campaign_is_not_written_to(tmp_path):
    raw = tmp_path / "data/raw"
    shutil.copytree(EMBEDDED, raw / "study")
    git = ["git", "-C", str(tmp_path / "data"), "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "raw"], check=True)
    subprocess.run([*git, "commit", "-qm", "campaign"], check=True)
    before = tree(raw)
    for args in (TINY, ["run", "single-node", "--preset", "tiny", "--repetitions", "1", "--no-progress"]):
        one_line_error(vhpc(tmp_path, *args, "--campaign", "study"), "committed", "--allow-committed")
    assert tree(raw) == before
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True)
    assert status.stdout == ""


@pytest.mark.mpi
def test_runs_on_other_hosts_are_refused_then_added_only_when_allowed_and_recorded(tmp_path):
    raw = tmp_path / "data/raw"
    campaign_from_another_machine(raw, "elsewhere")
    before = tree(raw)
    line = one_line_error(vhpc(tmp_path, *TINY, "--campaign", "elsewhere"), "measured on other hosts",
                          "--allow-mixed")
    assert f"cpu_model: {OTHER_CPU} ->" in line and f"hostname: {OTHER_HOST} ->" in line
    assert tree(raw) == before, "a refused run writes nothing"
    allowed = vhpc(tmp_path, *TINY, "--campaign", "elsewhere", "--allow-mixed")
    assert allowed.returncode == 0, allowed.stderr
    assert "added anyway (--allow-mixed" in allowed.stdout
    [record] = campaigns.mixed_records("elsewhere", RawStore(raw))
    assert record["environment"] == "local" and OTHER_CPU in " ".join(record["differences"]["localhost"])


@pytest.mark.mpi
@pytest.mark.browser
def test_figures_never_measure_and_no_report_shows_another_campaigns_hosts(tmp_path):
    raw = tmp_path / "data/raw"
    campaign_from_another_machine(raw, "elsewhere")
    measured = vhpc(tmp_path, *TINY, "--campaign", "here")
    assert measured.returncode == 0, measured.stderr
    here = json.loads(next((raw / "here").rglob("*-r01/run.json")).read_text())
    here_host = next(iter(here["host_facts"].values()))
    before = tree(raw)
    for name in ("here", "elsewhere"):
        proc = vhpc(tmp_path, "figures", "-c", name, "--no-progress")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "measured" not in proc.stdout.replace("measured last", "")
    assert tree(raw) == before, "building figures adds nothing to any campaign"
    mine = (tmp_path / "figures/here/report.html").read_text()
    theirs = (tmp_path / "figures/elsewhere/report.html").read_text()
    assert "Campaign <b>here</b>" in mine and "Campaign <b>elsewhere</b>" in theirs
    assert OTHER_HOST not in mine and OTHER_CPU not in mine
    assert OTHER_CPU in theirs and here_host["cpu_model"] not in theirs
    assert (tmp_path / "figures/here/table2_latency.pdf").is_file()
    assert (tmp_path / "figures/elsewhere/figure4_blockss.png").is_file()


def test_figures_of_a_missing_campaign_is_one_line(tmp_path):
    one_line_error(vhpc(tmp_path, "figures", "-c", "nope"), "no campaign 'nope'")
    one_line_error(vhpc(tmp_path, "figures", "-c", "../x"), "campaign")


def test_inventory_check_stores_fingerprints_only_in_a_campaign_named(tmp_path):
    plain = vhpc(tmp_path, "inventory", "check", "inventories/local.yml")
    assert plain.returncode == 0, plain.stderr
    assert "fingerprints not stored" in plain.stdout
    assert not (tmp_path / "data").exists(), "no campaign named: nothing written"
    named = vhpc(tmp_path, "inventory", "check", "inventories/local.yml", "-c", "chk")
    assert named.returncode == 0, named.stderr
    assert list((tmp_path / "data/raw/chk/local/fingerprint").glob("*.json"))


def test_a_re_measure_is_resumed_until_it_finishes(tmp_path):
    store = RawStore(tmp_path / "raw")
    first = campaigns.rerun_campaign(store)
    assert first.new and first.name.startswith("rerun-")
    again = campaigns.rerun_campaign(store)
    assert (again.name, again.new) == (first.name, False), "an interrupted re-measure is resumed"
    assert campaigns.rerun_campaign(store, new=True).name != first.name
    for name in campaigns.names(store):
        campaigns.mark_rerun_finished(name, store)
    fresh = campaigns.rerun_campaign(store)
    assert fresh.new and fresh.name not in (first.name,)


def test_measurement_campaign_selection_rules(tmp_path):
    store = RawStore(tmp_path / "raw")
    new = campaigns.for_measurement(None, store=store)
    assert new.new and re.fullmatch(r"\d{8}T\d{6}Z", new.name)
    (store.root / "exists").mkdir(parents=True)
    assert campaigns.for_measurement("exists", store=store) == campaigns.Selection("exists", False)
    assert campaigns.for_reading(None, store) == "exists"
    with pytest.raises(Exception, match="campaign"):
        campaigns.for_measurement("../up", store=store)
