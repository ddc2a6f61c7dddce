"""Stage parameters: one pydantic model per kind of stage, one default per parameter.

The CLI, the notebooks and the pipeline all build these models, so a parameter
means the same thing (and defaults to the same value) wherever it is set, and a
bad value is refused before anything runs.

Only what belongs to the stage lives here (repetitions, adaptive stopping, interleaving,
process counts). A workload's own parameters are its ``Params`` model, in its module
(``Workload.Params``): given flat (``msglog="0:4"``, as the CLI and the notebooks do) they go to
every registered workload that declares them, and ``params.settings(workload)`` hands them over.
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


def _workloads() -> Any:
    """The workload registry with the built-in workloads and the plugins' registered (loaded by name, as
    ``config.load_workloads`` does for inventories: this module never imports a workload)."""
    from .config import load_workloads
    from .schema import WORKLOADS

    load_workloads()
    return WORKLOADS


class _WorkloadParamError(ValueError):
    """A workload parameter refused by the workload's model: carries the parameter's name."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class StageParams(BaseModel):
    """What every stage takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workloads: tuple[str, ...] = ()
    repetitions: int = Field(DEFAULT_REPETITIONS, ge=1)
    rerun: bool = False
    timeout_s: float | None = Field(None, gt=0)
    #: Each workload's own parameters, validated by its ``Params`` model (``{workload: {key: value}}``;
    #: flat keyword arguments naming a workload parameter land here).
    options: dict[str, Any] = Field(default_factory=dict)
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

    @model_validator(mode="before")
    @classmethod
    def _workload_parameters(cls, data: Any) -> Any:
        """Flat workload parameters go to ``options`` of every registered workload whose model declares them."""
        if not isinstance(data, dict):
            return data
        flat = [k for k in data if k not in cls.model_fields]
        if not flat:
            return data
        options = {name: dict(_as_dict(value)) for name, value in (data.get("options") or {}).items()}
        rest = {k: v for k, v in data.items() if k != "options"}
        for key in flat:
            owners = [w for _, w in _workloads().items() if key in w.Params.model_fields]
            if owners:
                value = rest.pop(key)
                for w in owners:  # one value for a list parameter (papermill -p placements intra-socket)
                    options.setdefault(w.name, {})[key] = (_one_or_many(value) if _is_sequence_field(w.Params, key)
                                                           else value)
        return {**rest, "options": options}

    @field_validator("options")
    @classmethod
    def _validate_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, given in value.items():
            model = _workloads().get(name).Params
            try:
                out[name] = given if isinstance(given, model) else model.model_validate(_as_dict(given))
            except ValidationError as exc:
                err = exc.errors()[0]
                key = ".".join(str(p) for p in err["loc"]) or name
                message = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
                raise _WorkloadParamError(key, message.removeprefix("Value error, ")) from None
        return out

    def settings(self, workload: Any) -> Any:
        """``workload``'s parameters: its ``Params`` with the values given for it, its defaults for the rest."""
        given = self.options.get(workload.name)
        return given if given is not None else workload.Params()

    def with_settings(self, workload: Any, **values: Any) -> "StageParams":
        """A copy whose parameters of ``workload`` are updated with ``values`` (validated)."""
        merged = {**self.settings(workload).model_dump(), **values}
        return self.model_copy(update={"options": {**self.options,
                                                   workload.name: workload.Params.model_validate(merged)}})

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
        for name in self.workloads:
            _workloads().get(name)
        return self

    @classmethod
    def build(cls, **values: Any) -> "StageParams":
        """Validate; a bad value becomes one ``InputError`` naming the parameter (the CLI prints it)."""
        values = {k: _one_or_many(v) if _is_sequence_field(cls, k) else v for k, v in values.items()}
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            err = exc.errors()[0]
            inner = (err.get("ctx") or {}).get("error")
            if isinstance(inner, _WorkloadParamError):
                raise InputError(str(inner), key=inner.key) from None
            key = ".".join(str(p) for p in err["loc"]) or None
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown parameter (not the stage's, nor any registered workload's)"
            raise InputError(message, key=key) from None


def _as_dict(value: Any) -> dict[str, Any]:
    return value.model_dump() if isinstance(value, BaseModel) else dict(value)


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
    """The microbenchmark stage (IMB PingPong per placement; its parameters: ``workloads.pingpong``)."""

    workloads: tuple[str, ...] = ("pingpong",)


class AppParams(StageParams):
    """Application stages (single-node overhead, scaling); blockss' and NPB-MZ's parameters are theirs."""

    workloads: tuple[str, ...] = ("blockss", "npb")
    #: Scaling: the process counts (None: from the node count, per workload).
    processes: tuple[int, ...] | None = None

    @field_validator("processes")
    @classmethod
    def _positive(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or min(value) < 1):
            raise ValueError(f"process counts must be positive integers, got {list(value)}")
        return value
