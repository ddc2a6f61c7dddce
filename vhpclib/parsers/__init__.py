"""One parser per tool output format, behind a registry.

A parser is a pure function ``parse(text, file) -> ParseResult``: it checks the
tool's own success markers first, then extracts each number with an anchored
pattern. A log with no usable result raises ``ParseError``; recoverable damage
(a truncated table) becomes a ``ParseWarning`` and the complete rows are kept.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ParseWarning:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


@dataclass
class ParseResult:
    records: list[dict[str, Any]]
    warnings: list[ParseWarning] = field(default_factory=list)


class Parser(Protocol):
    COLUMNS: list[str]

    def parse(self, text: str, file: str = "<text>") -> ParseResult: ...


# name -> module implementing COLUMNS and parse(); modules import lazily.
REGISTRY: dict[str, str] = {
    "imb": "vhpclib.parsers.imb",
    "npb": "vhpclib.parsers.npb",
    "app": "vhpclib.parsers.app",
    "mzdemo": "vhpclib.parsers.mzdemo",
}


def get_parser(name: str) -> Parser:
    """The parser registered under ``name`` (``imb``, ``npb``, ``app``)."""
    try:
        return importlib.import_module(REGISTRY[name])  # type: ignore[return-value]
    except KeyError:
        raise KeyError(f"no parser {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
