"""The Debian mirror this machine is configured with: where a guest's debootstrap fetches from.

Never a hard-coded host: the URI comes from the apt sources (deb822
``/etc/apt/sources.list.d/*.sources`` first, then one-line ``sources.list``
files), so a machine behind its own mirror or proxy builds guests from it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..exceptions import VmUnavailable

APT_DIR = Path("/etc/apt")
_SCHEMES = ("http://", "https://", "file:/")


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` source: a mirror URI and the suites and components it serves."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    file: str


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    """Stanzas of a deb822 file (RFC 822 style fields; continuation lines start with a blank)."""
    stanzas: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    last: str | None = None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                stanzas.append(fields)
            fields, last = {}, None
            continue
        if raw[0] in " \t" and last is not None:
            fields[last] += " " + raw.strip()
            continue
        key, sep, value = raw.partition(":")
        if sep:
            last = key.strip().lower()
            fields[last] = value.strip()
    return stanzas


def parse_deb822(text: str, file: str = "<sources>") -> list[AptSource]:
    """``deb`` sources of a ``.sources`` file (``Enabled: no`` stanzas are skipped)."""
    out = []
    for st in _deb822_stanzas(text):
        if "deb" not in st.get("types", "").split() or st.get("enabled", "yes").lower() == "no":
            continue
        for uri in st.get("uris", "").split():
            out.append(AptSource(uri, tuple(st.get("suites", "").split()), tuple(st.get("components", "").split()),
                                 file))
    return out


def parse_one_line(text: str, file: str = "<sources.list>") -> list[AptSource]:
    """``deb`` lines of a one-line-style ``sources.list`` (``deb [opts] URI SUITE COMPONENT...``)."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        if rest.startswith("["):
            rest = rest.split("]", 1)[-1].strip()
        words = rest.split()
        if len(words) >= 2:
            out.append(AptSource(words[0], (words[1],), tuple(words[2:]), file))
    return out


def configured_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """Every ``deb`` source of this machine, deb822 files first."""
    sources: list[AptSource] = []
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        sources += parse_deb822(path.read_text(errors="replace"), str(path))
    one_line = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            sources += parse_one_line(path.read_text(errors="replace"), str(path))
    return sources


def debian_mirror(suite: str, apt_dir: Path = APT_DIR) -> str:
    """URI of the configured source serving ``suite`` with ``main`` (any plain-codename source as a fallback).

    Raises ``VmUnavailable`` when the machine has no usable Debian source.
    """
    usable = [s for s in configured_sources(apt_dir)
              if s.uri.startswith(_SCHEMES) and (not s.components or "main" in s.components)]
    for source in usable:
        if suite in source.suites:
            return source.uri
    # A machine on another release still names the Debian archive: its plain-codename source serves every suite.
    for source in usable:
        if any("-" not in s and "/" not in s for s in source.suites):
            return source.uri
    raise VmUnavailable(f"no Debian apt source serving '{suite}' (main) found in {apt_dir}/sources.list.d/*.sources "
                        f"or {apt_dir}/sources.list; a guest image is built from this machine's own mirror")
