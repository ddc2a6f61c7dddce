"""Parser for the log of ``vhpc-blockss solve`` (the Bloss-like application).

Validates before it extracts: the log must open with ``# blockss <version>``, hold
the ``size:``, ``contour:``, ``parallel:``, ``reduce:``, ``subspace:`` and
``eigenvalues:`` lines, list as many eigenvalue rows as it says it accepted, and
close with the ``timings [s]`` block (setup, solve, wait, reduce, extract, total) and
``# blockss done``. A log without the final timing block (a killed or failed run)
raises ``ParseError`` naming the file. One log is one run: one record.

Units: times in seconds (``*_s``, MPI.Wtime per phase, max over ranks, as the log
says), ``reduce_bytes`` in bytes. ``time_s`` is ``total_s``. ``verified`` is True
when the solver itself found nothing suspicious: no WARNING line (subspace full,
an eigenvalue found L times whose multiplicity may exceed L, fewer/more eigenvalues
than the problem file expects), at least one eigenvalue, and every accepted
residual <= tol.

blockss >= 0.2 also prints a ``filter:`` line, the reason of each rejected row
(``residual``, ``moments``, ``weight``) and one ``O<k>`` row per eigenvalue dropped
as outside the circle, with its distance to it: ``n_spurious`` counts the rows
rejected as spurious (moments or weight; empty for older logs) and
``nearest_outside`` is the smallest such distance (empty when none is listed).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

from vhpclib.exceptions import ParseError
from vhpclib.parsers.base import ParseResult, ParseWarning, register_parser

COLUMNS = ["file", "app", "version", "problem", "kind", "method", "n", "nnz", "nprocs", "threads",
           "point_workers", "solver", "N", "L", "M", "center_re", "center_im", "radius", "tol",
           "subspace_rank", "subspace_full", "n_eigenvalues", "n_rejected", "n_outside",
           "expected_count", "max_residual", "setup_s", "solve_s", "wait_s", "reduce_s", "extract_s",
           "total_s", "time_s", "reduce_bytes", "verified", "n_spurious", "nearest_outside"]

_FLOAT = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf|nan)"
_HEADER = re.compile(r"^# blockss (?P<version>\S+): block Sakurai-Sugiura eigensolver\s*$")
_DONE = re.compile(r"^# blockss done\s*$")
_LINES: dict[str, re.Pattern[str]] = {
    "problem": re.compile(r"^problem: (?P<problem>\S+) kind=(?P<kind>\w+) method=(?P<method>\w+)\s*$"),
    "size": re.compile(r"^size: n=(?P<n>\d+) nnz=(?P<nnz>\d+)\s*$"),
    "contour": re.compile(
        rf"^contour: center=(?P<center_re>{_FLOAT})(?P<center_im>[-+](?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf|nan))j "
        rf"radius=(?P<radius>{_FLOAT}) N=(?P<N>\d+) L=(?P<L>\d+) M=(?P<M>\d+) delta=(?P<delta>{_FLOAT}) "
        rf"tol=(?P<tol>{_FLOAT}) seed=(?P<seed>\d+)\s*$"),
    "parallel": re.compile(
        r"^parallel: nprocs=(?P<nprocs>\d+) threads=(?P<threads>\d+) point_workers=(?P<point_workers>\d+) "
        r"solver=(?P<solver>\S+) points_per_rank=(?P<points>[\d,]+)\s*$"),
    "reduce": re.compile(r"^reduce: one Allreduce of (?P<reduce_bytes>\d+) bytes .*$"),
    "subspace": re.compile(r"^subspace: rank=(?P<subspace_rank>\d+) of L\*M=(?P<subspace>\d+)\s*$"),
    "eigenvalues": re.compile(
        r"^eigenvalues: accepted=(?P<n_eigenvalues>\d+) rejected=(?P<n_rejected>\d+) "
        r"outside=(?P<n_outside>\d+) expected=(?P<expected_count>\d+|-)\s*$"),
}
_EIG_ROW = re.compile(rf"^\s*(?P<idx>\d+) +(?P<re>{_FLOAT}) +(?P<im>{_FLOAT}) +(?P<res>{_FLOAT})\s*$")
_REJ_ROW = re.compile(rf"^R\s*(?P<idx>\d+) +(?P<re>{_FLOAT}) +(?P<im>{_FLOAT}) +(?P<res>{_FLOAT})"
                      r"(?: +(?P<reasons>(?:residual|moments|weight)(?:,(?:residual|moments|weight))*))?\s*$")
_OUT_ROW = re.compile(rf"^O\s*(?P<idx>\d+) +(?P<re>{_FLOAT}) +(?P<im>{_FLOAT}) +(?P<dist>{_FLOAT})\s*$")
_OUT_HEADER = re.compile(r"^outside: dropped, .*$")
_FILTER = re.compile(r"^filter: moment_tol=\S+ weight_tol=\S+ cluster_tol=\S+\s*$")
_TIMINGS = re.compile(r"^timings \[s\] \(MPI\.Wtime per phase, max over ranks\):\s*$")
_TIMING = re.compile(rf"^  (?P<phase>setup|solve|wait|reduce|extract|total) +(?P<sec>{_FLOAT})\s*$")
_WARNING = re.compile(r"^WARNING: (?P<msg>.*)$")
_PHASES = ("setup", "solve", "wait", "reduce", "extract", "total")
_INTS = {"n", "nnz", "nprocs", "threads", "point_workers", "N", "L", "M", "reduce_bytes",
         "subspace_rank", "n_eigenvalues", "n_rejected", "n_outside"}
_FLOATS = {"center_re", "center_im", "radius", "tol"}


@dataclass
class _Log:
    """What has been read of one log so far."""

    file: str
    rec: dict[str, Any]
    found: set[str] = field(default_factory=set)
    eig_rows: list[tuple[int, float]] = field(default_factory=list)
    rej_rows: list[tuple[int, float]] = field(default_factory=list)
    rej_reasons: list[set[str]] = field(default_factory=list)
    out_rows: list[float] = field(default_factory=list)
    out_header: bool = False
    has_filter: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[ParseWarning] = field(default_factory=list)
    solver_warnings: list[str] = field(default_factory=list)
    in_timings: bool = False
    done: bool = False

    def read(self, lineno: int, ln: str) -> None:
        if self.in_timings:
            m = _TIMING.match(ln)
            if m:
                self.timings[m["phase"]] = float(m["sec"])
        elif _TIMINGS.match(ln):
            self.in_timings = True
        elif not self._keyed_line(ln):
            self._row_or_note(lineno, ln)

    def _keyed_line(self, ln: str) -> bool:
        for key, pat in _LINES.items():
            m = pat.match(ln)
            if m:
                self.found.add(key)
                self.rec.update({k: v for k, v in m.groupdict().items() if k in COLUMNS})
                return True
        return False

    def _row_or_note(self, lineno: int, ln: str) -> None:
        if (m := _EIG_ROW.match(ln)) and "eigenvalues" in self.found:
            self.eig_rows.append((lineno, float(m["res"])))
        elif m := _REJ_ROW.match(ln):
            self.rej_rows.append((lineno, float(m["res"])))
            self.rej_reasons.append(set((m["reasons"] or "").split(",")) - {""})
        elif (m := _OUT_ROW.match(ln)) and self.out_header:
            self.out_rows.append(float(m["dist"]))
        elif _OUT_HEADER.match(ln):
            self.out_header = True
        elif _FILTER.match(ln):
            self.has_filter = True
        elif m := _WARNING.match(ln):
            self.solver_warnings.append(m["msg"])
            self.warnings.append(ParseWarning(self.file, lineno, f"solver warning: {m['msg']}"))

    def check_complete(self) -> None:
        missing = [k for k in _LINES if k not in self.found]
        if missing:
            raise ParseError(f"missing line(s) {', '.join(repr(k + ':') for k in missing)}", file=self.file)
        if not self.done or set(self.timings) != set(_PHASES):
            absent = [p for p in _PHASES if p not in self.timings]
            raise ParseError("incomplete log: no final timing block"
                             + (f" (missing {', '.join(absent)})" if absent else "")
                             + ("" if self.done else " and no '# blockss done'"), file=self.file)

    def check_counts(self) -> None:
        rec = self.rec
        for what, said, listed in (("accepted", rec["n_eigenvalues"], len(self.eig_rows)),
                                   ("rejected", rec["n_rejected"], len(self.rej_rows))):
            if said != listed:
                noun = "eigenvalue" if what == "accepted" else what
                raise ParseError(f"log says {what}={said} but lists {listed} {noun} rows", file=self.file)
        if self.out_header and len(self.out_rows) != rec["n_outside"]:
            raise ParseError(f"log says outside={rec['n_outside']} but lists {len(self.out_rows)} outside rows",
                             file=self.file)


def parse(text: str, file: str = "<text>") -> ParseResult:
    """One record from one ``vhpc-blockss solve`` log; ``ParseError`` if it is incomplete."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if _HEADER.match(ln)), None)
    if start is None:
        raise ParseError("no '# blockss <version>: block Sakurai-Sugiura eigensolver' header: "
                         "not a blockss log", file=file)
    log = _Log(file, {c: None for c in COLUMNS})
    log.rec.update(file=file, app="blockss", version=_HEADER.match(lines[start])["version"])
    for lineno, ln in enumerate(lines[start + 1:], start + 2):
        if _DONE.match(ln):
            log.done = True
            break
        log.read(lineno, ln)
    log.check_complete()
    rec = log.rec
    for k in _INTS:
        rec[k] = int(rec[k])
    for k in _FLOATS:
        rec[k] = float(rec[k])
    rec["expected_count"] = None if rec["expected_count"] == "-" else int(rec["expected_count"])
    log.check_counts()
    rec["n_spurious"] = sum(1 for r in log.rej_reasons if r & {"moments", "weight"}) if log.has_filter else None
    rec["nearest_outside"] = min(log.out_rows, default=None)
    rec["subspace_full"] = rec["subspace_rank"] >= rec["L"] * rec["M"]
    rec["max_residual"] = max((r for _, r in log.eig_rows), default=None)
    for p in _PHASES:
        rec[f"{p}_s"] = log.timings[p]
    rec["time_s"] = log.timings["total"]
    rec["verified"] = bool(not log.solver_warnings and rec["n_eigenvalues"] > 0
                           and all(r <= rec["tol"] for _, r in log.eig_rows))
    return ParseResult(records=[{c: rec[c] for c in COLUMNS}], warnings=log.warnings)


register_parser("app", sys.modules[__name__])  # type: ignore[arg-type]
