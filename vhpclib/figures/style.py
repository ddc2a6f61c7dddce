"""The one figure style: a plotly template, one colour per environment, and helpers every figure shares.

Paper values are hollow markers whose legend entries start with "paper"; one
colour per environment label is used identically in every figure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from ..reference import load_reference, paper_label

TEMPLATE = "vhpc"
#: One colour per environment, used identically in every figure (Okabe-Ito, colour-blind safe).
ENV_COLOURS: dict[str, str] = {
    "BMM": "#000000",
    "Xen": "#D55E00",
    "KVM": "#0072B2",
    "EC2": "#E69F00",
    "local": "#009E73",
    "testbed": "#CC79A7",
    # The embedded default's layers (inventories/host-and-guest.yml): fixed, so no two share a colour.
    "guest": "#999933",
    "container": "#56B4E9",
    "uml": "#882255",
    "gvisor": "#AA4499",
    "nodes": "#332288",
    "node-containers": "#44AA99",
}
_FALLBACK = ("#117733", "#F0E442", "#661100", "#6699CC", "#888888", "#DDCC77")
PLACEMENT_DASH = {"intra-socket": "solid", "inter-socket": "dash", "inter-node": "dot"}
PAPER_MARKER = dict(symbol="diamond-open", size=11, line=dict(width=2))
NOT_MEASURED = "not measured here"


def env_colour(label: str) -> str:
    """Colour of an environment label (case-insensitive); unknown labels get a stable colour."""
    low = str(label).lower().split(" (", 1)[0]  # "guest (emulation: qemu-tcg)" is the guest
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


def measured_paper_envs(labels: Sequence[str]) -> set[str]:
    return {p for p in (paper_label(x) for x in labels) if p}


def note_unmeasured(fig: go.Figure, paper_envs: Sequence[str], measured_labels: Sequence[str],
                     y: float = 0.0, yshift: int = -64) -> None:
    """Annotate which paper environments have no measurement here (paper values only)."""
    have = measured_paper_envs(measured_labels)
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


def labels_of(df: pd.DataFrame | None) -> list[str]:
    if df is None or df.empty or "label" not in df:
        return []
    return list(dict.fromkeys(df["label"].astype(str)))


def error_bars(df: pd.DataFrame, col: str) -> dict:
    lo, hi = f"{col}_ci_low", f"{col}_ci_high"
    if lo not in df or df[lo].isna().all():
        return {}
    return dict(type="data", symmetric=False, array=(df[hi] - df[col]).to_numpy(float),
                arrayminus=(df[col] - df[lo]).to_numpy(float), thickness=1.2, width=4)


def bytes_label(b: float) -> str:
    b = int(b)
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if b >= size and b % size == 0:
            return f"{b // size}{unit}"
    return str(b)


def log2_axis(values: Sequence[float], step: int = 1, bytes_labels: bool = False) -> dict:
    vals = [v for v in values if v and v > 0]
    if not vals:
        return dict(type="log")
    lo, hi = int(np.floor(np.log2(min(vals)))), int(np.ceil(np.log2(max(vals))))
    ticks = [2 ** k for k in range(lo, hi + 1) if (k - lo) % step == 0]
    text = [bytes_label(t) if bytes_labels else str(t) for t in ticks]
    return dict(type="log", tickvals=ticks, ticktext=text)


def log10_axis(values: Sequence[float], unit_label: str = "") -> dict:
    """A log axis with a labelled tick at every power of ten only (minor ticks unlabelled).

    Plotly's default log ticks label 2 and 5 between decades, which read like values.
    """
    vals = [float(v) for v in values if v is not None and np.isfinite(v) and v > 0]
    if not vals:
        return dict(type="log")
    lo, hi = np.log10(min(vals)), np.log10(max(vals))
    decades = range(int(np.floor(lo)), int(np.ceil(hi)) + 1)
    ticks = [10.0 ** k for k in decades]
    text = [f"{t:g}{unit_label}" for t in ticks]
    minor = [m * 10.0 ** k for k in decades for m in range(2, 10)]
    pad = 0.08 * max(hi - lo, 1.0)
    return dict(type="log", tickvals=ticks, ticktext=text, range=[lo - pad, hi + pad],
                minor=dict(tickvals=minor, ticks="outside", ticklen=3, showgrid=False))


def display_label(label: str, vmm: str | None) -> str:
    """The label an environment is drawn with: emulation (e.g. a TCG guest) says so, never passes as
    virtualization; which ``vmm`` values are emulation, the environment providers say."""
    from ..providers import is_emulation

    if is_emulation(vmm):
        return f"{label} (emulation: {str(vmm).lower()})"
    return str(label)


def aa_name(label: str, n: int | None = None) -> str:
    """Legend text of an A/A half: ``local/A`` -> ``local/A (runs 1, 3, 5...)``; with ``n`` <= 2 per half, its runs."""
    for suffix, first in (("/A", 1), ("/B", 2)):
        if label.endswith(suffix):
            if n is not None and n <= 2:
                runs = [first + 2 * i for i in range(max(int(n), 1))]
                return f"{label} (run{'s' if len(runs) > 1 else ''} {', '.join(map(str, runs))})"
            return f"{label} (runs {first}, {first + 2}, {first + 4}...)"
    return label


def reference_or_default(reference: pd.DataFrame | None, name: str) -> pd.DataFrame:
    """``None`` means the paper's table; pass an empty DataFrame to draw no paper values."""
    return load_reference(name) if reference is None else reference


#: Plotly table text: average glyph width of a 12 px sans-serif font, a cell's side padding, one wrapped line.
CHAR_PX, CELL_PAD_PX, LINE_PX = 7.0, 10.0, 15.0


def wrapped_lines(text: str, width_px: float) -> int:
    """Lines a plotly table cell wraps ``text`` into at ``width_px`` (greedy, by words; ``<br>`` breaks)."""
    per_line = max(1, int((width_px - 2 * CELL_PAD_PX) / CHAR_PX))
    lines = 0
    for part in str(text).split("<br>"):
        used = 0
        lines += 1
        for word in part.split():
            need = len(word) if used == 0 else used + 1 + len(word)
            if need > per_line and used:
                lines += 1 + (len(word) - 1) // per_line
                used = len(word) % per_line or per_line
            else:
                used = need
    return lines


def table_height(header: Sequence[str], columns: Sequence[Sequence[str]], columnwidth: Sequence[float],
                 width_px: float, min_row_px: float = 30.0) -> float:
    """Pixels a plotly table needs to show every row: plotly scrolls (and static exports cut) what exceeds its box."""
    total = float(sum(columnwidth))
    col_px = [width_px * w / total for w in columnwidth]

    def row(cells: Sequence[str]) -> float:
        lines = max((wrapped_lines(c, px) for c, px in zip(cells, col_px)), default=1)
        return max(min_row_px, LINE_PX * (lines + 1))

    return row(header) + sum(row(cells) for cells in zip(*columns)) + 4


def fmt(x: float, digits: int = 2) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"
