"""Drive headless Chromium for tests: screenshot a page, collect its JavaScript errors.

Talks the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (fd 3 in,
fd 4 out, NUL-separated JSON), so no TCP port and no extra package is needed.
Errors collected: ``console.error``/``console.assert`` calls, uncaught
exceptions, and browser log entries of level "error" (e.g. a script that failed
to load, which is what an HTML needing the network shows offline).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio"]


class BrowserUnavailable(RuntimeError):
    """No Chromium binary on this machine."""


@dataclass
class BrowserReport:
    """What one page load showed: JS errors, the document title, the screenshot, the DOM."""

    console_errors: list[str]
    title: str
    png_path: Path
    dom: str = ""
    events: list[str] = field(default_factory=list)


def find_chromium() -> str:
    """``BROWSER_PATH``, else Debian's chromium; raises BrowserUnavailable."""
    env = os.environ.get("BROWSER_PATH")
    for cand in ([env] if env else []) + list(CANDIDATES) + [shutil.which("chromium") or ""]:
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    raise BrowserUnavailable("no Chromium: apt-get install chromium, or set BROWSER_PATH")


class _Cdp:
    """Minimal CDP client over the pipe pair of one Chromium process."""

    def __init__(self, binary: str, profile: str, width: int, height: int) -> None:
        to_chrome_r, self._to_chrome_w = os.pipe()
        self._from_chrome_r, from_chrome_w = os.pipe()

        def wire() -> None:  # runs in the child: Chromium expects fd 3 (read) and fd 4 (write)
            # Move both ends above 9 first: a pipe end may already be fd 3 or 4, and
            # dup2(3, 3) would keep its close-on-exec flag.
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3, inheritable=True)
            os.dup2(high_w, 4, inheritable=True)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire, close_fds=False)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next = 0
        self._replies: dict[int, dict] = {}
        self.events: queue.Queue[dict] = queue.Queue()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr: list[bytes] = []
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._from_chrome_r, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self.events.put(msg)
        with self._cond:
            self._cond.notify_all()

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict:
        self._next += 1
        mid = self._next
        msg: dict = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"no CDP reply to {method}; chromium stderr: "
                                       + b"".join(self._stderr)[-500:].decode(errors="replace"))
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"CDP {method} failed: {reply['error']}")
        return reply.get("result", {})

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - the browser may already be gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome_w, self._from_chrome_r):
            try:
                os.close(fd)
            except OSError:
                pass


def _error_text(ev: dict) -> str | None:
    method, p = ev.get("method"), ev.get("params", {})
    if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        return "console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                            for a in p.get("args", []))
    if method == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        return "exception: " + str(d.get("exception", {}).get("description") or d.get("text"))
    if method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
        e = p["entry"]
        return f"log {e.get('source')}: {e.get('text')} {e.get('url', '')}".strip()
    return None


def screenshot(html_path: Path | str, png_path: Path | str, *, width: int = 1200,
               height: int = 800, ready_js: str = "document.querySelector('.main-svg') !== null",
               timeout: float = 60.0, settle_s: float = 0.5) -> BrowserReport:
    """Open ``html_path`` in headless Chromium, wait until ``ready_js`` is true, screenshot it.

    Returns the JavaScript errors seen during load and rendering, the document
    title, the PNG path and the rendered DOM. ``ready_js`` defaults to "a plotly
    plot has rendered"; pass ``"true"`` for pages without plots.
    """
    html_path, png_path = Path(html_path).resolve(), Path(png_path)
    with tempfile.TemporaryDirectory(prefix="vhpc-chromium-") as profile:
        cdp = _Cdp(find_chromium(), profile, width, height)
        try:
            target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            sid = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"]
            for domain in ("Runtime", "Log", "Page"):
                cdp.send(f"{domain}.enable", session=sid)
            cdp.send("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=sid)
            cdp.send("Page.navigate", {"url": html_path.as_uri()}, session=sid)
            deadline = time.monotonic() + timeout
            events: list[dict] = []
            loaded = ready = False
            while time.monotonic() < deadline and not (loaded and ready):
                try:
                    ev = cdp.events.get(timeout=0.2)
                    events.append(ev)
                    loaded |= ev.get("method") == "Page.loadEventFired"
                except queue.Empty:
                    pass
                if loaded and not ready:
                    ready = bool(cdp.send("Runtime.evaluate", {
                        "expression": f"Boolean({ready_js})", "returnByValue": True},
                        session=sid)["result"].get("value"))
            if not (loaded and ready):
                raise TimeoutError(f"{html_path}: page not ready after {timeout} s "
                                   f"(loaded={loaded}, ready={ready})")
            time.sleep(settle_s)
            while not cdp.events.empty():
                events.append(cdp.events.get_nowait())

            def evaluate(expr: str) -> str:
                return cdp.send("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                                session=sid)["result"].get("value", "")

            title = evaluate("document.title")
            dom = evaluate("document.documentElement.outerHTML")
            shot = cdp.send("Page.captureScreenshot", {"format": "png"}, session=sid)
            png_path.parent.mkdir(parents=True, exist_ok=True)
            png_path.write_bytes(base64.b64decode(shot["data"]))
            while not cdp.events.empty():
                events.append(cdp.events.get_nowait())
        finally:
            cdp.close()
    errors = [t for t in map(_error_text, events) if t]
    return BrowserReport(console_errors=errors, title=title, png_path=png_path, dom=dom,
                         events=[str(e.get("method")) for e in events])


def dump_dom(html_path: Path | str, budget_ms: int = 10000) -> str:
    """The DOM after scripts ran, via ``chromium --dump-dom`` (independent of the CDP path)."""
    with tempfile.TemporaryDirectory(prefix="vhpc-chromium-") as profile:
        out = subprocess.run(
            [find_chromium(), *FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={budget_ms}", "--dump-dom", Path(html_path).resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def png_is_blank(png: Path | str, min_std: float = 2.0) -> bool:
    """True when a PNG has (almost) one colour: pixel std-dev with Pillow, else compressibility.

    Without Pillow, a blank image compresses more than 500x; a rendered chart far less.
    """
    data = Path(png).read_bytes()
    try:
        import numpy as np
        from PIL import Image

        with Image.open(png) as im:
            arr = np.asarray(im.convert("L"), dtype=float)
        return float(arr.std()) < min_std
    except ImportError:
        pass
    pos, idat = 8, b""
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return len(raw) / max(len(idat), 1) > 500
