"""Parser for MZ-DEMO, the project's own MPI+OpenMP multi-zone test program (apps/mzdemo).

It is not NPB: it exists so that the NPB-MZ build/distribute/run path can be
exercised end to end where NPB's source is unavailable. Its result block
mimics NPB-MZ's ``key = value`` lines and its "Compile options:" block is
NPB-MZ's, so the records share the NPB columns.
"""

from __future__ import annotations

import re
import sys

from ..exceptions import ParseError
from .base import ParseResult, register_parser
from .npb import COLUMNS, read_compile_options

_BANNER = re.compile(r"^\s*vHPC MZ-DEMO: multi-zone heat solver")
_DONE = re.compile(r"^\s*MZ-DEMO Benchmark Completed\.\s*$")
_FIELD = re.compile(r"^\s*(?P<key>Class|Zones|Iterations|Time in seconds|Total processes|Threads/process|"
                    r"Mop/s total|Verification|Version)\s*=\s*(?P<value>.+?)\s*$")


def parse(text: str, file: str = "<text>") -> ParseResult:
    """One record per MZ-DEMO log; ParseError when it has no complete result block."""
    lines = text.splitlines()
    if not any(_BANNER.match(line) for line in lines):
        raise ParseError("not an MZ-DEMO log (no 'vHPC MZ-DEMO' banner)", file=file, line=1)
    done = next((i for i, line in enumerate(lines) if _DONE.match(line)), None)
    if done is None:
        raise ParseError("no 'MZ-DEMO Benchmark Completed.' block (run cut short or crashed)", file=file)
    fields: dict[str, str] = {}
    for line in lines[done + 1:]:
        m = _FIELD.match(line)
        if m:
            fields[m["key"]] = m["value"]
    missing = [k for k in ("Class", "Time in seconds", "Total processes", "Threads/process", "Verification")
               if k not in fields]
    if missing:
        raise ParseError(f"result block lacks {', '.join(missing)}", file=file, line=done + 1)
    try:
        nprocs, threads = int(fields["Total processes"]), int(fields["Threads/process"])
        mops = float(fields["Mop/s total"]) if "Mop/s total" in fields else None
        record = dict.fromkeys(COLUMNS)
        record.update({
            "file": file, "benchmark": "MZ-DEMO", "class": fields["Class"], "nprocs": nprocs,
            "total_threads": nprocs * threads, "time_s": float(fields["Time in seconds"]), "mops_total": mops,
            "mops_per_thread": mops / (nprocs * threads) if mops is not None else None,
            "verified": fields["Verification"] == "SUCCESSFUL", "npb_version": fields.get("Version"),
            "iterations": int(fields["Iterations"]) if "Iterations" in fields else None,
            "zones": re.sub(r"\s*x\s*", "x", fields.get("Zones", "")) or None,
        })
    except ValueError as exc:
        raise ParseError(f"malformed number in the result block: {exc}", file=file, line=done + 1) from None
    cut_mid_line = bool(text) and not text.endswith(("\n", "\r"))
    return ParseResult([record], read_compile_options(lines, done + 1, cut_mid_line, record, file))


register_parser("mzdemo", sys.modules[__name__])  # type: ignore[arg-type]
