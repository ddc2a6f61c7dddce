"""The paper's artifacts as plotly figures, measured values beside the published ones.

Every builder takes analysis tables (``vhpclib.analysis``) plus, optionally, the
paper's numbers (``vhpclib.reference``; ``None`` means the reference dataset,
an empty DataFrame means no paper values). Paper values are drawn only where
the paper gives them: markers at the process counts it measured, labelled
annotations for the peaks it states without a message size. Every measured
figure says in its subtitle how many runs each value is the median of and what
its error bars cover (``stats_note``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis import coverage_text, interval_label, order_statistic_ci
from ..reference import PAPER_ENVIRONMENTS, load_reference, paper_label, paper_workload
from .export import WIDTH
from .style import (NOT_MEASURED, PAPER_MARKER, PLACEMENT_DASH, TEMPLATE, aa_name, env_colour, error_bars, fmt,
                    labels_of, log2_axis, log10_axis, note_unmeasured, reference_or_default, table_height)

NPB_PAPER_CLASS = "C"
NPB_PAPER_THREADS = 2
BLOSS_PAPER_THREADS = 4
#: How to measure what Figure 3 lacks (NPB-MZ builds first; see `vhpc npb --help`).
NPB_HOWTO = "vhpc run scaling --workload npb --campaign <this campaign>"
LABEL_ROW_PX = 15  # height of one line of a 10 px annotation, with its gap


def stats_note(*frames: pd.DataFrame | None, what: str = "point", bars: str = "") -> str:
    """'median of n = 6 runs per point; error bars: min–max, 96.8 % coverage' from the frames' ``n`` column."""
    ns = sorted({int(n) for f in frames if f is not None and len(f) and "n" in f for n in f["n"].dropna()})
    if not ns:
        return ""
    count = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
    labels = list(dict.fromkeys(interval_label(n) for n in ns))
    return f"median of {count} runs per {what}; error bars: {bars or '; '.join(labels)}"


def _subtitle(fig: go.Figure, text: str) -> None:
    if text:
        fig.update_layout(title=dict(subtitle=dict(text=text, font=dict(size=12, color="#555"))))


def _interval(m: pd.Series, col: str) -> str:
    lo, hi = m.get(f"{col}_ci_low", np.nan), m.get(f"{col}_ci_high", np.nan)
    return "" if pd.isna(lo) or pd.isna(hi) else f" [{fmt(lo)}, {fmt(hi)}]"


def _threads_text(frame: pd.DataFrame) -> str:
    threads = sorted({int(t) for t in frame.get("threads_per_proc", pd.Series(dtype=float)).dropna()})
    if not threads:
        return ""
    text = "/".join(str(t) for t in threads)
    return f"{text} OpenMP thread{'s' if threads != [1] else ''} each"


# ------------------------------------------------------------------ Table 2

T2_WIDTH = 1100
T2_HEADER = ["environment", "placement", "paper latency [usec]", "paper ratio",
             "measured latency [usec] [interval]", "interval (coverage)", "n", "measured ratio", "measured / paper"]


def table2_figure(latency_table: pd.DataFrame, reference: pd.DataFrame | None = None
                  ) -> go.Figure:
    """Table 2 as a plotly Table: paper latency/ratio beside the measured median, its interval and n.

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
                         fmt(r["ratio_to_intra_socket"]), NOT_MEASURED, "", "", "", ""])
        for _, m in hits.iterrows():
            rows.append(_t2row(m["label"], r, m))
    extra = lat[lat["label"].map(paper_label).isna()] if len(lat) else lat
    bmm = ref[ref["environment"] == "BMM"].set_index("placement") if len(ref) else None
    for _, m in extra.iterrows():
        r = bmm.loc[m["placement"]] if bmm is not None and m["placement"] in bmm.index else None
        rows.append(_t2row(f"{m['label']} (vs paper BMM)", r, m, m["placement"]))
    cols = list(zip(*rows)) if rows else [[]] * len(T2_HEADER)
    colours = [[env_colour(str(c).split(" ")[0]) for c in cols[0]]] if rows else None
    widths = [2.2, 1.1, 0.9, 0.8, 1.7, 1.3, 0.4, 0.9, 0.9]
    margin = dict(l=20, r=20, t=80, b=40)
    # sized to its rows: a plotly table scrolls what exceeds its box, and a static export cuts it off
    # tall enough at the static width and in the report's narrower column (where cells wrap more)
    body = max(table_height(T2_HEADER, cols, widths, w - margin["l"] - margin["r"]) for w in (T2_WIDTH, WIDTH))
    fig = go.Figure(go.Table(
        header=dict(values=T2_HEADER, fill_color="#f0f0f0", align="left", font=dict(size=12)),
        cells=dict(values=cols, align="left", height=30, font=dict(color=colours or "#222", size=12)),
        columnwidth=widths))
    fig.update_layout(template=TEMPLATE, title="Table 2: PingPong one-way latency (0 B)",
                      meta=dict(static_width=T2_WIDTH), height=int(margin["t"] + body + margin["b"]), margin=margin)
    _subtitle(fig, stats_note(lat, what="value", bars="the interval column") if len(lat) else "")
    note_unmeasured(fig, [e for e in PAPER_ENVIRONMENTS if e in set(ref.get("environment", []))],
                     labels_of(lat), y=0, yshift=-6)
    return fig


def _t2row(env: str, r: pd.Series | None, m: pd.Series, placement: str | None = None) -> list:
    paper_lat = r["latency_usec"] if r is not None else np.nan
    n = int(m["n"])
    return [env, placement or r["placement"], fmt(paper_lat),
            fmt(r["ratio_to_intra_socket"]) if r is not None else "",
            f"{fmt(m['latency_usec'])}{_interval(m, 'latency_usec')}", interval_label(n), str(n),
            fmt(m["ratio_to_intra_socket"]), fmt(m["latency_usec"] / paper_lat)]


# ------------------------------------------------------------------ Figure 2

def _peak_annotations(fig: go.Figure, peaks: list[tuple[float, str, str]]) -> None:
    """Labels in the right margin, each with a short arrow to its value on the (log) y axis, never overlapping."""
    if not peaks:
        return
    lo, hi = fig.layout.yaxis.range
    height = (fig.layout.height or 540) - 130  # plot area in pixels, roughly
    placed: list[tuple[float, float]] = []  # (centre, height) of the labels above, in pixels from the top
    for value, text, colour in sorted(peaks, key=lambda p: -p[0]):
        y_px = (hi - np.log10(value)) / (hi - lo) * height
        tall = LABEL_ROW_PX * (1 + text.count("<br>"))
        want = y_px if not placed else max(y_px, placed[-1][0] + (placed[-1][1] + tall) / 2)
        placed.append((want, tall))
        fig.add_annotation(x=1, xref="paper", y=np.log10(value), yref="y", text=text, showarrow=True,
                           arrowhead=0, arrowwidth=1, arrowcolor=colour, ax=24, ay=want - y_px,
                           xanchor="left", font=dict(size=10, color=colour), align="left")


def figure2_throughput(curves: pd.DataFrame, reference_peaks: pd.DataFrame | None = None
                       ) -> go.Figure:
    """Figure 2: PingPong throughput [GB/s] vs message size, log-log; the paper's peaks as labels.

    The paper states peak throughputs without the message size they were reached at,
    so they are labelled on the throughput axis instead of drawn as lines across sizes.
    """
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
            marker=dict(size=5), error_y=error_bars(grp, "gbytes_per_sec"),
            customdata=grp["n"] if "n" in grp else None,
            hovertemplate=f"{label} {placement}: %{{y:.4g}} GB/s at %{{x}} B (n=%{{customdata}})<extra></extra>"))
    sizes = [s for s in (list(curves["bytes"]) if len(curves) else []) if s > 0] or [1, 1 << 30]
    xmin, xmax = min(sizes), max(sizes)
    peaks: list[tuple[float, str, str]] = []
    for _, r in ref.iterrows():
        qual = f"{r['qualifier']} " if r.get("qualifier") else ""
        peaks.append((float(r["peak_gbytes_per_sec"]),
                      f"paper {r['environment']} {r['placement']} peak:<br>{qual}{r['peak_gbytes_per_sec']:g} GB/s",
                      env_colour(r["environment"])))
    claims = load_reference("claims").set_index("claim_id")
    for claim, text in (("ib_qdr_data_rate", "paper: InfiniBand QDR data rate"),
                        ("raw_verbs_peak", "paper: raw IB verbs peak")):
        if claim in claims.index:
            value = float(claims.loc[claim, "value"])
            peaks.append((value, f"{text}: {value:g} GB/s", "#777777"))
    ys = (list(curves["gbytes_per_sec"]) if len(curves) else []) + [p[0] for p in peaks]
    if len(curves) and "gbytes_per_sec_ci_low" in curves:
        ys += list(curves["gbytes_per_sec_ci_low"].dropna())
    fig.update_layout(template=TEMPLATE, title="Figure 2: PingPong throughput vs message size",
                      xaxis=dict(title="message size [bytes]",
                                 **log2_axis([xmin, xmax], step=4 if xmax / xmin > 2 ** 12 else 1,
                                             bytes_labels=True)),
                      yaxis=dict(title="throughput [GB/s] (10^9 B/s, log)", **log10_axis(ys or [0.001, 10])),
                      legend=dict(font=dict(size=10), x=0.01, y=0.99, xanchor="left", yanchor="top"),
                      showlegend=True, margin=dict(r=275))
    _peak_annotations(fig, peaks)
    _subtitle(fig, stats_note(curves, what="size"))
    note_unmeasured(fig, list(dict.fromkeys(ref["environment"])) if len(ref) else [],
                     labels_of(curves))
    return fig


# ------------------------------------------------------------------ Table 3

def _problem_note(ov: pd.DataFrame, ref: pd.DataFrame) -> str:
    """Plain words when the measured problems are not the paper's (absolute times then do not compare)."""
    if not len(ov) or not len(ref):
        return ""
    measured = sorted({f"{w} {p}" for w, p in zip(ov["workload"], ov["problem"].astype(str))})
    paper = "NPB-MZ class C, Bloss (10 GB jobs)"
    same = all(str(p) == NPB_PAPER_CLASS and paper_workload(w) in ("SP-MZ", "BT-MZ")
               for w, p in zip(ov["workload"], ov["problem"].astype(str)))
    if same:
        return ""
    return (f"problem sizes differ (measured: {', '.join(measured)}; paper: {paper}): "
            "compare overheads [%], not absolute times")


#: Overheads beyond this [%] get a panel of their own, so the paper's 4-20 % stay readable beside them.
FAR_OVERHEAD_PCT = 100.0


def _overhead_drawable(row: pd.Series) -> bool:
    """An overhead is drawn only with its interval (or as the baseline's zero): a bare ratio of two single runs
    is noise drawn as a result."""
    if row.get("label") == row.get("baseline") or row.get("environment") == row.get("baseline"):
        return pd.notna(row.get("overhead_pct"))
    return pd.notna(row.get("overhead_pct_ci_low")) and pd.notna(row.get("overhead_pct_ci_high"))


def _missing_overheads(ov: pd.DataFrame) -> list[str]:
    """One sentence per overhead not drawn: which runs are missing for its interval."""
    out = []
    for _, r in ov.iterrows():
        if _overhead_drawable(r) or pd.isna(r.get("time_s")):
            continue
        base = ov[(ov["label"] == r["baseline"]) | (ov["environment"] == r["baseline"])]
        base = base[(base["workload"] == r["workload"]) & (base["problem"] == r["problem"])]
        nb = int(base["n"].max()) if len(base) else 0
        out.append(f"{r['label']} vs {r['baseline']}, {paper_workload(r['workload'])} {r['problem']}: no overhead "
                   f"drawn, an interval needs at least 2 valid runs on each side (have {int(r['n'])} and {nb}); "
                   "measure more with vhpc run --rerun")
    return out


def table3_figure(overhead_table: pd.DataFrame, reference: pd.DataFrame | None = None,
                  stated: pd.DataFrame | None = None) -> go.Figure:
    """Table 3: single-node wall time (markers on a log axis) and overhead vs baseline, with intervals.

    Times are markers, not bars: a bar's length on a log axis means nothing. Overheads are
    bars from zero; an environment orders of magnitude away from the paper's 4-20 % (an
    emulator) gets a panel and a scale of its own, labelled, so the paper's range stays
    readable. An overhead without an interval (too few runs on a side) is not drawn: the
    figure says what is missing. ``reference`` is the paper's single_node table, ``stated``
    its overheads; both default to the reference dataset and are drawn as hollow diamonds.
    """
    ref = reference_or_default(reference, "single_node")
    st = reference_or_default(stated, "overhead_stated")
    ov = overhead_table if overhead_table is not None else pd.DataFrame()
    drawable = ov[[_overhead_drawable(r) for _, r in ov.iterrows()]] if len(ov) else ov
    far = sorted({str(lab) for lab, hi, v in zip(drawable.get("label", []),
                                                  drawable.get("overhead_pct_ci_high", []),
                                                  drawable.get("overhead_pct", []))
                  if max(abs(x) for x in (hi, v) if pd.notna(x)) > FAR_OVERHEAD_PCT}) if len(drawable) else []
    titles = ["wall time, one node [s] (log)",
              "overhead [%] vs baseline<br>in the paper's range" if far else "overhead vs baseline [%]"]
    if far:
        titles.append(f"overhead [%] beyond<br>{FAR_OVERHEAD_PCT:g} %: its own scale")
    fig = make_subplots(rows=1, cols=len(titles), horizontal_spacing=0.09 if far else 0.12, subplot_titles=titles,
                        column_widths=[0.4, 0.35, 0.25] if far else None)
    for label, grp in (ov.groupby("label", sort=False) if len(ov) else []):
        x = grp["workload"].map(paper_workload)
        base = grp["baseline"].iloc[0] if "baseline" in grp else ""
        name = aa_name(str(label), int(grp["n"].max()))
        colour = env_colour(str(label).split("/")[0]) if "/" not in str(label) else _half_colour(str(label))
        fig.add_trace(go.Scatter(x=x, y=grp["time_s"], name=name, legendgroup=label, mode="markers+text",
                                 marker=dict(color=colour, size=11, symbol="circle"),
                                 text=grp["problem"].astype(str), textposition="middle right",
                                 textfont=dict(size=10, color=colour),
                                 error_y=error_bars(grp, "time_s"),
                                 customdata=np.stack([grp["problem"].astype(str), grp["n"]], axis=-1),
                                 hovertemplate=f"{name}: %{{y:.4g}} s, problem %{{customdata[0]}}, "
                                               "n=%{customdata[1]}<extra></extra>"), row=1, col=1)
        shown = drawable[drawable["label"] == label] if len(drawable) else drawable
        if len(shown):
            fig.add_trace(go.Bar(x=shown["workload"].map(paper_workload), y=shown["overhead_pct"],
                                 name=f"{name} vs {base}", legendgroup=label, showlegend=False, marker_color=colour,
                                 text=["baseline" if str(label) == str(base) else f"{v:+.0f} %"
                                       for v in shown["overhead_pct"]], textposition="outside",
                                 error_y=error_bars(shown, "overhead_pct"),
                                 customdata=shown["verdict"] if "verdict" in shown else None,
                                 hovertemplate=f"{name}: %{{y:.3g}} %"
                                               + (": %{customdata}" if "verdict" in shown else "")
                                               + "<extra></extra>"),
                          row=1, col=3 if str(label) in far else 2)
    for env, grp in (ref.groupby("environment", sort=False) if len(ref) else []):
        fig.add_trace(go.Scatter(x=grp["workload"], y=grp["time_s"], mode="markers",
                                 name=f"paper {env} (class C / Bloss)", legendgroup=f"paper {env}",
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
    if far:
        far_x = sorted(set(drawable.loc[drawable["label"].astype(str).isin(far), "workload"].map(paper_workload)))
        fig.update_xaxes(categoryarray=[w for w in order if w in far_x], row=1, col=3)
    times = (list(ov["time_s"]) if len(ov) else []) + (list(ref["time_s"]) if len(ref) else [])
    if len(ov) and "time_s_ci_high" in ov:
        times += list(ov["time_s_ci_high"].dropna()) + list(ov["time_s_ci_low"].dropna())
    fig.update_yaxes(title_text="time [s]", row=1, col=1, **log10_axis(times or [1, 1000]))
    fig.update_yaxes(title_text="overhead [%]", zeroline=True, zerolinecolor="#888", row=1, col=2)
    if far:
        fig.update_yaxes(zeroline=True, zerolinecolor="#888", rangemode="tozero", row=1, col=3)
    missing = _missing_overheads(ov) if len(ov) else []
    notes = [stats_note(ov, what="environment", bars="times: " + "; ".join(dict.fromkeys(
        interval_label(int(n)) for n in ov["n"].dropna())) + "; overheads: bootstrap 95 % (nominal)")
             if len(ov) else "", _problem_note(ov, ref), _verdict_note(ov)]
    subtitle = "<br>".join(n for n in notes if n)
    lines = subtitle.count("<br>") + 1 if subtitle else 0  # each subtitle line pushes the panels down
    legend_rows = len({t.name for t in fig.data if t.showlegend is not False and t.name})
    top, bottom = (120 if far else 80) + 18 * lines, 90 + 16 * len(missing)
    fig.update_layout(template=TEMPLATE, barmode="group", scattermode="group",
                      margin=dict(t=top, b=bottom),
                      # the title block hangs from the top, so every subtitle line moves the panels, not it
                      title=dict(text="Table 3: single-node wall time and virtualization overhead",
                                 y=0.98, yanchor="top", yref="container"),
                      height=top + bottom + max(300, 26 * legend_rows),  # the legend fits beside the panels
                      meta=dict(static_width=1100) if far else None)
    _subtitle(fig, subtitle)
    for i, text in enumerate(missing):
        fig.add_annotation(text=text, xref="paper", yref="paper", x=0, y=0, yshift=-40 - 16 * i, showarrow=False,
                           xanchor="left", yanchor="top", font=dict(size=11, color="#a33"))
    note_unmeasured(fig, list(dict.fromkeys(ref["environment"])) if len(ref) else [],
                     labels_of(ov), yshift=-44 - 16 * len(missing))
    return fig


def _verdict_note(ov: pd.DataFrame) -> str:
    """One line: each comparison's verdict (``vhpclib.verdict``)."""
    if not len(ov) or "verdict" not in ov:
        return ""
    said = [f"{aa_name(str(r.label))} {paper_workload(r.workload)}: {r.verdict}" for r in ov.itertuples()
            if r.verdict]
    lines = ["; ".join(said[i:i + VERDICTS_PER_LINE]) for i in range(0, len(said), VERDICTS_PER_LINE)]
    return ("verdict: " + ";<br>".join(lines)) if said else ""


#: Verdicts per subtitle line of Table 3 (more environments wrap instead of running off the page).
VERDICTS_PER_LINE = 3


def _half_colour(label: str) -> str:
    """A/A halves: the environment's colour for A, a lighter grey-blue for B (both halves of one environment)."""
    return env_colour(label.split("/")[0]) if label.endswith("/A") else "#8DA0CB"


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


def _npb_traces(fig: go.Figure, frame: pd.DataFrame, workload: str, ycol: str, row: int, col: int,
                seen: set[str]) -> list[float]:
    """One trace per environment and NPB class (never one line joining two classes)."""
    xs: list[float] = []
    if not len(frame):
        return xs
    mine = frame[frame["workload"] == workload]
    for (label, problem, threads), grp in mine.groupby(["label", "problem", "threads_per_proc"], sort=False):
        grp = grp.sort_values("nprocs")
        xs += list(grp["nprocs"])
        name = f"{label} class {problem}, {int(threads)} thr/proc"
        fig.add_trace(go.Scatter(x=grp["nprocs"], y=grp[ycol], mode="lines+markers", name=name,
                                 legendgroup=name, showlegend=name not in seen,
                                 line=dict(color=env_colour(label), dash=_class_dash(str(problem))),
                                 error_y=error_bars(grp, ycol)), row=row, col=col)
        seen.add(name)
    return xs


def _class_dash(problem: str) -> str:
    return {"C": "solid", "B": "dash", "A": "dot", "W": "dashdot", "S": "longdash"}.get(problem, "solid")


def figure3_npb(efficiency: pd.DataFrame, performance: pd.DataFrame,
                reference: pd.DataFrame | None = None) -> go.Figure:
    """Figure 3: NPB-MZ performance (top) and parallel efficiency (bottom), SP-MZ and BT-MZ.

    The class comes from the data (one trace per class); performance is Mop/s when the
    table has ``mops_total``, else runs per hour. The paper's 16-node class C
    efficiencies are hollow diamonds at the process counts it measured.
    """
    ref = reference_or_default(reference, "efficiency")
    eff = efficiency if efficiency is not None else pd.DataFrame()
    perf = performance if performance is not None else pd.DataFrame()
    use_mops = "mops_total" in perf and perf["mops_total"].notna().any()
    pcol, punit = ("mops_total", "Mop/s") if use_mops else ("runs_per_hour", "runs per hour")
    workloads = ["SP-MZ", "BT-MZ"]
    measured = bool(len(perf) or len(eff))
    # nothing measured: the paper's efficiencies alone, one row, and how to measure the rest (no empty panels)
    rows = [(1, perf), (2, eff)] if measured else [(1, eff)]
    titles = ([f"{w} performance [{punit}]" for w in workloads] if measured else []) \
        + [f"{w} parallel efficiency [%]" for w in workloads]
    fig = make_subplots(rows=len(rows), cols=2, shared_xaxes=True, vertical_spacing=0.12, horizontal_spacing=0.1,
                        subplot_titles=titles)
    eff_row = len(rows)
    seen: set[str] = set()
    paper_seen: set[str] = set()
    xs: list[float] = list(ref["nprocs"]) if len(ref) else []
    for c, w in enumerate(workloads, start=1):
        if measured:
            xs += _npb_traces(fig, perf, w, pcol, 1, c, seen)
        _npb_traces(fig, eff, w, "efficiency_pct", eff_row, c, seen)
        _paper_eff(fig, ref, w, eff_row, c, paper_seen)
    axis = log2_axis(xs or [4, 64])
    lo, hi = np.log10(min(xs or [4])), np.log10(max(xs or [64]))
    fig.update_xaxes(**axis, range=[lo - 0.1, hi + 0.1])
    unmeasured = [w for w in workloads if not len(eff) or not (eff["workload"] == w).any()]
    for r, frame in rows:
        for c, w in enumerate(workloads, start=1):
            if measured and (not len(frame) or not (frame["workload"] == w).any()):
                # an invisible point so plotly draws this panel's axes at all
                fig.add_trace(go.Scatter(x=[min(xs or [4])], y=[0], mode="markers",
                                         marker=dict(opacity=0), showlegend=False,
                                         hoverinfo="skip"), row=r, col=c)
                fig.add_annotation(text=NOT_MEASURED, xref="x domain", yref="y domain",
                                   x=0.5, y=0.5, showarrow=False, row=r, col=c,
                                   font=dict(size=13, color="#777"))
    fig.update_xaxes(title_text="MPI processes", row=eff_row)
    if measured:
        fig.update_yaxes(rangemode="tozero", row=1)
    fig.update_yaxes(range=efficiency_range(eff), row=eff_row)
    classes = sorted({str(p) for f in (eff, perf) if len(f) and "problem" in f for p in f["problem"]})
    what = f"measured: class {', '.join(classes)}; " if classes else ""
    fig.update_layout(template=TEMPLATE, height=720 if measured else 520,
                      title=f"Figure 3: NPB-MZ performance and parallel efficiency ({what}"
                            f"paper: class {NPB_PAPER_CLASS}, x {NPB_PAPER_THREADS} OpenMP threads)")
    _subtitle(fig, stats_note(perf, what="point", bars=_eff_bars(eff)) if measured else
              f"{', '.join(unmeasured)} not measured in this campaign: the paper's 16-node efficiencies only")
    if unmeasured:
        fig.add_annotation(text=f"to measure {' and '.join(unmeasured)}: {NPB_HOWTO}", xref="paper", yref="paper",
                           x=0, y=0, yshift=-78, showarrow=False, xanchor="left", yanchor="top",
                           font=dict(size=12, color="#555"))
    note_unmeasured(fig, [e for e in PAPER_ENVIRONMENTS
                           if len(ref) and e in set(ref[ref["workload"].isin(workloads)]
                                                    ["environment"])],
                     labels_of(eff[eff["workload"].isin(workloads)]) if len(eff) else [],
                     yshift=-58)
    fig.update_layout(margin=dict(t=110, b=110 if unmeasured else 90))
    return fig


def efficiency_range(eff: pd.DataFrame, floor: float = 115.0) -> list[float]:
    """An efficiency axis from 0 that holds every point with its whole error bar (at least 0-115 %)."""
    tops = [floor]
    for col in ("efficiency_pct", "efficiency_pct_ci_high"):
        if len(eff) and col in eff:
            tops += [float(v) for v in eff[col].dropna()]
    return [0, max(tops) * (1.04 if max(tops) > floor else 1.0)]


def _eff_bars(eff: pd.DataFrame) -> str:
    """Efficiency intervals combine two medians' intervals: their coverage is at least the product."""
    if not len(eff) or "n" not in eff:
        return ""
    n = int(eff["n"].min())
    cov = order_statistic_ci(n)[2] if n >= 2 else float("nan")
    per = interval_label(n)
    return f"times {per}; efficiency from both times' intervals (≥ {coverage_text(cov * cov)})"


def figure4_blockss(efficiency: pd.DataFrame, ideal: pd.DataFrame,
                    reference: pd.DataFrame | None = None) -> go.Figure:
    """Figure 4: blockss (Bloss) efficiency vs processes, each ideal curve dashed, paper points.

    Threads per process are the ones the runs used (the paper: 4).
    """
    ref = reference_or_default(reference, "efficiency")
    ref = ref[ref["workload"] == "Bloss"] if len(ref) else ref
    eff = efficiency if efficiency is not None else pd.DataFrame()
    eff = eff[eff["workload"].map(paper_workload) == "Bloss"] if len(eff) else eff
    ideal = ideal if ideal is not None else pd.DataFrame()
    fig = go.Figure()
    xs: list[float] = list(ref["nprocs"]) if len(ref) else [2, 32]
    for (label, problem), grp in (eff.groupby(["label", "problem"], sort=False) if len(eff) else []):
        grp = grp.sort_values("nprocs")
        xs += list(grp["nprocs"])
        spread = int(grp["nodes"].max()) if "nodes" in grp and grp["nodes"].notna().any() else 1
        where = f", up to {spread} nodes" if spread > 1 else ", one node"
        fig.add_trace(go.Scatter(x=grp["nprocs"], y=grp["efficiency_pct"], mode="lines+markers",
                                 name=f"{label} ({problem}{where})", legendgroup=label,
                                 line=dict(color=env_colour(label)), error_y=error_bars(grp, "efficiency_pct")))
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
    threads = _threads_text(eff)
    run_as = f" x {threads} as run" if threads else ""
    fig.update_layout(template=TEMPLATE,
                      title="Figure 4: blockss (paper: Bloss) parallel efficiency",
                      xaxis=dict(title=f"MPI processes{run_as}<br>(paper: x {BLOSS_PAPER_THREADS} OpenMP threads)",
                                 **log2_axis(xs)),
                      yaxis=dict(title="parallel efficiency [%]", range=efficiency_range(eff)),
                      margin=dict(b=110),
                      # the legend (a curve and its ideal per environment) fits beside the plot
                      height=max(540, 200 + 28 * len({t.name for t in fig.data if t.name})))
    _subtitle(fig, stats_note(eff, what="point", bars=_eff_bars(eff)))
    note_unmeasured(fig, list(dict.fromkeys(ref["environment"])) if len(ref) else [],
                     labels_of(eff), yshift=-88)  # below the two-line axis title
    return fig


# ------------------------------------------------------------------ Section 2.3

def section23_io(reference: pd.DataFrame | None = None) -> go.Figure:
    """Section 2.3: MPI throughput of a 1 GB message on 10 GbE (paper values only)."""
    ref = reference_or_default(reference, "io_10gbe")
    fig = go.Figure(go.Bar(
        x=ref["configuration"], y=ref["throughput_mbytes_per_sec"],
        marker=dict(color=[env_colour(e) for e in ref["environment"]], opacity=0.75),
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
