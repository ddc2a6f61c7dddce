"""A workload from outside vhpclib: MPI_Allreduce latency, measured by a tiny mpi4py program.

Everything vHPC knows about it is declared in this one file (no vhpclib module names it):
its parameters (``AllreduceParams``: ``rounds`` becomes ``vhpc run microbench --rounds``,
``options={"rounds": ...}`` in the notebooks), its result table ``collectives`` with columns
and units, the quantity adaptive repetitions watch, and its figure (an artifact in the report's
"Other workloads" section). vHPC loads it when ``VHPC_PLUGINS=allreduce_workload`` names it
(``vhpclib.plugins``); tests/test_plugin_workload.py does that and runs it end to end.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vhpclib.figures.artifacts import Artifact, CampaignData, register_artifact
from vhpclib.launchers import Job
from vhpclib.mpi import LaunchSpec
from vhpclib.schema import Column, TableSpec, Watch, register_table
from vhpclib.workloads import Extracted, Point, Workload, register_workload

NAME = "allreduce"
TABLE = "collectives"
RANKS = 2
# Every rank times `rounds` MPI_Allreduce calls of one integer; rank 0 prints the slowest rank's time per call.
PROGRAM = r"""
import sys
from mpi4py import MPI

comm = MPI.COMM_WORLD
rounds = int(sys.argv[1])
comm.Barrier()
t0 = MPI.Wtime()
for _ in range(rounds):
    comm.allreduce(1, op=MPI.SUM)
worst = comm.allreduce(MPI.Wtime() - t0, op=MPI.MAX)
if comm.rank == 0:
    print(f"allreduce: {comm.size} ranks, {rounds} rounds, {worst / rounds * 1e6:.3f} usec per call")
"""
LINE = re.compile(r"^allreduce: (?P<ranks>\d+) ranks, (?P<rounds>\d+) rounds, (?P<usec>[0-9.]+) usec per call$",
                  re.MULTILINE)


class AllreduceParams(BaseModel):
    """The allreduce workload's parameters (one default each: here, nowhere else)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = Field(200, ge=1, le=10_000_000, description="MPI_Allreduce calls timed per run.")


def allreduce_usec(rows: list[dict[str, Any]]) -> float | None:
    """A run's time per MPI_Allreduce call (usec)."""
    return float(rows[0]["allreduce_usec"]) if rows and rows[0].get("allreduce_usec") is not None else None


def _identity(run: Any, workload: Workload, row: dict[str, Any]) -> dict[str, Any]:
    rec = run.record
    return {"campaign": rec.campaign, "environment": rec.environment, "label": rec.label, "run_id": rec.run_id,
            "repetition": rec.repetition, "status": rec.status}


register_table(TableSpec(
    TABLE,
    (Column("campaign"), Column("environment"), Column("label"), Column("run_id"), Column("repetition"),
     Column("nprocs", "processes"), Column("rounds", "calls"),
     Column("allreduce_usec", "usec", "time per MPI_Allreduce call of one integer, slowest rank")),
    _identity, ("microbench",), (Watch("allreduce", "usec", allreduce_usec),), "collective latency per run",
    tail=(Column("status"),)), replace=True)


class Allreduce(Workload):
    name = NAME
    paper_name = ""
    table = TABLE
    stages = ("microbench",)
    Params = AllreduceParams

    def plan(self, stage, ctx, params):
        rounds = self.settings(params).rounds
        return [Point(self.name, f"allreduce-n{RANKS}-r{rounds}", {"rounds": rounds}, label=f"allreduce x{rounds}")]

    def job(self, ctx, point, repetition, prepared, params):
        return Job([sys.executable, "-c", PROGRAM, str(point.fields["rounds"])],
                   LaunchSpec(RANKS, ctx.mpi_hosts(1), report_binding=False), timeout_s=120)

    def sanity(self, run):
        return [] if LINE.search(run.stdout()) else ["no 'allreduce: ... usec per call' line"]

    def extract(self, run):
        m = LINE.search(run.stdout())
        return Extracted([{"nprocs": int(m["ranks"]), "rounds": int(m["rounds"]),
                           "allreduce_usec": float(m["usec"])}])


def allreduce_figure(data: CampaignData):
    """Time per call, every run, per environment."""
    import plotly.graph_objects as go

    table = data.table(TABLE)
    fig = go.Figure()
    for env, rows in (table.groupby("label") if len(table) else []):
        fig.add_trace(go.Box(y=rows["allreduce_usec"], name=str(env), boxpoints="all"))
    fig.update_layout(title="MPI_Allreduce: time per call", yaxis_title="time per call [usec]")
    return fig


register_workload(Allreduce(), replace=True)
register_artifact(Artifact("allreduce_latency", "microbench", allreduce_figure,
                           lambda d: len(d.table(TABLE)) > 0, title="MPI_Allreduce latency (a plugin workload)",
                           caption="Time per MPI_Allreduce call of one integer over 2 ranks, every run.",
                           inputs=(TABLE,), section="workloads"))
