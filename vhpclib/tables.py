"""Raw runs -> tidy tables under ``data/processed/<campaign>/`` (always regenerable from raw).

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
from .record import COMPLETE, MEASURED, SKIPPED
from .store import RawStore, StoredRun, check_campaign
from .workloads import Workload, workload_of

if TYPE_CHECKING:
    import pandas as pd

MICROBENCH_COLUMNS = ["campaign", "environment", "label", "placement", "run_id", "repetition", "benchmark",
                      "nprocs", "bytes", "repetitions", "t_min_usec", "t_max_usec", "t_avg_usec",
                      "mbytes_per_sec", "msgs_per_sec", "status"]
APPS_COLUMNS = ["campaign", "environment", "label", "stage", "workload", "problem", "nprocs", "threads_per_proc",
                "nodes", "repetition", "run_id", "time_s", "wall_s", "verified", "setup_s", "solve_s", "wait_s",
                "reduce_s", "extract_s", "mops_total", "status"]
SKIPPED_COLUMNS = ["campaign", "environment", "label", "stage", "placement", "reason"]
ENVIRONMENT_COLUMNS = ["campaign", "environment", "label", "vmm", "baseline", "vcpu_pinning", "launcher",
                       "cpu_model", "sockets", "cores_per_socket", "virtualization", "kernel", "mpi_version",
                       "first_utc", "last_utc", "runs"]


@dataclass(frozen=True)
class TableSpec:
    """A processed table: its columns and the identity columns a run contributes to each of its rows."""

    name: str
    columns: list[str]
    identity: Callable[[StoredRun, Workload, dict[str, Any]], dict[str, Any]]
    stage_order: tuple[str, ...] = ()


def _common(run: StoredRun) -> dict[str, Any]:
    rec = run.record
    return {"campaign": rec.campaign, "environment": rec.environment, "label": rec.label, "run_id": rec.run_id,
            "repetition": rec.repetition, "status": rec.status}


def _microbench_identity(run: StoredRun, workload: Workload, row: dict[str, Any]) -> dict[str, Any]:
    return {**_common(run), "placement": run.record.point.get("placement")}


def _apps_identity(run: StoredRun, workload: Workload, row: dict[str, Any]) -> dict[str, Any]:
    point = run.record.point
    processes, ppn = point.get("processes", 1), point.get("ppn", 1)
    return {**_common(run), "stage": run.record.stage, "workload": workload.display_name(point),
            "problem": point.get("problem"), "nprocs": processes, "threads_per_proc": point.get("threads"),
            "nodes": -(-processes // ppn), "wall_s": run.record.duration_s,
            # a run rejected by the harness is not verified, whatever the benchmark said
            "verified": bool(row.get("verified")) and run.status == COMPLETE}


TABLES: dict[str, TableSpec] = {
    "microbench": TableSpec("microbench", MICROBENCH_COLUMNS, _microbench_identity, ("microbench",)),
    "apps": TableSpec("apps", APPS_COLUMNS, _apps_identity, ("single-node", "scaling")),
}


def register_table(spec: TableSpec) -> TableSpec:
    """Make a processed table available to workloads that name it (``Workload.table``)."""
    TABLES[spec.name] = spec
    return spec


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
        import pandas as pd

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
    check_campaign(campaign)
    store = store or RawStore()
    rows: dict[str, list[tuple[tuple, dict[str, Any]]]] = {name: [] for name in TABLES}
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
        spec = TABLES.get(workload.table)
        if spec is None:
            warnings.append(f"{_display(run.path)}: no table {workload.table!r}; run left out")
            continue
        extracted, found = _rows(run, workload, reparse)
        warnings += found
        order = spec.stage_order.index(rec.stage) if rec.stage in spec.stage_order else len(spec.stage_order)
        rows[spec.name] += [((order, str(run.path)), {**row, **spec.identity(run, workload, row)})
                            for row in extracted]
    for name in TABLES:
        rows[name] = _consistent_kinds(rows[name], warnings)
    tables = {name: RowTable(TABLES[name].columns, [r for _, r in sorted(rows[name], key=lambda item: item[0])])
              for name in TABLES}
    tables["skipped"] = RowTable(SKIPPED_COLUMNS, skipped)
    tables["environments"] = RowTable(ENVIRONMENT_COLUMNS, [{"campaign": campaign, **e}
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
    check_campaign(campaign)  # a campaign is one folder under data/processed, never a path out of it
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
        columns = {"microbench": MICROBENCH_COLUMNS, "apps": APPS_COLUMNS, "skipped": SKIPPED_COLUMNS,
                   "environments": ENVIRONMENT_COLUMNS}.get(name, [])
        return pd.DataFrame(columns=columns)


def _display(path: Path) -> str:
    return str(path.relative_to(paths.PROJECT_ROOT)) if path.is_relative_to(paths.PROJECT_ROOT) else str(path)
