"""Stage parameters: one pydantic model per kind of stage, one default per parameter.

The CLI, the notebooks and the pipeline all build these models, so a parameter
means the same thing (and defaults to the same value) wherever it is set, and a
bad value is refused before anything runs.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .exceptions import InputError

#: Repetitions per point: the smallest n whose min-max interval covers the median with >= 95 %
#: (1 - 2 * 2**-n >= 0.95 needs n >= 6; see ``analysis.order_statistic_ci``).
DEFAULT_REPETITIONS = 6
#: Adaptive repetitions (``ci_target_pct``): the first look, and the cap, in runs per point and environment.
DEFAULT_MIN_RUNS = 10
DEFAULT_MAX_RUNS = 60


class StageParams(BaseModel):
    """What every stage takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workloads: tuple[str, ...] = ()
    repetitions: int = Field(DEFAULT_REPETITIONS, ge=1)
    rerun: bool = False
    timeout_s: float | None = Field(None, gt=0)
    #: Settings of workloads registered from outside vhpclib (``{workload: {key: value}}``).
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Adaptive repetitions: measure until every reported quantity's interval has a half-width of at most
    #: this percentage of its value (None: ``repetitions`` fixed runs per point). See ``vhpclib.stats``.
    ci_target_pct: float | None = Field(None, gt=0, lt=100)
    #: Adaptive: the first look (runs per point and environment) and the cap.
    min_runs: int = Field(DEFAULT_MIN_RUNS, ge=2)
    max_runs: int = Field(DEFAULT_MAX_RUNS, ge=2)
    #: Adaptive: seconds of measuring for the whole stage call; checked before each block of runs.
    budget_s: float | None = Field(None, gt=0)
    #: Confidence of every reported interval (adaptive stopping keeps it over its repeated looks).
    confidence: float = Field(0.95, gt=0.5, lt=1)
    #: Leave a warm-up transient (first runs that differ) out of the statistics; the runs stay stored.
    exclude_warmup: bool = True
    #: Other environments of the inventory measured in the same call, runs alternating in randomized
    #: ABBA blocks so that drift of the machine cannot turn into an overhead.
    interleave: tuple[str, ...] = ()
    #: Seed of the interleaving order (default: derived from campaign and stage, so a resumed call plans the same).
    interleave_seed: int | None = None

    @field_validator("timeout_s", "budget_s")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value

    @model_validator(mode="after")
    def _run_range(self) -> "StageParams":
        if self.min_runs > self.max_runs:
            if "min_runs" in self.model_fields_set:
                raise ValueError(f"min_runs ({self.min_runs}) must not exceed max_runs ({self.max_runs})")
            object.__setattr__(self, "min_runs", self.max_runs)  # a small cap alone: the first look is the cap
        return self

    @property
    def adaptive(self) -> bool:
        return self.ci_target_pct is not None

    @model_validator(mode="after")
    def _known_workloads(self) -> "StageParams":
        from .workloads import get_workload

        for name in self.workloads:
            get_workload(name)
        return self

    @classmethod
    def build(cls, **values: Any) -> "StageParams":
        """Validate; a bad value becomes one ``InputError`` naming the parameter (the CLI prints it)."""
        values = {k: _one_or_many(v) if _is_sequence_field(cls, k) else v for k, v in values.items()}
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or None
            raise InputError(err["msg"].removeprefix("Value error, "), key=key) from None


def _is_sequence_field(cls: type[BaseModel], name: str) -> bool:
    field = cls.model_fields.get(name)
    return field is not None and ", ...]" in str(field.annotation)  # tuple[str, ...], not msglog's pair


def _one_or_many(value: Any) -> Any:
    """A list parameter given one value (papermill ``-p workloads blockss``, ``-p processes 4``) or a comma
    list (``-p workloads blockss,npb``) as a tuple; a string is never taken letter by letter."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (value,)
    return value


class MicrobenchParams(StageParams):
    """IMB PingPong. The paper used sizes up to 1 GB and 1,000,000 repetitions per size."""

    workloads: tuple[str, ...] = ("pingpong",)
    msglog: tuple[int, int] = (0, 22)
    iterations: int | None = Field(None, ge=1)  # IMB -iter: repetitions per size (IMB's default policy otherwise)
    time_limit_s: float | None = Field(None, gt=0)  # IMB -time: seconds per size before IMB cuts repetitions
    mem_gb: float | None = Field(None, gt=0)  # IMB -mem: needed for sizes above 2^30 / 2
    placements: tuple[str, ...] = ("intra-socket", "inter-socket", "inter-node")

    @field_validator("msglog", mode="before")
    @classmethod
    def _msglog(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                lo, hi = (int(x) for x in value.split(":"))
            except ValueError:
                raise ValueError(f"msglog {value!r}: expected lo:hi with integers") from None
            return (lo, hi)
        return value

    @field_validator("msglog")
    @classmethod
    def _msglog_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        lo, hi = value
        if not 0 <= lo <= hi <= 30:
            raise ValueError(f"msglog must satisfy 0 <= lo <= hi <= 30, got {lo}:{hi}")
        return value

    @field_validator("placements")
    @classmethod
    def _placements(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from .topology import PLACEMENTS

        unknown = [p for p in value if p not in PLACEMENTS]
        if unknown:
            raise ValueError(f"unknown placement(s) {', '.join(unknown)}; known: {', '.join(PLACEMENTS)}")
        return value

    def imb_args(self) -> list[str]:
        args = ["PingPong", "-msglog", f"{self.msglog[0]}:{self.msglog[1]}"]
        if self.iterations is not None:
            # -iter_policy off: every size gets exactly the repetitions asked for, as in the paper.
            args += ["-iter", str(self.iterations), "-iter_policy", "off"]
        if self.time_limit_s is not None:
            args += ["-time", str(self.time_limit_s)]
        if self.mem_gb is not None:
            args += ["-mem", str(self.mem_gb)]
        return args

    def tag(self) -> str:
        """Part of the run id, so runs with other parameters are never mistaken for these."""
        tag = f"m{self.msglog[0]}-{self.msglog[1]}"
        if self.iterations is not None:
            tag += f"-i{self.iterations}"
        if self.time_limit_s is not None:
            tag += f"-t{self.time_limit_s:g}"
        if self.mem_gb is not None:
            tag += f"-g{self.mem_gb:g}"
        return tag


class AppParams(StageParams):
    """Application stages (single-node overhead, scaling)."""

    workloads: tuple[str, ...] = ("blockss", "npb")
    blockss_preset: str = "small"
    npb_class: str = "C"
    processes: tuple[int, ...] | None = None

    @field_validator("processes")
    @classmethod
    def _positive(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or min(value) < 1):
            raise ValueError(f"process counts must be positive integers, got {list(value)}")
        return value

    @field_validator("npb_class")
    @classmethod
    def _npb_class(cls, value: str) -> str:
        from .npb.build import CLASSES

        if value not in CLASSES:
            raise ValueError(f"NPB class must be one of {', '.join(CLASSES)}, got {value!r}")
        return value

    @field_validator("blockss_preset")
    @classmethod
    def _preset(cls, value: str) -> str:
        from blockss.generate import PRESETS

        if value not in PRESETS:
            raise ValueError(f"unknown blockss preset {value!r}; known: {', '.join(PRESETS)}")
        return value
