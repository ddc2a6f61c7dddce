"""Figure style, the paper's figures with and without measured data, and save_figure."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from browser import png_is_blank
from test_analysis import apps_frame, micro_frame
from vhpclib import analysis as an
from vhpclib import figures as fg
from vhpclib.exceptions import BrowserNotFound

ROOT = Path(__file__).resolve().parent.parent


def _texts(fig: go.Figure) -> str:
    return " ".join(str(a.text) for a in fig.layout.annotations)


def _paper_traces(fig: go.Figure) -> list:
    return [t for t in fig.data if str(t.name or "").startswith("paper")]


def test_environment_colours_are_case_insensitive_and_distinct() -> None:
    assert fg.env_colour("kvm") == fg.env_colour("KVM") == fg.ENV_COLOURS["KVM"]
    assert fg.env_colour("LOCAL") == fg.ENV_COLOURS["local"]
    assert len(set(fg.ENV_COLOURS.values())) == len(fg.ENV_COLOURS)


def test_every_environment_of_the_embedded_default_has_a_colour_of_its_own() -> None:
    from vhpclib.config import load_inventory

    labels = [e.label for e in load_inventory(ROOT / "inventories/host-and-guest.yml").environments.values()]
    colours = {label: fg.env_colour(label) for label in labels}
    assert len(set(colours.values())) == len(labels), colours
    assert fg.env_colour("guest (emulation: qemu-tcg)") == fg.env_colour("guest")  # the shown label, same colour


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


def test_figure2_labels_paper_peaks_instead_of_drawing_them_across_all_sizes() -> None:
    micro = micro_frame({("local", "intra-socket"): [0.4, 0.4, 0.4]},
                        sizes=(0, 1, 1024, 1 << 20))
    fig = fg.figure2_throughput(an.throughput_curves(micro))
    assert _paper_traces(fig) == [], "the paper gives peaks without sizes: no paper line across sizes"
    text = _texts(fig).replace("<br>", " ")
    for peak in ("paper BMM intra-socket peak: 5.7 GB/s", "paper BMM inter-socket peak: 3.9 GB/s",
                 "paper BMM inter-node peak: a little under 2.5 GB/s", "InfiniBand QDR data rate: 4 GB/s",
                 "raw IB verbs peak: 3.4 GB/s"):
        assert peak in text
    measured = [t for t in fig.data if t.name == "local intra-socket"][0]
    assert measured.line.color == fg.ENV_COLOURS["local"]
    assert "BMM: not measured here" in text
    assert fig.layout.xaxis.type == "log" and "1M" in fig.layout.xaxis.ticktext
    assert fig.layout.yaxis.type == "log", "throughput is log-log: testbed curves are not flattened"
    assert "n = 3" in fig.layout.title.subtitle.text and "min–max, 75 %" in fig.layout.title.subtitle.text


def test_log_axes_label_decades_only() -> None:
    micro = micro_frame({("local", "intra-socket"): [0.4, 0.4, 0.4]}, sizes=(0, 1, 1024, 1 << 20))
    axis = fg.figure2_throughput(an.throughput_curves(micro)).layout.yaxis
    assert all(np.log10(v) == round(np.log10(v)) for v in axis.tickvals), "labelled ticks are powers of ten"
    assert len(axis.ticktext) == len(axis.tickvals)
    assert axis.minor.tickvals and not set(axis.minor.tickvals) & set(axis.tickvals)


def test_peak_labels_do_not_overlap() -> None:
    import re

    fig = fg.figure2_throughput(pd.DataFrame())
    lo, hi = fig.layout.yaxis.range
    height = (fig.layout.height or 540) - 130
    labels = []
    for a in fig.layout.annotations:
        found = re.search(r"([\d.]+) GB/s", str(a.text))
        if found:
            top = (hi - np.log10(float(found.group(1)))) / (hi - lo) * height + a.ay
            labels.append((top, 15 * (1 + str(a.text).count("<br>"))))
    labels.sort()
    assert len(labels) == 5
    # label boxes (centre, height) never overlap, even for 4.0 and 3.9 GB/s
    assert all(b[0] - a[0] >= (a[1] + b[1]) / 2 - 0.1 for a, b in zip(labels, labels[1:])), labels


def test_table2_lists_paper_and_measured_side_by_side() -> None:
    micro = micro_frame({("kvm", "inter-node"): [3.42, 3.42, 3.42]})
    cells = fg.table2_figure(an.latency_table(micro)).data[0].cells.values
    rows = list(zip(*cells))
    kvm = [r for r in rows if r[0] == "kvm" and r[1] == "inter-node"][0]
    assert kvm[2] == "1.71" and kvm[4].startswith("3.42") and kvm[8] == "2.00"
    assert kvm[5] == "min–max, 75 %" and kvm[6] == "3", "the interval says its true coverage at n = 3"
    assert [r for r in rows if r[0] == "Xen"][0][4] == "not measured here"


def test_table3_puts_blockss_at_bloss_with_paper_times() -> None:
    apps = apps_frame({("bmm", "SP-MZ", 4): [90, 91, 89], ("bmm", "blockss", 2): [30, 31, 29]})
    fig = fg.table3_figure(an.overhead_table(apps, "bmm"))
    bars = [t for t in fig.data if t.type == "scatter" and t.name == "bmm"][0]
    assert bars.mode.startswith("markers"), "times on a log axis are markers: a bar's length would mean nothing"
    assert list(bars.x) == ["SP-MZ", "Bloss"]
    paper_bmm = [t for t in fig.data if str(t.name).startswith("paper BMM")][0]
    assert 86.45 in list(paper_bmm.y) and 1260.0 in list(paper_bmm.y)
    assert "BMM" not in _texts(fig).split(":")[0]  # BMM was measured (as bmm)
    sub = fig.layout.title.subtitle.text
    assert "problem sizes differ" in sub and "blockss small" in sub and "compare overheads" in sub
    assert list(bars.text) == ["C", "small"], "each bar says which problem it ran"


def test_table3_explains_the_aa_halves() -> None:
    apps = apps_frame({("local", "blockss", 2): [30, 31, 29, 30, 31, 30]})
    fig = fg.table3_figure(an.aa_check(apps, "local"))
    names = {t.name for t in fig.data if t.showlegend is not False and not str(t.name).startswith("paper")}
    assert names == {"local/A (runs 1, 3, 5...)", "local/B (runs 2, 4, 6...)"}


def test_figure3_takes_the_class_from_the_data_one_trace_per_class() -> None:
    apps = pd.concat([apps_frame({("local", "SP-MZ", p): [100.0 / p] * 3 for p in (1, 2)}, stage="scaling",
                                 threads=1).assign(problem=klass) for klass in ("S", "W")])
    fig = fg.figure3_npb(an.efficiency_table(apps), an.performance_table(apps))
    assert "measured: class S, W" in fig.layout.title.text and "class C" in fig.layout.title.text
    eff = [t for t in fig.data if t.xaxis == "x3" and not str(t.name).startswith("paper") and t.name]
    assert sorted(t.name for t in eff) == ["local class S, 1 thr/proc", "local class W, 1 thr/proc"]
    assert all(len(t.x) == 2 for t in eff), "one line per class, never one line joining two classes"
    assert fig.layout.xaxis3.title.text == "MPI processes" and fig.layout.xaxis4.title.text == "MPI processes"


def test_figure4_names_the_threads_the_runs_used() -> None:
    apps = apps_frame({("local", "blockss", p): [100.0 / p + 5] * 3 for p in (1, 2)}, stage="scaling", threads=1)
    fig = fg.figure4_blockss(an.efficiency_table(apps), an.ideal_curve(apps))
    title = fig.layout.xaxis.title.text
    assert "x 1 OpenMP thread each as run" in title and "paper: x 4 OpenMP threads" in title


def test_emulated_environments_are_labelled_as_emulation() -> None:
    from vhpclib.figures.artifacts import CampaignData

    apps = apps_frame({("tcg", "blockss", 2): [30, 31, 29]})
    envs = pd.DataFrame([{"environment": "tcg", "label": "tcg", "vmm": "qemu-tcg"}])
    data = CampaignData.of("c", {"apps": apps, "environments": envs})
    assert set(data.table("apps")["label"]) == {"tcg (emulation: qemu-tcg)"}


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
        paths = fg.save_figure(fig, "fig2", outdir=tmp_path / "out")
    assert [p.name for p in paths] == ["fig2.pdf", "fig2.svg", "fig2.png", "fig2.html"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes().startswith(b"%PDF")
    assert "Figure 2: PingPong throughput vs message size" in paths[1].read_text()
    assert not png_is_blank(paths[2])
    html = paths[3].read_text()
    assert "<title>Figure 2: PingPong throughput vs message size</title>" in html
    # offline and small: plotly.js is loaded from the folder's one copy, nothing from a CDN
    assert 'src="plotly.min.js"' in html and 'src="http' not in html
    assert paths[3].stat().st_size < 200_000
    assert (tmp_path / "out/plotly.min.js").stat().st_size > 1_000_000
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_unchanged_figures_come_from_the_cache_without_a_browser(tmp_path, monkeypatch) -> None:
    fig = fg.section23_io()
    first = fg.save_figures({"io": fig}, tmp_path / "a", cache=tmp_path / "cache")
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))  # any browser start would fail
    again = fg.save_figures({"io": fig}, tmp_path / "b", cache=tmp_path / "cache")
    assert [p.name for p in again] == [p.name for p in first]
    assert (tmp_path / "b/io.pdf").read_bytes() == (tmp_path / "a/io.pdf").read_bytes()
    fig.update_layout(title="changed")
    with pytest.raises(BrowserNotFound):
        fg.save_figures({"io": fig}, tmp_path / "c", cache=tmp_path / "cache")


def _fake_browser(tmp_path, body: str) -> str:
    script = tmp_path / "chromium"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("body, message", [("sleep 300", "did not start within 3 s"),
                                           ("echo crashed >&2; exit 3", "could not start")],
                         ids=["hangs", "exits"])
def test_a_browser_that_cannot_start_fails_in_bounded_time_with_html_written(tmp_path, monkeypatch, body,
                                                                             message) -> None:
    import time

    from vhpclib.exceptions import FigureExportError
    from vhpclib.figures import export

    monkeypatch.setattr(export, "START_TIMEOUT_S", 3)
    monkeypatch.setenv("BROWSER_PATH", _fake_browser(tmp_path, body))
    t0 = time.monotonic()
    with pytest.raises(FigureExportError) as info:
        fg.save_figures({"io": fg.section23_io()}, tmp_path / "out", cache=tmp_path / "cache")
    assert time.monotonic() - t0 < 20
    assert message in str(info.value) and "\n" not in str(info.value)
    assert (tmp_path / "out/io.html").stat().st_size > 1000, "HTML is written before the static export"
    assert not list((tmp_path / "out").glob("io.p*")) and not (tmp_path / "cache").exists() or \
        not list((tmp_path / "cache").iterdir())
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "chromium")], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "the browser that never answered is killed"


def test_png_blank_check_detects_a_blank_image(tmp_path) -> None:
    from PIL import Image

    Image.new("RGB", (200, 100), "white").save(tmp_path / "blank.png")
    assert png_is_blank(tmp_path / "blank.png")
    noisy = (np.random.default_rng(0).random((100, 200, 3)) * 255).astype("uint8")
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    assert not png_is_blank(tmp_path / "noisy.png")
