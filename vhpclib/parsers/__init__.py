"""One parser per tool output format, behind a registry.

A parser is a pure function ``parse(text, file) -> ParseResult``: it checks the
tool's own success markers first, then extracts each number with an anchored
pattern. A log with no usable result raises ``ParseError``; recoverable damage
(a truncated table) becomes a ``ParseWarning`` and the complete rows are kept.
"""

from .base import PARSERS, Parser, ParseResult, ParseWarning, get_parser, register_parser

__all__ = ["PARSERS", "Parser", "ParseResult", "ParseWarning", "get_parser", "register_parser"]

# The built-in parsers, registered in one block (each module calls register_parser at its end).
from . import app, imb, mzdemo, npb  # noqa: E402,F401
