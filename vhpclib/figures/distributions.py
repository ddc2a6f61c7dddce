"""Distributions, not only medians: every run per environment, beside the median and its interval.

Hoefler & Belli (SC15) ask to show the variability of measurements, not a single
number. One panel per placement (0-byte PingPong latency) or per workload point
(single-node wall time); in each, one violin with every run as a point per
environment, the median with its distribution-free interval (its true coverage in
the subtitle) as a black diamond, and the warm-up runs the one warm-up rule
(``analysis.WARMUP_RULE``) leaves out of every statistic as crosses (they stay in
the raw store and are drawn, not hidden). Runs the interference rule excludes
(``analysis.interference_rule``) are drawn as open triangles; every run's hover says how
much of the machine other processes used while it ran.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import stats
from ..analysis import PLACEMENTS
from ..median_coverage import interval_label
from ..names import Stage
from .style import NOT_MEASURED, TEMPLATE, env_colour

MEDIAN_NAME = "median with its interval"
WARMUP_MARKER = dict(symbol="x-thin-open", size=10, line=dict(width=2), color="#555")
INTERFERED_MARKER = dict(symbol="triangle-up-open", size=10, line=dict(width=2), color="#B2182B")


def latency_distribution(micro: pd.DataFrame) -> go.Figure:
    """0-byte PingPong latency of every complete run, per placement and environment."""
    rows = micro[(micro["status"] == "complete") & (micro["benchmark"] == "PingPong") & (micro["bytes"] == 0)] \
        if len(micro) else micro
    rows = rows.assign(panel=rows["placement"]) if len(rows) else rows
    order = [p for p in PLACEMENTS if len(rows) and p in set(rows["panel"])]
    order += sorted(set(rows["panel"]) - set(order)) if len(rows) else []
    return _figure(rows, order, "t_avg_usec", "one-way latency [usec]",
                   "PingPong 0-byte latency, every run")


def wall_time_distribution(apps: pd.DataFrame, stage: str = Stage.SINGLE_NODE) -> go.Figure:
    """Wall time of every verified run of ``stage``, per workload point and environment."""
    ok = apps[(apps["stage"] == stage) & apps["verified"].astype("boolean").fillna(False).astype(bool)
              & apps["time_s"].notna()] if len(apps) else apps
    if len(ok):
        ok = ok.assign(panel=ok["workload"].astype(str) + " " + ok["problem"].astype(str) + " p="
                       + ok["nprocs"].astype(str) + " t=" + ok["threads_per_proc"].astype(str))
    order = sorted(set(ok["panel"])) if len(ok) else []
    return _figure(ok, order, "time_s", "wall time [s]",
                   f"{stage} wall time, every run")


def _figure(rows: pd.DataFrame, panels: list[str], value: str, unit: str, title: str) -> go.Figure:
    if not panels:
        fig = go.Figure()
        fig.add_annotation(text=f"{NOT_MEASURED}: no runs yet", x=0.5, y=0.5, xref="paper", yref="paper",
                           showarrow=False, font=dict(size=14, color="#555"))
        fig.update_layout(template=TEMPLATE, title=title, height=360, xaxis_visible=False, yaxis_visible=False)
        return fig
    rows = stats.mark_warmup(rows, ["environment", "panel"], value)
    rows = _mark_interfered(rows)
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels, horizontal_spacing=0.08)
    legend: set[str] = set()
    intervals: set[str] = set()
    for col, panel in enumerate(panels, start=1):
        mine = rows[rows["panel"] == panel]
        for label, runs in mine.groupby("label", sort=True):
            _environment(fig, str(label), runs, value, col, legend, intervals)
        fig.update_yaxes(title_text=unit if col == 1 else None, row=1, col=col)
    fig.update_layout(template=TEMPLATE, title=title, height=460, width=max(520, 380 * len(panels)),
                      violingap=0.3, legend=dict(orientation="h", y=-0.18))
    # the true coverage of each interval (n after the warm-up), as every table and figure states it
    lines = ["intervals of the median:", *sorted(intervals)]
    fig.update_layout(title=dict(subtitle=dict(text="<br>".join(lines), font=dict(size=12, color="#555"))),
                      margin=dict(t=88 + 16 * len(lines)), height=460 + 16 * len(lines))
    return fig


def _mark_interfered(rows: pd.DataFrame) -> pd.DataFrame:
    """Columns ``interfered`` (excluded by the interference rule) and ``others`` (hover text)."""
    import warnings

    from ..analysis import interference_rule

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tables and the report name the excluded runs
        excluded = set(interference_rule(rows).excluded.index)
    share = pd.to_numeric(rows["other_share"], errors="coerce") if "other_share" in rows else \
        pd.Series(float("nan"), index=rows.index)
    others = ["other processes: not recorded" if v != v else f"other processes: {100 * v:.0f} % of the machine"
              for v in share]
    return rows.assign(interfered=rows.index.isin(excluded), others=others)


def _environment(fig: go.Figure, label: str, runs: pd.DataFrame, value: str, col: int, legend: set[str],
                 intervals: set[str]) -> None:
    hit = runs[runs["interfered"] & ~runs["warmup"]]
    runs = runs[~runs["interfered"] | runs["warmup"]]
    kept, warm = runs[~runs["warmup"]], runs[runs["warmup"]]
    colour = env_colour(label)
    fig.add_trace(go.Violin(
        x=[label] * len(kept), y=kept[value], name=label, legendgroup=label, showlegend=label not in legend,
        line_color=colour, fillcolor=_translucent(colour), points="all", pointpos=0, jitter=0.35,
        marker=dict(size=7, color=colour, line=dict(width=1, color="white")), box_visible=False,
        meanline_visible=False,
        spanmode="hard", customdata=kept[["run_id", "others"]],
        hovertemplate="%{customdata[0]}: %{y}<br>%{customdata[1]}<extra></extra>"),
        row=1, col=col)
    legend.add(label)
    if len(hit):
        fig.add_trace(go.Scatter(
            x=[label] * len(hit), y=hit[value], mode="markers", name="excluded: interference", legendgroup="intf",
            showlegend="intf" not in legend, marker=INTERFERED_MARKER, customdata=hit[["run_id", "others"]],
            hovertemplate="%{customdata[0]} (excluded): %{y}<br>%{customdata[1]}<extra></extra>"), row=1, col=col)
        legend.add("intf")
    interval = stats.median_interval(kept[value])
    if interval.n:
        has_ci = interval.low == interval.low  # NaN when too few runs for an interval
        fig.add_trace(go.Scatter(
            x=[label], y=[interval.estimate], mode="markers", name=MEDIAN_NAME, legendgroup="median",
            showlegend="median" not in legend, marker=dict(symbol="diamond", size=11, color="black"),
            error_y=dict(type="data", symmetric=False, array=[interval.high - interval.estimate],
                         arrayminus=[interval.estimate - interval.low], thickness=1.5, width=8) if has_ci else None,
            hovertemplate=f"median %{{y}} (n={interval.n}; {interval_label(interval.n)})<extra></extra>"),
            row=1, col=col)
        legend.add("median")
        intervals.add(f"{label}: n = {interval.n}, {interval_label(interval.n)}")
    if len(warm):
        fig.add_trace(go.Scatter(
            x=[label] * len(warm), y=warm[value], mode="markers", name="warm-up (left out)", legendgroup="warmup",
            showlegend="warmup" not in legend, marker=WARMUP_MARKER, customdata=warm[["run_id"]],
            hovertemplate="%{customdata[0]} (warm-up): %{y}<extra></extra>"), row=1, col=col)
        legend.add("warmup")


def _translucent(colour: str, alpha: float = 0.22) -> str:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
