"""Round 3: what a job leaves behind ends with it, a job whose ranks are gone ends, a host failing the same way
run after run stops the stage. Real CLI, real Intel MPI: the benchmark misbehaves through an mpirun wrapper."""

from __future__ import annotations

import json
import time

import psutil
import pytest

from rl_helpers import SHORT_PINGPONG, vhpc
from test_store_round3 import MPIRUN, wrapped_inventory

pytestmark = pytest.mark.mpi


def sleepers(seconds: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.info["cmdline"] == ["sleep", seconds]:
            found.append(proc)
    return found


def run_records(data, campaign):
    return [json.loads(p.read_text()) for p in sorted((data / "raw" / campaign).rglob("run.json"))
            if json.loads(p.read_text())["kind"] == "run"]


def test_a_daemon_that_clears_its_environment_and_session_is_killed_when_the_job_ends(tmp_path):
    inventory = wrapped_inventory(tmp_path, 'if [[ "$*" == *IMB-MPI1* ]]; then ( env -i setsid sleep 30021 & ); fi')
    data = tmp_path / "d"
    try:
        proc = vhpc(["run", "microbench", "-i", str(inventory), "-c", "daemon", *SHORT_PINGPONG], data)
        assert proc.returncode == 0, proc.stderr
        assert sleepers("30021") == []
        [record] = run_records(data, "daemon")
        assert record["status"] == "complete"
    finally:
        for leftover in sleepers("30021"):
            leftover.kill()


def test_ranks_gone_while_a_daemon_holds_their_output_ends_the_run_long_before_its_timeout(tmp_path):
    # The ranks start a daemon that keeps the proxy's pipes open, then exit: mpirun would wait for ever.
    inventory = wrapped_inventory(tmp_path, f'if [[ "$*" == *IMB-MPI1* ]]; then '
                                            f"exec {MPIRUN} -n 2 bash -c '(sleep 30031 &); sleep 3; exit 0'; fi")
    data = tmp_path / "d"
    t0 = time.monotonic()
    try:
        proc = vhpc(["run", "microbench", "-i", str(inventory), "-c", "held", "--timeout", "300",
                     *SHORT_PINGPONG], data, timeout=300)
        took = time.monotonic() - t0
        assert proc.returncode == 1, proc.stderr
        assert took < 60, took
        [record] = run_records(data, "held")
        assert record["status"] == "failed"
        assert "the ranks ended but mpirun did not" in record["reasons"][0]
        assert sleepers("30031") == []
    finally:
        for leftover in sleepers("30031"):
            leftover.kill()


def test_the_same_failure_on_the_same_host_three_runs_in_a_row_stops_the_stage_with_one_line(tmp_path):
    inventory = wrapped_inventory(tmp_path, 'if [[ "$*" == *IMB-MPI1* ]]; then '
                                            "echo 'ssh: connect to host node2 port 22: Connection refused' >&2; "
                                            "exit 255; fi")
    data = tmp_path / "d"
    args = [a for a in SHORT_PINGPONG if a not in ("--repetitions", "1")]
    proc = vhpc(["run", "microbench", "-i", str(inventory), "-c", "dead", "--repetitions", "8", *args], data)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vhpc: error:")]
    assert len(errors) == 1, proc.stderr
    assert "3 runs in a row failed on localhost" in errors[0] and "exit status 255" in errors[0]
    records = run_records(data, "dead")
    assert len(records) == 3 and all(r["status"] == "failed" for r in records)
    assert "stopped: 3 runs in a row" in proc.stdout
    assert (data / "processed" / "dead" / "microbench.csv").is_file()  # tables still rebuilt: the rest is kept
