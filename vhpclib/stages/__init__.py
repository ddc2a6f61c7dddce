"""The study's stages, each one generic loop (``loop``, driven by ``driver.run_stage``) over the workloads it names.

``run`` is what the CLI and the notebooks call: measure (or reuse) in one
environment, rebuild the campaign's tables, then the stage's own figures.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Notebooks show the per-run progress bar as text (the pipeline streams it to the terminal); without
# ipywidgets, tqdm.auto says so with a warning on import that is not the user's concern.
warnings.filterwarnings("ignore", message="IProgress not found")

from ..config import Inventory  # noqa: E402
from ..names import Campaign, Stage  # noqa: E402
from ..params import AppParams, MicrobenchParams, StageParams  # noqa: E402
from ..registry import Registry  # noqa: E402
from .context import StageContext, layer_up  # noqa: E402
from .driver import run_stage  # noqa: E402
from .loop import StageResult  # noqa: E402

# The notebooks' spelling (``stages.SINGLE_NODE``): the members of the one enum, not another definition.
MICROBENCH, SINGLE_NODE, SCALING = Stage.MICROBENCH, Stage.SINGLE_NODE, Stage.SCALING


@dataclass(frozen=True)
class StageDef:
    """What a stage takes (its parameter model) and what it is for (``vhpc run --help``)."""

    name: Stage
    params: type[StageParams]
    summary: str


#: Every stage's definition, in the one registry type every axis uses (``vhpclib.registry``).
STAGES: Registry[StageDef] = Registry("stage", "stage")
for _definition in (
    StageDef(Stage.MICROBENCH, MicrobenchParams, "IMB PingPong per placement (Table 2, Figure 2)"),
    StageDef(Stage.SINGLE_NODE, AppParams, "workloads on one node: overhead vs baseline (Table 3)"),
    StageDef(Stage.SCALING, AppParams, "process counts across nodes: efficiency (Figures 3, 4)"),
):
    STAGES.add(_definition.name, _definition)


def stage_def(name: str | Stage) -> StageDef:
    """The definition of stage ``name``; an unknown one is one ``InputError`` listing the known ones."""
    return STAGES.get(Stage.parse(name))


@dataclass
class StageSummary:
    """What a stage call reports back to the CLI and the notebooks."""

    environment: str
    campaign: Campaign
    result: StageResult
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    figure_objects: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    new_campaign: bool = False
    advice: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.result.failures)

    def lines(self) -> list[str]:
        first, *rest = self.result.lines()
        out = [f"{self.environment}: {first}",
               f"campaign: {self.campaign}" + (" (new)" if self.new_campaign else ""), *rest]
        out += [f"statistics: {self.advice}"] if self.advice else []
        out += [f"warning: {w}" for w in self.warnings]
        out += [f"table: {p}" for p in self.tables]
        out += [f"figure: {p}" for p in self.figures]
        return out


def run(inventory: Inventory | str | Path, environment: str, campaign: str | None, stage: str | Stage,
        params: StageParams | None = None, *, progress: bool = True, figures: bool = True,
        write_figures: bool = True, measure: bool = True, allow_mixed: bool = False,
        allow_committed: bool = False, wait: bool = False) -> StageSummary:
    """Measure (or reuse) one stage in one environment, then rebuild the campaign's tables and this stage's figures.

    ``campaign=None`` measures into a new campaign named by the UTC time (reads the latest one when
    ``measure=False``). Measuring into an existing campaign checks that its earlier runs of this
    environment ran on the same hosts (``allow_mixed`` overrides, recorded) and refuses a committed
    campaign unless ``allow_committed`` (``vhpclib.campaigns``).
    ``measure=False`` measures nothing: tables and figures come from the stored runs.
    ``figures=False`` builds no figure at all (``write_figures=False`` builds them for display only).
    Figures go to ``figures/<campaign>/``. Another vhpc writing the campaign makes this one refuse
    (``CampaignBusy``, exit 2) or, with ``wait``, wait for it.
    """
    from .. import campaigns
    from ..tables import write_tables

    definition = stage_def(stage)
    stage = definition.name
    params = params or definition.params()
    if measure:
        selection = campaigns.for_measurement(campaign, allow_committed=allow_committed)
    else:
        selection = campaigns.Selection(campaigns.for_reading(campaign), False)
    campaign = selection.name
    notes: list[str] = []
    with layer_up(inventory, environment, measure), StageContext.open(inventory, environment, campaign,
                                                                        wait=wait) as ctx:
        if measure:
            if not selection.new:
                check = campaigns.check_hosts(ctx, allow_mixed=allow_mixed)
                if check.mixed:
                    notes.append(f"hosts differ from earlier runs, added anyway (--allow-mixed, recorded in "
                                 f"{check.recorded}): {check.text()}")
            result = run_stage(ctx, stage, params, progress=progress)
        else:
            result = StageResult(stage)
    summary = StageSummary(environment, campaign, result, new_campaign=selection.new and measure)
    summary.tables, summary.warnings = write_tables(campaign)
    summary.warnings = notes + summary.warnings
    if measure and not params.adaptive:  # adaptive calls say per quantity how many runs they took
        summary.advice = repetition_advice(params.repetitions)
    if figures:
        from ..figures.artifacts import build_artifacts

        summary.figure_objects = build_artifacts(campaign, stage=stage, only_with_data=True)
        if write_figures:
            summary.figures = save_figures(summary.figure_objects, campaign)
    return summary


def repetition_advice(repetitions: int, confidence: float = 0.95) -> str:
    """What ``repetitions`` runs per point buy: the interval's true coverage, and the n a 95 % interval needs."""
    from ..median_coverage import interval_label, repetitions_for

    need = repetitions_for(confidence)
    label = interval_label(repetitions, confidence)
    if repetitions >= need:
        return f"{repetitions} runs per point: each median's interval is {label}"
    return (f"{repetitions} run(s) per point: each median's interval is {label}; a {confidence:.0%} interval "
            f"needs {need} (--repetitions {need})")


def save_figures(figure_objects: dict[str, Any], campaign: Campaign) -> list[Path]:
    """Write every figure as PDF, SVG, PNG and HTML under figures/<campaign>/ (one browser for all)."""
    from ..figures import save_figures as save_all
    from ..paths import figures_dir

    return save_all(figure_objects, figures_dir(campaign))


__all__ = ["MICROBENCH", "SINGLE_NODE", "SCALING", "STAGES", "Stage", "StageDef", "StageSummary", "StageContext",
           "StageResult", "run", "run_stage", "save_figures", "stage_def"]
