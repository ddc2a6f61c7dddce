"""IMB PingPong at 0 bytes in blocks inside one launch: the two levels of Kalibera & Jones (ISMM 2013).

IMB prints only the mean over a size's iterations, so one launch says nothing about
the spread of iterations inside a run. IMB 2021.10 takes a message-size list
(``-msgsize``, parsed in ``src_cpp/MPI1/MPI1_suite.cpp`` without removing repeats),
so ``-msgsize 0,0,...,0 -iter I -iter_policy off`` measures B blocks of I iterations
in one process launch: their spread is the within-run level, the spread of their
run means across launches the between-run level. The adaptive microbenchmark stage
measures a few such launches per placement, then picks the iterations per run that
reach the target interval cheapest (``workloads/pingpong_sizing.py``).

Rows go to the microbench table as benchmark ``PingPong-blocks`` (one row per block),
so they never mix with Table 2's and Figure 2's ``PingPong`` rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..names import Stage
from ..parsers import get_parser
from ..schema import Watch
from .base import Extracted, Point, Skip, get_workload
from .pingpong import ROW_KEYS, PingPong
from .pingpong_sizing import BLOCK_ITERATIONS, BLOCKS

if TYPE_CHECKING:
    from ..launchers import Job
    from ..params import StageParams
    from ..stages.context import StageContext
    from ..store import StoredRun

BENCHMARK = "PingPong-blocks"


class PingPongLevels(PingPong):
    name = "pingpong-levels"
    paper_name = "IMB PingPong"
    table = "microbench"
    stages = (Stage.MICROBENCH,)

    def display_name(self, point: object) -> str:
        return BENCHMARK

    def settings(self, params: StageParams) -> Any:
        """PingPong's parameters (placements, IMB's options): the levels measure the same placements."""
        return params.settings(get_workload("pingpong")) if "pingpong" in params.options else super().settings(params)

    def watch(self, params: StageParams) -> list[Watch]:
        return []  # its runs size the PingPong points (``dimension``); they are not reported themselves

    def dimension(self, runner: Any, point: Point, params: StageParams, schedule: Any,
                  counts: Mapping[str, int]) -> tuple[Point, StageParams, dict[str, Any] | None]:
        return point, params, None

    def plan(self, stage: str, ctx: StageContext, params: StageParams) -> list[Point | Skip]:
        out: list[Point | Skip] = []
        for item in super().plan(stage, ctx, params):
            placement = item.fields["placement"]
            stem = f"pingpong-levels-{placement}-b{BLOCKS}-i{BLOCK_ITERATIONS}"
            fields = {"placement": placement, "blocks": BLOCKS, "block_iterations": BLOCK_ITERATIONS}
            if isinstance(item, Skip):
                out.append(Skip(self.name, stem, item.what, item.reason, fields))
            else:
                out.append(Point(self.name, stem, fields, nodes=item.nodes, label=f"PingPong blocks {placement}",
                                 ranks_per_node=2 // item.nodes))
        return out

    def job(self, ctx: StageContext, point: Point, repetition: int, prepared: dict, params: StageParams) -> Job:
        job = super().job(ctx, point, repetition, prepared, params)
        args = ["PingPong", "-msgsize", ",".join(["0"] * BLOCKS), "-iter", str(BLOCK_ITERATIONS),
                "-iter_policy", "off"]
        return replace(job, program=[job.program[0], *args],
                       record={"imb": {"msgsize": [0] * BLOCKS, "iterations": BLOCK_ITERATIONS}})

    def sanity(self, run: StoredRun) -> list[str]:
        problems = super().sanity(run)
        if not problems and len(_blocks(run)) != BLOCKS:
            problems.append(f"IMB printed {len(_blocks(run))} blocks of 0 bytes, expected {BLOCKS}")
        return problems

    def extract(self, run: StoredRun) -> Extracted:
        parsed = get_parser("imb").parse(run.stdout(), str(run.stdout_path))
        rows = [{**{k: r.get(k) for k in ROW_KEYS}, "benchmark": BENCHMARK}
                for r in parsed.records if r["benchmark"] == "PingPong" and r["bytes"] == 0]
        return Extracted(rows, [str(w) for w in parsed.warnings])


def _blocks(run: StoredRun) -> list[dict]:
    try:
        parsed = get_parser("imb").parse(run.stdout(), str(run.stdout_path))
    except Exception:  # noqa: BLE001 - sanity never raises; the parent check already named the problem
        return []
    return [r for r in parsed.records if r["benchmark"] == "PingPong" and r["bytes"] == 0]


__all__ = ["PingPongLevels", "BENCHMARK", "BLOCKS", "BLOCK_ITERATIONS"]
