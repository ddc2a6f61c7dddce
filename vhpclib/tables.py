"""Raw runs -> tidy tables under ``data/processed/<campaign>/`` (always regenerable from raw)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from . import paths
from .exceptions import ParseError
from .parsers import ParseWarning, get_parser
from .store import COMPLETE, INVALID, SKIPPED, RawStore, RunRecord

MICROBENCH_COLUMNS = ["campaign", "environment", "label", "placement", "run_id", "repetition", "benchmark",
                      "nprocs", "bytes", "repetitions", "t_min_usec", "t_max_usec", "t_avg_usec",
                      "mbytes_per_sec", "msgs_per_sec", "status"]
SKIPPED_COLUMNS = ["campaign", "environment", "label", "stage", "placement", "reason"]


def _label(record: RunRecord) -> str:
    return record.record.get("environment_spec", {}).get("label") or record.record["environment"]


def microbench_table(campaign: str, *, store: RawStore | None = None, environments: Iterable[str] | None = None
                     ) -> tuple[pd.DataFrame, pd.DataFrame, list[ParseWarning]]:
    """PingPong rows of every run of a campaign, the skipped placements, and parse warnings."""
    store = store or RawStore()
    imb = get_parser("imb")
    rows, skipped, warnings = [], [], []
    wanted = set(environments) if environments else None
    for run in store.runs(campaign, None, "microbench"):
        rec = run.record
        if wanted and rec["environment"] not in wanted:
            continue
        placement = rec.get("placement", {}).get("name")
        if run.status == SKIPPED:
            skipped.append({"campaign": campaign, "environment": rec["environment"], "label": _label(run),
                            "stage": "microbench", "placement": placement, "reason": rec.get("reason", "")})
            continue
        if run.status not in (COMPLETE, INVALID):
            continue
        file = str(run.stdout_path.relative_to(paths.PROJECT_ROOT)) if run.stdout_path.is_relative_to(
            paths.PROJECT_ROOT) else str(run.stdout_path)
        try:
            parsed = imb.parse(run.stdout(), file)
        except ParseError as exc:
            warnings.append(ParseWarning(file, exc.line, exc.message))
            continue
        warnings.extend(parsed.warnings)
        for r in parsed.records:
            if r["benchmark"] != "PingPong":
                continue
            rows.append({"campaign": campaign, "environment": rec["environment"], "label": _label(run),
                         "placement": placement, "run_id": run.run_id, "repetition": rec.get("repetition"),
                         **{k: r.get(k) for k in MICROBENCH_COLUMNS if k in r}, "status": run.status})
    table = pd.DataFrame(rows, columns=MICROBENCH_COLUMNS)
    return table, pd.DataFrame(skipped, columns=SKIPPED_COLUMNS), warnings


def write_table(campaign: str, name: str, table: pd.DataFrame) -> Path:
    """Write a derived table atomically (a reader never sees half a file)."""
    out = paths.processed_dir(campaign) / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, out)
    return out


def read_table(campaign: str, name: str) -> pd.DataFrame:
    return pd.read_csv(paths.processed_dir(campaign) / f"{name}.csv")
