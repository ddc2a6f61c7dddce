"""What a processed table holds, declared by whoever fills it: columns with units, and what adaptive watches.

A table (``data/processed/<campaign>/<name>.csv``) is declared once, by the module that
knows it: the microbenchmark table by IMB PingPong (``workloads/pingpong.py``), the
application table by the application runs (``workloads/app_run.py``), a plugin's own table
by the plugin. A workload adds its own result columns to the table it feeds
(``Workload.columns``). ``vhpclib.tables`` keeps every declared column, in declared order, and
refuses a column nobody declared (``undeclared_columns``): nothing is dropped silently.

This module sits below workloads and tables (it imports neither), so both can read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .registry import Registry

if TYPE_CHECKING:
    from .store import StoredRun


@dataclass(frozen=True)
class Column:
    """A column of a processed table: its name, its unit ("" for labels and counts) and what it means."""

    name: str
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class Watch:
    """A quantity adaptive repetitions watch: per run, ``value(rows)`` of the run's result rows (None: no value).

    The stage reports the median over runs with its interval; ``overhead`` also reports, on one node,
    its ratio to the baseline environment (or the A/A check of one environment) as a percentage.
    """

    name: str
    unit: str
    value: Callable[[list[dict[str, Any]]], float | None]
    overhead: bool = False


#: The identity columns every run contributes to each of its rows (campaign, environment, ...).
Identity = Callable[["StoredRun", Any, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class TableSpec:
    """A processed table: its columns (in file order), the identity a run adds to each row, stage order, watch."""

    name: str
    columns: tuple[Column, ...]
    identity: Identity
    stage_order: tuple[str, ...] = ()
    #: What adaptive repetitions watch for a workload feeding this table (unless the workload says otherwise).
    watch: tuple[Watch, ...] = ()
    description: str = ""
    #: Columns written after the ones the workloads add (``Workload.columns``), e.g. the run's status.
    tail: tuple[Column, ...] = ()


@dataclass(frozen=True)
class FixedTable:
    """A table the core writes itself (skipped points, environments): its columns only."""

    name: str
    columns: tuple[Column, ...]
    description: str = ""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


TABLES: Registry[TableSpec] = Registry("table", "table")
#: The registered workloads (``vhpclib.workloads.register_workload`` fills it). Kept here, below the workloads,
#: so the stage parameters can look a workload up by name without importing the workloads package.
WORKLOADS: Registry[Any] = Registry("workload", "workload")
FIXED: Registry[FixedTable] = Registry("table", "table")


def register_table(spec: TableSpec, *, replace: bool = False) -> TableSpec:
    """Make a processed table available to workloads that name it (``Workload.table``)."""
    return TABLES.add(spec.name, spec, replace=replace)


unregister_table = TABLES.remove


def column_specs(names: Iterable[str], units: dict[str, str] | None = None,
            descriptions: dict[str, str] | None = None) -> tuple[Column, ...]:
    """Columns from names, with the units and meanings given for some of them."""
    units, descriptions = units or {}, descriptions or {}
    return tuple(Column(n, units.get(n, ""), descriptions.get(n, "")) for n in names)


#: Columns the harness adds to every row of every run table, after the table's tail: the interference it recorded
#: around the run and, in a ground-truth environment, the overhead its cgroup measured (``tables.run_columns``).
RUN_COLUMNS: tuple[Column, ...] = (
    Column("other_share", "share", "CPU share of the machine other processes used during the run"),
    Column("steal_share", "share", "CPU share the hypervisor stole during the run"),
    Column("load_before", "", "1-minute load average before the run"),
    Column("job_nivcsw", "", "involuntary context switches of the job's processes"),
    Column("injected_overhead_pct", "%", "overhead the ground-truth cgroup measured for the run"),
)


@dataclass
class Layout:
    """A table's columns as written: the table's own, the columns its workloads add (registration order), its tail."""

    spec: TableSpec | FixedTable
    extra: list[Column] = field(default_factory=list)

    @property
    def columns(self) -> list[Column]:
        if isinstance(self.spec, FixedTable):
            return [*self.spec.columns, *self.extra]
        return [*self.spec.columns, *self.extra, *self.spec.tail, *RUN_COLUMNS]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def unit(self, name: str) -> str:
        return next((c.unit for c in self.columns if c.name == name), "")


def undeclared_columns(rows: Iterable[dict[str, Any]], declared: Iterable[str]) -> list[str]:
    """Keys of ``rows`` that no declaration names, in first-seen order."""
    known = set(declared)
    out: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in known:
                out[key] = None
    return list(out)
