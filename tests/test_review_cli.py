"""The commands a researcher reaches for: `vhpc campaigns`, `vhpc campaigns show`, `vhpc compare`, and the one-line
refusals (an empty campaign to draw, no Chromium). Committed campaigns are only read; tmp campaigns are copies."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_cli import assert_one_line_error
from vhpclib.compare import Quantity, compare_values

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "data/raw"


def vhpc(*args: str, tmp: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, **env}
    if tmp is not None:
        environ.update(VHPC_DATA=str(tmp / "data"), VHPC_FIGURES=str(tmp / "figures"),
                       VHPC_EXECUTED=str(tmp / "executed"))
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def tmp_store(tmp_path) -> Path:
    """A store with a copy of embedded-guest in which one guest run is invalid (the repo is not touched)."""
    raw = tmp_path / "data/raw"
    shutil.copytree(COMMITTED / "embedded-guest", raw / "copy")
    run = sorted((raw / "copy/guest/single-node").glob("blockss-*/run.json"))[0]
    record = json.loads(run.read_text())
    record.update(status="invalid", reasons=["contention: 2.1 runnable threads per core"])
    run.write_text(json.dumps(record))
    return tmp_path


def test_campaigns_lists_the_committed_campaigns_with_dates_environments_and_counts() -> None:
    proc = vhpc("campaigns")
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}
    guest = lines["embedded-guest"]
    assert "2026-12-07 04:09" in guest and "guest, local" in guest and guest.rstrip().endswith("yes")
    assert guest.split()[-5:] == ["48", "0", "0", "8", "yes"], "valid, invalid, failed, skipped, committed"


def test_campaigns_of_a_tmp_store_says_invalid_runs_and_not_committed(tmp_store) -> None:
    proc = vhpc("campaigns", tmp=tmp_store)
    row = [line for line in proc.stdout.splitlines() if line.startswith("copy")][0]
    assert row.split()[-5:] == ["47", "1", "0", "8", "no"]
    show = vhpc("campaigns", "show", "copy", tmp=tmp_store)
    assert show.returncode == 0, show.stderr
    assert "1 x contention: 2.1 runnable threads per core" in show.stdout
    assert "vhpc run <stage> --campaign copy --rerun" in show.stdout
    guest = [line for line in show.stdout.splitlines() if line.startswith("guest") and "single-node" in line][0]
    assert guest.split()[-4:] == ["5", "1", "0", "1"]


def test_campaigns_show_of_an_unknown_campaign_is_one_line(tmp_store) -> None:
    assert_one_line_error(vhpc("campaigns", "show", "nope", tmp=tmp_store), "no campaign 'nope'")


def test_compare_two_environments_of_the_committed_campaign() -> None:
    proc = vhpc("compare", "embedded-guest:local", "embedded-guest:guest")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "local -> guest" in line]
    latency = [r for r in rows if r.startswith("PingPong latency")][0]
    # the guest's warm-up run r01 (14.01 usec) is left out as everywhere: 5 runs, min-max covers 93.7 %
    assert re.search(r"0\.52 usec\s+6\s+4\.22 usec\s+5\s+\+711\.5 %", latency), latency
    assert "(90.8 %)" in latency and latency.endswith("worse: the interval excludes 0 %")
    throughput = [r for r in rows if r.startswith("PingPong throughput")][0]
    assert "worse" in throughput, "lower throughput is worse, lower latency better"
    assert len([r for r in rows if "wall time" in r]) == 3


def test_compare_two_campaigns_matches_environments_by_name() -> None:
    proc = vhpc("compare", "embedded", "embedded-guest")
    assert proc.returncode == 0, proc.stderr
    body = proc.stdout.splitlines()[3:-1]
    assert body and all(" local " in line for line in body), "only the environment both measured"
    assert any("no difference resolved" in line for line in body)


def test_compare_without_a_common_environment_or_quantity_is_one_line(tmp_store) -> None:
    assert_one_line_error(vhpc("compare", "copy:local", "copy:nope", tmp=tmp_store),
                          "no environment 'nope'", "guest, local")
    assert_one_line_error(vhpc("compare", "copy", "absent", tmp=tmp_store), "no campaign 'absent'")


def test_compare_needs_two_runs_per_side_for_a_verdict() -> None:
    q = Quantity("x wall time", "p", "s", True)
    row = compare_values("local", q, np.array([1.0]), np.array([2.0, 2.1, 2.2]))
    assert row.verdict.startswith("not resolved: old has 1 run") and row.low != row.low
    row = compare_values("local", q, np.array([1.0, 1.1, 0.9]), np.array([1.0, 1.05, 0.95]))
    assert row.verdict.startswith("no difference resolved")
    row = compare_values("local", q, np.array([1.0, 1.1, 0.9]), np.array([0.5, 0.55, 0.45]))
    assert row.verdict.startswith("better") and row.coverage == pytest.approx(0.75 * 0.75)


def test_figures_of_an_empty_campaign_is_one_line_and_writes_nothing(tmp_path) -> None:
    (tmp_path / "data/raw/empty").mkdir(parents=True)
    proc = vhpc("figures", "--campaign", "empty", "--no-progress", tmp=tmp_path)
    assert_one_line_error(proc, "campaign 'empty' holds no measured run", "vhpc run microbench --campaign empty")
    assert not (tmp_path / "figures").exists() and not (tmp_path / "data/processed").exists()


@pytest.mark.browser
def test_a_missing_chromium_exits_2_like_other_bad_input(tmp_path) -> None:
    shutil.copytree(COMMITTED / "embedded-guest", tmp_path / "data/raw/eg")
    proc = vhpc("figures", "--campaign", "eg", "--no-progress", tmp=tmp_path, BROWSER_PATH=str(tmp_path / "nochrome"))
    assert_one_line_error(proc, "BROWSER_PATH", "is not an executable file")


def test_parse_of_a_file_that_is_not_a_log_prints_no_csv_header_before_its_error() -> None:
    proc = vhpc("parse", "imb", "README.md")
    assert_one_line_error(proc, "README.md")
    assert proc.stdout == "", "no CSV header for a file that gave no row"


def test_sigint_inherited_as_ignored_is_restored_so_ctrl_c_stops_vhpc() -> None:
    """A script without job control starts background commands with SIGINT ignored (POSIX sh `cmd &`)."""
    import signal
    import time

    code = ("import sys, time; from vhpclib import lifetime; lifetime.install_signal_handlers(); "
            "print('ready', flush=True); time.sleep(60); sys.exit(0)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert proc.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode != 0 and "KeyboardInterrupt" in err and time.monotonic() - t0 < 20
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
