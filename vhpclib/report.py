"""The campaign report: what was measured, on what, how to read it, every paper artifact, the cloud
comparison, and the paper's numbers beside ours where they compare.

Used by ``notebooks/05-paper-figures.ipynb`` (the report) and
``notebooks/04-cloud-comparison.ipynb``. Every section is an HTML fragment built
from the campaign's own runs, so the report never names a host, a date or a
count that this campaign did not record.
"""

from __future__ import annotations

import functools
import html
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import paths
from .config import Inventory
from .names import Stage
from .providers import is_cloud
from .store import RawStore
from .tables import write_table

CLOUD_CAVEATS = (
    "EC2 Cluster Compute nodes (2x X5570, 2.93 GHz) are faster than AGC's (2x E5540, 2.53 GHz): "
    "their single-node times are not an overhead measurement.",
    "Hyper-threading is on in EC2 but the paper limited runs to 8 threads per node.",
    "EC2 uses a paravirtual 10 GbE driver, no InfiniBand passthrough: inter-node results compare "
    "interconnects as much as hypervisors.",
    "EC2 BT-MZ scaling was erratic in the paper (load balancing failed, cause unknown).",
)


def _e(value: Any) -> str:
    return html.escape("" if value is None or (isinstance(value, float) and value != value) else str(value))


def sig(value: Any, digits: int = 3) -> str:
    """A number rounded to ``digits`` significant digits for people (no trailing float noise)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return _e(value)
    if x != x:
        return ""
    return f"{x:.{digits}g}" if abs(x) < 10 ** digits else f"{x:.0f}"


def html_table(df: pd.DataFrame, columns: dict[str, str], css: str = "vhpc-table") -> str:
    """A small HTML table of ``columns`` (source column -> header), values escaped and numbers rounded."""
    head = "".join(f"<th>{_e(h)}</th>" for h in columns.values())
    body = []
    for _, row in df.iterrows():
        cells = []
        for col in columns:
            value = row.get(col)
            cells.append(f"<td>{sig(value) if isinstance(value, float) else _e(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


# ------------------------------------------------------------------ what the campaign recorded

@dataclass
class CampaignFacts:
    """What the campaign's run records say about themselves (one pass over the store)."""

    campaign: str
    statuses: Counter = field(default_factory=Counter)  # (environment, stage, status) -> runs
    first_utc: str | None = None
    last_utc: str | None = None
    commits: Counter = field(default_factory=Counter)  # "abc1234 (vhpclib 0.1.0)" -> runs
    dirty: int = 0

    @classmethod
    def scan(cls, campaign: str, store: RawStore | None = None) -> "CampaignFacts":
        facts = cls(campaign)
        for run in (store or RawStore()).runs(campaign):
            rec = run.record
            facts.statuses[(rec.environment, rec.stage, rec.status)] += 1
            if rec.kind != "run":
                continue
            code = rec.code
            if code is not None:
                commit = (code.git_commit or "unknown")[:10]
                facts.commits[f"{commit} (vhpclib {code.vhpclib})"] += 1
                facts.dirty += bool(code.git_dirty)
            started = rec.execution.started_utc if rec.execution else None
            if started:
                facts.first_utc = min(filter(None, [facts.first_utc, started]))
                facts.last_utc = max(filter(None, [facts.last_utc, started]))
        return facts

    def measured_runs(self) -> int:
        return sum(n for (_, _, status), n in self.statuses.items() if status in ("complete", "invalid"))

    def count(self, status: str) -> int:
        return sum(n for (_, _, s), n in self.statuses.items() if s == status)


def _utc(stamp: str | None) -> str:
    return (stamp or "?").replace("T", " ")[:19] + (" UTC" if stamp else "")


def hardware_table(envs: pd.DataFrame) -> pd.DataFrame:
    """One row per environment: label, VMM (emulation said as such), CPU, sockets x cores, kernel, MPI, runs."""
    from .figures.style import display_label

    if not len(envs):
        return envs
    out = envs.copy()
    out["shown"] = [display_label(lab, vmm) for lab, vmm in zip(out["label"], out["vmm"])]
    out["cores"] = [f"{s}x{c}" if pd.notna(s) else "" for s, c in zip(out["sockets"], out["cores_per_socket"])]
    out["mpi"] = out["mpi_version"].astype(str).str.slice(0, 60).where(out["mpi_version"].notna(), "")
    out["dates"] = [f"{_utc(a)} – {_utc(b)[11:]}" if isinstance(a, str) else "" for a, b in
                    zip(out["first_utc"], out["last_utc"])]
    return out


def hardware_of(campaign: str, store: RawStore | None = None) -> dict[str, str]:
    """One line per measured environment label: CPU, sockets x cores, virtualization, MPI (from run records)."""
    out: dict[str, str] = {}
    for run in (store or RawStore()).runs(campaign):
        facts = run.record.host_facts
        label = run.record.label
        if label in out or not facts:
            continue
        _, f = next(iter(facts.items()))
        topo = f.get("topology") or {}
        virt = (f.get("virtualization") or {}).get("detected")
        out[label] = (f"{f.get('cpu_model')}, {topo.get('sockets')}x{topo.get('cores_per_socket')} cores, "
                      f"kernel {f.get('kernel')}, virtualization: {virt}")
    return out


def displayed_hardware(hardware: dict[str, str], envs: pd.DataFrame) -> dict[str, str]:
    """``hardware`` also under each label as the figures show it (``guest (emulation: qemu-tcg)``), so every
    measured row of "paper vs measured" names its hardware."""
    from .figures.style import display_label

    out = dict(hardware)
    if len(envs) and "vmm" in envs:
        for label, vmm in zip(envs["label"], envs["vmm"]):
            if str(label) in hardware:
                out.setdefault(display_label(str(label), vmm if isinstance(vmm, str) else None), hardware[str(label)])
    return out


# ------------------------------------------------------------------ the report

def _noting(method: Callable[..., str]) -> Callable[..., str]:
    """Python warnings raised while building a section become the report's own notes, never a stderr block
    in report.html (whose text would name a checkout path and a line of vhpclib)."""

    @functools.wraps(method)
    def wrapper(self: "Report", *args: Any, **kwargs: Any) -> str:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = method(self, *args, **kwargs)
        self.note(str(w.message) for w in caught)
        return out

    return wrapper



@dataclass
class Report:
    """Everything notebook 05 shows, built once; each method returns one HTML section."""

    campaign: str
    data: Any  # figures.artifacts.CampaignData
    facts: CampaignFacts
    figures: dict = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    paper_vs_measured: pd.DataFrame = field(default_factory=pd.DataFrame)
    hardware: dict[str, str] = field(default_factory=dict)
    export_error: str = ""
    warnings: list[str] = field(default_factory=list)
    _notes_shown: int = 0

    def note(self, messages: Iterable[str]) -> None:
        """Add notes for the reader (each once, in order)."""
        for text in messages:
            if text and text not in self.warnings:
                self.warnings.append(text)

    def notes_html(self) -> str:
        """The notes not shown yet, as a list (empty when there are none)."""
        new = self.warnings[self._notes_shown:]
        self._notes_shown = len(self.warnings)
        if not new:
            return ""
        items = "".join(f"<li>{_e(t)}</li>" for t in new)
        return f'<div class="vhpc-notes"><p><b>Notes</b> (what the tables left out, and why):</p><ul>{items}</ul></div>'

    # -------------------------------------------------------------- header
    @_noting
    def header(self) -> str:
        """Campaign, dates, commit, run counts, environments with hardware, what was measured and how often."""
        f = self.facts
        commits = ", ".join(f"{c} ({n} runs)" for c, n in f.commits.most_common()) or "not recorded"
        if f.dirty:
            commits += f"; {f.dirty} run(s) from uncommitted changes"
        counts = (f"{f.measured_runs()} runs measured ({f.count('complete')} complete, {f.count('invalid')} "
                  f"invalid), {f.count('failed')} failed, {f.count('skipped')} skipped points")
        envs = hardware_table(self.data.table("environments"))
        env_html = html_table(envs, {"shown": "environment", "vmm": "VMM", "cpu_model": "CPU",
                                     "cores": "sockets x cores", "virtualization": "virtualization detected",
                                     "kernel": "kernel", "mpi": "MPI", "runs": "runs", "dates": "measured"}) \
            if len(envs) else "<p>No environment recorded a run.</p>"
        parts = [f'<div class="vhpc-campaign"><p class="vhpc-big">Campaign <b>{_e(self.campaign)}</b></p>',
                 f"<p>Measured {_e(_utc(f.first_utc))} – {_e(_utc(f.last_utc))}; code: {_e(commits)}.</p>",
                 f"<p>{_e(counts)}. Raw logs: <code>data/raw/{_e(self.campaign)}/</code>; tables: "
                 f"<code>data/processed/{_e(self.campaign)}/</code>; figures: this folder.</p>",
                 "<h3>Environments</h3>", env_html, "<h3>What was measured</h3>", self.measured_html(),
                 self.mixed_html(), "</div>"]
        parts.append(self.notes_html())
        return "\n".join(parts)

    @_noting
    def measured_html(self) -> str:
        """Per stage: workloads, problem sizes, process counts and runs per point (n)."""
        rows = []
        micro = self.data.table("microbench")
        if len(micro):
            for (label, placement), g in micro.groupby(["label", "placement"], sort=False):
                sizes = sorted(g["bytes"].unique())
                reps = sorted(g["repetitions"].dropna().astype(int).unique())
                rows.append(dict(stage=Stage.MICROBENCH, environment=label, what=f"IMB PingPong, {placement}",
                                 problem=f"{_bytes(sizes[0])}–{_bytes(sizes[-1])} ({len(sizes)} sizes), "
                                         f"IMB repetitions per size {_span(reps)}",
                                 processes="2", n=_runs(g["run_id"], g["status"] == "complete")))
        apps = self.data.table("apps")
        if len(apps):
            for (stage, label, workload, problem), g in apps.groupby(["stage", "label", "workload", "problem"],
                                                                      sort=False):
                valid = g["verified"].astype("boolean").fillna(False).astype(bool) & g["time_s"].notna()
                per_point = g.groupby(["nprocs", "threads_per_proc"])["run_id"].nunique()
                good = g[valid].groupby(["nprocs", "threads_per_proc"])["run_id"].nunique()
                procs = ", ".join(f"{p}x{int(t)}" for p, t in per_point.index)
                bad = int(per_point.sum() - good.sum())
                rows.append(dict(stage=stage, environment=label, what=workload, problem=str(problem),
                                 processes=procs, n=_span(sorted(good.reindex(per_point.index, fill_value=0)))
                                 + (f" (+{bad} not valid)" if bad else "")))
        if not rows:
            return "<p>Nothing was measured in this campaign.</p>"
        return html_table(pd.DataFrame(rows), {"stage": "stage", "environment": "environment", "what": "workload",
                                                "problem": "problem size", "processes": "processes x threads",
                                                "n": "valid runs per point (n)"})

    def mixed_html(self) -> str:
        from .campaigns import mixed_records

        records = mixed_records(self.campaign)
        if not records:
            return ""
        items = "".join(f"<li>{_e(r.get('environment'))}, {_e(r.get('allowed_utc'))}: "
                        f"{_e('; '.join(f'{h}: ' + ', '.join(d) for h, d in r.get('differences', {}).items()))}</li>"
                        for r in records)
        return (f'<p class="vhpc-warning">Runs on different hosts were added to this campaign on purpose '
                f"(--allow-mixed):</p><ul>{items}</ul>")

    # -------------------------------------------------------------- how to read
    @_noting
    def how_to_read(self) -> str:
        """A/A labels, error bars and the true coverage of each interval, in a few sentences."""
        from .analysis import WARMUP_RULE, interval_label, repetitions_for

        ns = sorted({int(n) for n in self._ns()})
        shown = ", ".join(f"n = {n}: {interval_label(n)}" for n in ns) or "no repeated measurement"
        need = repetitions_for()
        aa = ""
        if len(self.data.single_node_environments()) == 1:
            env = self.data.single_node_environments()[0]
            aa = (f"<li><b>A/A check</b> ({_e(env)}/A, {_e(env)}/B): with one environment there is no baseline, so "
                  "its runs are split in two interleaved halves, A = runs 1, 3, 5..., B = runs 2, 4, 6..., and "
                  "compared as if they were two environments. An honest measurement gives an 'overhead' whose "
                  "interval contains 0; a significant A/A difference means the runs are not exchangeable "
                  "(interference, drift), and an A/B overhead of that size would not be trustworthy.</li>")
        return (
            '<ul class="vhpc-howto">'
            "<li><b>Values</b> are medians over n separate runs; every table and figure subtitle gives n.</li>"
            "<li><b>Error bars and intervals</b> bracket the median with order statistics of the runs (no "
            "normality assumed). Their coverage depends on n and is printed as it is, not as a nominal "
            f"95 %: {_e(shown)}. A 95 % interval needs n ≥ {need} runs per point.</li>"
            f"<li><b>Warm-up</b> (one rule for every table, figure and number here): {_e(WARMUP_RULE)}. "
            "The report's notes name the runs it left out.</li>"
            "<li><b>Overheads</b> (Table 3, right) carry a bootstrap interval of the ratio of medians (nominal "
            "95 %, conservative with few runs). <b>Efficiencies</b> combine the intervals of two medians, so "
            "their coverage is at least the product of both.</li>"
            f"{aa}"
            f"{self.verdict_html()}"
            "<li><b>Paper values</b> are hollow diamonds at the process counts the paper measured, or labels for "
            "numbers the paper states without a size (peak throughputs). Environments the paper does not have "
            "(e.g. <code>local</code>) are compared with its bare metal (BMM) to put scales side by side: the "
            "hardware differs, so only normalised quantities (overhead %, efficiency, latency ratios) compare; "
            "absolute times also need the same problem size.</li>"
            "<li><b>Emulation</b>: an environment run under QEMU TCG is labelled 'emulation: qemu-tcg'; its "
            "numbers measure an emulator, not a hypervisor.</li></ul>")

    def verdict_html(self) -> str:
        """The verdict of each comparison and the interference rule, with how many runs it excluded."""
        from .analysis import interference_rule
        from .verdict import DEFAULT_MARGIN_PCT

        apps = self.data.table("apps")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rule = interference_rule(apps[apps["verified"].astype("boolean").fillna(False).astype(bool)]) \
                if len(apps) else None
            overhead = self.data.overhead() if len(apps) else None
        said = [f"{r.label} {r.workload}: {sig(r.overhead_pct)} % [{sig(r.overhead_pct_ci_low)}, "
                f"{sig(r.overhead_pct_ci_high)}], {r.verdict}" for r in overhead.itertuples()
                if "verdict" in overhead and r.verdict] if overhead is not None and len(overhead) else []
        verdicts = ("<li><b>Verdicts</b>: each comparison is <i>resolved</i> (its interval excludes 0), "
                    f"<i>consistent with zero</i> (its interval lies within ±{DEFAULT_MARGIN_PCT:g} %), or "
                    "<i>not resolved at this noise</i>, with about how many more runs per environment the "
                    "measured spread asks for (an interval narrows like 1/√runs)"
                    + (": " + "; ".join(_e(x) for x in said) if said else "") + ".</li>")
        ruled = f"<li><b>Interference</b>: {_e(rule.line())}.</li>" if rule is not None else ""
        return verdicts + ruled

    def _ns(self) -> list[int]:
        """The run counts behind the medians shown (per point of each stage)."""
        from . import analysis

        out: list[int] = []
        micro, apps = self.data.table("microbench"), self.data.table("apps")
        if len(micro):
            out += list(analysis.throughput_curves(micro)["n"])
        for stage in (sorted(set(apps["stage"])) if len(apps) else []):
            out += list(analysis.performance_table(apps, stage=stage)["n"])
        return [n for n in out if n == n]

    # -------------------------------------------------------------- per artifact
    def artifacts(self) -> list[Any]:
        """Every registered artifact (``figures.artifacts.ARTIFACTS``), grouped by report section in order."""
        from .figures.artifacts import SECTIONS, artifacts_in

        return [a for section in SECTIONS for a in artifacts_in(section) if a.name in self.figures]

    def heading(self, name: str) -> str:
        """An artifact's title as a heading (a section's heading before its first artifact)."""
        from .figures.artifacts import ARTIFACTS, SECTIONS, artifacts_in

        artifact = ARTIFACTS.get(name)
        first = [a.name for a in artifacts_in(artifact.section) if a.name in self.figures][:1] == [name]
        opening = f"<h2>{_e(SECTIONS[artifact.section])}</h2>" if first and artifact.section != "paper" else ""
        return f'{opening}<h3 id="{_e(name)}">{_e(artifact.title or name)}</h3>'

    def caption(self, name: str) -> str:
        """Under a figure: what it shows, which tables it reads, where its files are."""
        from .figures.artifacts import ARTIFACTS

        artifact = ARTIFACTS.get(name)
        files = ", ".join(f"{name}.{ext}" for ext in ("pdf", "svg", "png", "html"))
        inputs = f" Reads: {', '.join(f'{t}.csv' for t in artifact.inputs)}." if artifact.inputs else ""
        what = f"{artifact.caption}{inputs} " if artifact.caption or inputs else ""
        return f'<p class="vhpc-caption">{_e(what)}Files: {_e(files)}.</p>'

    # -------------------------------------------------------------- paper vs measured
    @_noting
    def paper_vs_measured_html(self) -> str:
        """Only the rows measured here, rounded, hardware side by side, with what each comparison means."""
        from .analysis import comparable_rows

        rows = comparable_rows(self.paper_vs_measured) if len(self.paper_vs_measured) else pd.DataFrame()
        if not len(rows):
            return ("<p>Nothing measured here has a counterpart in the paper (same quantity, same process "
                    "count); see the figures for context.</p>")
        rows = rows.assign(
            paper=[f"{sig(v)} {u}" for v, u in zip(rows["paper_value"], rows["unit"])],
            measured=[f"{sig(v)} {u}" for v, u in zip(rows["measured_value"], rows["unit"])],
            n=rows["n"].map(lambda n: "" if n != n else str(int(n))),
            compared=[_compared(r) for _, r in rows.iterrows()],
            paper_side=[f"{p}: {short_hardware(h, 140)}"
                        for p, h in zip(rows["paper_environment"], rows["paper_hardware"])],
            measured_side=[f"{e}: {short_hardware(h, 140)}"
                           for e, h in zip(rows["environment"], rows["measured_hardware"])])
        return html_table(rows, {"artifact": "artifact", "quantity": "quantity", "paper_side": "paper (hardware)",
                                 "paper": "paper", "measured_side": "measured (hardware)", "measured": "measured",
                                 "n": "n", "compared": "measured vs paper", "why": "how to read it"})

    @_noting
    def skipped_html(self) -> str:
        skipped = self.data.table("skipped")
        if not len(skipped):
            return "<p>Nothing was skipped.</p>"
        return html_table(skipped, {"environment": "environment", "stage": "stage", "placement": "what",
                                    "reason": "why"})

    @_noting
    def cloud_html(self) -> str:
        return cloud_comparison(self.campaign, data=self.data).to_html()

    @_noting
    def files_html(self) -> str:
        """Where the figure files are, links to the distributions of every run, and the notes not shown yet."""
        if self.export_error == "pending":
            text = (f"<p>{len(self.figures)} figures written beside this report as HTML; their PDF, SVG and PNG "
                    "files are written by <code>vhpc figures</code> when the report is converted.</p>")
        elif self.export_error:
            text = (f'<p class="vhpc-warning">Static figure export failed: {_e(self.export_error)}. The HTML '
                    "figures and this report are complete; rerun when Chromium works.</p>")
        else:
            text = f"<p>{len(self.figures)} figures written beside this report (PDF, SVG, PNG and HTML each).</p>"
        return text + self.distributions_html() + self.notes_html()

    def distributions_html(self) -> str:
        """Links to the figures that show every run beside the medians (warm-up runs marked)."""
        names = [n for n in self.figures if n.startswith("distribution_")]
        if not names:
            return ""
        links = ", ".join(f'<a href="{_e(n)}.html">{_e(n.removeprefix("distribution_").replace("_", " "))}</a>'
                          for n in names)
        return f"<p>Every run, beside the medians and their intervals: {links}.</p>"


def _compared(r: pd.Series) -> str:
    if r["comparison"] == "difference":
        return f"{r['measured_value'] - r['paper_value']:+.1f} percentage points"
    if r["comparison"] == "ratio":
        return f"x {sig(r['ratio'])}"
    return "—"


def short_hardware(text: Any, limit: int = 60) -> str:
    """The first clauses of a hardware description, cut at a word (no half words)."""
    text = "" if text is None or (isinstance(text, float) and text != text) else str(text)
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(",", 1)[0].rsplit(" ", 1)[0]
    return cut + " ..."


def _bytes(b: float) -> str:
    from .figures.style import bytes_label

    return f"{bytes_label(b)} B" if b else "0 B"


def _runs(run_ids: pd.Series, valid: pd.Series) -> str:
    """Valid runs, and how many more were measured but are not valid (they count in no statistic)."""
    good, total = run_ids[valid].nunique(), run_ids.nunique()
    return str(good) + (f" (+{total - good} not valid)" if total > good else "")


def _span(values: list) -> str:
    values = sorted(set(int(v) for v in values))
    if not values:
        return ""
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def build_report(campaign: str | None = None, *, write: bool = True, static_export: bool = True) -> Report:
    """Tables from the campaign's runs, every paper artifact, the paper-vs-measured table, written to
    ``data/processed/<campaign>/`` and ``figures/<campaign>/`` (``campaign=None``: the one measured last).

    ``static_export=False`` writes the HTML figures and leaves the PDF/SVG/PNG to the caller (the
    pipeline renders them in its own process, overlapping this notebook and the report conversion).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = _build_report(campaign, write=write, static_export=static_export)
    report.note(str(w.message) for w in caught)  # the report's own notes, never stderr in report.html
    return report


def _build_report(campaign: str | None, *, write: bool, static_export: bool) -> Report:
    from . import analysis, campaigns
    from .exceptions import FigureExportError
    from .figures import save_figures
    from .figures.artifacts import CampaignData, build_artifacts
    from .figures.export import write_html, write_pending
    from .tables import build_tables

    campaign = campaigns.for_reading(campaign or None)  # a notebook parameter: checked here, once
    built = build_tables(campaign)
    data = CampaignData.of(campaign, built.tables)
    report = Report(campaign, data, CampaignFacts.scan(campaign),
                    hardware=displayed_hardware(hardware_of(campaign), data.table("environments")),
                    warnings=list(built.warnings))
    micro, apps = data.table("microbench"), data.table("apps")
    report.figures = build_artifacts(campaign, data=data)
    report.paper_vs_measured = analysis.paper_vs_measured(
        latency=analysis.latency_table(micro) if len(micro) else None,
        peaks=analysis.peak_throughput(micro) if len(micro) else None,
        overhead=analysis.overhead_table(apps, data.baseline, stage=Stage.SINGLE_NODE) if len(apps) else None,
        efficiency=analysis.efficiency_table(apps, stage=Stage.SCALING) if len(apps) else None,
        measured_hardware=report.hardware)
    if write:
        for name, frame in built.tables.items():
            report.written.append(write_table(campaign, name, frame))
        report.written.append(write_table(campaign, "paper_vs_measured", report.paper_vs_measured))
        outdir = paths.figures_dir(campaign)
        if not static_export:
            report.written += write_html(report.figures, outdir)
            write_pending(report.figures, outdir)
            report.export_error = "pending"
            return report
        try:
            report.written += save_figures(report.figures, outdir)
        except FigureExportError as exc:
            report.export_error = str(exc)
    return report


def paper_artifacts(inventory: Inventory | str | Path | None, campaign: str, *, write: bool = True) -> Report:
    """Every artifact of a campaign (kept for callers of the earlier API; ``inventory`` is not needed)."""
    return build_report(campaign, write=write)


# ------------------------------------------------------------------ cloud comparison

@dataclass
class CloudComparison:
    cloud: str | None
    overhead: pd.DataFrame
    efficiency: pd.DataFrame
    paper: pd.DataFrame
    caveats: tuple[str, ...] = CLOUD_CAVEATS
    note: str = ""

    def to_html(self) -> str:
        parts = [f"<p>{_e(self.note or f'cloud environment measured: {self.cloud}')}</p>",
                 "<p>Caveats:</p><ul>" + "".join(f"<li>{_e(c)}</li>" for c in self.caveats) + "</ul>"]
        if len(self.overhead):
            parts += ["<h4>Single node: time and overhead versus the baseline</h4>",
                      html_table(self.overhead, {"label": "environment", "workload": "workload", "problem": "problem",
                                                 "time_s": "time [s]", "n": "n", "overhead_pct": "overhead [%]",
                                                 "overhead_pct_ci_low": "low", "overhead_pct_ci_high": "high"})]
        if len(self.efficiency):
            parts += ["<h4>Scaling: parallel efficiency</h4>",
                      html_table(self.efficiency, {"label": "environment", "workload": "workload",
                                                   "problem": "problem", "nprocs": "processes", "n": "n",
                                                   "efficiency_pct": "efficiency [%]"})]
        paper = self.paper.assign(value=[f"{sig(t)} s" if a == "table3" else f"{sig(e)} %"
                                         for a, t, e in zip(self.paper["artifact"], self.paper.get("time_s"),
                                                            self.paper.get("efficiency_pct"))])
        parts += ["<h4>The paper's numbers (EC2 beside BMM, Xen, KVM)</h4>",
                  html_table(paper, {"artifact": "artifact", "environment": "environment", "workload": "workload",
                                     "nprocs": "processes", "value": "value"})]
        return "\n".join(parts)


def _cloud_environment(envs: pd.DataFrame, wanted: str | None) -> str | None:
    if not len(envs):
        return None
    for _, e in envs.iterrows():
        if wanted and wanted in (e["environment"], e["label"]):
            return str(e["environment"])
        if is_cloud(e.get("vmm")) or str(e["label"]).lower() == "ec2":
            return str(e["environment"])
    return None


def cloud_comparison(campaign: str | None = None, cloud_environment: str | None = None, *,
                     data: Any = None, inventory: Inventory | str | Path | None = None) -> CloudComparison:
    """The cloud environment beside the cluster ones on single-node time and scaling efficiency.

    The cloud environment is ``cloud_environment`` or the campaign's environment whose VMM is a
    cloud's (``ec2``...) or labelled EC2; without one, the paper's cloud numbers are shown alone.
    ``inventory`` is accepted for callers of the earlier API and not needed.
    """
    from . import analysis, campaigns
    from .figures.artifacts import CampaignData
    from .reference import load_reference

    if data is None:
        data = CampaignData(campaigns.for_reading(campaign))
    paper = pd.concat([
        load_reference("single_node").assign(artifact="table3"),
        load_reference("efficiency").assign(artifact="fig3/fig4"),
    ], ignore_index=True)
    apps = data.table("apps")
    cloud = _cloud_environment(data.table("environments"), cloud_environment)
    if cloud is None or not len(apps):
        have = ", ".join(data.table("environments").get("environment", [])) or "none"
        note = (f"No cloud environment measured in campaign {data.campaign} (environments: {have}): "
                "showing the paper's cloud numbers only.")
        return CloudComparison(None, pd.DataFrame(), pd.DataFrame(), paper, note=note)
    overhead = analysis.overhead_table(apps, data.baseline, stage=Stage.SINGLE_NODE)
    efficiency = analysis.efficiency_table(apps, stage=Stage.SCALING)
    return CloudComparison(cloud, overhead, efficiency, paper)
