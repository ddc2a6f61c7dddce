"""blockss, the block Sakurai–Sugiura eigensolver shipped in ``apps/blockss`` (the paper's Bloss).

The paper's layout scaled to the hardware: 2 processes per node, cores/2
OpenMP threads each. The problem is generated once on every host that may run
ranks (deterministic; the log records each matrix's sha256). Results come from
the solver's JSON record (``blockss.json``); its human log is parsed as a
cross-check that both tell the same story.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..exceptions import ParseError
from ..launchers import Job
from ..parsers import get_parser
from .app_run import APP_STAGES, SINGLE_NODE, AppRun, powers_of_two
from .base import Column, Extracted, Point, Section, Skip, Workload
from .capacity import Capacity

if TYPE_CHECKING:
    from ..params import AppParams
    from ..stages.context import StageContext
    from ..store import StoredRun

RESULT_FILE = "blockss.json"
PHASES = ("setup", "solve", "wait", "reduce", "extract")
#: The log prints phase times in microseconds; the table keeps the same resolution from the JSON.
TIME_DIGITS = 6


class BlockssParams(BaseModel):
    """blockss' parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    blockss_preset: str = Field("small", json_schema_extra={"cli": "--preset"},
                                description="blockss problem preset (vhpc-blockss presets: tiny, small, medium, "
                                            "large, quadratic-*).")

    @field_validator("blockss_preset")
    @classmethod
    def _preset(cls, value: str) -> str:
        from blockss.generate import PRESETS

        if value not in PRESETS:
            raise ValueError(f"unknown blockss preset {value!r}; known: {', '.join(PRESETS)}")
        return value


class Blockss(Workload):
    name = "blockss"
    paper_name = "Bloss"
    table = "apps"
    stages = APP_STAGES
    Params = BlockssParams
    section = Section("blockss", str | None, "Command running vhpc-blockss on the hosts; default this venv's.")
    columns = tuple(Column(f"{p}_s", "s", f"blockss' {p} phase (from its JSON record)") for p in PHASES)

    def plan(self, stage: str, ctx: StageContext, params: AppParams) -> list[Point | Skip]:
        """The paper's 2 processes per node, cores/2 threads each, where the nodes can host them pinned.

        On one node the scaling sweep runs 1 and 2 processes inside it, so the stage still yields an
        efficiency and an ideal curve. On "nodes" that are namespaces or containers of one machine it
        spreads single-threaded ranks over the nodes, each pinned to a core of its own (the study's
        scaling across nodes, as far as the machine's cores go); a point the nodes cannot host is
        skipped with the reason (``Capacity``), never measured oversubscribed.
        """
        if stage not in APP_STAGES:
            return []
        capacity = Capacity.of(ctx)
        threads = max(1, capacity.cores_per_node // 2)
        preset = self.settings(params).blockss_preset
        if stage == SINGLE_NODE:
            counts = [2]
        elif capacity.shared:  # "nodes" of one machine: spread one rank per node while each has a core of its own
            fits = powers_of_two(min(capacity.nodes, capacity.cores_per_node))
            counts = list(params.processes or [*fits, 2 * fits[-1]])  # the last: skipped, with the reason
            return capacity.fit(self.name, [AppRun(self.name, preset, p, 1, -(-p // capacity.nodes))
                                            for p in counts])
        elif params.processes:
            counts = list(params.processes)
        elif capacity.nodes == 1:
            counts = [1, 2]
        else:
            counts = [2 * n for n in powers_of_two(capacity.nodes)]
        return capacity.fit(self.name, [AppRun(self.name, preset, p, threads, 2) for p in counts])

    def prepare(self, ctx: StageContext, points: list[Point], params: AppParams) -> str:
        """Generate the preset's matrices once on every host that may run ranks; returns problem.json's path.

        The folder is keyed by a hash of the generator's parameters (``problem_key``) under the
        environment's private work folder, and checked before every use against the sha256 of
        problem.json and each matrix recorded when vhpc generated them: files that do not match (a
        damaged or planted problem.json) are generated again, never used as the preset.
        """
        from ..config import secure_dir_command

        preset = self.settings(params).blockss_preset
        root = f"{ctx.env.work_root.rstrip('/')}/blockss-problems"
        folder = f"{root}/{preset}-{problem_key(preset)}"
        generate = " ".join(shlex.quote(a) for a in [*blockss_command(ctx), "generate", "--preset", preset])
        hosts = list(dict.fromkeys([ctx.env.launch_host, *ctx.env.hosts]))
        ctx.run_on(hosts, secure_dir_command(root) + "\n" + _CACHED_PROBLEM.format(folder=shlex.quote(folder),
                                                                                   generate=generate),
                   env=ctx.runtime.env, timeout=1800)
        return f"{folder}/problem.json"

    def job(self, ctx: StageContext, point: Point, repetition: int, prepared: str, params: AppParams) -> Job:
        run = AppRun.of(point)
        program = [*blockss_command(ctx), "solve", "--problem", prepared, "--out", RESULT_FILE]
        hosts = ctx.mpi_hosts(run.nodes)
        shared = run.nodes > 1 and ctx.shares_machine(list(ctx.env.hosts[:run.nodes]))
        return Job(program, run.launch_spec(hosts, distinct_cores=shared), timeout_s=params.timeout_s,
                   outputs=(RESULT_FILE,), record={"problem_json": prepared, "preset": run.problem})

    def sanity(self, run: StoredRun) -> list[str]:
        try:
            result = _result(run)
        except (OSError, ValueError) as exc:
            return [f"no readable {RESULT_FILE}: {exc}"]
        problems = [f"{RESULT_FILE} lacks {k!r}" for k in ("timings", "eigenvalues", "residuals", "tol")
                    if k not in result]
        if problems:
            return problems
        try:
            [logged] = get_parser("app").parse(run.stdout(), str(run.stdout_path)).records
        except ParseError as exc:
            return [f"log has no result: {exc.message}"]
        if logged["n_eigenvalues"] != len(result["eigenvalues"]):
            problems.append(f"log lists {logged['n_eigenvalues']} eigenvalues, {RESULT_FILE} "
                            f"{len(result['eigenvalues'])}")
        if not math.isclose(logged["total_s"], result["timings"]["total"], abs_tol=1e-6):
            problems.append(f"log total {logged['total_s']} s differs from {RESULT_FILE} "
                            f"{result['timings']['total']} s")
        return problems

    def extract(self, run: StoredRun) -> Extracted:
        result = _result(run)
        timings = result["timings"]
        warnings = solver_warnings(result)
        verified = (not warnings and len(result["eigenvalues"]) > 0
                    and all(r <= result["tol"] for r in result["residuals"]))
        row: dict[str, Any] = {"time_s": round(timings["total"], TIME_DIGITS), "verified": verified}
        row.update({f"{p}_s": round(timings[p], TIME_DIGITS) for p in PHASES})
        return Extracted([row], [f"{run.path / RESULT_FILE}: solver warning: {w}" for w in warnings])


def solver_warnings(result: dict[str, Any]) -> list[str]:
    """What the solver flagged: its own list (blockss >= 0.2), else the conditions blockss 0.1's log warned about."""
    if "warnings" in result:
        return list(result["warnings"])
    out = []
    if result.get("subspace_full"):
        out.append(f"subspace full (rank {result.get('rank')} = L*M): eigenvalues may be missing")
    expected = result.get("expected_count")
    if expected is not None and expected != len(result["eigenvalues"]):
        out.append(f"expected {expected} eigenvalues inside the circle, accepted {len(result['eigenvalues'])}")
    return out


def _result(run: StoredRun) -> dict[str, Any]:
    data = json.loads((run.path / RESULT_FILE).read_text())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


#: Shell: reuse the problem folder only when every file matches the checksums vhpc wrote beside them.
_CACHED_PROBLEM = """f={folder}; t="$f.tmp.$$.$(hostname)"
vhpc_ok() {{ [ -s "$f/vhpc-sha256" ] && grep -q ' problem.json$' "$f/vhpc-sha256" && \\
  (cd "$f" && sha256sum --quiet --strict -c vhpc-sha256) >/dev/null 2>&1; }}
if ! vhpc_ok; then
  rm -rf "$t" && {generate} --outdir "$t" >/dev/null && \\
    (cd "$t" && sha256sum problem.json *.mtx > vhpc-sha256) || {{ rm -rf "$t"; exit 1; }}
  vhpc_ok || {{ rm -rf "$f"; mv -T "$t" "$f" 2>/dev/null; }}
  rm -rf "$t"
  vhpc_ok || {{ echo "vhpc: blockss problem $f does not match its checksums after generation" >&2; exit 1; }}
fi
"""


def problem_key(preset: str) -> str:
    """A hash of what generates the preset: its parameters and the generator's code."""
    import dataclasses
    import hashlib

    import blockss.generate as generate
    import blockss.problem as problem

    parts = [preset, json.dumps(dataclasses.asdict(generate.PRESETS[preset]), sort_keys=True, default=str)]
    for module in (generate, problem):
        try:
            parts.append(hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest())
        except (OSError, TypeError):
            parts.append(getattr(module, "__name__", ""))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def blockss_command(ctx: StageContext) -> list[str]:
    """How the environment runs vhpc-blockss: the inventory's command, else the venv's script."""
    configured = ctx.env.benchmarks.blockss
    return shlex.split(configured) if configured else [ctx.runtime.binary("vhpc-blockss")]
