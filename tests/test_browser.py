"""A saved figure's HTML renders in headless Chromium, offline, with no JavaScript errors."""

from __future__ import annotations

import pytest

import browser
from test_analysis import apps_frame
from vhpclib import analysis as an
from vhpclib import figures as fg

pytestmark = pytest.mark.browser

TITLE = "Figure 4: blockss (paper: Bloss) parallel efficiency"


@pytest.fixture(scope="module")
def figure_html(tmp_path_factory):
    apps = apps_frame({("local", "blockss", p): [100.0 / p + 5, 100.0 / p + 6] for p in (1, 2)},
                      stage="scaling", threads=4, solve_s={("local", "blockss", 1): 95.0},
                      extract_s={("local", "blockss", 1): 5.0})
    fig = fg.figure4_blockss(an.efficiency_table(apps), an.ideal_curve(apps, nprocs=[1, 2, 4]))
    out = tmp_path_factory.mktemp("fig")
    return fg.save_figure(fig, "figure4", outdir=out, formats=("html",))[0]


def test_figure_html_renders_without_javascript_errors(figure_html, tmp_path) -> None:
    report = browser.screenshot(figure_html, tmp_path / "shot.png")
    assert report.console_errors == []
    assert report.title == TITLE
    assert TITLE in report.dom and "main-svg" in report.dom
    assert not browser.png_is_blank(report.png_path)


def test_figure_title_is_in_the_dumped_dom(figure_html) -> None:
    dom = browser.dump_dom(figure_html)
    assert f"<title>{TITLE}</title>" in dom
    assert 'class="gtitle"' in dom and TITLE in dom.split('class="gtitle"', 1)[1][:300]


def test_helper_reports_javascript_errors(tmp_path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<html><head><title>bad</title></head><body><script>"
                    "console.error('boom-1'); undefinedFunction();</script>"
                    "<script src='missing-file.js'></script></body></html>")
    report = browser.screenshot(page, tmp_path / "bad.png", ready_js="true", settle_s=0.2)
    text = " | ".join(report.console_errors)
    assert "boom-1" in text and "undefinedFunction" in text and "missing-file.js" in text
    assert report.title == "bad"
    assert browser.png_is_blank(report.png_path)
