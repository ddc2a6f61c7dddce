"""Every table and figure of the study, self-described: title, caption, input tables, report section, builder.

One registry (``ARTIFACTS``) that the stages, the report (``vhpclib.report``) and
notebook 05 loop over; a workload's module (or a test's) registers its own artifact
the same way (``register_artifact``) and it appears in ``vhpc figures`` and the report.
Figures depend on tables only (never on logs): a stage rewrites just its own
artifacts, and only those it has data for; the report builds all of them, with
the paper's values alone where nothing was measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd
import plotly.graph_objects as go

from .. import analysis
from ..registry import Registry
from ..tables import read_table_or_empty
from . import paper
from .style import display_label
from ..names import Stage  # after the others: the schemas branch adds an import above

NPB_PAPER_WORKLOADS = ("SP-MZ", "BT-MZ")


@dataclass
class CampaignData:
    """A campaign's processed tables, read once, and what the figures derive from them.

    Environments whose runs recorded an emulating VMM (``qemu-tcg``) are labelled as
    emulation in every table the figures read, so no figure shows TCG as virtualization.
    """

    campaign: str
    _tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            self._tables[name] = read_table_or_empty(self.campaign, name)
            frame = self._tables[name]
            if name != "environments" and len(frame) and {"label", "environment"} <= set(frame.columns):
                self._tables[name] = self._relabel(self._tables[name])
        return self._tables[name]

    @classmethod
    def of(cls, campaign: str, tables: dict[str, pd.DataFrame]) -> "CampaignData":
        """From tables already in memory (``tables.build_tables``), labels as ``table()`` gives them."""
        data = cls(campaign, {"environments": tables.get("environments", pd.DataFrame())})
        for name, frame in tables.items():
            if name != "environments":
                data._tables[name] = data._relabel(frame) if len(frame) and "label" in frame else frame
        return data

    def _relabel(self, frame: pd.DataFrame) -> pd.DataFrame:
        envs = self.table("environments")
        if not len(envs) or "vmm" not in envs:
            return frame
        shown = {e: display_label(lab, vmm) for e, lab, vmm in zip(envs["environment"], envs["label"], envs["vmm"])}
        if all(shown[e] == lab for e, lab in zip(envs["environment"], envs["label"])):
            return frame
        out = frame.copy()
        out["label"] = [shown.get(e, lab) for e, lab in zip(out["environment"], out["label"])]
        return out

    @cached_property
    def baseline(self) -> str:
        """The environment every overhead is relative to: the one its runs recorded as baseline."""
        return analysis.baseline_of(self.table("environments"))

    def single_node_environments(self) -> list[str]:
        apps = self.table("apps")
        return sorted(set(apps.loc[apps["stage"] == Stage.SINGLE_NODE, "environment"])) if len(apps) else []

    def overhead(self) -> pd.DataFrame:
        """Table 3: overhead vs the baseline; with one environment, the A/A check (its runs split in two)."""
        apps = self.table("apps")
        if len(self.single_node_environments()) == 1:
            return analysis.aa_check(apps, self.single_node_environments()[0], stage=Stage.SINGLE_NODE)
        return analysis.overhead_table(apps, self.baseline, stage=Stage.SINGLE_NODE)

    def apps_of(self, workloads: Iterable[str], stage: str) -> pd.DataFrame:
        apps = self.table("apps")
        return apps[apps["workload"].isin(list(workloads)) & (apps["stage"] == stage)] if len(apps) else apps


#: The report's sections of artifacts, in report order: key -> heading.
SECTIONS = {"paper": "The paper's artifacts", "distributions": "Distributions behind the intervals",
            "workloads": "Other workloads"}


@dataclass(frozen=True)
class Artifact:
    """One table or figure: what it is called and shows, the tables it reads, where the report puts it.

    ``stage`` is the stage whose runs feed it (None: built from the paper alone); ``has_data`` says
    whether this campaign has anything for it (a stage writes only those).
    """

    name: str
    stage: str | None
    build: Callable[[CampaignData], go.Figure]
    has_data: Callable[[CampaignData], bool] = lambda data: True
    title: str = ""
    caption: str = ""
    inputs: tuple[str, ...] = ()
    section: str = "paper"

    def __post_init__(self) -> None:
        if self.section not in SECTIONS:
            raise ValueError(f"artifact {self.name!r}: unknown report section {self.section!r}; "
                             f"known: {', '.join(SECTIONS)}")


def _micro(data: CampaignData) -> bool:
    return len(data.table("microbench")) > 0


def _single(data: CampaignData) -> bool:
    return bool(data.single_node_environments())


def _npb(data: CampaignData) -> pd.DataFrame:
    return data.apps_of(NPB_PAPER_WORKLOADS, Stage.SCALING)


def _blockss(data: CampaignData) -> pd.DataFrame:
    return data.apps_of(["blockss"], Stage.SCALING)


ARTIFACTS: Registry[Artifact] = Registry("artifact", "artifact")


def register_artifact(artifact: Artifact, *, replace: bool = True) -> Artifact:
    """Make ``artifact`` part of the stages' figures, ``vhpc figures`` and the report (a reload replaces it)."""
    return ARTIFACTS.add(artifact.name, artifact, replace=replace)


unregister_artifact = ARTIFACTS.remove


def artifacts_in(section: str) -> list[Artifact]:
    """The artifacts of one report section, in registration order."""
    return [a for _, a in ARTIFACTS.items() if a.section == section]


def build_artifacts(campaign: str, *, stage: str | None = None, only_with_data: bool = False,
                    data: CampaignData | None = None) -> dict[str, go.Figure]:
    """The artifacts of ``stage`` (every artifact when None), built from the campaign's tables."""
    data = data or CampaignData(campaign)
    return {name: a.build(data) for name, a in ARTIFACTS.items()
            if (stage is None or a.stage == stage) and (not only_with_data or a.has_data(data))}


_FILES = "(the subtitle of a measured figure says n and what its error bars cover)"

for _artifact in (
    Artifact("table2_latency", Stage.MICROBENCH,
             lambda d: paper.table2_figure(analysis.latency_table(d.table("microbench"))), _micro,
             title="Table 2: latency", inputs=("microbench", "environments"),
             caption=f"0-byte PingPong latency per placement, measured beside the paper's {_FILES}."),
    Artifact("figure2_throughput", Stage.MICROBENCH,
             lambda d: paper.figure2_throughput(analysis.throughput_curves(d.table("microbench"))), _micro,
             title="Figure 2: throughput", inputs=("microbench", "environments"),
             caption=f"PingPong throughput over message sizes per placement, with the paper's peaks {_FILES}."),
    Artifact("table3_single_node", Stage.SINGLE_NODE, lambda d: paper.table3_figure(d.overhead()), _single,
             title="Table 3: single node", inputs=("apps", "environments"),
             caption=f"Time on one node and overhead versus the baseline (or the A/A check) {_FILES}."),
    Artifact("figure3_npb", Stage.SCALING,
             lambda d: paper.figure3_npb(analysis.efficiency_table(_npb(d), stage=Stage.SCALING),
                                         analysis.performance_table(_npb(d), stage=Stage.SCALING)),
             lambda d: len(_npb(d)) > 0, title="Figure 3: NPB-MZ scaling", inputs=("apps", "environments"),
             caption=f"SP-MZ and BT-MZ parallel efficiency and rate over process counts {_FILES}."),
    Artifact("figure4_blockss", Stage.SCALING,
             lambda d: paper.figure4_blockss(analysis.efficiency_table(_blockss(d), stage=Stage.SCALING),
                                             analysis.ideal_curve(_blockss(d), stage=Stage.SCALING)),
             lambda d: len(_blockss(d)) > 0, title="Figure 4: blockss (Bloss) efficiency with the ideal curve",
             inputs=("apps", "environments"),
             caption=f"blockss parallel efficiency over process counts, the ideal curve dashed {_FILES}."),
    Artifact("section23_io", None, lambda d: paper.section23_io(),
             title="Section 2.3: MPI throughput over virtualized 10 GbE (paper only)",
             caption="The paper's numbers only: this study does not measure 10 GbE IO."),
):
    register_artifact(_artifact)

# Distributions per environment beside the intervals (issue #15: vhpclib/figures/distributions.py).
from .distributions import latency_distribution, wall_time_distribution  # noqa: E402

for _artifact in (
    Artifact("distribution_latency", Stage.MICROBENCH, lambda d: latency_distribution(d.table("microbench")), _micro,
             title="Distribution: 0-byte latency", inputs=("microbench",), section="distributions",
             caption="Every run's 0-byte latency per environment and placement, beside its interval."),
    Artifact("distribution_single_node", Stage.SINGLE_NODE,
             lambda d: wall_time_distribution(d.table("apps"), Stage.SINGLE_NODE), _single,
             title="Distribution: single-node times", inputs=("apps",), section="distributions",
             caption="Every run's time per environment and workload on one node, beside its interval."),
):
    register_artifact(_artifact)

# Artifacts of plugins (VHPC_PLUGINS or entry points): registered once the built-in ones are.
from ..plugins import load_plugins  # noqa: E402

load_plugins()
