"""The one exception blockss raises on purpose; the CLI turns it into exit code 2."""

from __future__ import annotations


class BlockssError(Exception):
    """Bad input (missing matrix, inconsistent sizes, bad option) or an unusable problem.

    ``file`` names the offending input when there is one.
    """

    def __init__(self, message: str, *, file: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None

    def __str__(self) -> str:
        return f"{self.file}: {self.message}" if self.file else self.message
