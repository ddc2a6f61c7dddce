"""What `vhpc run` says: the campaign first, the resume command when interrupted, a result table at the end, a
non-zero exit when the stage lacks the valid runs it planned, sentences for adaptive outcomes. Real blockss runs
through the venv's Intel MPI on this machine, into tmp campaigns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from vhpclib.run_report import resume_command, shortfall
from vhpclib.stages.adaptive import Outcome

ROOT = Path(__file__).resolve().parent.parent
TINY = ["run", "single-node", "-w", "blockss", "--preset", "tiny", "--no-figures", "--no-progress"]


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "VHPC_DATA": str(tmp / "data"), "VHPC_FIGURES": str(tmp / "figures"),
            "VHPC_CONTENTION_THRESHOLD": "off"}


def vhpc(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], cwd=ROOT, env=_env(tmp), capture_output=True,
                          text=True, timeout=600)


def test_resume_command_names_the_campaign_and_keeps_the_other_options() -> None:
    assert resume_command(["run", "single-node", "-w", "blockss", "-c", "old"], "c1") == \
        "vhpc run single-node --campaign c1 -w blockss"
    assert resume_command(["run", "microbench", "--campaign=x y"], "x y") == "vhpc run microbench --campaign 'x y'"


def test_shortfall_counts_invalid_runs_as_not_done() -> None:
    result = SimpleNamespace(invalid=[1, 2, 3], runs=[1, 2, 3], environments={})
    text = shortfall(result, "single-node", "c1")
    assert text.startswith("3 planned run(s) are not valid (3 valid)")
    assert "vhpc run single-node --campaign c1 --rerun" in text
    assert shortfall(SimpleNamespace(invalid=[], runs=[1], environments={}), "single-node", "c1") == ""


def test_adaptive_outcome_reads_as_a_sentence_with_the_true_coverage() -> None:
    out = Outcome("wall time", "local", "blockss p=2", "s", 1.0, 0.6, 1.4, 41.01, 2.0, 12, 12, [], 3, 0.9727,
                  "budget reached")
    line = out.line()
    assert "the interval is within ±41.0 % of the value at 97.2 % coverage (target ±2 %), after 12 run(s)" in line
    assert "at 0.9727" not in line and "+-" not in line


def test_run_help_documents_the_contention_threshold() -> None:
    proc = subprocess.run([sys.executable, "-m", "vhpclib.cli", "run", "--help"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "200"}, timeout=60)
    text = " ".join(proc.stdout.split())
    assert "contention threshold" in text and "contention_threshold" in text and "VHPC_CONTENTION_THRESHOLD" in text


@pytest.mark.mpi
def test_run_prints_the_campaign_first_and_ends_with_a_result_table(tmp_path) -> None:
    proc = vhpc(tmp_path, *TINY, "--repetitions", "2", "-c", "r1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "campaign r1 (new)"
    at = lines.index("results of local in single-node:")
    header, row = lines[at + 1], lines[at + 3]
    assert header.split()[:2] == ["point", "median"] and "interval (coverage)" in header
    assert row.startswith("blockss tiny, 2 x 1") and "(min–max, 50 %)" in row and row.split()[-1] == "2"


@pytest.mark.mpi
def test_resuming_a_stage_whose_runs_are_invalid_exits_1_and_says_rerun(tmp_path) -> None:
    assert vhpc(tmp_path, *TINY, "--repetitions", "2", "-c", "r2").returncode == 0
    record = sorted((tmp_path / "data/raw/r2").rglob("blockss-*/run.json"))[0]
    doc = json.loads(record.read_text())
    doc.update(status="invalid", reasons=["contention on localhost: spin (pid 1) used 0.80 of a core"])
    record.write_text(json.dumps(doc))  # as the contention check stores such a run
    proc = vhpc(tmp_path, *TINY, "--repetitions", "2", "-c", "r2")
    assert proc.returncode == 1
    assert "0 run(s) measured, 2 reused, 1 invalid" in proc.stdout
    assert proc.stderr.strip().endswith("(reasons above; vhpc campaigns show r2)")
    assert "1 planned run(s) are not valid (1 valid)" in proc.stderr and "--campaign r2 --rerun" in proc.stderr


@pytest.mark.mpi
def test_an_interrupted_run_says_how_to_resume_its_campaign(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "vhpclib.cli", *TINY, "--repetitions", "40"], cwd=ROOT,
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("campaign ") and first.endswith("(new)")
        name = first.split()[1]
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    [line] = [x for x in err.splitlines() if x.startswith("vhpc: error: ")]  # one line: interrupted, and how to resume
    assert "interrupted" in line and (
        f"; campaign {name}; resume with: vhpc run single-node --campaign {name} -w blockss") in line, err
