"""Bad input: one line naming the file and place, exit code 2, no traceback, nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def vhpc(*args, cwd=ROOT, data=None):
    env = dict(os.environ)
    if data is not None:
        env["VHPC_DATA"] = str(data)
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("vhpc: error: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_inventory_key_names_file_line_and_key(tmp_path):
    inv = tmp_path / "bad.yml"
    inv.write_text("environments:\n  local:\n    label: local\n    hosts:\n      - local: true\n    colour: red\n")
    proc = vhpc("run", "microbench", "--inventory", str(inv), "--campaign", "x", data=tmp_path / "d")
    assert_one_line_error(proc, f"{inv}:6", "environments.local.colour", "unknown key")
    assert not (tmp_path / "d").exists()


def test_missing_inventory_file_is_one_line(tmp_path):
    proc = vhpc("inventory", "validate", str(tmp_path / "nope.yml"))
    assert_one_line_error(proc, "nope.yml", "cannot read inventory")


def test_unknown_environment_is_one_line(tmp_path):
    proc = vhpc("run", "microbench", "--env", "kvm", "--campaign", "x", data=tmp_path / "d")
    assert_one_line_error(proc, "no environment 'kvm'", "local.yml")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("msglog", ["0-4", "5:2", "0:40"])
def test_bad_msglog_option_is_one_line(tmp_path, msglog):
    proc = vhpc("run", "microbench", "--msglog", msglog, "--campaign", "x", data=tmp_path / "d")
    assert_one_line_error(proc, "msglog")
    assert not (tmp_path / "d").exists()


def test_bad_campaign_name_is_one_line(tmp_path):
    proc = vhpc("run", "microbench", "--campaign", "../escape", data=tmp_path / "d")
    assert_one_line_error(proc, "campaign")


def test_unknown_option_is_one_line():
    assert_one_line_error(vhpc("run", "microbench", "--bogus"), "--bogus")


def test_unknown_parser_kind_is_one_line(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("x")
    assert_one_line_error(vhpc("parse", "osu", str(log)), "osu")


def test_parse_reports_log_without_table_and_still_prints_the_others(tmp_path):
    good = ROOT / "tests/fixtures/imb/pingpong_msglog0-22_shm.log"
    bad = ROOT / "tests/fixtures/imb/error_bad_option_msglog.log"
    proc = vhpc("parse", "imb", str(bad), str(good))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"vhpc: error: {bad}: ")
    rows = proc.stdout.strip().splitlines()
    assert rows[0].startswith("file,benchmark,nprocs,bytes,repetitions,t_min_usec,t_max_usec,t_avg_usec,"
                              "mbytes_per_sec,msgs_per_sec")
    assert len(rows) == 1 + 24 and all(r.startswith(str(good)) for r in rows[1:])


@pytest.mark.parametrize("args", [["run", "scaling", "--processes", "0"], ["run", "single-node", "--repetitions", "0"],
                                  ["run", "single-node", "--preset", "nope"], ["run", "scaling", "-w", "hpl"],
                                  ["run", "microbench", "--placement", "inter-rack"]])
def test_impossible_run_options_are_refused_before_anything_runs(tmp_path, args):
    proc = vhpc(*args, "--campaign", "x", data=tmp_path / "d")
    assert_one_line_error(proc)
    assert not (tmp_path / "d").exists()
