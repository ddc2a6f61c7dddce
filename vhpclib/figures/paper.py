"""The paper's artifacts as plotly figures, measured values beside the published ones.

Every builder takes analysis tables (``vhpclib.analysis``) plus, optionally, the
paper's numbers (``vhpclib.reference``; ``None`` means the reference dataset,
an empty DataFrame means no paper values).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..reference import PAPER_ENVIRONMENTS, load_reference, paper_label, paper_workload
from .style import (NOT_MEASURED, PAPER_MARKER, PLACEMENT_DASH, TEMPLATE, env_colour, error_bars, fmt,
                    labels_of, log2_axis, note_unmeasured, reference_or_default)

# ------------------------------------------------------------------ Table 2

def table2_figure(latency_table: pd.DataFrame, reference: pd.DataFrame | None = None
                  ) -> go.Figure:
    """Table 2 as a plotly Table: paper latency/ratio beside measured median [95 % CI].

    Measured labels the paper lacks (``local``...) are compared with the paper's BMM.
    """
    ref = reference_or_default(reference, "latency")
    lat = latency_table if latency_table is not None else pd.DataFrame()
    rows = []
    for _, r in ref.iterrows():
        hits = lat[(lat["label"].map(paper_label) == r["environment"])
                   & (lat["placement"] == r["placement"])] if len(lat) else lat
        if len(hits) == 0:
            rows.append([r["environment"], r["placement"], fmt(r["latency_usec"]),
                         fmt(r["ratio_to_intra_socket"]), NOT_MEASURED, "", ""])
        for _, m in hits.iterrows():
            rows.append(_t2row(m["label"], r, m))
    extra = lat[lat["label"].map(paper_label).isna()] if len(lat) else lat
    bmm = ref[ref["environment"] == "BMM"].set_index("placement") if len(ref) else None
    for _, m in extra.iterrows():
        r = bmm.loc[m["placement"]] if bmm is not None and m["placement"] in bmm.index else None
        rows.append(_t2row(f"{m['label']} (vs paper BMM)", r, m, m["placement"]))
    cols = list(zip(*rows)) if rows else [[]] * 7
    colours = [[env_colour(str(c).split(" ")[0]) for c in cols[0]]] if rows else None
    fig = go.Figure(go.Table(
        header=dict(values=["environment", "placement", "paper latency [usec]", "paper ratio",
                            "measured latency [usec] (95 % CI, n)", "measured ratio",
                            "measured / paper"],
                    fill_color="#f0f0f0", align="left", font=dict(size=12)),
        cells=dict(values=cols, align="left", height=30,
                   font=dict(color=colours or "#222", size=12)),
        columnwidth=[1.6, 1.2, 1.1, 0.9, 2.3, 1.0, 1.1]))
    fig.update_layout(template=TEMPLATE, title="Table 2: PingPong one-way latency (0 B)",
                      height=max(360, 140 + 33 * (len(rows) + 1)), margin=dict(b=50))
    note_unmeasured(fig, [e for e in PAPER_ENVIRONMENTS if e in set(ref.get("environment", []))],
                     labels_of(lat), y=0.01, yshift=0)
    return fig


def _t2row(env: str, r: pd.Series | None, m: pd.Series, placement: str | None = None) -> list:
    paper_lat = r["latency_usec"] if r is not None else np.nan
    ci = (f" [{fmt(m['latency_usec_ci_low'])}, {fmt(m['latency_usec_ci_high'])}]"
          if not np.isnan(m.get("latency_usec_ci_low", np.nan)) else "")
    return [env, placement or r["placement"], fmt(paper_lat),
            fmt(r["ratio_to_intra_socket"]) if r is not None else "",
            f"{fmt(m['latency_usec'])}{ci}, n={int(m['n'])}", fmt(m["ratio_to_intra_socket"]),
            fmt(m["latency_usec"] / paper_lat)]


# ------------------------------------------------------------------ Figure 2

def figure2_throughput(curves: pd.DataFrame, reference_peaks: pd.DataFrame | None = None
                       ) -> go.Figure:
    """Figure 2: PingPong throughput [GB/s] vs message size (log2 axis), paper peaks dashed."""
    ref = reference_or_default(reference_peaks, "throughput_peak")
    fig = go.Figure()
    curves = curves if curves is not None else pd.DataFrame()
    for (label, placement), grp in (curves.groupby(["label", "placement"], sort=False)
                                    if len(curves) else []):
        grp = grp.sort_values("bytes")
        fig.add_trace(go.Scatter(
            x=grp["bytes"], y=grp["gbytes_per_sec"], mode="lines+markers",
            name=f"{label} {placement}", legendgroup=label,
            line=dict(color=env_colour(label), dash=PLACEMENT_DASH.get(placement, "dashdot")),
            marker=dict(size=5), error_y=error_bars(grp, "gbytes_per_sec")))
    sizes = list(curves["bytes"]) if len(curves) else [1, 1 << 30]
    xmin, xmax = min(s for s in sizes if s > 0), max(sizes)
    for _, r in ref.iterrows():
        qual = f"{r['qualifier']} " if r.get("qualifier") else ""
        fig.add_trace(go.Scatter(
            x=[xmin, xmax], y=[r["peak_gbytes_per_sec"]] * 2, mode="lines+markers",
            name=f"paper {r['environment']} {r['placement']} peak ({qual}"
                 f"{r['peak_gbytes_per_sec']} GB/s)",
            legendgroup="paper", opacity=0.7,
            line=dict(color=env_colour(r["environment"]), width=1,
                      dash=PLACEMENT_DASH.get(r["placement"], "dash")),
            marker=dict(**PAPER_MARKER, color=env_colour(r["environment"]), maxdisplayed=2)))
    # The paper's interconnect ceilings (text of Figure 2): the link's data rate and raw verbs.
    claims = load_reference("claims").set_index("claim_id")
    for claim, text in (("ib_qdr_data_rate", "paper: InfiniBand QDR data rate"),
                        ("raw_verbs_peak", "paper: raw IB verbs peak")):
        if claim in claims.index:
            value = float(claims.loc[claim, "value"])
            fig.add_trace(go.Scatter(x=[xmin, xmax], y=[value, value], mode="lines",
                                     name=f"{text} ({value:g} GB/s)", legendgroup="paper", opacity=0.5,
                                     line=dict(color="#888888", width=1, dash="dot")))
    fig.update_layout(template=TEMPLATE, title="Figure 2: PingPong throughput vs message size",
                      xaxis=dict(title="message size [bytes]",
                                 **log2_axis([xmin, xmax], step=4, bytes_labels=True)),
                      yaxis=dict(title="throughput [GB/s] (10^9 B/s)", rangemode="tozero"),
                      legend=dict(font=dict(size=10)))
    note_unmeasured(fig, list(dict.fromkeys(ref["environment"])) if len(ref) else [],
                     labels_of(curves))
    return fig


# ------------------------------------------------------------------ Table 3

def table3_figure(overhead_table: pd.DataFrame, reference: pd.DataFrame | None = None,
                  stated: pd.DataFrame | None = None) -> go.Figure:
    """Table 3: single-node wall time (log scale) and overhead vs baseline, with 95 % CIs.

    ``reference`` is the paper's single_node table, ``stated`` its overheads; both
    default to the reference dataset and are drawn as hollow diamonds. Measured
    ``blockss`` sits at the paper's Bloss.
    """
    ref = reference_or_default(reference, "single_node")
    st = reference_or_default(stated, "overhead_stated")
    ov = overhead_table if overhead_table is not None else pd.DataFrame()
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("wall-clock time, one node [s]",
                                        "overhead vs baseline [%]"))
    for label, grp in (ov.groupby("label", sort=False) if len(ov) else []):
        x = grp["workload"].map(paper_workload)
        base = grp["baseline"].iloc[0] if "baseline" in grp else ""
        fig.add_trace(go.Bar(x=x, y=grp["time_s"], name=f"{label}", legendgroup=label,
                             marker_color=env_colour(label), error_y=error_bars(grp, "time_s"),
                             hovertext=grp["problem"].astype(str)), row=1, col=1)
        fig.add_trace(go.Bar(x=x, y=grp["overhead_pct"], name=f"{label} vs {base}",
                             legendgroup=label, showlegend=False, marker_color=env_colour(label),
                             error_y=error_bars(grp, "overhead_pct")), row=1, col=2)
    for env, grp in (ref.groupby("environment", sort=False) if len(ref) else []):
        fig.add_trace(go.Scatter(x=grp["workload"], y=grp["time_s"], mode="markers",
                                 name=f"paper {env}", legendgroup=f"paper {env}",
                                 marker=dict(**PAPER_MARKER, color=env_colour(env))), row=1, col=1)
    for env, grp in (st.groupby("environment", sort=False) if len(st) else []):
        fig.add_trace(go.Scatter(x=grp["workload"], y=grp["overhead_pct"], mode="markers",
                                 name=f"paper {env} overhead vs BMM", legendgroup=f"paper {env}",
                                 showlegend=False,
                                 marker=dict(**PAPER_MARKER, color=env_colour(env))), row=1, col=2)
    present = set(ref.get("workload", [])) | set(ov["workload"].map(paper_workload) if len(ov) else [])
    order = [w for w in ("SP-MZ", "BT-MZ", "LU-MZ", "Bloss") if w in present]
    order += sorted(present - set(order))
    fig.update_xaxes(categoryorder="array", categoryarray=order)
    fig.update_yaxes(type="log", title_text="time [s] (log)", row=1, col=1)
    fig.update_yaxes(title_text="overhead [%]", zeroline=True, zerolinecolor="#888", row=1, col=2)
    fig.update_layout(template=TEMPLATE, barmode="group",
                      title="Table 3: single-node wall time and virtualization overhead")
    note_unmeasured(fig, list(dict.fromkeys(ref["environment"])) if len(ref) else [],
                     labels_of(ov))
    return fig


# ------------------------------------------------------------------ Figures 3 and 4

def _paper_eff(fig: go.Figure, ref: pd.DataFrame, workload: str, row: int, col: int,
               first: set[str]) -> None:
    for _, r in ref[ref["workload"] == workload].iterrows():
        env = r["environment"]
        fig.add_trace(go.Scatter(x=[r["nprocs"]], y=[r["efficiency_pct"]], mode="markers",
                                 name=f"paper {env} ({r['nodes']} nodes)",
                                 legendgroup=f"paper {env}", showlegend=env not in first,
                                 marker=dict(**PAPER_MARKER, color=env_colour(env)),
                                 hovertemplate=f"paper {env}: %{{y}} % at %{{x}} processes"
                                               "<extra></extra>"), row=row, col=col)
        first.add(env)


def figure3_npb(efficiency: pd.DataFrame, performance: pd.DataFrame,
                reference: pd.DataFrame | None = None) -> go.Figure:
    """Figure 3: NPB-MZ performance (top) and parallel efficiency (bottom), SP-MZ and BT-MZ.

    Performance is Mop/s when the table has ``mops_total``, else runs per hour.
    The paper's 16-node efficiencies are hollow diamonds.
    """
    ref = reference_or_default(reference, "efficiency")
    eff = efficiency if efficiency is not None else pd.DataFrame()
    perf = performance if performance is not None else pd.DataFrame()
    use_mops = "mops_total" in perf and perf["mops_total"].notna().any()
    pcol, punit = ("mops_total", "Mop/s") if use_mops else ("runs_per_hour", "runs per hour")
    workloads = ["SP-MZ", "BT-MZ"]
    fig = make_subplots(rows=2, cols=2, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=[f"{w} performance [{punit}]" for w in workloads]
                        + [f"{w} parallel efficiency [%]" for w in workloads])
    seen: set[str] = set()
    paper_seen: set[str] = set()
    xs: list[float] = list(ref["nprocs"]) if len(ref) else []
    for c, w in enumerate(workloads, start=1):
        for label, grp in (perf[perf["workload"] == w].groupby("label", sort=False)
                           if len(perf) else []):
            grp = grp.sort_values("nprocs")
            xs += list(grp["nprocs"])
            fig.add_trace(go.Scatter(x=grp["nprocs"], y=grp[pcol], mode="lines+markers",
                                     name=label, legendgroup=label, showlegend=label not in seen,
                                     line=dict(color=env_colour(label)),
                                     error_y=error_bars(grp, pcol)), row=1, col=c)
            seen.add(label)
        for label, grp in (eff[eff["workload"] == w].groupby("label", sort=False)
                           if len(eff) else []):
            grp = grp.sort_values("nprocs")
            fig.add_trace(go.Scatter(x=grp["nprocs"], y=grp["efficiency_pct"],
                                     mode="lines+markers", name=label, legendgroup=label,
                                     showlegend=label not in seen,
                                     line=dict(color=env_colour(label)),
                                     error_y=error_bars(grp, "efficiency_pct")), row=2, col=c)
            seen.add(label)
        _paper_eff(fig, ref, w, 2, c, paper_seen)
    axis = log2_axis(xs or [4, 64])
    lo, hi = np.log10(min(xs or [4])), np.log10(max(xs or [64]))
    fig.update_xaxes(**axis, range=[lo - 0.1, hi + 0.1])
    for r, frame in ((1, perf), (2, eff)):
        for c, w in enumerate(workloads, start=1):
            if not len(frame) or not (frame["workload"] == w).any():
                # an invisible point so plotly draws this panel's axes at all
                fig.add_trace(go.Scatter(x=[min(xs or [4])], y=[0], mode="markers",
                                         marker=dict(opacity=0), showlegend=False,
                                         hoverinfo="skip"), row=r, col=c)
                fig.add_annotation(text=NOT_MEASURED, xref="x domain", yref="y domain",
                                   x=0.5, y=0.5, showarrow=False, row=r, col=c,
                                   font=dict(size=13, color="#777"))
    fig.update_xaxes(title_text="MPI processes (paper: x 2 OpenMP threads each)", row=2)
    fig.update_yaxes(rangemode="tozero", row=1)
    fig.update_yaxes(range=[0, 115], row=2)
    fig.update_layout(template=TEMPLATE, height=700,
                      title="Figure 3: NPB-MZ class C performance and parallel efficiency")
    note_unmeasured(fig, [e for e in PAPER_ENVIRONMENTS
                           if len(ref) and e in set(ref[ref["workload"].isin(workloads)]
                                                    ["environment"])],
                     labels_of(eff[eff["workload"].isin(workloads)]) if len(eff) else [],
                     yshift=-58)
    return fig


def figure4_blockss(efficiency: pd.DataFrame, ideal: pd.DataFrame,
                    reference: pd.DataFrame | None = None) -> go.Figure:
    """Figure 4: blockss (Bloss) efficiency vs processes, each ideal curve dashed, paper points."""
    ref = reference_or_default(reference, "efficiency")
    ref = ref[ref["workload"] == "Bloss"] if len(ref) else ref
    eff = efficiency if efficiency is not None else pd.DataFrame()
    eff = eff[eff["workload"].map(paper_workload) == "Bloss"] if len(eff) else eff
    ideal = ideal if ideal is not None else pd.DataFrame()
    fig = go.Figure()
    xs: list[float] = list(ref["nprocs"]) if len(ref) else [2, 32]
    for label, grp in (eff.groupby("label", sort=False) if len(eff) else []):
        grp = grp.sort_values("nprocs")
        xs += list(grp["nprocs"])
        fig.add_trace(go.Scatter(x=grp["nprocs"], y=grp["efficiency_pct"], mode="lines+markers",
                                 name=label, legendgroup=label, line=dict(color=env_colour(label)),
                                 error_y=error_bars(grp, "efficiency_pct")))
    for label, grp in (ideal.groupby("label", sort=False) if len(ideal) else []):
        grp = grp.sort_values("nprocs")
        fig.add_trace(go.Scatter(x=grp["nprocs"], y=grp["efficiency_ideal_pct"], mode="lines",
                                 name=f"{label} ideal (duplicated work)", legendgroup=label,
                                 line=dict(color=env_colour(label), dash="dash")))
    for _, r in ref.iterrows():
        env = r["environment"]
        fig.add_trace(go.Scatter(x=[r["nprocs"]], y=[r["efficiency_pct"]], mode="markers",
                                 name=f"paper {env} ({r['nodes']} nodes)",
                                 legendgroup=f"paper {env}",
                                 marker=dict(**PAPER_MARKER, color=env_colour(env))))
    fig.update_layout(template=TEMPLATE,
                      title="Figure 4: blockss (paper: Bloss) parallel efficiency",
                      xaxis=dict(title="MPI processes (paper: x 4 OpenMP threads each)", **log2_axis(xs)),
                      yaxis=dict(title="parallel efficiency [%]", range=[0, 115]))
    note_unmeasured(fig, list(dict.fromkeys(ref["environment"])) if len(ref) else [],
                     labels_of(eff))
    return fig


# ------------------------------------------------------------------ Section 2.3

def section23_io(reference: pd.DataFrame | None = None) -> go.Figure:
    """Section 2.3: MPI throughput of a 1 GB message on 10 GbE (paper values only)."""
    ref = reference_or_default(reference, "io_10gbe")
    fig = go.Figure(go.Bar(
        x=ref["configuration"], y=ref["throughput_mbytes_per_sec"],
        marker=dict(color=[env_colour(e) for e in ref["environment"]],
                    pattern=dict(shape="/", fillmode="overlay", fgcolor="white", size=6)),
        text=[f"{v:.1f}" for v in ref["throughput_mbytes_per_sec"]], textposition="outside",
        name="paper", showlegend=True))
    fig.update_layout(template=TEMPLATE,
                      title="Section 2.3: MPI throughput over 10 GbE, 1 GB message (paper)",
                      yaxis=dict(title="throughput [MB/s]", rangemode="tozero"),
                      xaxis=dict(title="configuration"))
    fig.add_annotation(text=f"paper values only: 10 GbE IO virtualization {NOT_MEASURED}",
                       xref="paper", yref="paper", x=0, y=1, yshift=8, showarrow=False,
                       xanchor="left", yanchor="bottom", font=dict(size=12, color="#555"))
    return fig
