"""Writing figures: HTML and static PDF/SVG/PNG through kaleido with one reused headless Chromium."""

from __future__ import annotations

import atexit
import contextlib
import html
import os
import shutil
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import plotly.graph_objects as go

from .. import paths
from ..exceptions import BrowserNotFound, VhpcError

DEFAULT_FORMATS: tuple[str, ...] = ("pdf", "svg", "png", "html")
WIDTH, HEIGHT = 900, 540

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


def save_figure(fig: go.Figure, name: str, outdir: Path | str | None = None,
                formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Write ``fig`` as ``outdir/name.<fmt>`` for each format; return the paths written.

    PDF/SVG/PNG go through kaleido with one reused browser (started lazily);
    HTML is self-contained (plotly.js inline) so it opens offline. Each file is
    written to a temporary name and renamed, so a failed export leaves no half file.
    """
    outdir = Path(outdir) if outdir is not None else paths.FIGURES
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
