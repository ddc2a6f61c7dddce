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
    rows, warnings = [], []
    wanted = set(environments) if environments else None
    for run in store.runs(campaign, None, "microbench"):
        rec = run.record
        if wanted and rec["environment"] not in wanted:
            continue
        placement = rec.get("placement", {}).get("name")
        if run.status not in (COMPLETE, INVALID):
            continue
        file = _display_path(run.stdout_path)
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
    skipped = skipped_runs(campaign, store=store)
    if wanted:
        skipped = skipped[skipped["environment"].isin(wanted)]
    return table, skipped, warnings


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


APPS_COLUMNS = ["campaign", "environment", "label", "stage", "workload", "problem", "nprocs", "threads_per_proc",
                "nodes", "repetition", "run_id", "time_s", "wall_s", "verified", "setup_s", "solve_s", "wait_s",
                "reduce_s", "extract_s",
                "mops_total", "status"]
_WORKLOAD_NAMES = {"sp-mz": "SP-MZ", "bt-mz": "BT-MZ", "lu-mz": "LU-MZ", "mz-demo": "MZ-DEMO",
                   "blockss": "blockss"}


def apps_table(campaign: str, *, store: RawStore | None = None) -> tuple[pd.DataFrame, list[ParseWarning]]:
    """One row per application run (single-node and scaling stages) of a campaign."""
    from .stages.apps import parser_for

    store = store or RawStore()
    rows, warnings = [], []
    for stage in ("single-node", "scaling"):
        for run in store.runs(campaign, None, stage):
            rec = run.record
            if run.status not in (COMPLETE, INVALID):
                continue
            app_run = rec.get("app_run", {})
            workload = app_run.get("workload", rec.get("workload", ""))
            file = _display_path(run.stdout_path)
            try:
                parsed = get_parser(parser_for(workload)).parse(run.stdout(), file)
            except ParseError as exc:
                warnings.append(ParseWarning(file, exc.line, exc.message))
                continue
            warnings.extend(parsed.warnings)
            r = parsed.records[0]
            rows.append({
                "campaign": campaign, "environment": rec["environment"], "label": _label(run), "stage": stage,
                "workload": _WORKLOAD_NAMES.get(workload, workload), "problem": app_run.get("problem"),
                "nprocs": app_run.get("processes"), "threads_per_proc": app_run.get("threads"),
                "nodes": -(-app_run.get("processes", 1) // app_run.get("ppn", 1)),
                "repetition": rec.get("repetition"), "run_id": run.run_id, "time_s": r.get("time_s"),
                "wall_s": rec.get("duration_s"), "verified": bool(r.get("verified")) and run.status == COMPLETE,
                "setup_s": r.get("setup_s"), "solve_s": r.get("solve_s"), "wait_s": r.get("wait_s"),
                "reduce_s": r.get("reduce_s"), "extract_s": r.get("extract_s"),
                "mops_total": r.get("mops_total"), "status": run.status})
    return pd.DataFrame(rows, columns=APPS_COLUMNS), warnings


def skipped_runs(campaign: str, *, store: RawStore | None = None) -> pd.DataFrame:
    """Every skip recorded in a campaign (placements, workloads), with its reason."""
    store = store or RawStore()
    rows = [{"campaign": campaign, "environment": r.record["environment"], "label": _label(r),
             "stage": r.record["stage"], "placement": r.record.get("placement", {}).get("name")
             or r.record.get("what"), "reason": r.record.get("reason", "")}
            for r in store.runs(campaign) if r.status == SKIPPED]
    return pd.DataFrame(rows, columns=SKIPPED_COLUMNS)


def _display_path(path: Path) -> str:
    return str(path.relative_to(paths.PROJECT_ROOT)) if path.is_relative_to(paths.PROJECT_ROOT) else str(path)
