"""The "Compile options" an NPB-MZ binary prints, as NPB's ``sys/setparams`` bakes them in.

``setparams`` (3.3-MZ and 3.4-MZ alike) reads ``config/make.def`` line by line:
lines starting with ``#`` are skipped; for each of the seven labels below the last
line ``LABEL = value`` wins and its value is the rest of the line, as written
(``$(F77)`` stays ``$(F77)``); an empty or missing value becomes ``(none)``; a
value longer than 46 characters is cut to 43 and ``...``. The values go into
``npbparams.h`` as ``cs1`` .. ``cs7`` and ``print_results`` prints them, except
that SP-MZ, BT-MZ and LU-MZ pass the literal ``'(none)'`` for RAND (they use no
random numbers): their logs always say ``RAND = (none)``. So the build can
predict what every run must print, read what it compiled in, and a run's log
can be checked against its build.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: Labels printed under "Compile options", in order (``cs1`` .. ``cs7``), per version.
LABELS: dict[str, tuple[str, ...]] = {
    "3.3": ("F77", "FLINK", "F_LIB", "F_INC", "FFLAGS", "FLINKFLAGS", "RAND"),
    "3.4": ("FC", "FLINK", "F_LIB", "F_INC", "FFLAGS", "FLINKFLAGS", "RAND"),
}
#: Parser column of each label (F77 and FC are both the Fortran compiler).
COLUMN_OF = {"F77": "fc", "FC": "fc", "FLINK": "flink", "F_LIB": "f_lib", "F_INC": "f_inc",
             "FFLAGS": "fflags", "FLINKFLAGS": "flinkflags", "RAND": "rand"}
NONE = "(none)"
MAX_LENGTH = 46  # setparams' MAXL

_CS = re.compile(r"\bcs(?P<n>[1-7])\s*=\s*'(?P<value>[^']*)'", re.IGNORECASE)


def _setparams_value(line: str, label: str) -> str | None:
    """The value setparams' ``check_line`` takes from ``line`` for ``label``, or None if it does not match."""
    if not line.startswith(label):
        return None
    rest = line[len(label):]
    if rest[:1] and not rest[:1].isspace() and rest[:1] != "=":
        return None  # a longer name (FLINK vs FLINKFLAGS)
    rest = rest.lstrip()
    if not rest.startswith("="):
        return None
    value = rest[1:].lstrip()
    return value or None


def as_printed(value: str) -> str:
    """``value`` as setparams bakes it in and the binary prints it: cut to 43 characters and ``...`` when longer
    than 46 (a compiler under a long checkout path is printed cut: compare with this, never the full path)."""
    return value if len(value) <= MAX_LENGTH else value[:MAX_LENGTH - 3] + "..."


_clip = as_printed


def expected_compile_options(version: str, make_def_text: str) -> dict[str, str | None]:
    """What a binary built from ``make_def_text`` prints under "Compile options" (None for ``(none)``)."""
    values: dict[str, str | None] = dict.fromkeys(LABELS[version])
    for line in make_def_text.splitlines():
        if line.startswith("#"):
            continue
        for label in values:
            value = _setparams_value(line, label)
            if value is not None:  # the log's value lines are read without trailing blanks
                values[label] = _clip(value).rstrip()
    return values


def printed_compile_options(version: str, make_def_text: str) -> dict[str, str | None]:
    """What an NPB-MZ run prints under "Compile options": setparams' values, RAND always ``(none)``."""
    return {**expected_compile_options(version, make_def_text), "RAND": None}


def npbparams_compile_options(version: str, npbparams_text: str) -> dict[str, str | None]:
    """The ``cs1`` .. ``cs7`` strings compiled into a binary, read from its ``npbparams.h``.

    Accepts NPB's fixed-form ``parameter (cs1='mpif90')`` and free-form
    ``character(len=*), parameter :: cs1 = 'mpif90'``; labels missing from the file are None.
    """
    labels = LABELS[version]
    found: dict[str, str | None] = dict.fromkeys(labels)
    for match in _CS.finditer(npbparams_text):
        value = match["value"].rstrip()
        found[labels[int(match["n"]) - 1]] = None if value == NONE else value
    return found


def compile_option_mismatches(expected: Mapping[str, str | None], printed: Mapping[str, str | None]) -> list[str]:
    """Differences between expected options (label -> value) and printed ones (label or parser column -> value).

    ``printed`` may be a parsed NPB-MZ record (columns ``fc``, ``flink``, ...) or a label
    mapping; one message per differing label, empty when they agree.
    """
    out = []
    for label, want in expected.items():
        key = label if label in printed else COLUMN_OF[label]
        got = printed.get(key)
        if got != want:
            out.append(f"{label} = {got if got is not None else NONE} (the build set "
                       f"{want if want is not None else NONE})")
    return out
