"""Interference recorded with every run: the launch host's counters around the job, and the job's own usage.

The counters are read from the real /proc of this machine, through the real stage loop and mpirun launcher;
the shell sampler is run by a real bash.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vhpclib import interference
from vhpclib.launchers import Job
from vhpclib.mpi import LaunchSpec
from vhpclib.params import MicrobenchParams
from vhpclib.record import parse_record
from vhpclib.stages.context import StageContext
from vhpclib.stages.driver import run_stage
from vhpclib.store import RawStore
from vhpclib.workloads import Point, register_workload, unregister_workload
from vhpclib.workloads.pingpong import PingPong

ROOT = Path(__file__).resolve().parent.parent
GOOD_IMB = ROOT / "tests/fixtures/imb/pingpong_pinned_debug4_shm.log"
BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass"


def test_the_shell_sampler_prints_what_the_local_reader_reads() -> None:
    out = subprocess.run(["bash", "-c", interference.SAMPLE_FUNCTION + "vhpc_sample"], capture_output=True,
                         text=True, check=True).stdout
    shell, local = interference.parse_sample(out), interference.local_sample()
    assert len(shell.ticks) >= 8 and len(shell.load) == 3 and shell.ncpu == local.ncpu and shell.hz == local.hz
    assert 0 <= local.busy - shell.busy < 100 * local.ncpu * local.hz  # read within a second of each other
    assert len(shell.mhz) in (0, local.ncpu) and all(m > 0 for m in local.mhz)


def test_bash_times_gives_the_cpu_time_of_the_reaped_job() -> None:
    out = subprocess.run(["bash", "-c", f"{shlex.quote(sys.executable)} -c {shlex.quote(BUSY.format(s=0.3))} & "
                          "wait $!; times"], capture_output=True, text=True, check=True).stdout
    assert interference.parse_times(out) == pytest.approx(0.3, abs=0.15)
    assert interference.parse_times("") is None


def test_cpu_of_other_processes_is_busy_time_minus_the_jobs() -> None:
    before = interference.Sample(ticks=[100, 0, 50, 1000, 0, 0, 0, 5], load=[1.0, 1.0, 1.0], ncpu=2, hz=100)
    after = interference.Sample(ticks=[250, 0, 100, 1100, 0, 0, 0, 25], load=[2.0, 1.2, 1.0], ncpu=2, hz=100)
    got = interference.measure("h", before, after, 2.0, interference.JobUsage(cpu_s=1.5, nivcsw=7, nvcsw=3))
    assert got["busy_s"] == 2.0 and got["other_cpu_s"] == 0.5 and got["other_share"] == 0.125
    assert got["steal_s"] == 0.2 and got["steal_share"] == 0.05 and got["job_nivcsw"] == 7
    assert interference.measure("h", before, after, 2.0, interference.JobUsage())["other_share"] is None


class BusyPingPong(PingPong):
    """A real PingPong log printed after the job kept a CPU busy for a while."""

    name = "busy-pingpong"

    def plan(self, stage, ctx, params):
        return [Point(self.name, "busy-intra-socket", {"placement": "intra-socket"})]

    def prepare(self, ctx, points, params):
        return None

    def job(self, ctx, point, repetition, prepared, params):
        script = (f"{shlex.quote(sys.executable)} -c {shlex.quote(BUSY.format(s=0.5))}; "
                  f"cat {shlex.quote(str(GOOD_IMB))}")
        return Job(["/bin/sh", "-c", script], LaunchSpec(1, report_binding=False), point={"cpus": [0, 1]})


@pytest.mark.mpi
def test_every_run_records_interference_and_a_busy_neighbour_shows_in_it(tmp_path: Path) -> None:
    register_workload(BusyPingPong())
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY.format(s=60)])
    try:
        time.sleep(0.2)
        with StageContext.open(ROOT / "inventories/local.yml", "local", "intf",
                               store=RawStore(tmp_path / "raw")) as ctx:
            result = run_stage(ctx, "microbench", MicrobenchParams(workloads=("busy-pingpong",), repetitions=2),
                               progress=False)
    finally:
        neighbour.kill()
        neighbour.wait()
        unregister_workload("busy-pingpong")
    runs = result.runs + result.invalid
    assert len(runs) == 2
    for run in runs:
        seen = run.record.execution.interference
        assert seen is not None and seen.host and seen.cpus >= 1 and len(seen.load_before) == 3
        assert seen.job_cpu_s == pytest.approx(0.5, abs=0.3)  # the job's tree, reaped
        assert seen.other_cpu_s is not None and seen.other_cpu_s > 0.1  # at least the neighbour's share
        assert 0 < seen.other_share <= 1 and seen.job_nivcsw is not None and seen.steal_s >= 0
        stored = parse_record(json.loads((run.path / "run.json").read_text()))
        assert stored.execution.interference == seen  # written and read back through the same type


def test_records_written_before_interference_was_recorded_still_load() -> None:
    path = next((ROOT / "data/raw").glob("*/*/single-node/*/run.json"))
    record = parse_record(json.loads(path.read_text()))
    assert record.execution is not None and record.execution.interference is None
