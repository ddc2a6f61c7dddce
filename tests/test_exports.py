"""Static exports show what the figure holds: every measured value, axis title and legend entry lies inside
the PDF page (pdftotext -bbox) and is drawn in the SVG, on the committed campaigns (read only): the default,
embedded-layers (seven environments side by side), and embedded-guest."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vhpclib.figures.artifacts import CampaignData, build_artifacts
from vhpclib.figures.export import save_figures
from vhpclib.tables import build_tables

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) not installed")]
CAMPAIGNS = ("embedded-layers", "embedded-guest")
TAG = re.compile(r"<[^>]+>")


def _words(text: str) -> list[str]:
    """The words a renderer prints for a plotly text (tags as breaks, entities decoded)."""
    return [w for w in html.unescape(TAG.sub(" ", str(text))).split() if w]


def expected_texts(fig: dict) -> dict[str, list[str]]:
    """What a reader must see: table cells and headers, axis titles, legend entries, annotations, titles."""
    layout = fig.get("layout", {})
    out: dict[str, list[str]] = {"title": [], "axis title": [], "legend entry": [], "table cell": [],
                                 "annotation": []}
    title = layout.get("title", {})
    out["title"] += [title.get("text", ""), (title.get("subtitle") or {}).get("text", "")]
    for key, axis in layout.items():
        if re.fullmatch(r"[xy]axis\d*", key) and axis.get("visible", True) is not False:
            out["axis title"].append((axis.get("title") or {}).get("text", ""))
    legend_shown = layout.get("showlegend", True) is not False
    seen: set[str] = set()
    for trace in fig.get("data", []):
        if trace.get("type") == "table":
            out["table cell"] += [str(v) for v in trace["header"]["values"]]
            out["table cell"] += [str(v) for col in trace["cells"]["values"] for v in col]
        elif legend_shown and trace.get("showlegend", True) is not False and trace.get("name"):
            if trace["name"] not in seen:
                seen.add(trace["name"])
                out["legend entry"].append(trace["name"])
    out["annotation"] += [a.get("text", "") for a in layout.get("annotations", [])]
    return {k: [t for t in v if _words(t)] for k, v in out.items()}


def pdf_words(pdf: Path) -> tuple[list[str], list[str]]:
    """Words inside the page, and words (partly) outside it, from ``pdftotext -bbox``."""
    text = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    root = ET.fromstring(text.replace("<!DOCTYPE", "<!--").replace("dtd\">", "-->", 1)
                         if "<!DOCTYPE" in text else text)
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    inside, outside = [], []
    for page in root.iter("{http://www.w3.org/1999/xhtml}page"):
        w, h = float(page.get("width")), float(page.get("height"))
        for word in page.findall("h:word", ns):
            box = [float(word.get(k)) for k in ("xMin", "yMin", "xMax", "yMax")]
            ok = box[0] >= -0.5 and box[1] >= -0.5 and box[2] <= w + 0.5 and box[3] <= h + 0.5
            (inside if ok else outside).append(unicodedata.normalize("NFKC", word.text or ""))  # ligatures
    return inside, outside


def svg_words(svg: Path) -> list[str]:
    root = ET.parse(svg).getroot()
    return [w for el in root.iter() if el.tag.endswith("text") or el.tag.endswith("tspan")
            for w in (el.text or "").split()]


def _missing(texts: list[str], words: list[str]) -> list[str]:
    have = set(words)
    return [t for t in texts if not all(w in have for w in _words(t))]


@pytest.fixture(scope="module", params=CAMPAIGNS)
def exported(tmp_path_factory, request):
    """Every artifact of a committed campaign, exported as PDF and SVG into a temporary folder."""
    campaign = request.param
    out = tmp_path_factory.mktemp("exports")
    data = CampaignData.of(campaign, build_tables(campaign).tables)
    figures = build_artifacts(campaign, data=data)
    save_figures(figures, out, formats=("pdf", "svg"), cache=out / "cache")
    return out, figures


def test_every_export_shows_every_value_axis_title_and_legend_entry_inside_the_page(exported):
    out, figures = exported
    problems = []
    for name, fig in figures.items():
        inside, outside = pdf_words(out / f"{name}.pdf")
        svg = svg_words(out / f"{name}.svg")
        for what, texts in expected_texts(fig.to_plotly_json()).items():
            for text in _missing(texts, inside):
                problems.append(f"{name}.pdf: {what} {text!r} not inside the page")
            for text in _missing(texts, svg):
                problems.append(f"{name}.svg: {what} {text!r} not drawn")
        if outside:
            problems.append(f"{name}.pdf: words outside the page: {outside[:8]}")
    assert problems == []


def test_the_measured_rows_of_table2_are_in_its_pdf(exported):
    out, figures = exported
    inside, _ = pdf_words(out / "table2_latency.pdf")
    assert {"local", "guest"} <= set(inside)
    cells = [str(v) for col in figures["table2_latency"].data[0].cells.values for v in col]
    measured = [c for c in cells if "[" in c]  # "1.23 [1.01, 1.50]": a median with its interval
    assert measured and _missing(measured, inside) == []


def test_error_bars_lie_inside_a_fixed_axis_range(exported):
    """An axis with an explicit range must contain every point with its error bar (Figure 4 cut one off)."""
    _, figures = exported
    problems = []
    for name, fig in figures.items():
        for trace in fig.data:
            err = getattr(trace, "error_y", None)
            if trace.type not in ("scatter", "bar") or err is None or err.array is None:
                continue
            axis = fig.layout[f"yaxis{(trace.yaxis or 'y')[1:]}"]
            if axis.range is None or axis.type == "log":
                continue
            lo, hi = axis.range
            down = err.arrayminus if err.arrayminus is not None else err.array
            for y, up, dn in zip(trace.y, err.array, down):
                if y is not None and up == up and not (lo <= y - dn and y + up <= hi):
                    problems.append(f"{name}: {trace.name} {y:g} +{up:g}/-{dn:g} outside {lo}..{hi}")
    assert problems == []
