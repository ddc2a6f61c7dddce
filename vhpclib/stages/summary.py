"""What a stage run reports back to the CLI and the notebooks, whatever the stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..parsers import ParseWarning


class StageResult(Protocol):
    failures: list[str]

    def lines(self) -> list[str]: ...


@dataclass
class StageSummary:
    environment: str
    campaign: str
    result: Any  # a StageResult: MicrobenchResult or AppStageResult
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    figure_objects: dict = field(default_factory=dict)
    warnings: list[ParseWarning] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.result.failures)

    def lines(self) -> list[str]:
        first, *rest = self.result.lines()
        out = [f"{self.environment}: {first}", *rest]
        out += [f"warning: {w}" for w in self.warnings]
        out += [f"table: {p}" for p in self.tables]
        out += [f"figure: {p}" for p in self.figures]
        return out
