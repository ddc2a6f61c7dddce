"""Parser for Intel MPI Benchmarks output: IMB-MPI1 and IMB-P2P.

Validates before it extracts: a table is read only inside an IMB run (after
the ``Intel(R) MPI Benchmarks ... part`` banner: ``MPI-1 part``, ``IMB-P2P
part``), inside a ``# Benchmarking X`` section (IMB-P2P adds the process grid
of its stencils: ``# Benchmarking Stencil2D (2 x 2)``) whose process count is
known (``# #processes = N`` or, for ``-multi``, ``( G groups of N processes
... )``), and only after a column header it knows. Each row is then matched by
an anchored pattern built for that header.

IMB-P2P (PingPong, PingPing, Unirandom, Birandom, Corandom, Stencil2D,
Stencil3D, SendRecv_Replace) prints ``#bytes #repetitions t[usec] Mbytes/sec
Msg/sec``: ``Msg/sec`` fills ``msgs_per_sec``. A benchmark IMB skips (``# !!
Benchmark Stencil3D is invalid for 2 processes !!``) gives a warning.

Units: times in microseconds (``*_usec``), ``mbytes_per_sec`` always in
10^6 bytes/s. IMB before 2018 (banners ``Intel (R) MPI Benchmark Suite V3.x``,
``Intel (R) MPI Benchmarks 4.x`` and ``2017``) printed ``Mbytes/sec`` meaning
2^20 bytes/s; those values are multiplied by ``MIB_TO_MB`` (1.048576) so
every record uses the same unit.

Where IMB prints one ``t[usec]`` column (PingPong, PingPing, ...) the value is
in ``t_avg_usec`` and ``t_min_usec``/``t_max_usec`` are None.

Recoverable damage becomes a ``ParseWarning`` (``FILE:LINE: message``) and
the complete rows are kept: ``time-out.``/``out-of-mem.`` rows, stray lines in
a table, a last row cut mid-line, a run without its closing
``# All processes entering MPI_Finalize``. A log with no complete row raises
``ParseError``. Nothing else is raised, whatever the input.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

from vhpclib.exceptions import ParseError
from vhpclib.parsers.base import ParseResult, ParseWarning, register_parser

COLUMNS = ["file", "benchmark", "nprocs", "bytes", "repetitions", "t_min_usec", "t_max_usec",
           "t_avg_usec", "mbytes_per_sec", "msgs_per_sec", "run_index", "line", "imb_version"]

#: Factor from IMB's pre-2018 "Mbytes/sec" (2^20 bytes/s) to 10^6 bytes/s.
MIB_TO_MB = 1048576 / 1e6

# "#    Intel (R) MPI Benchmark Suite V3.2, MPI-1 part"
# "#    Intel (R) MPI Benchmarks 4.0 Update 1, MPI-1 part"
# "#    Intel(R) MPI Benchmarks 2021.10, MPI-1 part"
_BANNER = re.compile(
    r"^#\s+Intel\s?\(R\) MPI Benchmark(?: Suite|s)\s+V?(?P<version>\d+(?:\.\d+)*(?: Update \d+)?)"
    r"\s*,\s*(?P<part>[\w-]+) part\s*$")
_SECTION = re.compile(r"^# Benchmarking (?P<name>\S+)(?:\s+\((?P<grid>\d+(?: x \d+)*)\))?\s*$")
_SKIPPED = re.compile(r"^# !! (?P<message>.*?) !!\s*$")
_NPROCS = re.compile(r"^# #processes = (?P<n>\d+)(?:;.*)?\s*$")
_GROUPS = re.compile(r"^# \( (?P<groups>\d+) groups of (?P<n>\d+) processes each running simultaneous \)\s*$")
_FINALIZE = re.compile(r"^# All processes entering MPI_Finalize\s*$")
_FAILED_SAMPLE = re.compile(r"^\s*(?:\d+\s+)?(?P<bytes>\d+) (?P<what>time-out|out-of-mem|int-overflow)\.")

_INT = r"(\d+)"
_NUM = r"([-+]?(?:\d+\.\d*|inf|nan))"

# Column header (whitespace-split tokens, without the optional leading "Group"
# and trailing "defects") -> names of the values in a row.
_LAYOUTS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("#bytes", "#repetitions", "t[usec]", "Mbytes/sec"):
        ("bytes", "repetitions", "t_avg_usec", "mbytes_per_sec"),
    ("#bytes", "#repetitions", "t_min[usec]", "t_max[usec]", "t_avg[usec]", "Mbytes/sec"):
        ("bytes", "repetitions", "t_min_usec", "t_max_usec", "t_avg_usec", "mbytes_per_sec"),
    ("#bytes", "#repetitions", "t_min[usec]", "t_max[usec]", "t_avg[usec]"):
        ("bytes", "repetitions", "t_min_usec", "t_max_usec", "t_avg_usec"),
    ("#repetitions", "t_min[usec]", "t_max[usec]", "t_avg[usec]"):
        ("repetitions", "t_min_usec", "t_max_usec", "t_avg_usec"),
    ("#bytes", "#repetitions", "Mbytes/sec", "Msg/sec"):
        ("bytes", "repetitions", "mbytes_per_sec", "msgs_per_sec"),
    ("#bytes", "#repetitions", "t[usec]", "Mbytes/sec", "Msg/sec"):  # IMB-P2P
        ("bytes", "repetitions", "t_avg_usec", "mbytes_per_sec", "msgs_per_sec"),
}
_INT_FIELDS = {"bytes", "repetitions", "msgs_per_sec", "group"}


@dataclass
class _Table:
    fields: tuple[str, ...]
    pattern: re.Pattern[str]
    has_group: bool
    skip_rows: bool = False  # per-group rows of a -multi 1 run: no column for the group


@dataclass
class _Section:
    name: str
    line: int
    nprocs: int | None = None
    groups: int = 1
    table: _Table | None = None


@dataclass
class _Run:
    index: int
    line: int
    version: str
    legacy_mb: bool
    finalized: bool = False
    records: int = 0


@dataclass
class _State:
    file: str
    records: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[ParseWarning] = field(default_factory=list)
    runs: list[_Run] = field(default_factory=list)
    section: _Section | None = None

    def warn(self, line: int | None, message: str) -> None:
        self.warnings.append(ParseWarning(self.file, line, message))


def _is_legacy_mb(version: str) -> bool:
    """True for IMB versions whose Mbytes/sec meant 2^20 bytes/s (before 2018)."""
    major = int(re.match(r"\d+", version).group())  # type: ignore[union-attr]
    return major < 2018


def _table_for(header_tokens: list[str]) -> _Table | None:
    tokens = list(header_tokens)
    has_group = bool(tokens) and tokens[0] == "Group"
    if has_group:
        tokens = tokens[1:]
    has_defects = bool(tokens) and tokens[-1] == "defects"
    if has_defects:
        tokens = tokens[:-1]
    fields = _LAYOUTS.get(tuple(tokens))
    if fields is None:
        return None
    parts = [_INT if f in _INT_FIELDS else _NUM for f in fields]
    if has_group:
        parts.insert(0, _INT)
        fields = ("group", *fields)
    if has_defects:
        parts.append(_NUM)
        fields = (*fields, "defects")
    pattern = re.compile(r"^\s*" + r"\s+".join(parts) + r"\s*$")
    return _Table(fields=fields, pattern=pattern, has_group=has_group)


def _looks_like_header(line: str) -> bool:
    tokens = line.split()
    return bool(tokens) and (tokens[0] in ("#bytes", "#repetitions")
                             or tokens[:2] in (["Group", "#bytes"], ["Group", "#repetitions"]))


def _convert(name: str, text: str) -> int | float:
    return int(text) if name in _INT_FIELDS else float(text)


def _where(section: _Section) -> str:
    return f"{section.name} np={section.nprocs}"


def _handle_row(st: _State, lineno: int, line: str, at_cut_end: bool) -> None:
    sec = st.section
    assert sec is not None and sec.table is not None
    table = sec.table
    run = st.runs[-1]
    if at_cut_end:
        st.warn(lineno, f"last row of {_where(sec)} is cut mid-line (file ends without a newline); "
                        f"row dropped: {line.strip()!r}")
        return
    failed = _FAILED_SAMPLE.match(line)
    if failed:
        st.warn(lineno, f"{_where(sec)} at {failed['bytes']} bytes: IMB printed "
                        f"'{failed['what']}.' instead of a result; no row")
        return
    m = table.pattern.match(line)
    if m is None:
        st.warn(lineno, f"unexpected line inside the {_where(sec)} table, skipped: {line.strip()[:80]!r}")
        return
    if table.skip_rows:
        return
    values = {name: _convert(name, text) for name, text in zip(table.fields, m.groups())}
    defects = values.pop("defects", None)
    values.pop("group", None)
    if defects:
        st.warn(lineno, f"{_where(sec)}: IMB reports defects={defects} (results check failed); row kept")
    mb = values.get("mbytes_per_sec")
    if mb is not None and run.legacy_mb:
        values["mbytes_per_sec"] = mb * MIB_TO_MB
    record: dict[str, Any] = dict.fromkeys(COLUMNS)
    record.update(values)
    record.update(file=st.file, benchmark=sec.name, nprocs=sec.nprocs, run_index=run.index,
                  line=lineno, imb_version=run.version)
    st.records.append(record)
    run.records += 1


def _start_table(st: _State, lineno: int, line: str) -> None:
    sec = st.section
    if sec is None or not st.runs:
        st.warn(lineno, "column header outside a '# Benchmarking' section, ignored")
        return
    if sec.nprocs is None:
        st.warn(lineno, f"{sec.name} table has no '# #processes' line before its header; table skipped")
        return
    table = _table_for(line.split())
    if table is None:
        st.warn(lineno, f"{sec.name}: unsupported column layout {' '.join(line.split())!r}; table skipped")
        return
    if table.has_group and sec.groups > 1:
        table.skip_rows = True
        st.warn(lineno, f"{sec.name}: per-group rows (-multi 1) are not parsed; rerun with -multi 0 "
                        f"for one row per size")
    sec.table = table


def parse(text: str, file: str = "<text>") -> ParseResult:
    """Parse IMB-MPI1 or IMB-P2P output into one record per complete data row.

    Records have the keys of ``COLUMNS``; ``run_index`` numbers the IMB runs
    found in the text (0-based, a run starts at its banner), ``line`` is the
    1-based line of the row. Raises ``ParseError`` when no complete row exists.
    """
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}", file=file)
    st = _State(file=file)
    lines = text.splitlines()
    cut_mid_line = bool(text) and not text.endswith(("\n", "\r"))
    for lineno, line in enumerate(lines, start=1):
        _read_line(st, lineno, line, cut_mid_line and lineno == len(lines))
    if not st.runs:
        first = next((ln.strip() for ln in lines if ln.strip()), "")
        hint = f"; first line: {first[:80]!r}" if first else "; the file is empty"
        raise ParseError("no IMB banner ('Intel(R) MPI Benchmarks ..., MPI-1 part' or '..., IMB-P2P part'): "
                         "not IMB output, "
                         "or IMB stopped before its header" + hint, file=file, line=1 if first else None)
    for run in st.runs:
        if not run.finalized:
            last = st.runs[run.index + 1].line - 1 if run.index + 1 < len(st.runs) else len(lines)
            st.warn(last, f"IMB run {run.index} (banner at line {run.line}) has no "
                          f"'# All processes entering MPI_Finalize': output was cut, "
                          f"later sizes or benchmarks may be missing")
    if not st.records:
        first = st.warnings[0] if st.warnings else None
        detail = (f" ({len(st.warnings)} warning(s), first at line {first.line}: {first.message})"
                  if first else "")
        raise ParseError(f"no complete IMB result row in {len(st.runs)} run(s){detail}",
                         file=file, line=st.runs[0].line)
    return ParseResult(records=st.records, warnings=st.warnings)


def _read_line(st: _State, lineno: int, line: str, at_cut_end: bool) -> None:
    """One line of the log, read in the state the lines before it left."""
    banner = _BANNER.match(line)
    if banner:
        version = banner["version"]
        st.runs.append(_Run(index=len(st.runs), line=lineno, version=version, legacy_mb=_is_legacy_mb(version)))
        st.section = None
        return
    if not st.runs:
        return  # launcher/debug output before the first banner
    sec = st.section
    if sec is not None and sec.table is not None:
        if not line.strip():
            return  # -multi 1 separates sizes with blank lines
        if not line.startswith("#"):
            _handle_row(st, lineno, line, at_cut_end)
            return
        sec.table = None  # a '#' line ends the table
    if not _run_level_line(st, lineno, line) and sec is not None:
        _section_line(st, sec, lineno, line, at_cut_end)


def _run_level_line(st: _State, lineno: int, line: str) -> bool:
    """A section start, the run's end or a skipped benchmark; True when the line was one of those."""
    m = _SECTION.match(line)
    if m:
        st.section = _Section(name=m["name"], line=lineno)
        return True
    if _FINALIZE.match(line):
        st.runs[-1].finalized = True
        st.section = None
        return True
    m = _SKIPPED.match(line)
    if m:
        st.warn(lineno, f"IMB skipped a benchmark: {m['message']}")
        st.section = None
        return True
    return False


def _section_line(st: _State, sec: _Section, lineno: int, line: str, at_cut_end: bool) -> None:
    """The process count, the group layout, or the column header of the current section."""
    m = _NPROCS.match(line)
    if m:
        sec.nprocs = int(m["n"])
        return
    m = _GROUPS.match(line)
    if m:
        sec.nprocs, sec.groups = int(m["n"]), int(m["groups"])
        return
    if _looks_like_header(line):
        if at_cut_end:
            st.warn(lineno, f"{sec.name} column header is cut mid-line; table lost")
            return
        _start_table(st, lineno, line)


register_parser("imb", sys.modules[__name__])  # type: ignore[arg-type]
