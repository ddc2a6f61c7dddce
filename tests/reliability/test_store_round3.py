"""Round 3 of the audit, the store's side: symlinked folders, secrets in logs, two writers at once,
malformed ``result.json`` files. Every case runs the real CLI with real Intel MPI ranks."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
import yaml

from rl_helpers import (LOCAL_INVENTORY, SHORT_PINGPONG, assert_one_error_line, start_vhpc, vhpc,
                        write_inventory)

pytestmark = pytest.mark.mpi

MPIRUN = Path(sys.prefix) / "bin" / "mpirun"
PASSWORD = "pw-Round3-5f1c9e77"
URL_PASSWORD = "urlpw-0d9c2b"


def wrapped_inventory(tmp_path: Path, script: str, **env: str) -> Path:
    """The local inventory whose mpirun is a wrapper running ``script`` first (a benchmark that misbehaves).

    The wrapper also answers the fingerprint's ``mpirun -V``: a script that misbehaves only for the benchmark
    tests for ``IMB-MPI1`` in its arguments."""
    wrapper = tmp_path / "mpirun-wrapper"
    wrapper.write_text(f"#!/bin/bash\n{script}\nexec {MPIRUN} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    data = yaml.safe_load(LOCAL_INVENTORY.read_text())
    data["environments"]["local"]["mpi"]["mpirun"] = str(wrapper)
    data["environments"]["local"]["env"] = env
    data["environments"]["local"]["contention_threshold"] = "off"  # other work on this machine is not the case
    return write_inventory(tmp_path / "inv.yml", data)


def every_file(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# ------------------------------------------------------------------ symlinked folders

@pytest.mark.parametrize("depth", ["campaign", "environment", "stage"])
def test_a_symlinked_store_folder_is_refused_and_nothing_is_written_through_it(tmp_path, depth):
    data, elsewhere = tmp_path / "d", tmp_path / "elsewhere"
    elsewhere.mkdir()
    parts = {"campaign": ["symc"], "environment": ["symc", "local"], "stage": ["symc", "local", "microbench"]}[depth]
    link = data / "raw" / Path(*parts)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere, target_is_directory=True)
    proc = vhpc(["run", "microbench", "-c", "symc", *SHORT_PINGPONG], data)
    assert_one_error_line(proc, 2, str(link), "is a symlink", f"the {depth} folder")
    assert list(elsewhere.iterdir()) == []


# ------------------------------------------------------------------ secrets a benchmark prints

def test_secrets_a_benchmark_prints_are_redacted_from_its_logs_and_the_record_says_where(tmp_path):
    inventory = wrapped_inventory(
        tmp_path, 'echo "connecting with $DB_PASSWORD to $DATABASE_URL" >&2\necho "pw again: $DB_PASSWORD" >&2',
        DB_PASSWORD=PASSWORD, DATABASE_URL=f"postgres://app:{URL_PASSWORD}@db.example/app")
    data = tmp_path / "d"
    proc = vhpc(["run", "microbench", "-i", str(inventory), "-c", "sec", *SHORT_PINGPONG], data)
    assert proc.returncode == 0, proc.stderr
    for path in every_file(data):
        text = path.read_bytes()
        assert PASSWORD.encode() not in text and URL_PASSWORD.encode() not in text, path
    [run] = [p for p in (data / "raw" / "sec").rglob("run.json") if json.loads(p.read_text())["kind"] == "run"]
    record = json.loads(run.read_text())
    assert record["redactions"] == {"stderr.log": 3}
    stderr = (run.parent / "stderr.log").read_text()
    assert "connecting with ***redacted*** to postgres://app:***redacted***@db.example/app" in stderr
    assert record["status"] == "complete"  # the benchmark's own output is untouched: it still parses


# ------------------------------------------------------------------ two writers started together

def test_two_writers_started_together_with_wait_both_succeed_and_the_second_reuses(tmp_path):
    data = tmp_path / "d"
    args = ["run", "microbench", "-c", "twin", "--wait", *SHORT_PINGPONG]
    first, second = start_vhpc(args, data), start_vhpc(args, data)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    stdout = "".join(o[0] for o in outs)
    assert "1 run(s) measured, 0 reused" in stdout and "0 run(s) measured, 1 reused" in stdout, stdout
    runs = [p for p in (data / "raw" / "twin").rglob("run.json") if json.loads(p.read_text())["kind"] == "run"]
    assert len(runs) == 1


# ------------------------------------------------------------------ malformed result.json

@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """One campaign of four PingPong repetitions (copied by each case before it damages one)."""
    data = tmp_path_factory.mktemp("measured") / "d"
    proc = vhpc(["run", "microbench", "-c", "base", *SHORT_PINGPONG[:-6], "--repetitions", "4",
                 "--placement", "intra-socket", "--no-figures", "--no-progress"], data)
    assert proc.returncode == 0, proc.stderr
    return data


def damaged_copy(measured: Path, tmp_path: Path, content: str) -> tuple[Path, Path]:
    import shutil

    data = tmp_path / "d"
    shutil.copytree(measured, data, symlinks=True)
    (data / "processed").exists() and shutil.rmtree(data / "processed")
    results = sorted((data / "raw" / "base").rglob("result.json"))
    assert len(results) == 4
    results[1].write_text(content)
    return data, results[1]


def good_rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())["rows"]


@pytest.mark.parametrize("content, says", [
    ("[]", "expected a mapping with 'rows', got a list"),
    ("null", "expected a mapping with 'rows', got null"),
    ('{"rows": "x"}', "'rows' must be a list of rows"),
    ('{"rows": [1, 2]}', "rows[0] must be a mapping"),
    ('{"table": "microbench", "rows": [{"bytes": [1]}]}', "rows[0].bytes must be text, a number"),
    ('{"rows": [', "unreadable result file"),
])
def test_a_result_json_of_the_wrong_shape_leaves_that_run_out_named_and_the_rest_goes_on(measured, tmp_path,
                                                                                           content, says):
    data, bad = damaged_copy(measured, tmp_path, content)
    proc = vhpc(["tables", "-c", "base"], data)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    [warning] = [line for line in proc.stderr.splitlines() if line.startswith("vhpc: warning:")]
    assert str(bad.relative_to(data)) in warning or bad.name in warning
    assert says in warning and "run left out" in warning
    table = (data / "processed" / "base" / "microbench.csv").read_text().splitlines()
    assert len(table) == 1 + 3 * 4  # three good runs of four message sizes (0, 1, 2, 4 bytes)


@pytest.mark.parametrize("change", ["text-bytes", "text-time", "bool-time"])
def test_rows_of_the_wrong_types_are_left_out_named_and_the_figures_are_built(measured, tmp_path, change):
    source = sorted((measured / "raw" / "base").rglob("result.json"))[1]
    rows = good_rows(source)
    column, value = {"text-bytes": ("bytes", "many"), "text-time": ("t_avg_usec", "fast"),
                     "bool-time": ("mbytes_per_sec", True)}[change]
    for row in rows:
        row[column] = value
    data, bad = damaged_copy(measured, tmp_path, json.dumps({"table": "microbench", "rows": rows}))
    proc = vhpc(["figures", "-c", "base", "--no-progress"], data, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    tables = vhpc(["tables", "-c", "base"], data)
    [warning] = [line for line in tables.stderr.splitlines() if line.startswith("vhpc: warning:")]
    assert bad.parent.name in warning and f"column {column!r}" in warning and "run left out" in warning
    assert (data / "figures" / "base" / "report.html").is_file()
