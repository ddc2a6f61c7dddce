"""What campaigns the store holds: one summary per campaign (``vhpc campaigns``) and the detail of one
(``vhpc campaigns show NAME``), read from the run records only (nothing is parsed, nothing is written).

A run counts as *valid* when its status is ``complete``; ``invalid`` runs were measured but failed their
sanity checks (or ran under contention), ``failed`` runs did not finish, ``skipped`` records are points an
environment cannot run (with the reason).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from . import campaigns
from .exceptions import InputError
from .names import Campaign
from .store import RawStore

STATUSES = ("complete", "invalid", "failed", "skipped")


@dataclass
class CampaignSummary:
    """One campaign as its run records describe it."""

    name: str
    committed: bool = False
    first_utc: str | None = None
    last_utc: str | None = None
    environments: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # status -> runs
    #: (environment, stage) -> status -> runs; (environment, stage) -> workloads
    per_stage: dict[tuple[str, str], Counter] = field(default_factory=lambda: defaultdict(Counter))
    workloads: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    reasons: Counter = field(default_factory=Counter)  # reason of an invalid/failed/skipped record -> runs

    @property
    def runs(self) -> int:
        return sum(self.counts.values())

    def dates(self) -> str:
        if not self.first_utc:
            return "no dated run"
        first, last = self.first_utc[:16].replace("T", " "), (self.last_utc or "")[:16].replace("T", " ")
        return first if first == last else f"{first} – {last[11:] if last[:10] == first[:10] else last}"


def summarize(name: str, store: RawStore | None = None) -> CampaignSummary:
    """The summary of campaign ``name`` from its run records."""
    store = store or RawStore()
    summary = CampaignSummary(Campaign(name), committed=campaigns.is_committed(name, store))
    envs: dict[str, None] = {}
    for run in store.runs(name):
        rec = run.record
        if rec.kind == "build":  # an NPB build record, not a measurement
            continue
        envs.setdefault(rec.environment)
        status = "skipped" if rec.kind == "skip" else str(rec.status)
        summary.counts[status] += 1
        summary.per_stage[(rec.environment, rec.stage)][status] += 1
        if rec.workload:
            summary.workloads[(rec.environment, rec.stage)].add(rec.workload)
        if status != "complete" and rec.reasons:
            summary.reasons[rec.reasons[0]] += 1
        started = rec.execution.started_utc if rec.execution else None
        if started:
            summary.first_utc = min(filter(None, [summary.first_utc, started]))
            summary.last_utc = max(filter(None, [summary.last_utc, started]))
    summary.environments = list(envs)
    return summary


def list_campaigns(store: RawStore | None = None) -> list[CampaignSummary]:
    """Every campaign of the store, oldest activity first."""
    store = store or RawStore()
    return [summarize(name, store) for name in campaigns.names(store)]


def require_runs(name: str, store: RawStore | None = None) -> str:
    """``name`` when it holds at least one measured run, else an ``InputError`` saying how to measure one."""
    store = store or RawStore()
    for run in store.runs(name):
        if run.record.kind == "run":
            return name
    raise InputError(f"campaign {name!r} holds no measured run ({store.root / name}): nothing to draw; measure "
                     f"into it first (vhpc run microbench --campaign {name})", key="campaign")


def table_rows(summaries: list[CampaignSummary]) -> list[list[str]]:
    """Rows of ``vhpc campaigns``: name, dates, environments, valid/invalid/failed/skipped, committed."""
    return [[s.name, s.dates(), ", ".join(s.environments) or "-",
             *(str(s.counts.get(k, 0)) for k in STATUSES), "yes" if s.committed else "no"] for s in summaries]


HEADER = ["campaign", "measured (UTC)", "environments", "valid", "invalid", "failed", "skipped", "committed"]


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Plain aligned columns (readable in a terminal, a log and a test)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def describe(summary: CampaignSummary, store: RawStore | None = None) -> str:
    """``vhpc campaigns show``: where it is, when, per environment and stage what was measured and how it ended."""
    store = store or RawStore()
    lines = [f"campaign {summary.name}: {summary.runs} record(s), measured {summary.dates()}",
             f"raw logs: data/raw/{summary.name}/ ({'committed to git' if summary.committed else 'not committed'})"]
    rows = []
    for (env, stage), counts in sorted(summary.per_stage.items()):
        rows.append([env, stage, ", ".join(sorted(summary.workloads.get((env, stage), set()))) or "-",
                     *(str(counts.get(k, 0)) for k in STATUSES)])
    if rows:
        lines += ["", format_table(["environment", "stage", "workloads", *STATUSES], rows)]
    if summary.reasons:
        lines += ["", "why points were skipped or runs are not valid (most frequent first):"]
        lines += [f"  {n} x {reason}" for reason, n in summary.reasons.most_common(8)]
    not_valid = summary.counts.get("invalid", 0) + summary.counts.get("failed", 0)
    if not_valid:
        lines += ["", f"{not_valid} run(s) invalid or failed: measure them again with "
                      f"vhpc run <stage> --campaign {summary.name} --rerun"]
    return "\n".join(lines)
