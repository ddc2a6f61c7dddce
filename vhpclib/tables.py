"""Raw runs -> tidy tables under ``data/processed/<campaign>/`` (always regenerable from raw).

Which tables exist and what their columns are is declared by whoever fills them
(``vhpclib.schema``: the microbenchmark table by ``workloads/pingpong.py``, the application
table by ``workloads/app_run.py``, a workload's own columns by ``Workload.columns``); this
module keeps every declared column and names any other one, never dropping it.

Tables concatenate the rows each run's workload extracted when the run was
stored (``result.json`` beside its logs), plus the columns that identify the run
(campaign, environment, point, repetition, status). Runs stored before results
were kept, and every run with ``reparse=True`` (``vhpc tables --reparse``), are
extracted again from their logs with the current parsers; raw data is never
written.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import paths
from .exceptions import MalformedResult, ParseError, StoreError
from .fsutil import atomic_write
from .names import Campaign
from .record import MEASURED, SKIPPED
from .schema import FIXED, TABLES, Column, FixedTable, Layout, column_specs, undeclared_columns
from .store import RawStore, StoredRun
from .workloads import WORKLOADS, Workload, workload_of

if TYPE_CHECKING:
    import pandas as pd

SKIPPED_TABLE = FIXED.add("skipped", FixedTable("skipped", column_specs(
    ["campaign", "environment", "label", "stage", "placement", "reason"],
    descriptions={"placement": "what was skipped (a placement, a point)", "reason": "why, in one line",
                  "label": "the environment's label"}),
    "points an environment cannot provide, with the reason"), replace=True)
ENVIRONMENTS_TABLE = FIXED.add("environments", FixedTable("environments", column_specs(
    ["campaign", "environment", "label", "vmm", "baseline", "vcpu_pinning", "launcher", "cpu_model", "sockets",
     "cores_per_socket", "virtualization", "kernel", "mpi_version", "first_utc", "last_utc", "runs"],
    units={"sockets": "sockets", "cores_per_socket": "cores", "runs": "runs"},
    descriptions={"virtualization": "what the hosts detected from inside", "vmm": "the VMM the inventory names",
                  "baseline": "overheads are relative to this environment", "first_utc": "first run's start",
                  "last_utc": "last run's start", "runs": "runs measured", "launcher": "how jobs were started",
                  "vcpu_pinning": "vCPU pinning policy as run"}),
    "each environment of the campaign: what it ran on, first and last run"), replace=True)


def layout(name: str) -> Layout:
    """The columns of table ``name`` as written: its own, then those its registered workloads add."""
    fixed = FIXED.find(name)
    if fixed is not None:
        return Layout(fixed)
    spec = TABLES.get(name)
    own = {c.name for c in (*spec.columns, *spec.tail)}
    extra: dict[str, Column] = {}
    for _, workload in WORKLOADS.items():
        if workload.table == name:
            for column in workload.columns:
                if column.name not in own:
                    extra.setdefault(column.name, column)
    return Layout(spec, list(extra.values()))


def table_names() -> list[str]:
    """Every table ``vhpc tables`` writes: the declared ones, then skipped points and environments."""
    return [*TABLES.names(), *FIXED.names()]


def run_columns(run: StoredRun) -> dict[str, Any]:
    """What the harness recorded around the run (``schema.RUN_COLUMNS``): interference and, in a ground-truth
    environment, the overhead its cgroup measured; the same for every row of every table."""
    execution = run.record.execution
    seen = execution.interference if execution else None
    injected = execution.injected if execution else None
    return {"other_share": seen.other_share if seen else None, "steal_share": seen.steal_share if seen else None,
            "load_before": seen.load_before[0] if seen and seen.load_before else None,
            "job_nivcsw": seen.job_nivcsw if seen else None,
            "injected_overhead_pct": injected.overhead_pct if injected else None}


@dataclass
class CampaignTables:
    """Every table of one campaign, built in one pass over its runs."""

    campaign: str
    tables: dict[str, pd.DataFrame]
    warnings: list[str]


@dataclass
class RowTable:
    """A table as rows (dicts) and its columns: what a DataFrame is built from, or a CSV written from."""

    columns: list[str]
    rows: list[dict[str, Any]]

    def frame(self) -> pd.DataFrame:
        """Every declared column, in order; a row key outside them is an error (never dropped silently)."""
        import pandas as pd

        undeclared = undeclared_columns(self.rows, self.columns)
        if undeclared:
            raise StoreError(f"rows hold column(s) the table does not declare: {', '.join(undeclared)}")
        return pd.DataFrame(self.rows, columns=self.columns)

    def csv(self) -> str:
        """The CSV ``frame().to_csv(index=False)`` writes, byte for byte, without importing pandas."""
        return csv_text(self.columns, self.rows)


def build_tables(campaign: str, *, store: RawStore | None = None, reparse: bool = False) -> CampaignTables:
    """Concatenate the campaign's stored results into tidy tables (see module docstring)."""
    tables, warnings = collect_tables(campaign, store=store, reparse=reparse)
    return CampaignTables(campaign, {name: table.frame() for name, table in tables.items()}, warnings)


def collect_tables(campaign: str, *, store: RawStore | None = None,
                   reparse: bool = False) -> tuple[dict[str, RowTable], list[str]]:
    """The campaign's tables as rows, and the warnings about runs left out (one pass over the runs)."""
    campaign = Campaign(campaign)
    store = store or RawStore()
    layouts = {name: layout(name) for name in TABLES.names()}
    rows: dict[str, list[tuple[tuple, dict[str, Any]]]] = {name: [] for name in layouts}
    skipped, warnings = [], []
    environments: dict[str, dict[str, Any]] = {}
    for run in store.runs(campaign):
        rec = run.record
        _note_environment(environments, run)
        if rec.status == SKIPPED:
            skipped.append({"campaign": campaign, "environment": rec.environment, "label": rec.label,
                            "stage": rec.stage, "placement": rec.point.get("placement") or rec.point.get("what"),
                            "reason": rec.reason})
            continue
        if rec.kind != "run" or rec.status not in MEASURED:
            continue
        workload = workload_of(rec.workload)
        if workload is None:
            warnings.append(f"{_display(run.path)}: workload {rec.workload!r} is not registered; run left out")
            continue
        spec = TABLES.find(workload.table)
        if spec is None:
            warnings.append(f"{_display(run.path)}: no table {workload.table!r}; run left out")
            continue
        extracted, found = _rows(run, workload, reparse)
        warnings += found
        undeclared = undeclared_columns(extracted, layouts[spec.name].names)
        if undeclared:  # kept (never dropped) and named: the workload must declare them (Workload.columns)
            warnings.append(f"{_display(run.path)}: workload {workload.name!r} gave column(s) it does not declare: "
                            f"{', '.join(undeclared)} (kept; declare them in {type(workload).__name__}.columns)")
            layouts[spec.name].extra += [Column(c) for c in undeclared]
        order = spec.stage_order.index(rec.stage) if rec.stage in spec.stage_order else len(spec.stage_order)
        rows[spec.name] += [((order, str(run.path)), {**row, **spec.identity(run, workload, row), **run_columns(run)})
                            for row in extracted]
    for name in layouts:
        rows[name] = _consistent_kinds(rows[name], warnings)
    tables = {name: RowTable(layouts[name].names, [r for _, r in sorted(rows[name], key=lambda item: item[0])])
              for name in layouts}
    tables["skipped"] = RowTable(SKIPPED_TABLE.names, skipped)
    tables["environments"] = RowTable(ENVIRONMENTS_TABLE.names, [{"campaign": campaign, **e}
                                                          for e in environments.values()])
    return tables, warnings


Keyed = list[tuple[tuple, dict[str, Any]]]


def _consistent_kinds(rows: Keyed, warnings: list[str]) -> Keyed:
    """Leave out the runs whose values in a column are of another kind (text among numbers...) than most runs'.

    A table column holds one kind of value; a run whose ``result.json`` says ``"bytes": "x"`` where every other
    run has numbers would make the figures fail. Generic (no column is named): the kind most runs agree on wins.
    """
    from .results import value_kind

    kinds: dict[tuple[Any, str], dict[str, set[str]]] = {}  # (workload, column) -> kind -> runs
    for (_, run), row in rows:
        for column, value in row.items():
            kind = value_kind(value)
            if kind is not None:
                kinds.setdefault((str(row.get("workload")), column), {}).setdefault(kind, set()).add(run)
    bad: dict[str, str] = {}
    for (_, column), by_kind in kinds.items():
        if len(by_kind) < 2:
            continue
        ranked = sorted(by_kind.items(), key=lambda item: len(item[1]), reverse=True)
        if len(ranked[0][1]) == len(ranked[1][1]):
            continue  # no majority: nothing to tell which run is wrong
        for kind, runs in ranked[1:]:
            for run in runs:
                bad.setdefault(run, f"column {column!r} holds {kind} where the other runs hold {ranked[0][0]}")
    for run, why in sorted(bad.items()):
        warnings.append(f"{_display(Path(run) / 'result.json')}: {why}; run left out")
    return [item for item in rows if item[0][1] not in bad]


def csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """CSV text as pandas writes ``DataFrame(rows, columns=columns).to_csv(index=False)``.

    pandas infers one type per column: integers become floats (``3.0``) when the column also holds a
    float or a missing value; missing values are empty; booleans are ``True``/``False``; floats use the
    shortest repr. Written here so that writing a table does not cost pandas' import.
    """
    formats = [_column_format([row.get(c) for row in rows]) for c in columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([fmt(row.get(c)) for c, fmt in zip(columns, formats)])
    return out.getvalue()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_float(value: Any) -> str:
    return "" if _missing(value) else repr(float(value))


def _as_text(value: Any) -> str:
    return "" if _missing(value) else str(value)


def _column_format(values: list[Any]) -> Callable[[Any], str]:
    present = [v for v in values if not _missing(v)]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    if present and numbers and (len(present) < len(values) or any(isinstance(v, float) for v in present)):
        return _as_float  # a float64 column
    return _as_text  # int64, bool and object columns print as str()


def _rows(run: StoredRun, workload: Workload, reparse: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """A run's rows: as stored, or extracted again; a run whose output cannot be read is named, not fatal."""
    try:
        stored = None if reparse else _stored_rows(run)
    except MalformedResult as exc:  # one damaged result.json: that run is left out, named; the rest goes on
        return [], [f"{_display(Path(exc.file)) if exc.file else _display(run.path)}: {exc.message}; run left out"]
    if stored is not None:
        return stored, list(run.record.result.warnings) if run.record.result else []
    try:
        extracted = workload.extract(run)
    except ParseError as exc:
        where = _display(Path(exc.file)) if exc.file else _display(run.stdout_path)
        return [], [where + (f":{exc.line}" if exc.line else "") + f": {exc.message}"]
    except Exception as exc:  # noqa: BLE001 - one damaged run never stops a table
        return [], [f"{_display(run.path)}: cannot extract results ({type(exc).__name__}: {exc})"]
    return extracted.rows, extracted.warnings


def _stored_rows(run: StoredRun) -> list[dict[str, Any]] | None:
    try:
        return run.result_rows()
    except (OSError, ValueError):
        return None


def _note_environment(environments: dict[str, dict[str, Any]], run: StoredRun) -> None:
    rec = run.record
    env = environments.get(rec.environment)
    if env is None:
        spec = rec.environment_spec
        env = environments[rec.environment] = {
            "environment": rec.environment, "label": rec.label, "vmm": spec.vmm if spec else None,
            "baseline": spec.baseline if spec else None, "vcpu_pinning": spec.vcpu_pinning if spec else None,
            "launcher": spec.launcher if spec else None, "first_utc": None, "last_utc": None, "runs": 0}
    if rec.host_facts and env.get("cpu_model") is None:
        facts = next(iter(rec.host_facts.values()))
        topo = facts.get("topology") or {}
        env.update(cpu_model=facts.get("cpu_model"), sockets=topo.get("sockets"),
                   cores_per_socket=topo.get("cores_per_socket"),
                   virtualization=(facts.get("virtualization") or {}).get("detected"),
                   kernel=facts.get("kernel"), mpi_version=facts.get("mpi_version"))
    started = rec.execution.started_utc if rec.execution else None
    if started and rec.kind == "run":
        env["runs"] += 1
        env["first_utc"] = min(filter(None, [env["first_utc"], started]))
        env["last_utc"] = max(filter(None, [env["last_utc"], started]))


def write_table(campaign: str, name: str, table: pd.DataFrame) -> Path:
    """Write a derived table atomically (a reader never sees half a file)."""
    campaign = Campaign(campaign)  # one folder under data/processed, never a path out of it (free for a Campaign)
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    return atomic_write(paths.processed_dir(campaign) / f"{name}.csv", buffer.getvalue())


def write_tables(campaign: str, *, store: RawStore | None = None, reparse: bool = False,
                 names: Iterable[str] | None = None) -> tuple[list[Path], list[str]]:
    """Rebuild (some of) a campaign's processed tables; returns the files written and the warnings."""
    tables, warnings = collect_tables(campaign, store=store, reparse=reparse)
    wanted = list(names) if names is not None else list(tables)
    written = [atomic_write(paths.processed_dir(campaign) / f"{name}.csv", tables[name].csv()) for name in wanted]
    return written, warnings


def read_table(campaign: str, name: str) -> pd.DataFrame:
    import pandas as pd

    path = paths.processed_dir(campaign) / f"{name}.csv"
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise StoreError(f"no processed table {name!r} for campaign {campaign!r} (run `vhpc tables -c "
                         f"{campaign}`)", file=str(path)) from None


def read_table_or_empty(campaign: str, name: str) -> pd.DataFrame:
    import pandas as pd

    try:
        return read_table(campaign, name)
    except (StoreError, pd.errors.EmptyDataError):
        known = name in TABLES.names() or name in FIXED.names()
        return pd.DataFrame(columns=layout(name).names if known else [])


def _display(path: Path) -> str:
    return str(path.relative_to(paths.PROJECT_ROOT)) if path.is_relative_to(paths.PROJECT_ROOT) else str(path)
