"""The microbenchmark stage end to end: measure (or reuse), tidy tables, Table 2 and Figure 2."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..config import Inventory
from ..parsers import ParseWarning
from ..tables import microbench_table, write_table
from ..topology import PLACEMENTS
from .context import StageContext
from .microbench import PingPongParams, run_microbench
from .summary import StageSummary


def run_stage(inventory: Inventory | str | Path, environment: str, campaign: str, *,
              params: PingPongParams = PingPongParams(), repetitions: int = 3,
              placements: Iterable[str] | None = None, rerun: bool = False, timeout_s: float | None = None,
              progress: bool = True, write_figures: bool = True) -> StageSummary:
    """Measure PingPong for every placement, then rebuild the campaign's tables and figures."""
    with StageContext.open(inventory, environment, campaign) as ctx:
        result = run_microbench(ctx, placements=placements or PLACEMENTS, params=params,
                                repetitions=repetitions, rerun=rerun, timeout_s=timeout_s, progress=progress)
    summary = StageSummary(environment, campaign, result)
    summary.tables, summary.warnings = _tables(campaign)
    summary.figure_objects = build_figures(campaign)
    if write_figures:
        summary.figures = save_figures(summary.figure_objects)
    return summary


def _tables(campaign: str) -> tuple[list[Path], list[ParseWarning]]:
    micro, skipped, warnings = microbench_table(campaign)
    return [write_table(campaign, "microbench", micro), write_table(campaign, "skipped", skipped)], warnings


def write_tables(campaign: str) -> list[Path]:
    """Rebuild the campaign's microbenchmark tables from raw logs."""
    return _tables(campaign)[0]


def build_figures(campaign: str) -> dict:
    """Table 2 and Figure 2 of the campaign, with the paper's values beside the measured ones."""
    from .. import analysis, figures as figs
    from ..reference import load_reference
    from ..tables import read_table

    micro = read_table(campaign, "microbench")
    return {
        "table2_latency": figs.table2_figure(analysis.latency_table(micro), reference=load_reference("latency")),
        "figure2_throughput": figs.figure2_throughput(analysis.throughput_curves(micro),
                                                      reference_peaks=load_reference("throughput_peak")),
    }


def save_figures(figure_objects: dict) -> list[Path]:
    """Write every figure as PDF, SVG, PNG and HTML under figures/."""
    from .. import figures as figs

    written: list[Path] = []
    for name, fig in figure_objects.items():
        written += figs.save_figure(fig, name)
    return written
