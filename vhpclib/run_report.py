"""What `vhpc run` says around a stage: the campaign first, the command that resumes it when interrupted, a
short result table at the end (per point: median, interval with its coverage, n, against the baseline), and
whether the stage got the valid runs it planned.

Like ReFrame's closing performance report: the numbers are there when the command ends, before any figure.
"""

from __future__ import annotations

import shlex
import warnings
from collections.abc import Sequence
from typing import Any

from .median_coverage import interval_label


def resume_command(argv: Sequence[str], campaign: str) -> str:
    """The command line that resumes this call in ``campaign`` (``--campaign`` set, or replaced)."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--campaign", "-c"):
            skip = True
            continue
        if arg.startswith("--campaign="):
            continue
        args.append(arg)
    stage_at = next((i for i, a in enumerate(args) if a in ("microbench", "single-node", "scaling")), len(args) - 1)
    args[stage_at + 1:stage_at + 1] = ["--campaign", campaign]
    return shlex.join(["vhpc", *args])


def shortfall(result: Any, stage: str, campaign: str) -> str:
    """One sentence when the stage ended without the valid runs it planned (invalid runs count as not done)."""
    invalid = len(result.invalid) + sum(len(sub.invalid) for sub in result.environments.values())
    if not invalid:
        return ""
    valid = len(result.runs) + sum(len(sub.runs) for sub in result.environments.values())
    return (f"{invalid} planned run(s) are not valid ({valid} valid): the stage is not complete; measure them "
            f"again with: vhpc run {stage} --campaign {shlex.quote(campaign)} --rerun (reasons above; "
            f"vhpc campaigns show {shlex.quote(campaign)})")


def _fmt(x: float) -> str:
    return "" if x != x else f"{x:.4g}"


def result_table(campaign: str, stage: str, environment: str) -> list[str]:
    """Lines of a short table of ``environment``'s results in ``stage``: per point the median, its interval with
    the true coverage, n, and the overhead against the campaign's baseline (when there is another one)."""
    from . import analysis
    from .overview import format_table
    from .tables import read_table_or_empty

    baseline = analysis.baseline_of(read_table_or_empty(campaign, "environments"))
    rows: list[list[str]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what was left out is listed above the table (invalid runs, warm-up)
        if stage == "microbench":
            micro = read_table_or_empty(campaign, "microbench")
            lat = analysis.latency_table(micro) if len(micro) else micro
            base = lat[lat["environment"] == baseline].set_index("placement") if len(lat) else lat
            for _, r in (lat[lat["environment"] == environment].iterrows() if len(lat) else []):
                vs = ""
                if baseline and baseline != environment and r["placement"] in base.index:
                    vs = f"x {r['latency_usec'] / base.loc[r['placement'], 'latency_usec']:.3g} ({baseline})"
                rows.append([f"PingPong 0 B, {r['placement']}", f"{_fmt(r['latency_usec'])} usec",
                             _interval(r, "latency_usec"), str(int(r["n"])), vs])
        else:
            apps = read_table_or_empty(campaign, "apps")
            apps = apps[apps["stage"] == stage] if len(apps) else apps
            if len(apps):
                ov = analysis.overhead_table(apps, baseline or environment, stage=stage)
                for _, r in ov[ov["environment"] == environment].iterrows():
                    vs = ""
                    if baseline and baseline != environment and r["overhead_pct"] == r["overhead_pct"]:
                        ci = (f" [{r['overhead_pct_ci_low']:+.1f}, {r['overhead_pct_ci_high']:+.1f}]"
                              if r["overhead_pct_ci_low"] == r["overhead_pct_ci_low"] else " (no interval)")
                        vs = f"{r['overhead_pct']:+.1f} %{ci} vs {baseline}"
                    rows.append([f"{r['workload']} {r['problem']}, {int(r['nprocs'])} x {int(r['threads_per_proc'])}",
                                 f"{_fmt(r['time_s'])} s", _interval(r, "time_s"), str(int(r["n"])), vs])
    if not rows:
        return []
    table = format_table(["point", "median", "interval (coverage)", "n", "against the baseline"], rows)
    return [f"results of {environment} in {stage}:", *table.splitlines()]


def _interval(r: Any, col: str) -> str:
    lo, hi, n = r[f"{col}_ci_low"], r[f"{col}_ci_high"], int(r["n"])
    if lo != lo:
        return interval_label(n)
    return f"[{_fmt(lo)}, {_fmt(hi)}] ({interval_label(n)})"
