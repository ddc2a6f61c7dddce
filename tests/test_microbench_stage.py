"""A real IMB PingPong run through the harness, stored with provenance, parsed and tabulated."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from vhpclib.parsers.impi_pinmap import parse_pin_map
from vhpclib.workloads.pingpong import pin_problems
from vhpclib.topology import Placement, parse_lscpu

ROOT = Path(__file__).resolve().parent.parent
VHPC = [sys.executable, "-m", "vhpclib.cli"]
FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.mpi


def vhpc(args, data, *, check=True, timeout=300):
    env = {**os.environ, "VHPC_DATA": str(data / "data"), "VHPC_FIGURES": str(data / "figures")}
    proc = subprocess.run(VHPC + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"vhpc {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


TINY = ["run", "microbench", "--campaign", "t", "--msglog", "0:6", "--iterations", "50",
        "--repetitions", "2", "--no-progress", "--no-figures"]


def test_pingpong_runs_through_harness_with_provenance_and_resumes(tmp_path):
    first = vhpc(TINY, tmp_path)
    assert "2 run(s) measured, 0 reused" in first.stdout
    assert "skipped inter-node: environment has 1 compute host(s)" in first.stdout

    runs = sorted((tmp_path / "data/raw/t/local/microbench").glob("pingpong-intra-socket-*"))
    assert [r.name for r in runs] == ["pingpong-intra-socket-m0-6-i50-r01", "pingpong-intra-socket-m0-6-i50-r02"]
    record = json.loads((runs[0] / "run.json").read_text())
    execution = record["execution"]
    assert record["schema_version"] == 2 and record["status"] == "complete" and execution["exit_status"] == 0
    assert record["pinning"]["verification"] == "verified"
    assert [p["cpus"] for p in record["pinning"]["pin_map"]] == [[0], [1]]
    assert execution["env"]["I_MPI_PIN_PROCESSOR_LIST"] == "0,1"
    assert execution["argv"][-7:] == ["PingPong", "-msglog", "0:6", "-iter", "50", "-iter_policy", "off"]
    assert execution["started_utc"].endswith("Z") and execution["duration_s"] > 0
    stored = json.loads((runs[0] / "result.json").read_text())
    assert stored["table"] == "microbench" and len(stored["rows"]) == 8  # extracted once, beside the logs
    assert record["code"]["git_commit"]
    facts = record["host_facts"]["localhost"]
    assert facts["kernel"] and facts["cpu_model"] and "Intel(R) MPI Library" in facts["mpi_version"]
    assert (tmp_path / "data/raw/t/local" / facts["fingerprint"].split("/", 2)[2]).exists()

    table = pd.read_csv(tmp_path / "data/processed/t/microbench.csv")
    assert set(table["bytes"]) == {0, 1, 2, 4, 8, 16, 32, 64}
    assert (table["t_avg_usec"] > 0).all() and len(table) == 16
    skipped = pd.read_csv(tmp_path / "data/processed/t/skipped.csv")
    assert set(skipped["placement"]) == {"inter-socket", "inter-node"}
    assert skipped["reason"].str.len().min() > 10

    again = vhpc(TINY, tmp_path)
    assert "0 run(s) measured, 2 reused" in again.stdout
    more = vhpc(TINY + ["--rerun"], tmp_path)
    assert "2 run(s) measured, 0 reused" in more.stdout
    assert len(list((tmp_path / "data/raw/t/local/microbench").glob("pingpong-intra-socket-*"))) == 4


def test_interrupted_run_does_not_count_as_complete(tmp_path):
    env = {**os.environ, "VHPC_DATA": str(tmp_path / "data")}
    args = VHPC + ["run", "microbench", "--campaign", "k", "--msglog", "0:22", "--iterations", "20000",
                   "--repetitions", "1", "--no-progress", "--no-figures"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    stage = tmp_path / "data/raw/k/local/microbench"
    deadline = time.time() + 60
    # a run whose job has started (skips also pass through short-lived temporary folders)
    while time.time() < deadline and not any((p / "stdout.log").exists() for p in stage.glob(".*.partial-*")):
        time.sleep(0.1)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the harness and its mpirun, as a crash would
    proc.wait(timeout=30)
    partial = [p for p in stage.iterdir() if p.name.startswith(".")]
    assert partial, "the run should have been in progress when killed"
    assert not (stage / "pingpong-intra-socket-m0-22-i20000-r01").exists()
    resumed = vhpc(["run", "microbench", "--campaign", "k", "--msglog", "0:2", "--iterations", "20",
                    "--repetitions", "1", "--no-progress", "--no-figures"], tmp_path)
    assert "1 run(s) measured" in resumed.stdout


def test_pin_map_contradicting_the_placement_is_rejected():
    topology = parse_lscpu("0,0,0,0\n1,1,0,0\n")
    intra = Placement("intra-socket", (0, 1))
    both_on_1 = parse_pin_map((FIXTURES / "impi/pingpong_both_ranks_cpu1.log").read_text())
    problems = pin_problems(both_on_1, intra, topology)
    assert problems == ["rank 0 pinned to cpus [1], expected [0]"]
    asked_swapped = Placement("intra-socket", (1, 0))
    swapped = parse_pin_map((FIXTURES / "impi/pingpong_swapped_pins.log").read_text())
    assert len(pin_problems(swapped, asked_swapped, topology)) == 2
    assert pin_problems(swapped, intra, topology) == []
    inter_node = Placement("inter-node", (0, 0), ("n1", "n2"))
    assert "both ranks ran on node 'vm', expected two nodes" in pin_problems(swapped, inter_node, topology)
    assert pin_problems([], intra, topology) == ["no pin map in the output (expected with I_MPI_DEBUG=4)"]
