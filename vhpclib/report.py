"""All paper artifacts of a campaign, the cloud comparison, and the "paper vs measured" table.

Used by ``notebooks/04-cloud-comparison.ipynb`` and ``notebooks/05-paper-figures.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import paths
from .config import Inventory, load_inventory
from .store import RawStore
from .tables import read_table_or_empty, write_table

CLOUD_CAVEATS = (
    "EC2 Cluster Compute nodes (2x X5570, 2.93 GHz) are faster than AGC's (2x E5540, 2.53 GHz): "
    "their single-node times are not an overhead measurement.",
    "Hyper-threading is on in EC2 but the paper limited runs to 8 threads per node.",
    "EC2 uses a paravirtual 10 GbE driver, no InfiniBand passthrough: inter-node results compare "
    "interconnects as much as hypervisors.",
    "EC2 BT-MZ scaling was erratic in the paper (load balancing failed, cause unknown).",
)


def hardware_of(campaign: str, store: RawStore | None = None) -> dict[str, str]:
    """One line per measured environment label: CPU, sockets x cores, virtualization, MPI (from run records)."""
    out: dict[str, str] = {}
    for run in (store or RawStore()).runs(campaign):
        facts = run.record.host_facts
        label = run.record.label
        if label in out or not facts:
            continue
        host, f = next(iter(facts.items()))
        topo = f.get("topology") or {}
        virt = (f.get("virtualization") or {}).get("detected")
        out[label] = (f"{f.get('cpu_model')}, {topo.get('sockets')}x{topo.get('cores_per_socket')} cores, "
                      f"kernel {f.get('kernel')}, virtualization: {virt}, {f.get('mpi_version')}")
    return out


@dataclass
class PaperArtifacts:
    figures: dict = field(default_factory=dict)
    paper_vs_measured: pd.DataFrame = field(default_factory=pd.DataFrame)
    skipped: pd.DataFrame = field(default_factory=pd.DataFrame)
    hardware: dict[str, str] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)


def paper_artifacts(inventory: Inventory | str | Path | None, campaign: str, *, write: bool = True) -> PaperArtifacts:
    """Every table and figure of the paper from the campaign's tables, with the paper's values beside them."""
    from . import analysis, figures as figs
    from .figures.artifacts import CampaignData, build_artifacts

    data = CampaignData(campaign)
    art = PaperArtifacts(hardware=hardware_of(campaign), skipped=data.table("skipped"))
    micro, apps = data.table("microbench"), data.table("apps")
    art.figures = build_artifacts(campaign, data=data)
    art.paper_vs_measured = analysis.paper_vs_measured(
        latency=analysis.latency_table(micro) if len(micro) else None,
        peaks=analysis.peak_throughput(micro) if len(micro) else None,
        overhead=data.overhead() if len(apps) else None,
        efficiency=analysis.efficiency_table(apps, stage="scaling") if len(apps) else None,
        measured_hardware=art.hardware)
    if write:
        art.written.append(write_table(campaign, "paper_vs_measured", art.paper_vs_measured))
        with figs.export_session():
            for name, fig in art.figures.items():
                art.written += figs.save_figure(fig, name)
    return art


@dataclass
class CloudComparison:
    cloud: str | None
    overhead: pd.DataFrame
    efficiency: pd.DataFrame
    paper: pd.DataFrame
    caveats: tuple[str, ...] = CLOUD_CAVEATS
    note: str = ""


def cloud_comparison(inventory: Inventory | str | Path, campaign: str, cloud_environment: str = "ec2"
                     ) -> CloudComparison:
    """The cloud environment beside the cluster ones on single-node time and scaling efficiency."""
    from . import analysis
    from .reference import load_reference

    inv = inventory if isinstance(inventory, Inventory) else load_inventory(paths.project_path(inventory))
    apps = read_table_or_empty(campaign, "apps")
    paper = pd.concat([
        load_reference("single_node").assign(artifact="table3"),
        load_reference("efficiency").assign(artifact="fig3/fig4"),
    ], ignore_index=True)
    if cloud_environment not in inv.environments or apps.empty:
        have = ", ".join(inv.environments)
        note = (f"No environment {cloud_environment!r} in this inventory (has: {have}) or nothing measured yet: "
                "showing the paper's cloud numbers only.")
        return CloudComparison(None, pd.DataFrame(), pd.DataFrame(), paper, note=note)
    overhead = analysis.overhead_table(apps, inv.baseline, stage="single-node")
    efficiency = analysis.efficiency_table(apps, stage="scaling")
    return CloudComparison(cloud_environment, overhead, efficiency, paper)
