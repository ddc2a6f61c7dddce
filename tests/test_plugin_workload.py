"""Workloads added from outside vhpclib, no vhpclib module edited.

Classes registered in this test module run through the application stages (single-node and scaling)
and a microbenchmark stage with the real mpirun launcher, land in the tidy tables, and show up in
Table 3. The plugin module ``tests/plugins/allreduce_workload.py`` (a real mpi4py program over Intel
MPI) declares its parameters, table, columns with units and figure, and goes through ``vhpc run``
(an option generated from its parameters), ``vhpc tables``, ``vhpc figures`` and the report, each a
fresh process that loads it from ``VHPC_PLUGINS``.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vhpclib import paths, stages
from vhpclib.launchers import Job
from vhpclib.mpi import LaunchSpec
from vhpclib.params import AppParams, MicrobenchParams
from vhpclib.schema import RUN_COLUMNS
from vhpclib.workloads import Extracted, Point, Section, Workload, register_workload, unregister_workload
from vhpclib.workloads.app_run import AppRun

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventories/local.yml"
PLUGINS = ROOT / "tests/plugins"
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


# ---------------------------------------------------------------- a plugin module, end to end through the CLI

def vhpc(tmp_path, *args, timeout=600):
    """``vhpc`` in a fresh process that loads the allreduce plugin, writing under tmp_path."""
    env = {**os.environ, "VHPC_PLUGINS": "allreduce_workload", "VHPC_DATA": str(tmp_path / "data"),
           "VHPC_FIGURES": str(tmp_path / "figures"), "VHPC_EXECUTED": str(tmp_path / "executed"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_plugin_workload_goes_through_run_tables_figures_and_the_report(tmp_path):
    help_text = vhpc(tmp_path, "run", "microbench", "--help").stdout
    assert "--rounds" in help_text and "MPI_Allreduce calls timed per run" in help_text  # from its model
    proc = vhpc(tmp_path, "run", "microbench", "-i", str(INVENTORY), "-c", "plug", "-w", "allreduce",
                "--rounds", "50", "--repetitions", "2", "--no-progress", "--no-figures")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "local: microbench: 2 run(s) measured" in proc.stdout

    table = tmp_path / "data/processed/plug/collectives.csv"
    header = table.read_text().splitlines()[0]
    # the plugin's columns, then the harness's own per-run columns (interference: schema.RUN_COLUMNS)
    run_columns = ",".join(c.name for c in RUN_COLUMNS)
    assert header == f"campaign,environment,label,run_id,repetition,nprocs,rounds,allreduce_usec,status,{run_columns}"
    rows = read_csv(table)
    assert [r["rounds"] for r in rows] == ["50", "50"] and all(r["nprocs"] == "2" for r in rows)
    assert all(0 < float(r["allreduce_usec"]) < 1e6 and r["status"] == "complete" for r in rows)
    assert "pingpong" not in (tmp_path / "data/processed/plug/microbench.csv").read_text()

    table.unlink()
    proc = vhpc(tmp_path, "tables", "-c", "plug", "--reparse")
    assert proc.returncode == 0 and str(table) in proc.stdout, proc.stdout + proc.stderr
    assert read_csv(table) == rows, "extracted again from the logs: the same rows"

    proc = vhpc(tmp_path, "figures", "-c", "plug", "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = tmp_path / "figures/plug"
    assert (figures / "allreduce_latency.html").stat().st_size > 1000
    report = (figures / "report.html").read_text()
    assert "MPI_Allreduce latency (a plugin workload)" in report and "Other workloads" in report
    assert "Reads: collectives.csv" in report


def test_a_plugin_parameter_out_of_its_range_is_one_line_before_anything_runs(tmp_path):
    proc = vhpc(tmp_path, "run", "microbench", "-i", str(INVENTORY), "-c", "x", "-w", "allreduce", "--rounds", "0")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "rounds" in proc.stderr, proc.stderr
    assert not (tmp_path / "data").exists()


def test_a_plugin_that_cannot_be_imported_is_one_line(tmp_path):
    env_plugins = {"VHPC_PLUGINS": "no_such_plugin_module"}
    proc = subprocess.run([sys.executable, "-m", "vhpclib.cli", "run", "microbench", "--help"], cwd=ROOT,
                          env={**os.environ, **env_plugins}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no_such_plugin_module" in proc.stderr


# ---------------------------------------------------------------- undeclared columns are never dropped

class Sloppy(Spin):
    """Spin, but its rows carry a column nobody declared."""

    name = "sloppy"

    def extract(self, run):
        rows = super().extract(run).rows
        return Extracted([{**r, "gflops": 1.0} for r in rows])


@pytest.fixture()
def sloppy(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RAW", tmp_path / "data/raw")
    monkeypatch.setattr(paths, "PROCESSED", tmp_path / "data/processed")
    register_workload(Sloppy())
    yield tmp_path
    unregister_workload("sloppy")


def test_an_undeclared_column_fails_the_run_and_is_named_and_kept_by_the_tables(sloppy):
    from vhpclib.tables import RowTable, collect_tables

    single = stages.run(INVENTORY, "local", "slop", stages.SINGLE_NODE,
                        AppParams(workloads=("sloppy",), repetitions=1), progress=False, figures=False)
    assert len(single.result.invalid) == 1, single.lines()
    assert "gflops" in single.result.invalid[0].record.reason
    [run] = [p for p in (sloppy / "data/raw/slop/local/single-node").iterdir() if p.name.startswith("spin-")]
    assert "gflops" in (run / "run.json").read_text() and "does not declare" in (run / "run.json").read_text()
    tables, warnings = collect_tables("slop")
    assert any("gflops" in w and "Sloppy.columns" in w for w in warnings)
    tail = len(RUN_COLUMNS) + 2
    assert tables["apps"].columns[-tail:][:2] == ["gflops", "status"] and tables["apps"].rows[0]["gflops"] == 1.0
    with pytest.raises(Exception, match="gflops"):
        RowTable(["time_s"], [{"time_s": 1.0, "gflops": 1.0}]).frame()


# ---------------------------------------------------------------- a workload's own inventory section

class Sectioned(Spin):
    """Spin with a ``benchmarks.spinner`` inventory section of its own."""

    name = "sectioned"
    section = Section("spinner", str | None, "Command that runs the spinner on the hosts.")


INVENTORY_WITH = """environments:
  local:
    label: local
    hosts: [{address: localhost}]
    benchmarks: {spinner: /opt/spin/bin/spin}
"""


def test_a_workload_section_joins_the_inventory_schema_and_leaves_with_it():
    from vhpclib import inventory_docs
    from vhpclib.config import parse_inventory
    from vhpclib.exceptions import InventoryError

    with pytest.raises(InventoryError) as before:
        parse_inventory(INVENTORY_WITH, "inv.yml")
    assert str(before.value).startswith("inv.yml:5: environments.local.benchmarks.spinner: unknown key")
    register_workload(Sectioned())
    try:
        inventory = parse_inventory(INVENTORY_WITH, "inv.yml")
        assert inventory.environment("local").benchmarks.spinner == "/opt/spin/bin/spin"
        assert inventory.environment("local").benchmarks.imb is None  # the built-in sections stay
        keys = {row.key: row for row in inventory_docs.rows(type(inventory))}
        assert keys["environments.<name>.benchmarks.spinner"].meaning == "Command that runs the spinner on the hosts."
    finally:
        unregister_workload("sectioned")
    with pytest.raises(InventoryError, match="unknown key"):
        parse_inventory(INVENTORY_WITH, "inv.yml")
