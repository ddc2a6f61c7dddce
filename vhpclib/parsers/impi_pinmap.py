"""Intel MPI's CPU pin map, printed at startup with ``I_MPI_DEBUG>=4``.

The table looks like (column widths vary with the node names)::

    [0] MPI startup(): ===== CPU pinning =====
    [0] MPI startup(): Rank    Pid      Node name      Pin cpu
    [0] MPI startup(): 0       7875     nodea.example  {0}
    [0] MPI startup(): 1       7876     nodea.example  {1}
    [0] MPI startup(): 2       7874     nodeb.example  {0-1}

It is the placement Intel MPI actually applied, so the microbenchmark stage
can check it against the placement it asked for. The NIC pinning table that
precedes it on multi-node runs (``Rank Thread id Pin nic``) is not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vhpclib.exceptions import ParseError

_HEADER = re.compile(r"^\[\d+\] MPI startup\(\):\s+Rank\s+Pid\s+Node name\s+Pin cpu\s*$")
_ROW = re.compile(r"^\[\d+\] MPI startup\(\):\s+(?P<rank>\d+)\s+(?P<pid>\d+)\s+(?P<node>\S+)\s+"
                  r"(?P<cpus>\{[^{}\s]*\}|[\d,-]+)\s*$")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class PinEntry:
    """One MPI rank: its process id, the node it ran on and the cpus it was pinned to."""

    rank: int
    pid: int
    node: str
    cpus: tuple[int, ...]


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """Cpus of ``{0,1}``, ``{0-3}``, ``{0,2,4-7}`` or ``0``, sorted; ValueError if malformed."""
    body = text[1:-1] if text.startswith("{") and text.endswith("}") else text
    cpus: set[int] = set()
    for part in body.split(","):
        m = _RANGE.match(part.strip())
        if m is None:
            raise ValueError(f"bad cpu list {text!r}")
        lo = int(m[1])
        hi = int(m[2]) if m[2] is not None else lo
        if hi < lo:
            raise ValueError(f"bad cpu range {part!r} in {text!r}")
        cpus.update(range(lo, hi + 1))
    return tuple(sorted(cpus))


def parse_pin_map(text: str, file: str = "<text>") -> list[PinEntry]:
    """The pin map in ``text`` as one entry per rank, in rank order; ``[]`` if none was printed.

    Raises ``ParseError`` (with file and line) when the map is damaged: a
    header without rows, a malformed cpu list, a rank listed twice or missing,
    or several maps in one log (several runs: parse each run's log alone).
    """
    lines = text.splitlines()
    blocks: list[tuple[int, list[PinEntry]]] = []
    i = 0
    while i < len(lines):
        if not _HEADER.match(lines[i]):
            i += 1
            continue
        header_line = i + 1
        entries: list[PinEntry] = []
        i += 1
        while i < len(lines):
            m = _ROW.match(lines[i])
            if m is None:
                break
            try:
                cpus = parse_cpu_list(m["cpus"])
            except ValueError as exc:
                raise ParseError(f"Intel MPI pin map: {exc}", file=file, line=i + 1) from None
            entry = PinEntry(rank=int(m["rank"]), pid=int(m["pid"]), node=m["node"], cpus=cpus)
            if any(e.rank == entry.rank for e in entries):
                raise ParseError(f"Intel MPI pin map lists rank {entry.rank} twice", file=file, line=i + 1)
            entries.append(entry)
            i += 1
        if not entries:
            raise ParseError("Intel MPI pin map header without rows (log cut?)", file=file, line=header_line)
        ranks = sorted(e.rank for e in entries)
        if ranks != list(range(len(ranks))):
            raise ParseError(f"Intel MPI pin map has ranks {ranks}, expected 0..{len(ranks) - 1}",
                             file=file, line=header_line)
        blocks.append((header_line, sorted(entries, key=lambda e: e.rank)))
    if len(blocks) > 1:
        where = ", ".join(str(n) for n, _ in blocks)
        raise ParseError(f"{len(blocks)} Intel MPI pin maps (lines {where}): one run per log expected",
                         file=file, line=blocks[1][0])
    return blocks[0][1] if blocks else []
