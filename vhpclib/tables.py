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
import os
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
from .store import RECORD, RawStore, StoredRun
from .table_cache import missing as _missing
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
    texts: dict[str, str] | None = None  # each table's CSV as ``vhpc tables`` writes it


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
    """Concatenate the campaign's stored results into tidy tables (see module docstring).

    Read from the tables' CSV text (kept incrementally, ``table_texts``): the frames equal
    ``RowTable.frame()``'s, a column no run filled holding None as it always did.
    """
    texts, warnings, _ = table_texts(campaign, store=store, reparse=reparse)
    return CampaignTables(campaign, {name: _frame(text) for name, text in texts.items()}, warnings, texts)


def _frame(text: str) -> pd.DataFrame:
    import pandas as pd

    frame = pd.read_csv(io.StringIO(text), float_precision="round_trip")
    for column in frame.columns:
        if len(frame) and frame[column].isna().all():
            frame[column] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return frame


def collect_tables(campaign: str, *, store: RawStore | None = None,
                   reparse: bool = False) -> tuple[dict[str, RowTable], list[str]]:
    """The campaign's tables as rows, and the warnings about runs left out (one pass over the runs)."""
    campaign = Campaign(campaign)
    store = store or RawStore()
    parts = read_parts(store, campaign, run_folders(store.root, campaign), reparse)
    layouts = {name: layout(name) for name in TABLES.names()}
    rows: dict[str, list[tuple[tuple, dict[str, Any]]]] = {name: [] for name in layouts}
    merged = _merge(campaign, parts, layouts)
    for part in merged.parts:
        if part.table is not None:
            rows[part.table] += [((part.order, part.where), row) for row in part.rows or []]
    for name in layouts:
        rows[name] = _consistent_kinds(rows[name], merged.warnings)
    tables = {name: RowTable(layouts[name].names, [r for _, r in sorted(rows[name], key=lambda item: item[0])])
              for name in layouts}
    tables["skipped"] = RowTable(SKIPPED_TABLE.names, merged.skipped)
    tables["environments"] = RowTable(ENVIRONMENTS_TABLE.names, merged.environments)
    return tables, merged.warnings


def run_parts(campaign: str, *, store: RawStore | None = None) -> list[Any]:
    """What each readable run of the campaign contributed (``table_cache.Part``), in store order: the
    report's facts about runs without reading every record again."""
    from .table_cache import sort_key

    cache, _, _ = _update(campaign, store, False)
    return sorted((p for p in cache.parts.values() if not p.damaged), key=lambda p: sort_key(p.key))


def table_texts(campaign: str, *, store: RawStore | None = None,
                reparse: bool = False) -> tuple[dict[str, str], list[str], bool]:
    """Every table's CSV text (as ``collect_tables(...)[name].csv()``), the warnings, and whether any
    run was added or removed since the cache was made; only new runs are read (``vhpclib.table_cache``)."""
    cache, merged, changed = _update(campaign, store, reparse)
    from .table_cache import mixed_columns

    if any(mixed_columns(cols) for cols in cache.stats.values()):  # a run's values of another kind: leave it out
        tables, warnings = collect_tables(campaign, store=store, reparse=reparse)
        return {name: table.csv() for name, table in tables.items()}, warnings, changed
    by_table: dict[str, list[tuple[tuple, str]]] = {name: [] for name in cache.columns}
    for part in cache.parts.values():
        if part.table is not None and part.text:
            by_table[part.table].append(((part.order, part.where), part.text))
    texts = {name: _header(cache.columns[name]) + "".join(t for _, t in sorted(by_table[name], key=lambda i: i[0]))
             for name in cache.columns}
    texts["skipped"] = csv_text(SKIPPED_TABLE.names, merged.skipped)
    texts["environments"] = csv_text(ENVIRONMENTS_TABLE.names, merged.environments)
    return texts, merged.warnings, changed


def _update(campaign: str, store: RawStore | None, reparse: bool) -> tuple[Any, _Merged, bool]:
    """The campaign's table cache brought up to date with its run folders (saved when it changed)."""
    from . import table_cache

    campaign = Campaign(campaign)
    store = store or RawStore()
    layouts = {name: layout(name) for name in TABLES.names()}
    declared = {name: list(lay.names) for name, lay in layouts.items()}
    version = table_cache.code_version(table_names(), declared)
    folders = run_folders(store.root, campaign)
    memo = _MEMO.get((str(store.root), campaign, str(paths.processed_dir(campaign))))
    if not reparse and memo is not None and memo[0].version == version and memo[0].parts.keys() == folders.keys():
        return memo[0], memo[1], False  # this process built it a moment ago and no run came or went since
    cache = None if reparse else table_cache.load(campaign, version)
    if cache is not None and not set(cache.parts) <= set(folders):
        cache = None  # a run folder went away: raw data is write-once, so start again
    changed = cache is None
    parts: list[Any] | None = None
    if cache is not None:
        new = read_parts(store, campaign, {k: v for k, v in folders.items() if k not in cache.parts}, reparse)
        changed = bool(new)
        if not _extend(cache, new):  # a column changed how it prints: cached parts hold no rows, read them again
            new_keys = {p.key for p in new}
            cache = None
            parts = new + read_parts(store, campaign, {k: v for k, v in folders.items() if k not in new_keys},
                                     reparse)
    if cache is None:
        parts = read_parts(store, campaign, folders, reparse) if parts is None else parts
        merged = _merge(campaign, parts, layouts)
        cache = _fresh_cache(version, layouts, merged.parts)
    else:
        merged = _merge(campaign, list(cache.parts.values()), None)
    if changed:
        table_cache.save(campaign, cache)
    _MEMO[(str(store.root), campaign, str(paths.processed_dir(campaign)))] = (cache, merged)
    return cache, merged, changed


#: The last cache each (store, campaign) had in this process: the report asks for tables, run facts and
#: hardware in turn, and re-loading 100k runs' parts for each costs seconds.
_MEMO: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def _fresh_cache(version: str, layouts: dict[str, Layout], parts: list[Any]) -> Any:
    """A cache of every part, rows rendered with the formats the whole tables give their columns."""
    from . import table_cache

    columns = {name: layouts[name].names for name in layouts}
    stats: dict[str, dict[str, list[bool]]] = {name: {} for name in layouts}
    for part in parts:
        if part.table is not None:
            table_cache.merge_stats(stats[part.table], columns[part.table], part.rows or [])
    fmts = {t: table_cache.formats(stats[t], columns[t]) for t in columns}
    for part in parts:
        if part.table is not None:
            part.text = _render(columns[part.table], fmts[part.table], part.rows or [])
            part.rows = None
    return table_cache.Cache(version, columns, stats, {p.key: p for p in parts})


def _extend(cache: Any, new: list[Any]) -> bool:
    """Add new runs' parts to the cache, rendered as the cached ones were; False when they would change
    a column's printed form or bring an undeclared column (then the tables are built again)."""
    from . import table_cache

    stats = {t: {c: list(v) for c, v in cols.items()} for t, cols in cache.stats.items()}
    for part in new:
        if part.table is not None:
            if undeclared_columns(part.rows or [], cache.columns[part.table]):
                return False
            table_cache.merge_stats(stats.setdefault(part.table, {}), cache.columns[part.table], part.rows or [])
    fmts = {t: table_cache.formats(stats.get(t, {}), cols) for t, cols in cache.columns.items()}
    if any(fmts[t] != table_cache.formats(cache.stats.get(t, {}), cols) for t, cols in cache.columns.items()):
        return False
    for part in new:
        if part.table is not None:
            part.text = _render(cache.columns[part.table], fmts[part.table], part.rows or [])
            part.rows = None
        cache.parts[part.key] = part
    cache.stats = stats
    return True


def run_folders(root: Path, campaign: str) -> dict[str, str]:
    """Complete run folders of a campaign by key ``<environment>/<stage>/<folder>`` (see ``table_cache``)."""
    from .table_cache import run_folders as folders

    return folders(root, campaign)


def read_parts(store: RawStore, campaign: str, folders: dict[str, str], reparse: bool) -> list[Any]:
    """What each run folder contributes (``table_cache.Part``), read in parallel when there are many."""
    from .table_cache import _PARALLEL_MIN

    items = sorted(folders.items())
    workers = min(len(os.sched_getaffinity(0)), 8)
    if len(items) < _PARALLEL_MIN or workers < 2:
        return _interned([p for key, path in items if (p := _part(store, key, path, reparse)) is not None])
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunk = -(-len(items) // (workers * 4))
    chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        done = pool.map(_parts_of, [(store.root, c, reparse) for c in chunks])
        return _interned([p for parts in done for p in parts])


def _interned(parts: list[Any]) -> list[Any]:
    """Parts sharing one object per distinct host facts: runs of one machine repeat them, and the cache
    then holds each once (pickle keeps shared objects once)."""
    import json

    seen: dict[str, Any] = {}

    def one(value: Any) -> Any:
        if not value:
            return value
        key = json.dumps(value, sort_keys=True, default=str)
        return seen.setdefault(key, value)

    for part in parts:
        part.host = one(part.host)
        if part.env is not None and part.env[6]:
            part.env = (*part.env[:6], one(part.env[6]), part.env[7])
    return parts


def _parts_of(job: tuple[Path, list[tuple[str, str]], bool]) -> list[Any]:
    root, items, reparse = job
    store = RawStore(root)
    return [p for key, path in items if (p := _part(store, key, path, reparse)) is not None]


def _part(store: RawStore, key: str, folder: str, reparse: bool) -> Any:
    """One run folder's contribution (None when it holds no record: not a run)."""
    from .table_cache import Part

    path = Path(folder)
    if not (path / RECORD).is_file():
        return None
    part = Part(key)
    part.where = str(path)
    try:
        run = store._read(path)
    except StoreError as exc:
        part.damaged = f"{exc}; run excluded"
        return part
    rec = run.record
    spec = rec.environment_spec
    facts = None
    if rec.host_facts:
        f = next(iter(rec.host_facts.values()))
        topo = f.get("topology") or {}
        facts = dict(cpu_model=f.get("cpu_model"), sockets=topo.get("sockets"),
                     cores_per_socket=topo.get("cores_per_socket"),
                     virtualization=(f.get("virtualization") or {}).get("detected"),
                     kernel=f.get("kernel"), mpi_version=f.get("mpi_version"))
    started = rec.execution.started_utc if rec.execution else None
    code = rec.code if rec.kind == "run" else None
    part.facts = (rec.environment, rec.stage, rec.status, rec.kind,
                  f"{(code.git_commit or 'unknown')[:10]} (vhpclib {code.vhpclib})" if code else None,
                  bool(code.git_dirty) if code else False)
    part.host = rec.host_facts and next(iter(rec.host_facts.values()))
    part.env = (rec.environment, rec.label, spec.vmm if spec else None, spec.baseline if spec else None,
                spec.vcpu_pinning if spec else None, spec.launcher if spec else None, facts,
                started if started and rec.kind == "run" else None)
    if rec.status == SKIPPED:
        part.skip = {"campaign": rec.campaign, "environment": rec.environment, "label": rec.label,
                     "stage": rec.stage, "placement": rec.point.get("placement") or rec.point.get("what"),
                     "reason": rec.reason}
        return part
    if rec.kind != "run" or rec.status not in MEASURED:
        return part
    workload = workload_of(rec.workload)
    if workload is None:
        part.warnings.append(f"{_display(run.path)}: workload {rec.workload!r} is not registered; run left out")
        return part
    spec_t = TABLES.find(workload.table)
    if spec_t is None:
        part.warnings.append(f"{_display(run.path)}: no table {workload.table!r}; run left out")
        return part
    extracted, found = _rows(run, workload, reparse)
    part.warnings += found
    part.table = spec_t.name
    part.workload = (workload.name, type(workload).__name__)
    part.order = spec_t.stage_order.index(rec.stage) if rec.stage in spec_t.stage_order else len(spec_t.stage_order)
    part.rows = [{**row, **spec_t.identity(run, workload, row), **run_columns(run)} for row in extracted]
    return part


@dataclass
class _Merged:
    parts: list[Any]
    skipped: list[dict[str, Any]]
    environments: list[dict[str, Any]]
    warnings: list[str]


def _merge(campaign: str, parts: list[Any], layouts: dict[str, Layout] | None) -> _Merged:
    """Parts in store order -> skipped rows, environments and warnings; with ``layouts``, undeclared
    columns are added to them (and named) as ``collect_tables`` always did, run by run."""
    import warnings as pywarnings

    from .table_cache import sort_key

    ordered = sorted(parts, key=lambda p: sort_key(p.key))
    skipped: list[dict[str, Any]] = []
    warnings: list[str] = []
    environments: dict[str, dict[str, Any]] = {}
    kept = []
    for part in ordered:
        if getattr(part, "damaged", None):
            pywarnings.warn(part.damaged, stacklevel=3)
            continue
        kept.append(part)
        _note_environment(environments, part.env)
        if part.skip is not None:
            skipped.append({**part.skip, "campaign": campaign})
        warnings += part.warnings
        if layouts is not None and part.table is not None:
            undeclared = undeclared_columns(part.rows or [], layouts[part.table].names)
            if undeclared:  # kept (never dropped) and named: the workload must declare them (Workload.columns)
                name, cls = part.workload
                warnings.append(f"{_display(Path(part.where))}: workload {name!r} gave column(s) it does not "
                                f"declare: {', '.join(undeclared)} (kept; declare them in {cls}.columns)")
                layouts[part.table].extra += [Column(c) for c in undeclared]
                part.undeclared = undeclared
        elif part.undeclared:
            name, cls = part.workload
            warnings.append(f"{_display(Path(part.where))}: workload {name!r} gave column(s) it does not "
                            f"declare: {', '.join(part.undeclared)} (kept; declare them in {cls}.columns)")
    return _Merged(kept, skipped, [{"campaign": campaign, **e} for e in environments.values()], warnings)


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


def _header(columns: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(columns)
    return out.getvalue()


def _render(columns: list[str], fmts: list[bool], rows: list[dict[str, Any]]) -> str:
    """Rows as CSV lines, each column printed as float (``fmts``) or as text, as ``csv_text`` does."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    funcs = [_as_float if f else _as_text for f in fmts]
    for row in rows:
        writer.writerow([fmt(row.get(c)) for c, fmt in zip(columns, funcs)])
    return out.getvalue()


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


def _note_environment(environments: dict[str, dict[str, Any]], info: tuple | None) -> None:
    if info is None:
        return
    name, label, vmm, baseline, pinning, launcher, facts, started = info
    env = environments.get(name)
    if env is None:
        env = environments[name] = {
            "environment": name, "label": label, "vmm": vmm, "baseline": baseline, "vcpu_pinning": pinning,
            "launcher": launcher, "first_utc": None, "last_utc": None, "runs": 0}
    if facts and env.get("cpu_model") is None:
        env.update(facts)
    if started:
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
    texts, warnings, changed = table_texts(campaign, store=store, reparse=reparse)
    wanted = list(names) if names is not None else list(texts)
    written = []
    for name in wanted:
        target = paths.processed_dir(campaign) / f"{name}.csv"
        if changed or reparse or not _same_size(target, texts[name]):
            atomic_write(target, texts[name])
        written.append(target)
    return written, warnings


def _same_size(path: Path, text: str) -> bool:
    """Whether ``path`` already holds ``text`` (nothing changed since the cache wrote it: same length)."""
    try:
        return path.stat().st_size == len(text.encode())
    except OSError:
        return False


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
