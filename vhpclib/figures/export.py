"""Writing figures: small HTML pages sharing one plotly.js per folder, and static PDF/SVG/PNG through kaleido.

Static exports are cached by a hash of the figure's JSON (plus format, size and
the plotly/kaleido versions), so an unchanged figure never starts a browser;
what is not cached is rendered by one headless Chromium for all figures, in a
thread of its own with bounded waits: when Chromium cannot start, export fails
with one line after the HTML files are written, instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import logging
import os
import shutil
import signal
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, TimeoutError as FutureTimeout
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import paths
from ..exceptions import BrowserNotFound, FigureExportError, VhpcError
from ..fsutil import atomic_write

if TYPE_CHECKING:
    import plotly.graph_objects as go

DEFAULT_FORMATS: tuple[str, ...] = ("pdf", "svg", "png", "html")
STATIC_FORMATS = ("pdf", "svg", "png", "jpeg", "jpg", "webp")
WIDTH, HEIGHT = 900, 540
PLOTLYJS = "plotly.min.js"
#: Seconds Chromium may take to start (a loaded 2-core machine needs ~8), and to render one image.
START_TIMEOUT_S = float(os.environ.get("VHPC_EXPORT_START_TIMEOUT", "90"))
RENDER_TIMEOUT_S = float(os.environ.get("VHPC_EXPORT_RENDER_TIMEOUT", "60"))

_session: "Exporter | None" = None
_session_lock = threading.Lock()


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


# ------------------------------------------------------------------ HTML

def plotlyjs_source() -> Path:
    """The plotly.js bundle of the installed plotly (the HTML pages load it from their own folder)."""
    from importlib.util import find_spec

    spec = find_spec("plotly")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).resolve().parent / "package_data" / PLOTLYJS


def install_plotlyjs(outdir: Path) -> Path:
    """One ``plotly.min.js`` per figures folder (copied when missing or from another plotly version)."""
    source, target = plotlyjs_source(), Path(outdir) / PLOTLYJS
    if not target.is_file() or target.stat().st_size != source.stat().st_size:
        atomic_write(target, source.read_bytes(), durable=False)
    return target


def figure_title(fig: go.Figure) -> str:
    """Plain text of a figure's title (empty when it has none)."""
    return str(fig.layout.title.text or "")


def figure_html(fig: go.Figure, title: str) -> str:
    """A full HTML page of ``fig`` that loads plotly.js from ``plotly.min.js`` beside it."""
    text = fig.to_html(include_plotlyjs="directory", full_html=True)
    return text.replace("<head>", f"<head><title>{html.escape(title)}</title>", 1)


# ------------------------------------------------------------------ static export

@dataclass
class StaticJob:
    """One static file to produce: where it goes, its cache key, and what kaleido renders."""

    target: Path
    fmt: str
    key: str
    spec: dict[str, Any]


@lru_cache(maxsize=1)
def _versions() -> str:
    from importlib.metadata import version

    return f"plotly {version('plotly')} kaleido {version('kaleido')}"


def static_jobs(fig: go.Figure | str, name: str, outdir: Path, formats: Sequence[str]) -> list[StaticJob]:
    """The static files of one figure (a Figure or its plotly JSON) with their cache keys.

    The key hashes the figure's JSON, the format, the size and the plotly/kaleido versions.
    """
    fig_json = fig if isinstance(fig, str) else fig.to_json()
    fig_dict = json.loads(fig_json)
    layout = fig_dict.get("layout", {})
    # a figure may ask for a wider static page than the report's column (layout.meta.static_width: a wide table)
    meta = layout.get("meta") if isinstance(layout.get("meta"), dict) else {}
    width, height = layout.get("width") or meta.get("static_width") or WIDTH, layout.get("height") or HEIGHT
    jobs = []
    for fmt in formats:
        scale = 2 if fmt == "png" else 1
        digest = hashlib.sha256(f"{_versions()}|{fmt}|{width}x{height}@{scale}|{fig_json}".encode()).hexdigest()
        jobs.append(StaticJob(Path(outdir) / f"{name}.{fmt}", fmt, digest,
                              {"fig": fig_dict, "opts": {"format": fmt, "width": width, "height": height,
                                                         "scale": scale}}))
    return jobs


def _kaleido_class():
    """kaleido's renderer, keeping its tab between images instead of reloading plotly.js after each one.

    kaleido reloads the page after every image (about 0.4 s of a 0.5 s export); its page is stateless
    between renders (each PDF rewrites the image and page size), so the reload is skipped when this
    kaleido has the hook; otherwise the stock class is used (slower, same output).
    """
    from kaleido import Kaleido

    if not hasattr(Kaleido, "_return_kaleido_tab"):
        return Kaleido

    class ReusedTabKaleido(Kaleido):
        async def _return_kaleido_tab(self, tab):  # noqa: ANN001 - kaleido's private signature
            await self.tabs_ready.put(tab)

    return ReusedTabKaleido


class Exporter:
    """One headless Chromium (through kaleido) in a thread with its own event loop; every wait is bounded.

    Works inside a Jupyter kernel (whose own loop is running) as well as in scripts.
    """

    def __init__(self) -> None:
        for name in ("choreographer", "kaleido", "browser_proc"):  # their warnings are not ours to print
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vhpc-figure-export", daemon=True)
        self._kaleido: Any = None
        self._opened: Future | None = None
        self.browser = ""

    def start(self) -> "Exporter":
        """Start Chromium in the background (returns at once; ``export`` waits for it)."""
        if self._opened is None:
            self.browser = find_browser()
            self._thread.start()
            self._opened = asyncio.run_coroutine_threadsafe(self._open(), self._loop)
        return self

    async def _open(self) -> BaseException | None:
        """Open the browser; an error is returned, not raised, so a cancelled start leaves nothing unretrieved."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # mathjax=False: kaleido would otherwise load MathJax from a CDN (no network here).
                self._kaleido = _kaleido_class()(path=self.browser, mathjax=False, timeout=RENDER_TIMEOUT_S)
                await self._kaleido.open()
        except BaseException as exc:  # noqa: BLE001 - reported by _wait_open in one line
            return exc
        return None

    def _wait_open(self) -> None:
        assert self._opened is not None
        try:
            error = self._opened.result(timeout=START_TIMEOUT_S)
        except FutureTimeout:
            self._opened.cancel()
            raise FigureExportError(f"Chromium ({self.browser}) did not start within {START_TIMEOUT_S:g} s "
                                    "(VHPC_EXPORT_START_TIMEOUT)", key="static export") from None
        if error is not None:
            raise FigureExportError(f"Chromium ({self.browser}) could not start: {_first_line(error)}",
                                    key="static export")

    def render(self, jobs: Sequence[StaticJob]) -> dict[Path, bytes]:
        """Bytes of every job, rendered in order by the one browser."""
        return self.collect(self.submit(jobs), len(jobs))

    def submit(self, jobs: Sequence[StaticJob]) -> Future | None:
        """Start rendering in the browser's thread and return at once (``collect`` waits for the bytes)."""
        if not jobs:
            return None
        self.start()
        self._wait_open()
        return asyncio.run_coroutine_threadsafe(self._render_all(jobs), self._loop)

    def collect(self, future: Future | None, count: int) -> dict[Path, bytes]:
        """The bytes of a ``submit``, waiting at most the render timeout per image."""
        if future is None:
            return {}
        budget = RENDER_TIMEOUT_S * count
        try:
            return future.result(timeout=budget)
        except FutureTimeout:
            future.cancel()
            raise FigureExportError(f"static export of {count} file(s) did not finish within {budget:g} s",
                                    key="static export") from None
        except Exception as exc:  # noqa: BLE001
            raise FigureExportError(f"Chromium failed to render a figure: {_first_line(exc)}",
                                    key="static export") from None

    async def _render_all(self, jobs: Sequence[StaticJob]) -> dict[Path, bytes]:
        out: dict[Path, bytes] = {}
        for job in jobs:
            out[job.target] = await self._kaleido.calc_fig(job.spec["fig"], opts=job.spec["opts"])
        return out

    def close(self) -> None:
        """Stop Chromium (its process group killed if it does not exit in 10 s) and the thread."""
        if self._opened is None:
            return
        opened = self._opened.done() and not self._opened.cancelled() and self._opened.result() is None
        proc = getattr(self._kaleido, "subprocess", None)
        if not opened and proc is not None and proc.poll() is None:
            self._kill(proc)  # a browser that never answered will not close politely either
        if self._kaleido is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._kaleido.close(), self._loop).result(
                    timeout=10 if opened else 2)
            except BaseException:  # noqa: BLE001 - closing must not hide the real outcome
                pass
        if proc is not None and proc.poll() is None:
            self._kill(proc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._opened = None


    @staticmethod
    def _kill(proc: Any) -> None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)  # choreographer starts it in a session of its own
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)


def _first_line(exc: BaseException) -> str:
    args = [str(a) for a in getattr(exc, "args", ()) if str(a).strip()]
    text = args[0] if args else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


@contextlib.contextmanager
def export_session() -> Iterator[Exporter]:
    """Keep one Chromium for every static export inside the block (started only if something is not cached)."""
    global _session
    with _session_lock:
        mine = _session is None
        if mine:
            _session = Exporter()
        session = _session
    try:
        yield session
    finally:
        if mine:
            with _session_lock:
                _session = None
            session.close()


def _copy(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)


def _static_formats(formats: Sequence[str]) -> list[str]:
    formats = [f.lower().lstrip(".") for f in formats]
    unknown = [f for f in formats if f != "html" and f not in STATIC_FORMATS]
    if unknown:
        raise VhpcError(f"unknown figure format {unknown[0]!r}", key="formats")
    return [f for f in formats if f != "html"]


class StaticExport:
    """Static files of several figures: cached ones copied, the rest rendered by one browser.

    ``start`` submits the renders and returns, so the caller can work meanwhile (the
    pipeline converts the report while Chromium renders); ``finish`` writes every file.
    """

    def __init__(self, figures: Mapping[str, go.Figure | str], outdir: Path, formats: Sequence[str],
                 cache: Path | None = None) -> None:
        self.cache = Path(cache) if cache is not None else paths.export_cache()
        self.jobs = [job for name, fig in figures.items() for job in static_jobs(fig, name, outdir, formats)]
        self.missing = [j for j in self.jobs if not (self.cache / f"{j.key}.{j.fmt}").is_file()]
        self._future: Future | None = None
        self._session: Exporter | None = None

    def start(self, session: "Exporter") -> "StaticExport":
        """Submit what is not cached to ``session``'s browser and return at once."""
        if self.missing and self._future is None:
            self._session = session
            self._future = session.submit(self.missing)
        return self

    def finish(self, session: "Exporter | None" = None) -> list[Path]:
        """Wait for the renders (starting them in ``session`` if not yet), cache them, write every file."""
        if self.missing:
            if self._future is None:
                if session is None:
                    raise ValueError("figures to render but no export session")
                self.start(session)
            rendered = self._session.collect(self._future, len(self.missing))
            self.cache.mkdir(parents=True, exist_ok=True)
            for job in self.missing:
                atomic_write(self.cache / f"{job.key}.{job.fmt}", rendered[job.target], durable=False)
        for job in self.jobs:
            job.target.parent.mkdir(parents=True, exist_ok=True)
            _copy(self.cache / f"{job.key}.{job.fmt}", job.target)
        return [job.target for job in self.jobs]


def write_html(figures: Mapping[str, go.Figure], outdir: Path) -> list[Path]:
    """One small HTML page per figure and the folder's one ``plotly.min.js``."""
    if not figures:
        return []
    install_plotlyjs(outdir)
    return [atomic_write(outdir / f"{name}.html", figure_html(fig, figure_title(fig) or name), durable=False)
            for name, fig in figures.items()]


PENDING = ".plotly"


def write_pending(figures: Mapping[str, go.Figure], outdir: Path) -> list[Path]:
    """The figures' plotly JSON under ``outdir/.plotly/``, for ``export_pending`` to render elsewhere."""
    folder = Path(outdir) / PENDING
    shutil.rmtree(folder, ignore_errors=True)
    return [atomic_write(folder / f"{name}.json", fig.to_json(), durable=False) for name, fig in figures.items()]


def pending(outdir: Path) -> dict[str, str]:
    """Figure JSON left by ``write_pending`` (name -> JSON)."""
    folder = Path(outdir) / PENDING
    return {p.stem: p.read_text() for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def save_figures(figures: Mapping[str, go.Figure], outdir: Path | str | None = None,
                 formats: Sequence[str] = DEFAULT_FORMATS, cache: Path | str | None = None) -> list[Path]:
    """Write every figure as ``outdir/<name>.<fmt>``; return the paths written.

    HTML first (all of them, sharing ``plotly.min.js`` in ``outdir``), then the static
    formats: from the cache when the figure is unchanged, else rendered by one Chromium
    for all. If static export fails, the HTML files are already there and
    ``FigureExportError`` says why in one line.
    """
    outdir = Path(outdir) if outdir is not None else paths.FIGURES
    static = _static_formats(formats)
    outdir.mkdir(parents=True, exist_ok=True)
    written = write_html(figures, outdir) if "html" in [f.lower() for f in formats] else []
    export = StaticExport(figures, outdir, static, Path(cache) if cache is not None else None)
    with export_session() as session:  # Chromium starts only if something is not cached
        written += export.finish(session)
    order = {f.lower().lstrip("."): i for i, f in enumerate(formats)}
    return sorted(written, key=lambda p: (p.stem, order.get(p.suffix.lstrip("."), 99)))


def save_figure(fig: go.Figure, name: str, outdir: Path | str | None = None,
                formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Write ``fig`` as ``outdir/name.<fmt>`` for each format (in that order); see :func:`save_figures`."""
    return save_figures({name: fig}, outdir, formats)
