"""Figure style, the paper's figures with and without measured data, and save_figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from browser import png_is_blank
from test_analysis import apps_frame, micro_frame
from vhpclib import analysis as an
from vhpclib import figures as fg
from vhpclib.exceptions import BrowserNotFound


def _texts(fig: go.Figure) -> str:
    return " ".join(str(a.text) for a in fig.layout.annotations)


def _paper_traces(fig: go.Figure) -> list:
    return [t for t in fig.data if str(t.name or "").startswith("paper")]


def test_environment_colours_are_case_insensitive_and_distinct() -> None:
    assert fg.env_colour("kvm") == fg.env_colour("KVM") == fg.ENV_COLOURS["KVM"]
    assert fg.env_colour("LOCAL") == fg.ENV_COLOURS["local"]
    assert len(set(fg.ENV_COLOURS.values())) == len(fg.ENV_COLOURS)


def test_unknown_environment_gets_a_stable_fallback_colour() -> None:
    assert fg.env_colour("cluster-b") == fg.env_colour("Cluster-B")
    assert fg.env_colour("cluster-b") not in fg.ENV_COLOURS.values()


def test_template_is_registered_once_and_used() -> None:
    fig = fg.section23_io()
    assert fg.TEMPLATE in __import__("plotly.io").io.templates
    assert fig.layout.template.layout.font.family.startswith("Helvetica")


EMPTY = pd.DataFrame()


@pytest.mark.parametrize("build", [
    lambda: fg.table2_figure(EMPTY),
    lambda: fg.figure2_throughput(EMPTY),
    lambda: fg.table3_figure(EMPTY),
    lambda: fg.figure3_npb(EMPTY, EMPTY),
    lambda: fg.figure4_blockss(EMPTY, EMPTY),
    lambda: fg.section23_io(),
], ids=["table2", "figure2", "table3", "figure3", "figure4", "section23"])
def test_every_builder_shows_paper_values_when_nothing_was_measured(build) -> None:
    fig = build()
    assert "not measured here" in _texts(fig) or "not measured here" in str(fig.data[0].cells)
    assert fig.layout.title.text


def test_figure2_overlays_paper_peaks_and_marks_unmeasured_environments() -> None:
    micro = micro_frame({("local", "intra-socket"): [0.4, 0.4, 0.4]},
                        sizes=(0, 1, 1024, 1 << 20))
    fig = fg.figure2_throughput(an.throughput_curves(micro))
    peaks = sorted(t.y[0] for t in _paper_traces(fig) if t.name.startswith("paper BMM"))
    assert peaks == [2.5, 3.9, 5.7]
    ceilings = {t.name: t.y[0] for t in fig.data if "InfiniBand QDR" in t.name or "raw IB verbs" in t.name}
    assert sorted(ceilings.values()) == [3.4, 4.0]
    measured = [t for t in fig.data if t.name == "local intra-socket"][0]
    assert measured.line.color == fg.ENV_COLOURS["local"]
    assert "BMM: not measured here" in _texts(fig)
    assert fig.layout.xaxis.type == "log" and "1M" in fig.layout.xaxis.ticktext


def test_table2_lists_paper_and_measured_side_by_side() -> None:
    micro = micro_frame({("kvm", "inter-node"): [3.42, 3.42, 3.42]})
    cells = fg.table2_figure(an.latency_table(micro)).data[0].cells.values
    rows = list(zip(*cells))
    kvm = [r for r in rows if r[0] == "kvm" and r[1] == "inter-node"][0]
    assert kvm[2] == "1.71" and kvm[4].startswith("3.42") and kvm[6] == "2.00"
    assert [r for r in rows if r[0] == "Xen"][0][4] == "not measured here"


def test_table3_puts_blockss_at_bloss_with_paper_times() -> None:
    apps = apps_frame({("bmm", "SP-MZ", 4): [90, 91, 89], ("bmm", "blockss", 2): [30, 31, 29]})
    fig = fg.table3_figure(an.overhead_table(apps, "bmm"))
    bars = [t for t in fig.data if t.type == "bar" and t.name == "bmm"][0]
    assert list(bars.x) == ["SP-MZ", "Bloss"]
    paper_bmm = [t for t in fig.data if t.name == "paper BMM"][0]
    assert 86.45 in list(paper_bmm.y) and 1260.0 in list(paper_bmm.y)
    assert "BMM" not in _texts(fig).split(":")[0]  # BMM was measured (as bmm)


def test_figure4_draws_ideal_dashed_in_the_environment_colour() -> None:
    apps = apps_frame({("local", "blockss", p): [100.0 / p + 5] for p in (1, 2)},
                      stage="scaling", threads=4, solve_s={("local", "blockss", 1): 95.0},
                      extract_s={("local", "blockss", 1): 5.0})
    fig = fg.figure4_blockss(an.efficiency_table(apps), an.ideal_curve(apps, nprocs=[1, 2, 4]))
    ideal = [t for t in fig.data if "ideal" in t.name][0]
    assert ideal.line.dash == "dash" and ideal.line.color == fg.ENV_COLOURS["local"]
    assert sorted(t.y[0] for t in _paper_traces(fig)) == [63, 71, 72, 78]


def test_find_browser_rejects_a_bad_browser_path(monkeypatch) -> None:
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chrome")
    with pytest.raises(BrowserNotFound, match="BROWSER_PATH"):
        fg.find_browser()


def test_find_browser_without_chromium_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BrowserNotFound, match="apt-get install chromium"):
        fg.find_browser()


def test_save_figure_writes_all_four_formats(tmp_path) -> None:
    fig = fg.figure2_throughput(an.throughput_curves(micro_frame(
        {("local", "intra-socket"): [0.4, 0.4, 0.4]}, sizes=(0, 1, 1024, 1 << 20))))
    with fg.export_session():
        paths = fg.save_figure(fig, "fig2", outdir=tmp_path)
    assert [p.name for p in paths] == ["fig2.pdf", "fig2.svg", "fig2.png", "fig2.html"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes().startswith(b"%PDF")
    assert "Figure 2: PingPong throughput vs message size" in paths[1].read_text()
    assert not png_is_blank(paths[2])
    html = paths[3].read_text()
    assert "<title>Figure 2: PingPong throughput vs message size</title>" in html
    # offline: plotly.js is inline, nothing is fetched from a CDN
    assert "plotly.js v" in html and 'src="http' not in html
    assert not list(tmp_path.glob(".*tmp*"))


def test_png_blank_check_detects_a_blank_image(tmp_path) -> None:
    from PIL import Image

    Image.new("RGB", (200, 100), "white").save(tmp_path / "blank.png")
    assert png_is_blank(tmp_path / "blank.png")
    noisy = (np.random.default_rng(0).random((100, 200, 3)) * 255).astype("uint8")
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    assert not png_is_blank(tmp_path / "noisy.png")
