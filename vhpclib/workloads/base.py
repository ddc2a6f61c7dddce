"""What a workload is to vHPC: a plugin that plans points, builds jobs, and judges and reads its own output.

A workload is one class registered once (``register_workload``), the way papermill
registers engines and ReFrame registers launchers. The stage loop
(``vhpclib.stages.loop``) only ever talks to this interface:

    plan(stage, ctx, params)      -> points (and skips, with their reason)
    prepare(ctx, points, params)  -> whatever every run needs, done once (problem files, builds)
    job(ctx, point, rep, prepared, params) -> the MPI job of one repetition
    sanity(run)   -> reasons the output is not a valid result (never raises)
    extract(run)  -> table rows (called only on sane output; an exception fails just that run)

``sanity`` and ``extract`` run inside the run's temporary folder before it is
stored, and again with ``vhpc tables --reparse``.

What a workload knows is declared in its own module (Ramble's ``application.py`` is the model),
never in the core:

- ``Params``: its parameters, a pydantic model with one default each. The CLI's ``vhpc run
  <stage>`` options and the notebooks' ``options`` are generated from it; a stage hands it over as
  ``params.settings(self)``.
- ``section``: its ``benchmarks.<key>`` inventory section (``Section``), documented field by field.
- ``table`` and ``columns``: the processed table its rows go to (``vhpclib.tables``) and the result
  columns it adds to it, each with its unit.
- ``watch``: the quantities adaptive repetitions watch (``stages.adaptive``); by default its table's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ..schema import TABLES, WORKLOADS, Column, Watch

if TYPE_CHECKING:
    from ..launchers import Job
    from ..params import StageParams
    from ..stages.context import StageContext
    from ..store import StoredRun


@dataclass(frozen=True)
class Point:
    """One thing a stage measures, repeated: e.g. PingPong intra-socket, or blockss at 4 processes x 2 threads.

    ``stem`` is the run id without the repetition (``<stem>-r01``...): it is what resume
    counts. ``fields`` go into the run record (``point``) and identify the point in tables.
    """

    workload: str
    stem: str
    fields: Mapping[str, Any]
    nodes: int = 1
    label: str = ""
    # MPI ranks on each node (None: not known when planning); the environment's provider may refuse a shape.
    ranks_per_node: int | None = None

    def run_id(self, repetition: int) -> str:
        return f"{self.stem}-r{repetition:02d}"

    @property
    def what(self) -> str:
        return self.label or self.stem


@dataclass(frozen=True)
class Skip:
    """A point this environment cannot provide, kept in the store with its reason (never faked)."""

    workload: str
    stem: str
    what: str
    reason: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return f"{self.stem}-skipped"


@dataclass(frozen=True)
class Section:
    """A workload's ``benchmarks.<key>`` inventory section: its type (a pydantic model, a path...) and meaning."""

    key: str
    annotation: Any
    description: str
    default: Any = None


class NoParams(BaseModel):
    """A workload without parameters of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class Extracted:
    """Rows a run's output yields, and what was odd about it (one line each, naming file and line)."""

    rows: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


class Workload(ABC):
    """Base of every workload plugin; see the module docstring for the protocol."""

    #: Registry key, as stages, inventories and the CLI name it.
    name: ClassVar[str]
    #: The name the paper uses for it (Bloss for blockss), for "paper vs measured".
    paper_name: ClassVar[str] = ""
    #: Processed table its rows go to (declared in ``vhpclib.schema.TABLES``; columns: docs/tables.md).
    table: ClassVar[str]
    #: Stages it takes part in.
    stages: ClassVar[tuple[str, ...]]
    #: Its parameters (pydantic, one default each): CLI options and notebook options are generated from it.
    Params: ClassVar[type[BaseModel]] = NoParams
    #: Its ``benchmarks.<key>`` inventory section (None: it needs none).
    section: ClassVar[Section | None] = None
    #: Result columns its rows add to its table (beyond the table's own), each with its unit.
    columns: ClassVar[tuple[Column, ...]] = ()

    def settings(self, params: StageParams) -> Any:
        """This workload's parameters as ``params`` gives them (its ``Params`` defaults for the rest)."""
        return params.settings(self)

    def watch(self, params: StageParams) -> list[Watch]:
        """The quantities adaptive repetitions watch for this workload's points (default: its table's)."""
        spec = TABLES.find(self.table)
        return list(spec.watch) if spec else []

    def dimension(self, runner: Any, point: Point, params: StageParams, schedule: Any,
                  counts: Mapping[str, int]) -> tuple[Point, StageParams, dict[str, Any] | None]:
        """Adaptive repetitions: measure what sizes the point before its runs, and plan it again with that
        (IMB PingPong chooses its iterations per run). Returns the point, its parameters and what to record."""
        return point, params, None

    def display_name(self, point: Mapping[str, Any]) -> str:
        """How tables and figures name a point's workload (``SP-MZ`` for the npb workload's ``sp-mz``)."""
        return self.name

    @abstractmethod
    def plan(self, stage: str, ctx: StageContext, params: StageParams) -> list[Point | Skip]:
        """The points of ``stage`` in this environment (empty when the workload is not part of it)."""

    def prepare(self, ctx: StageContext, points: list[Point], params: StageParams) -> Any:
        """Work every run of these points needs, done once before the first run is measured."""
        return None

    @abstractmethod
    def job(self, ctx: StageContext, point: Point, repetition: int, prepared: Any, params: StageParams) -> Job:
        """The job of one repetition of ``point``."""

    @abstractmethod
    def sanity(self, run: StoredRun) -> list[str]:
        """Why this run's output is not a valid result (empty list: valid). Must not raise."""

    @abstractmethod
    def extract(self, run: StoredRun) -> Extracted:
        """Table rows from a sane run's output (may raise on surprises: that run fails, not the stage)."""




def register_workload(workload: Workload, *, replace: bool = False) -> Workload:
    """Make a workload available under ``workload.name`` (a test may register its own), with its
    inventory section (``config.Benchmarks``) and its result columns (``vhpclib.tables``)."""
    from ..config import add_benchmark_section

    WORKLOADS.add(workload.name, workload, replace=replace)
    if workload.section is not None:
        s = workload.section
        add_benchmark_section(s.key, s.annotation, s.description, s.default)
    return workload


def unregister_workload(name: str) -> None:
    """Forget a workload, and its inventory section when no other workload declares it."""
    from ..config import remove_benchmark_section

    workload = WORKLOADS.find(name)
    WORKLOADS.remove(name)
    if workload is not None and workload.section is not None:
        if not any(w.section and w.section.key == workload.section.key for _, w in WORKLOADS.items()):
            remove_benchmark_section(workload.section.key)

get_workload = WORKLOADS.get
#: The registered workload of a stored record, or None (a workload no longer registered).
workload_of = WORKLOADS.find


def workload_names(stage: str | None = None) -> tuple[str, ...]:
    return tuple(n for n, w in WORKLOADS.items() if stage is None or stage in w.stages)


__all__ = ["Column", "Extracted", "NoParams", "Point", "Section", "Skip", "Watch", "Workload", "WORKLOADS",
           "get_workload", "register_workload", "unregister_workload", "workload_names", "workload_of"]
