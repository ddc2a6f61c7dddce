"""What a parser is (``parse(text, file) -> ParseResult``) and the registry every parser module joins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..registry import Registry


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


#: Parsers by the name ``vhpc parse`` and the workloads use (``imb``, ``npb``, ``app``, ``mzdemo``): the same
#: ``vhpclib.registry.Registry`` as workloads and launchers. A parser module registers itself at its end.
PARSERS: Registry[Parser] = Registry("parser", "KIND")


def register_parser(name: str, parser: Parser, *, replace: bool = False) -> Parser:
    """Make ``parser`` (a module or object with ``COLUMNS`` and ``parse``) available as ``name``."""
    return PARSERS.add(name, parser, replace=replace)


def get_parser(name: str) -> Parser:
    """The parser registered under ``name``; an unknown name is one ``InputError`` listing the known ones."""
    return PARSERS.get(name)
