"""A workload added from outside vhpclib: one class registered in this test module, no vhpclib module edited.

It runs through the application stages (single-node and scaling) and a microbenchmark stage with the real
mpirun launcher, lands in the tidy tables, and shows up in Table 3.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from vhpclib import paths, stages
from vhpclib.launchers import Job
from vhpclib.mpi import LaunchSpec
from vhpclib.params import AppParams, MicrobenchParams
from vhpclib.workloads import Extracted, Point, Workload, register_workload, unregister_workload
from vhpclib.workloads.app_run import AppRun

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventories/local.yml"
pytestmark = pytest.mark.mpi

# Every rank spins; rank 0 reports. PMI_RANK is set by Intel MPI's launcher.
SPIN = ("import os, time\n"
        "t0 = time.perf_counter(); x = 0\n"
        "for i in range(200_000): x += i * i\n"
        "dt = time.perf_counter() - t0\n"
        "if os.environ.get('PMI_RANK', '0') == '0': print(f'spin: 200000 iterations in {dt:.6f} s')\n")
SPIN_LINE = re.compile(r"^spin: (?P<n>\d+) iterations in (?P<t>[0-9.]+) s$", re.MULTILINE)


class Spin(Workload):
    """A tiny CPU-bound 'application': one time per run, like an NPB or blockss run."""

    name = "spin"
    paper_name = ""
    table = "apps"
    stages = ("single-node", "scaling")

    def plan(self, stage, ctx, params):
        counts = [2] if stage == "single-node" else [1, 2]
        return [AppRun("spin", "200k", p, 1, 2).point(self.name) for p in counts]

    def job(self, ctx, point, repetition, prepared, params):
        run = AppRun.of(point)
        return Job([sys.executable, "-c", SPIN], run.launch_spec(), timeout_s=60)

    def sanity(self, run):
        return [] if SPIN_LINE.search(run.stdout()) else ["no 'spin: ... iterations in ... s' line"]

    def extract(self, run):
        m = SPIN_LINE.search(run.stdout())
        return Extracted([{"time_s": float(m["t"]), "verified": True}])


class Ring(Workload):
    """A 'microbenchmark' with rows of its own benchmark name in the microbench table."""

    name = "ring"
    table = "microbench"
    stages = ("microbench",)

    def plan(self, stage, ctx, params):
        return [Point(self.name, "ring", {"placement": "intra-socket"})]

    def job(self, ctx, point, repetition, prepared, params):
        code = "print('ring 0 1.5'); print('ring 8 1.75')"
        return Job([sys.executable, "-c", code], LaunchSpec(1, report_binding=False))

    def sanity(self, run):
        return [] if run.stdout().startswith("ring ") else ["no ring lines"]

    def extract(self, run):
        rows = []
        for line in run.stdout().splitlines():
            _, size, usec = line.split()
            rows.append({"benchmark": "Ring", "nprocs": 1, "bytes": int(size), "t_avg_usec": float(usec)})
        return Extracted(rows)


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RAW", tmp_path / "data/raw")
    monkeypatch.setattr(paths, "PROCESSED", tmp_path / "data/processed")
    monkeypatch.setattr(paths, "FIGURES", tmp_path / "figures")
    register_workload(Spin())
    register_workload(Ring())
    yield tmp_path
    unregister_workload("spin")
    unregister_workload("ring")


def test_a_workload_registered_from_a_test_runs_through_stages_tables_and_table3(plugin):
    single = stages.run(INVENTORY, "local", "plug", stages.SINGLE_NODE,
                        AppParams(workloads=("spin",), repetitions=2), progress=False)
    assert single.result.measured == 2 and not single.failed
    assert "local: single-node: 2 run(s) measured" in single.lines()[0]
    scaling = stages.run(INVENTORY, "local", "plug", stages.SCALING,
                         AppParams(workloads=("spin",), repetitions=1), progress=False, figures=False)
    assert scaling.result.measured == 2
    micro = stages.run(INVENTORY, "local", "plug", stages.MICROBENCH,
                       MicrobenchParams(workloads=("ring",), repetitions=1), progress=False, figures=False)
    assert micro.result.measured == 1

    import pandas as pd

    apps = pd.read_csv(plugin / "data/processed/plug/apps.csv")
    assert list(apps["workload"]) == ["spin"] * 4 and apps["verified"].all() and (apps["time_s"] > 0).all()
    assert sorted(apps.loc[apps["stage"] == "scaling", "nprocs"]) == [1, 2]
    ring = pd.read_csv(plugin / "data/processed/plug/microbench.csv")
    assert list(ring["benchmark"]) == ["Ring", "Ring"] and list(ring["t_avg_usec"]) == [1.5, 1.75]

    table3 = single.figure_objects["table3_single_node"]
    bars = [t for t in table3.data if t.type == "bar"]
    assert bars and all(list(t.x) == ["spin"] for t in bars)
    assert (plugin / "figures/plug/table3_single_node.html").stat().st_size > 1000
