"""One figure style for the whole project, the paper's figures, and ``save_figure``.

Every figure is built from analysis tables (``vhpclib.analysis``) plus the
paper's numbers (``vhpclib.reference``), drawn with one template and one colour
per environment. Paper values are hollow markers or dashed lines whose legend
entries start with "paper". Static export (PDF/SVG/PNG) goes through kaleido 1.x
and a single reused headless Chromium (see :func:`export_session`).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import html
import os
import shutil
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from vhpclib import paths
from vhpclib.exceptions import VhpcError
from vhpclib.reference import PAPER_ENVIRONMENTS, load_reference, paper_label, paper_workload

TEMPLATE = "vhpc"
DEFAULT_FORMATS: tuple[str, ...] = ("pdf", "svg", "png", "html")
WIDTH, HEIGHT = 900, 540

#: One colour per environment, used identically in every figure (Okabe-Ito, colour-blind safe).
ENV_COLOURS: dict[str, str] = {
    "BMM": "#000000",
    "Xen": "#D55E00",
    "KVM": "#0072B2",
    "EC2": "#E69F00",
    "local": "#009E73",
    "testbed": "#CC79A7",
}
_FALLBACK = ("#56B4E9", "#F0E442", "#882255", "#44AA99", "#999933", "#AA4499", "#117733",
             "#332288")
PLACEMENT_DASH = {"intra-socket": "solid", "inter-socket": "dash", "inter-node": "dot"}
PAPER_MARKER = dict(symbol="diamond-open", size=11, line=dict(width=2))
NOT_MEASURED = "not measured here"


class BrowserNotFound(VhpcError):
    """No Chromium/Chrome for static figure export."""


def env_colour(label: str) -> str:
    """Colour of an environment label (case-insensitive); unknown labels get a stable colour."""
    low = str(label).lower()
    for key, colour in ENV_COLOURS.items():
        if key.lower() == low:
            return colour
    digest = int(hashlib.sha256(low.encode()).hexdigest(), 16)
    return _FALLBACK[digest % len(_FALLBACK)]


def _register_template() -> None:
    if TEMPLATE in pio.templates:
        return
    base = pio.templates["simple_white"]
    tpl = go.layout.Template(base)
    tpl.layout.update(
        font=dict(family="Helvetica, Arial, sans-serif", size=13, color="#222"),
        title=dict(x=0.02, xanchor="left", font=dict(size=16)),
        margin=dict(l=70, r=30, t=70, b=90),
        legend=dict(bgcolor="rgba(255,255,255,0.8)", borderwidth=0),
        colorway=list(ENV_COLOURS.values()) + list(_FALLBACK),
        paper_bgcolor="white", plot_bgcolor="white",
    )
    tpl.layout.xaxis.update(showgrid=True, gridcolor="#e5e5e5", ticks="outside", mirror=True)
    tpl.layout.yaxis.update(showgrid=True, gridcolor="#e5e5e5", ticks="outside", mirror=True)
    pio.templates[TEMPLATE] = tpl


_register_template()


# ------------------------------------------------------------------ export

_lock = threading.Lock()
_server_started = False


def find_browser() -> str:
    """Path of the browser kaleido will drive: ``BROWSER_PATH`` or chromium on PATH."""
    env = os.environ.get("BROWSER_PATH")
    if env:
        if Path(env).is_file() and os.access(env, os.X_OK):
            return env
        raise BrowserNotFound(f"BROWSER_PATH={env} is not an executable file", key="BROWSER_PATH")
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserNotFound("no Chromium found for static figure export (PDF/SVG/PNG): install the "
                          "Debian package `chromium` (apt-get install chromium) or set "
                          "BROWSER_PATH to a Chrome/Chromium binary")


def _start_server() -> None:
    global _server_started
    import kaleido

    with _lock:
        if _server_started:
            return
        # mathjax=False: kaleido would otherwise load MathJax from a CDN (no network here).
        kaleido.start_sync_server(path=find_browser(), mathjax=False, silence_warnings=True)
        _server_started = True
        atexit.register(_stop_server)


def _stop_server() -> None:
    global _server_started
    import kaleido

    with _lock:
        if _server_started:
            kaleido.stop_sync_server(silence_warnings=True)
            _server_started = False


@contextlib.contextmanager
def export_session() -> Iterator[None]:
    """Keep one Chromium open for every static export inside the block.

    Without it, the first :func:`save_figure` starts the browser lazily and it
    stays up until interpreter exit; either way it is started once, never per figure.
    """
    started_here = not _server_started
    _start_server()
    try:
        yield
    finally:
        if started_here:
            _stop_server()


def _html_with_title(fig: go.Figure, title: str) -> str:
    text = fig.to_html(include_plotlyjs=True, full_html=True)
    return text.replace("<head>", f"<head><title>{html.escape(title)}</title>", 1)


def figure_title(fig: go.Figure) -> str:
    """Plain text of a figure's title (empty when it has none)."""
    return str(fig.layout.title.text or "")


def save_figure(fig: go.Figure, name: str, outdir: Path | str = paths.FIGURES,
                formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Write ``fig`` as ``outdir/name.<fmt>`` for each format; return the paths written.

    PDF/SVG/PNG go through kaleido with one reused browser (started lazily);
    HTML is self-contained (plotly.js inline) so it opens offline. Each file is
    written to a temporary name and renamed, so a failed export leaves no half file.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for fmt in formats:
        fmt = fmt.lower().lstrip(".")
        target = outdir / f"{name}.{fmt}"
        tmp = outdir / f".{name}.tmp.{fmt}"
        if fmt == "html":
            tmp.write_text(_html_with_title(fig, figure_title(fig) or name), encoding="utf-8")
        elif fmt in ("pdf", "svg", "png", "jpeg", "jpg", "webp"):
            _start_server()
            width = fig.layout.width or WIDTH
            height = fig.layout.height or HEIGHT
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The kopts argument is ignored")
                fig.write_image(tmp, format=fmt, width=width, height=height,
                                scale=2 if fmt == "png" else 1)
        else:
            raise VhpcError(f"unknown figure format {fmt!r}", key="formats")
        tmp.replace(target)
        written.append(target)
    return written


# ------------------------------------------------------------------ helpers for builders

def _measured_paper_envs(labels: Sequence[str]) -> set[str]:
    return {p for p in (paper_label(x) for x in labels) if p}


def _note_unmeasured(fig: go.Figure, paper_envs: Sequence[str], measured_labels: Sequence[str],
                     y: float = 0.0, yshift: int = -64) -> None:
    """Annotate which paper environments have no measurement here (paper values only)."""
    have = _measured_paper_envs(measured_labels)
    missing = [e for e in paper_envs if e not in have]
    if not len(measured_labels):
        text = f"{NOT_MEASURED}: paper values only"
    elif missing:
        text = f"{', '.join(missing)}: {NOT_MEASURED} (paper values only)"
    else:
        return
    # offset in pixels below the plot area, so it stays inside the bottom margin at any size
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0, y=y, yshift=yshift,
                       showarrow=False, xanchor="left", yanchor="top",
                       font=dict(size=12, color="#555"))


def _labels(df: pd.DataFrame | None) -> list[str]:
    if df is None or df.empty or "label" not in df:
        return []
    return list(dict.fromkeys(df["label"].astype(str)))


def _err(df: pd.DataFrame, col: str) -> dict:
    lo, hi = f"{col}_ci_low", f"{col}_ci_high"
    if lo not in df or df[lo].isna().all():
        return {}
    return dict(type="data", symmetric=False, array=(df[hi] - df[col]).to_numpy(float),
                arrayminus=(df[col] - df[lo]).to_numpy(float), thickness=1.2, width=4)


def _bytes_label(b: float) -> str:
    b = int(b)
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if b >= size and b % size == 0:
            return f"{b // size}{unit}"
    return str(b)


def _log2_axis(values: Sequence[float], step: int = 1, bytes_labels: bool = False) -> dict:
    vals = [v for v in values if v and v > 0]
    if not vals:
        return dict(type="log")
    lo, hi = int(np.floor(np.log2(min(vals)))), int(np.ceil(np.log2(max(vals))))
    ticks = [2 ** k for k in range(lo, hi + 1) if (k - lo) % step == 0]
    text = [_bytes_label(t) if bytes_labels else str(t) for t in ticks]
    return dict(type="log", tickvals=ticks, ticktext=text)


def _default(reference: pd.DataFrame | None, name: str) -> pd.DataFrame:
    """``None`` means the paper's table; pass an empty DataFrame to draw no paper values."""
    return load_reference(name) if reference is None else reference


def _fmt(x: float, digits: int = 2) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


# ------------------------------------------------------------------ Table 2

def table2_figure(latency_table: pd.DataFrame, reference: pd.DataFrame | None = None
                  ) -> go.Figure:
    """Table 2 as a plotly Table: paper latency/ratio beside measured median [95 % CI].

    Measured labels the paper lacks (``local``...) are compared with the paper's BMM.
    """
    ref = _default(reference, "latency")
    lat = latency_table if latency_table is not None else pd.DataFrame()
    rows = []
    for _, r in ref.iterrows():
        hits = lat[(lat["label"].map(paper_label) == r["environment"])
                   & (lat["placement"] == r["placement"])] if len(lat) else lat
        if len(hits) == 0:
            rows.append([r["environment"], r["placement"], _fmt(r["latency_usec"]),
                         _fmt(r["ratio_to_intra_socket"]), NOT_MEASURED, "", ""])
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
    _note_unmeasured(fig, [e for e in PAPER_ENVIRONMENTS if e in set(ref.get("environment", []))],
                     _labels(lat), y=0.01, yshift=0)
    return fig


def _t2row(env: str, r: pd.Series | None, m: pd.Series, placement: str | None = None) -> list:
    paper_lat = r["latency_usec"] if r is not None else np.nan
    ci = (f" [{_fmt(m['latency_usec_ci_low'])}, {_fmt(m['latency_usec_ci_high'])}]"
          if not np.isnan(m.get("latency_usec_ci_low", np.nan)) else "")
    return [env, placement or r["placement"], _fmt(paper_lat),
            _fmt(r["ratio_to_intra_socket"]) if r is not None else "",
            f"{_fmt(m['latency_usec'])}{ci}, n={int(m['n'])}", _fmt(m["ratio_to_intra_socket"]),
            _fmt(m["latency_usec"] / paper_lat)]


# ------------------------------------------------------------------ Figure 2

def figure2_throughput(curves: pd.DataFrame, reference_peaks: pd.DataFrame | None = None
                       ) -> go.Figure:
    """Figure 2: PingPong throughput [GB/s] vs message size (log2 axis), paper peaks dashed."""
    ref = _default(reference_peaks, "throughput_peak")
    fig = go.Figure()
    curves = curves if curves is not None else pd.DataFrame()
    for (label, placement), grp in (curves.groupby(["label", "placement"], sort=False)
                                    if len(curves) else []):
        grp = grp.sort_values("bytes")
        fig.add_trace(go.Scatter(
            x=grp["bytes"], y=grp["gbytes_per_sec"], mode="lines+markers",
            name=f"{label} {placement}", legendgroup=label,
            line=dict(color=env_colour(label), dash=PLACEMENT_DASH.get(placement, "dashdot")),
            marker=dict(size=5), error_y=_err(grp, "gbytes_per_sec")))
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
                                 **_log2_axis([xmin, xmax], step=4, bytes_labels=True)),
                      yaxis=dict(title="throughput [GB/s] (10^9 B/s)", rangemode="tozero"),
                      legend=dict(font=dict(size=10)))
    _note_unmeasured(fig, list(dict.fromkeys(ref["environment"])) if len(ref) else [],
                     _labels(curves))
    return fig


# ------------------------------------------------------------------ Table 3

def table3_figure(overhead_table: pd.DataFrame, reference: pd.DataFrame | None = None,
                  stated: pd.DataFrame | None = None) -> go.Figure:
    """Table 3: single-node wall time (log scale) and overhead vs baseline, with 95 % CIs.

    ``reference`` is the paper's single_node table, ``stated`` its overheads; both
    default to the reference dataset and are drawn as hollow diamonds. Measured
    ``blockss`` sits at the paper's Bloss.
    """
    ref = _default(reference, "single_node")
    st = _default(stated, "overhead_stated")
    ov = overhead_table if overhead_table is not None else pd.DataFrame()
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("wall-clock time, one node [s]",
                                        "overhead vs baseline [%]"))
    for label, grp in (ov.groupby("label", sort=False) if len(ov) else []):
        x = grp["workload"].map(paper_workload)
        base = grp["baseline"].iloc[0] if "baseline" in grp else ""
        fig.add_trace(go.Bar(x=x, y=grp["time_s"], name=f"{label}", legendgroup=label,
                             marker_color=env_colour(label), error_y=_err(grp, "time_s"),
                             hovertext=grp["problem"].astype(str)), row=1, col=1)
        fig.add_trace(go.Bar(x=x, y=grp["overhead_pct"], name=f"{label} vs {base}",
                             legendgroup=label, showlegend=False, marker_color=env_colour(label),
                             error_y=_err(grp, "overhead_pct")), row=1, col=2)
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
    _note_unmeasured(fig, list(dict.fromkeys(ref["environment"])) if len(ref) else [],
                     _labels(ov))
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
    ref = _default(reference, "efficiency")
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
                                     error_y=_err(grp, pcol)), row=1, col=c)
            seen.add(label)
        for label, grp in (eff[eff["workload"] == w].groupby("label", sort=False)
                           if len(eff) else []):
            grp = grp.sort_values("nprocs")
            fig.add_trace(go.Scatter(x=grp["nprocs"], y=grp["efficiency_pct"],
                                     mode="lines+markers", name=label, legendgroup=label,
                                     showlegend=label not in seen,
                                     line=dict(color=env_colour(label)),
                                     error_y=_err(grp, "efficiency_pct")), row=2, col=c)
            seen.add(label)
        _paper_eff(fig, ref, w, 2, c, paper_seen)
    axis = _log2_axis(xs or [4, 64])
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
    _note_unmeasured(fig, [e for e in PAPER_ENVIRONMENTS
                           if len(ref) and e in set(ref[ref["workload"].isin(workloads)]
                                                    ["environment"])],
                     _labels(eff[eff["workload"].isin(workloads)]) if len(eff) else [],
                     yshift=-58)
    return fig


def figure4_blockss(efficiency: pd.DataFrame, ideal: pd.DataFrame,
                    reference: pd.DataFrame | None = None) -> go.Figure:
    """Figure 4: blockss (Bloss) efficiency vs processes, each ideal curve dashed, paper points."""
    ref = _default(reference, "efficiency")
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
                                 error_y=_err(grp, "efficiency_pct")))
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
                      xaxis=dict(title="MPI processes (paper: x 4 OpenMP threads each)", **_log2_axis(xs)),
                      yaxis=dict(title="parallel efficiency [%]", range=[0, 115]))
    _note_unmeasured(fig, list(dict.fromkeys(ref["environment"])) if len(ref) else [],
                     _labels(eff))
    return fig


# ------------------------------------------------------------------ Section 2.3

def section23_io(reference: pd.DataFrame | None = None) -> go.Figure:
    """Section 2.3: MPI throughput of a 1 GB message on 10 GbE (paper values only)."""
    ref = _default(reference, "io_10gbe")
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
