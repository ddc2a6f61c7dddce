"""Which application points the nodes of an environment can host with every rank's threads on cores of its own.

The scaling and single-node stages plan ``processes x threads`` per point; a point
that needs more cores than its nodes have, or that spreads ranks over "nodes" which
are namespaces or containers of one machine (the same boot id: their ranks would be
pinned to the same cores), is skipped with that reason instead of being measured
oversubscribed and drawn as if it were a scaling result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .app_run import AppRun
from .base import Point, Skip

if TYPE_CHECKING:
    from ..stages.context import StageContext


@dataclass(frozen=True)
class Capacity:
    """Cores per node, the node count, and whether the nodes are one machine."""

    cores_per_node: int
    nodes: int
    shared: bool = False

    @classmethod
    def of(cls, ctx: StageContext) -> "Capacity":
        hosts = list(ctx.env.hosts)
        shared = len(hosts) > 1 and ctx.shares_machine(hosts)
        return cls(max(1, ctx.topology().cores), len(hosts), shared)

    def why_not(self, run: AppRun) -> str | None:
        """Why ``run`` cannot be hosted pinned (None when it can)."""
        per_node = min(run.ppn, run.processes) * run.threads
        if per_node > self.cores_per_node:
            return (f"{min(run.ppn, run.processes)} rank(s) x {run.threads} thread(s) per node need {per_node} cores, "
                    f"a node has {self.cores_per_node}: it would be oversubscribed")
        if self.shared and run.nodes > 1 and not self.distinct_cores(run):
            return (f"the {self.nodes} nodes share one machine's {self.cores_per_node} cores (same boot id): "
                    f"{run.processes} rank(s) x {run.threads} thread(s) cannot each have a core of their own; "
                    "measure multi-node points on separate machines")
        return None

    def distinct_cores(self, run: AppRun) -> bool:
        """Whether ``run``'s single-threaded ranks fit this machine's cores one each, spread over its "nodes"
        (then each node's ranks are pinned to cores of their own: ``AppRun.launch_spec(distinct_cores=True)``)."""
        return run.threads == 1 and run.processes <= self.cores_per_node

    def fit(self, workload: str, runs: list[AppRun]) -> list[Point | Skip]:
        """Points for the runs that fit, a Skip with the reason for the others."""
        out: list[Point | Skip] = []
        for run in runs:
            reason = self.why_not(run)
            point = run.point(workload)
            out.append(point if reason is None else Skip(workload, point.stem, point.label, reason, point.fields))
        return out
