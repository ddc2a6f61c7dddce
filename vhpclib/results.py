"""The shape of a stored ``result.json``, checked whenever one is read back.

vhpc writes ``{"table": <name>, "rows": [<row>, ...]}`` where every row is a flat
mapping from column names to scalars (text, number, boolean or null). A file of
another shape (``[]``, ``null``, ``{"rows": "x"}``, rows that are not mappings,
nested values) raises ``MalformedResult`` naming the file: the run is left out
of tables and figures with that one line, and the rest of the campaign goes on.

Per-column types are the workload's knowledge, not this module's: a workload
(or the module declaring its columns) registers a check with
``register_column_check``; ``check_result`` runs it on every row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .exceptions import MalformedResult

#: Values a result row may hold.
SCALARS = (str, int, float, bool, type(None))

#: The per-column hook: workload name -> function(row) returning problems ("bytes: expected a number, got 'x'").
ColumnCheck = Callable[[Mapping[str, Any]], list[str]]
COLUMN_CHECKS: dict[str, ColumnCheck] = {}


def register_column_check(workload: str, check: ColumnCheck) -> ColumnCheck:
    """Check every stored row of ``workload`` against its declared columns (types, units, ranges)."""
    COLUMN_CHECKS[workload] = check
    return check


def unregister_column_check(workload: str) -> None:
    COLUMN_CHECKS.pop(workload, None)


def read_result(path: str | Path, workload: str | None = None) -> list[dict[str, Any]]:
    """The rows of a ``result.json``; ``MalformedResult`` naming the file when it is not what vhpc writes."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MalformedResult(f"unreadable result file ({detail})", file=str(path)) from None
    return check_result(data, file=str(path), workload=workload)


def check_result(data: Any, *, file: str, workload: str | None = None) -> list[dict[str, Any]]:
    """``data["rows"]`` when ``data`` has the generic shape (and passes the workload's column check)."""
    if not isinstance(data, dict):
        raise MalformedResult(f"expected a mapping with 'rows', got {_kind(data)}", file=file)
    rows = data.get("rows")
    if not isinstance(rows, list):
        raise MalformedResult(f"'rows' must be a list of rows, got {_kind(rows)}", file=file)
    check = COLUMN_CHECKS.get(workload or "")
    for index, row in enumerate(rows):
        where = f"rows[{index}]"
        if not isinstance(row, dict):
            raise MalformedResult(f"{where} must be a mapping of column to value, got {_kind(row)}", file=file)
        for column, value in row.items():
            if not isinstance(value, SCALARS):
                raise MalformedResult(f"{where}.{column} must be text, a number, true/false or null, "
                                      f"got {_kind(value)}", file=file)
            if isinstance(value, float) and math.isinf(value):
                raise MalformedResult(f"{where}.{column} is infinite", file=file)
        problems = check(row) if check else []
        if problems:
            raise MalformedResult(f"{where}: " + "; ".join(problems), file=file)
    return rows


def value_kind(value: Any) -> str | None:
    """``number``, ``text`` or ``boolean`` (None for a missing value): what a table column may mix only with None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "text"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"[:60]
