"""The study's stages, each one generic loop (``loop.run_stage``) over the workloads it names.

``run`` is what the CLI and the notebooks call: measure (or reuse) in one
environment, rebuild the campaign's tables, then the stage's own figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Inventory
from ..exceptions import InputError
from ..params import AppParams, MicrobenchParams, StageParams
from .context import StageContext
from .loop import StageResult, run_stage

MICROBENCH, SINGLE_NODE, SCALING = "microbench", "single-node", "scaling"


@dataclass(frozen=True)
class StageDef:
    name: str
    params: type[StageParams]
    summary: str


STAGES: dict[str, StageDef] = {
    MICROBENCH: StageDef(MICROBENCH, MicrobenchParams, "IMB PingPong per placement (Table 2, Figure 2)"),
    SINGLE_NODE: StageDef(SINGLE_NODE, AppParams, "workloads on one node: overhead vs baseline (Table 3)"),
    SCALING: StageDef(SCALING, AppParams, "process counts across nodes: efficiency (Figures 3, 4)"),
}


def stage_def(name: str) -> StageDef:
    try:
        return STAGES[name]
    except KeyError:
        raise InputError(f"unknown stage {name!r}; known: {', '.join(STAGES)}", key="stage") from None


@dataclass
class StageSummary:
    """What a stage call reports back to the CLI and the notebooks."""

    environment: str
    campaign: str
    result: StageResult
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    figure_objects: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.result.failures)

    def lines(self) -> list[str]:
        first, *rest = self.result.lines()
        out = [f"{self.environment}: {first}", *rest]
        out += [f"warning: {w}" for w in self.warnings]
        out += [f"table: {p}" for p in self.tables]
        out += [f"figure: {p}" for p in self.figures]
        return out


def run(inventory: Inventory | str | Path, environment: str, campaign: str, stage: str,
        params: StageParams | None = None, *, progress: bool = True, figures: bool = True,
        write_figures: bool = True, measure: bool = True) -> StageSummary:
    """Measure (or reuse) one stage in one environment, then rebuild the campaign's tables and this stage's figures.

    ``measure=False`` measures nothing: tables and figures come from the stored runs.
    ``figures=False`` builds no figure at all (``write_figures=False`` builds them for display only).
    """
    from ..tables import write_tables

    definition = stage_def(stage)
    params = params or definition.params()
    with StageContext.open(inventory, environment, campaign) as ctx:
        result = run_stage(ctx, stage, params, progress=progress) if measure else StageResult(stage)
    summary = StageSummary(environment, campaign, result)
    summary.tables, summary.warnings = write_tables(campaign)
    if figures:
        from ..figures.artifacts import build_artifacts

        summary.figure_objects = build_artifacts(campaign, stage=stage, only_with_data=True)
        if write_figures:
            summary.figures = save_figures(summary.figure_objects)
    return summary


def save_figures(figure_objects: dict[str, Any]) -> list[Path]:
    """Write every figure as PDF, SVG, PNG and HTML under figures/ (one browser for all)."""
    from ..figures import export_session, save_figure

    written: list[Path] = []
    with export_session():
        for name, fig in figure_objects.items():
            written += save_figure(fig, name)
    return written


__all__ = ["MICROBENCH", "SINGLE_NODE", "SCALING", "STAGES", "StageDef", "StageSummary", "StageContext",
           "StageResult", "run", "run_stage", "save_figures", "stage_def"]
