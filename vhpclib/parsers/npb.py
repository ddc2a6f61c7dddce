"""Parser for NPB-MZ (BT-MZ, SP-MZ, LU-MZ) output, NPB3.3-MZ and NPB3.4-MZ.

Validates first: the ``NAS Parallel Benchmarks (NPB3.x-MZ...)`` header, then
exactly one ``XX-MZ Benchmark Completed.`` result block whose ``key = value``
lines are read with anchored patterns. A failed verification is a result
(``verified=False``), not an error; a log without a result block (run cut
short or crashed) raises ``ParseError``.

Format differences handled (3.3 vs 3.4): header ``(NPB3.3-MZ-MPI)`` vs
``(NPB3.4-MZ MPI+OpenMP)``; 3.4 adds ``Total mesh size:``; both print
``Number of zones:  X x  Y`` in the header and the class only in the
verification line and the ``Class =`` result line. Units: ``time_s`` in
seconds, ``mops_*`` in millions of operations per second.

The "Compile options:" block after the results (what ``sys/setparams`` copied
from ``config/make.def``) fills ``fc`` (printed as ``F77`` by 3.3, ``FC`` by
3.4), ``flink``, ``f_lib``, ``f_inc``, ``fflags``, ``flinkflags`` and ``rand``,
as printed; ``(none)`` (unset) becomes empty. A log without the block leaves
them empty; a block cut mid-line warns and leaves the cut value empty.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from vhpclib.exceptions import ParseError
from vhpclib.parsers.base import ParseResult, ParseWarning, register_parser

#: "Compile options" label -> column (F77 in NPB3.3-MZ and FC in 3.4 are both the Fortran compiler).
COMPILE_OPTION_COLUMNS = {"F77": "fc", "FC": "fc", "FLINK": "flink", "F_LIB": "f_lib", "F_INC": "f_inc",
                          "FFLAGS": "fflags", "FLINKFLAGS": "flinkflags", "RAND": "rand"}
COLUMNS = ["file", "benchmark", "class", "nprocs", "total_threads", "time_s", "mops_total",
           "mops_per_thread", "verified", "npb_version", "iterations", "zones",
           *dict.fromkeys(COMPILE_OPTION_COLUMNS.values())]

_HEADER = re.compile(
    r"^\s*NAS Parallel Benchmarks \((?P<suite>NPB\d+(?:\.\d+)*-MZ[^)]*)\) - (?P<bench>[A-Z]{2}-MZ)\b")
_ZONES = re.compile(r"^\s*Number of zones:\s*(?P<x>\d+)\s*x\s*(?P<y>\d+)\s*$")
_ACTIVE = re.compile(r"^\s*Number of active processes:\s*(?P<n>\d+)\s*$")
_THREADS = re.compile(r"^\s*Total number of threads:\s*(?P<n>\d+)\b")
_VERIF_CLASS = re.compile(r"^\s*Verification being performed for class (?P<cls>\S+)\s*$")
_COMPLETED = re.compile(r"^\s*(?P<bench>[A-Z]{2}-MZ) Benchmark Completed\.\s*$")
_KEYVAL = re.compile(r"^\s*(?P<key>[A-Za-z][A-Za-z/ ]*?)\s*=\s*(?P<value>.*?)\s*$")
_OPTIONS = re.compile(r"^\s*Compile options:\s*$")
_OPTION = re.compile(r"^\s+(?P<label>F77|FC|FLINK|F_LIB|F_INC|FFLAGS|FLINKFLAGS|RAND)\s*= ?(?P<value>.*?)\s*$")
_NONE = "(none)"

_INT = re.compile(r"^\d+$")
_FLOAT = re.compile(r"^[-+]?(?:\d+\.\d*|\d+|\.\d+)(?:[EeDd][-+]?\d+)?$")

# result key -> (column, kind); kind: int, float, str, verified
_RESULT_KEYS: dict[str, tuple[str, str]] = {
    "Class": ("class", "str"),
    "Iterations": ("iterations", "int"),
    "Time in seconds": ("time_s", "float"),
    "Total processes": ("nprocs", "int"),
    "Total threads": ("total_threads", "int"),
    "Mop/s total": ("mops_total", "float"),
    "Mop/s/thread": ("mops_per_thread", "float"),
    "Verification": ("verified", "verified"),
    "Version": ("npb_version", "str"),
}
_REQUIRED = ("Class", "Iterations", "Time in seconds", "Mop/s total", "Verification", "Version")


def _value(kind: str, key: str, text: str, file: str, lineno: int) -> Any:
    if kind == "str":
        if not text:
            raise ParseError(f"empty value for '{key}' in the result block", file=file, line=lineno)
        return text
    if kind == "verified":
        if text == "SUCCESSFUL":
            return True
        if text == "UNSUCCESSFUL":
            return False
        raise ParseError(f"'Verification = {text}': expected SUCCESSFUL or UNSUCCESSFUL",
                         file=file, line=lineno)
    if kind == "int" and _INT.match(text):
        return int(text)
    if kind == "float" and _FLOAT.match(text):
        return float(text.replace("D", "E").replace("d", "e"))
    # Fortran prints '****' when a number overflows its field
    raise ParseError(f"'{key} = {text}' is not a number", file=file, line=lineno)


# header pattern -> (key in the header dict, value from the match); the first match of each wins
_HEADER_LINES = (
    (_ZONES, "zones", lambda m, n: f"{int(m['x'])}x{int(m['y'])}"),
    (_ACTIVE, "active", lambda m, n: int(m["n"])),
    (_THREADS, "threads", lambda m, n: int(m["n"])),
    (_VERIF_CLASS, "verif_class", lambda m, n: (m["cls"], n)),
)


def parse(text: str, file: str = "<text>") -> ParseResult:
    """Parse one NPB-MZ log into one record (keys of ``COLUMNS``).

    Raises ``ParseError`` naming the file when the header or the result block
    is missing, a required result line is absent or not a number, or the log
    holds more than one run.
    """
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}", file=file)
    lines = text.splitlines()
    header, completed = _scan(lines)
    start, bench = _the_result_block(header, completed, len(lines), file)
    cut_mid_line = bool(text) and not text.endswith(("\n", "\r"))
    results = _result_lines(lines, start, bench, cut_mid_line, file)
    record: dict[str, Any] = dict.fromkeys(COLUMNS)
    record.update(file=file, benchmark=bench, zones=header.get("zones"))
    for key, (column, kind) in _RESULT_KEYS.items():
        if key in results:
            text_value, lineno = results[key]
            record[column] = _value(kind, key, text_value, file, lineno)
    # 3.3/3.4 print both; older or OpenMP-less builds may omit the result lines
    if record["nprocs"] is None:
        record["nprocs"] = header.get("active")
    if record["total_threads"] is None:
        record["total_threads"] = header.get("threads")
    if record["mops_per_thread"] is None and record["total_threads"]:
        record["mops_per_thread"] = record["mops_total"] / record["total_threads"]
    warnings = read_compile_options(lines, start, cut_mid_line, record, file)
    warnings += _cross_checks(header, record, bench, start, file)
    return ParseResult(records=[record], warnings=warnings)


def _scan(lines: list[str]) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """The header facts (first match of each) and every 'Benchmark Completed.' line."""
    header: dict[str, Any] = {}
    completed: list[tuple[int, str]] = []
    for lineno, line in enumerate(lines, start=1):
        m = _HEADER.match(line)
        if m and "suite" not in header:
            header.update(suite=m["suite"], bench=m["bench"], header_line=lineno)
            continue
        for pattern, key, value in _HEADER_LINES:
            m = pattern.match(line)
            if m and key not in header:
                header[key] = value(m, lineno)
                break
        else:
            m = _COMPLETED.match(line)
            if m:
                completed.append((lineno, m["bench"]))
    return header, completed


def _the_result_block(header: dict[str, Any], completed: list[tuple[int, str]], n_lines: int,
                      file: str) -> tuple[int, str]:
    if "suite" not in header:
        raise ParseError("no NPB-MZ header ('NAS Parallel Benchmarks (NPB3.x-MZ...) - XX-MZ Benchmark'): "
                         "not an NPB-MZ log", file=file, line=1 if n_lines else None)
    if not completed:
        raise ParseError(f"{header['bench']} log has no 'Benchmark Completed.' result block: the run was "
                         f"cut short or crashed", file=file, line=n_lines or None)
    if len(completed) > 1:
        where = ", ".join(str(n) for n, _ in completed)
        raise ParseError(f"{len(completed)} result blocks (lines {where}); an NPB log holds one run",
                         file=file, line=completed[1][0])
    return completed[0]


def _result_lines(lines: list[str], start: int, bench: str, cut_mid_line: bool,
                  file: str) -> dict[str, tuple[str, int]]:
    """``key = value`` lines of the result block (to its first blank line), each with its line number."""
    results: dict[str, tuple[str, int]] = {}
    for lineno in range(start + 1, len(lines) + 1):
        line = lines[lineno - 1]
        if not line.strip():
            break
        m = _KEYVAL.match(line)
        if not m:
            continue
        if cut_mid_line and lineno == len(lines):
            if m["key"] in _RESULT_KEYS:
                raise ParseError(f"the log ends mid-line in the result block ({line.strip()!r}): "
                                 f"value may be cut", file=file, line=lineno)
            break
        results[m["key"]] = (m["value"], lineno)
    missing = [k for k in _REQUIRED if k not in results]
    if missing:
        raise ParseError(f"result block of {bench} is incomplete: no {', '.join(repr(k) for k in missing)} "
                         f"line", file=file, line=start)
    return results


def _cross_checks(header: dict[str, Any], record: dict[str, Any], bench: str, start: int,
                  file: str) -> list[ParseWarning]:
    warnings = []
    if bench != header["bench"]:
        warnings.append(ParseWarning(file, start, f"result block is for {bench} but the header names "
                                                  f"{header['bench']}"))
    if "verif_class" in header and header["verif_class"][0] != record["class"]:
        cls, lineno = header["verif_class"]
        warnings.append(ParseWarning(file, lineno, f"verification ran for class {cls} but the result "
                                                   f"block says class {record['class']}"))
    if record["zones"] is None:
        warnings.append(ParseWarning(file, header["header_line"], "no 'Number of zones:' line; zones empty"))
    return warnings


def read_compile_options(lines: list[str], start: int, cut_mid_line: bool, record: dict[str, Any],
                         file: str) -> list[ParseWarning]:
    """Fill ``record``'s compile-option columns from the "Compile options:" block after line ``start``
    (1-based); the warnings for a block cut mid-line (``cut_mid_line``: the text has no final newline)."""
    begin = next((n for n in range(start + 1, len(lines) + 1) if _OPTIONS.match(lines[n - 1])), None)
    if begin is None:
        return []
    for lineno in range(begin + 1, len(lines) + 1):
        m = _OPTION.match(lines[lineno - 1])
        if not m:
            break
        if cut_mid_line and lineno == len(lines):
            return [ParseWarning(file, lineno, f"the log ends mid-line in 'Compile options' "
                                               f"({lines[lineno - 1].strip()!r}): {m['label']} left empty")]
        record[COMPILE_OPTION_COLUMNS[m["label"]]] = None if m["value"] in ("", _NONE) else m["value"]
    return []


register_parser("npb", sys.modules[__name__])  # type: ignore[arg-type]
