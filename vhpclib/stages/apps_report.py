"""Application stages end to end: measure (or reuse), tidy table, Table 3 / Figures 3 and 4."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import Inventory
from ..parsers import ParseWarning
from ..tables import apps_table, read_table, skipped_runs, write_table
from .apps import SCALING, SINGLE_NODE, run_app_stage
from .context import StageContext
from .summary import StageSummary


def run_stage(inventory: Inventory | str | Path, environment: str, campaign: str, stage: str, *,
              workloads: tuple[str, ...] = ("blockss", "npb"), blockss_preset: str = "small",
              npb_class: str = "C", processes: list[int] | None = None, repetitions: int = 3,
              rerun: bool = False, timeout_s: float | None = None, progress: bool = True,
              write_figures: bool = True) -> StageSummary:
    """Run one application stage in one environment, then rebuild the campaign's tables and figures."""
    with StageContext.open(inventory, environment, campaign) as ctx:
        result = run_app_stage(ctx, stage, workloads=workloads, blockss_preset=blockss_preset,
                               npb_class=npb_class, processes=processes, repetitions=repetitions,
                               rerun=rerun, timeout_s=timeout_s, progress=progress)
        baseline = ctx.inventory.baseline
        single_environment = len(ctx.inventory.environments) == 1
    summary = StageSummary(environment, campaign, result)
    summary.tables, summary.warnings = write_tables(campaign)
    builder = single_node_figures if stage == SINGLE_NODE else scaling_figures
    summary.figure_objects = builder(campaign, baseline=baseline, aa=single_environment)
    if write_figures:
        from .microbench_report import save_figures

        summary.figures = save_figures(summary.figure_objects)
    return summary


def write_tables(campaign: str) -> tuple[list[Path], list[ParseWarning]]:
    """Rebuild the campaign's application table (and the skip list) from raw logs."""
    apps, parse_warnings = apps_table(campaign)
    return [write_table(campaign, "apps", apps), write_table(campaign, "skipped", skipped_runs(campaign))], \
        parse_warnings


def overhead(campaign: str, *, baseline: str, aa: bool) -> pd.DataFrame:
    """Table 3: time per environment and overhead vs the baseline; with one environment, the A/A check."""
    from .. import analysis

    apps = read_table(campaign, "apps")
    if aa:
        return analysis.aa_check(apps, baseline, stage=SINGLE_NODE)
    return analysis.overhead_table(apps, baseline, stage=SINGLE_NODE)


def single_node_figures(campaign: str, *, baseline: str, aa: bool) -> dict:
    from .. import figures as figs

    return {"table3_single_node": figs.table3_figure(overhead(campaign, baseline=baseline, aa=aa))}


def scaling_figures(campaign: str, **_: object) -> dict:
    """Figure 3 (NPB-MZ) and Figure 4 (blockss with its algorithmic ideal)."""
    from .. import analysis, figures as figs

    apps = read_table(campaign, "apps")
    npb = apps[apps["workload"].isin(["SP-MZ", "BT-MZ"])]
    blockss = apps[apps["workload"] == "blockss"]
    return {
        "figure3_npb": figs.figure3_npb(analysis.efficiency_table(npb, stage=SCALING),
                                        analysis.performance_table(npb, stage=SCALING)),
        "figure4_blockss": figs.figure4_blockss(analysis.efficiency_table(blockss, stage=SCALING),
                                                analysis.ideal_curve(blockss, stage=SCALING)),
    }
