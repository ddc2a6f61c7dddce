"""The names every layer shares: the study's stages (one enum) and a campaign (a value checked once).

Both are ``str`` underneath, so what is stored on disk (``"single-node"`` in a run
record, a campaign folder under ``data/raw``) and what a table holds stay exactly
as they were; what changes is that a misspelt stage or an unsafe campaign name
is refused where it enters (CLI, notebook parameters, ``stages.run``) and
nowhere else.
"""

from __future__ import annotations

import re
from enum import StrEnum

from .exceptions import InputError, InvalidName

__all__ = ["Stage", "Campaign", "check_id", "APP_STAGES"]

#: A name that is safe as one folder name (a campaign, an environment, a run id, a file name).
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
_MAX_ID = 120


def check_id(kind: str, value: str) -> str:
    """A name that is safe as one folder name: letters, digits and ``_.=+-``, not starting with one of those."""
    if not isinstance(value, str) or not _SAFE_ID.match(value) or ".." in value or len(value) > _MAX_ID:
        shown = value if not isinstance(value, str) or len(value) <= 60 else value[:57] + "..."
        raise InvalidName(f"{kind} must be 1-{_MAX_ID} letters, digits and '_.=+-', starting with a letter or "
                          f"digit, without '..' (got {shown!r})", key=kind)
    return value


class Stage(StrEnum):
    """The study's stages, as stored in run records, folders and tables (``str(Stage.SINGLE_NODE)``
    is ``"single-node"``)."""

    MICROBENCH = "microbench"
    SINGLE_NODE = "single-node"
    SCALING = "scaling"

    @classmethod
    def parse(cls, name: str | Stage) -> Stage:
        """The stage called ``name``; an unknown one is one ``InputError`` listing the known ones (exit 2)."""
        try:
            return cls(name)
        except ValueError:
            raise InputError(f"unknown stage {name!r}; known: {', '.join(cls)}", key="stage") from None


#: The stages application workloads (blockss, NPB-MZ) take part in.
APP_STAGES: tuple[Stage, ...] = (Stage.SINGLE_NODE, Stage.SCALING)


class Campaign(str):
    """A campaign name: one folder under ``data/raw`` and ``data/processed``, checked when it is made.

    ``Campaign(name)`` refuses a name that could leave those folders (``../x``, ``a/b``, an
    absolute path) or hide (``.x``) with ``InvalidName`` (exit code 2). Code below the edge
    takes a ``Campaign`` and trusts it; ``Campaign(c)`` of a ``Campaign`` is ``c`` itself, so an
    entry point that may get either pays for the check once.
    """

    __slots__ = ()

    def __new__(cls, name: str | Campaign) -> Campaign:
        if isinstance(name, Campaign):
            return name
        return super().__new__(cls, check_id("campaign", name))

    @classmethod
    def optional(cls, name: str | Campaign | None) -> Campaign | None:
        """``None`` stays ``None`` (the caller picks the newest or a new campaign)."""
        return None if name is None else cls(name)
