"""``run_stage``: which driver runs a stage's points in one environment.

Fixed repetitions run here; adaptive repetitions (``adaptive``) and interleaved
environments (``interleave``) are the two other drivers. All three run points
through ``loop.PointRunner``, so resume, preparation and failure isolation are
the same everywhere (ReFrame's per-test isolation: one run's failure never stops the others).
Layers: driver -> interleave -> adaptive -> loop; ``loop`` imports none of the drivers.
"""

from __future__ import annotations

from tqdm.auto import tqdm

from ..exceptions import StageStopped
from ..launchers import get_launcher
from ..names import Stage
from ..params import StageParams
from .context import StageContext
from .loop import PointRunner, StageResult, _plan

__all__ = ["StageResult", "run_stage"]


def run_stage(ctx: StageContext, stage: str | Stage, params: StageParams, *, progress: bool = True) -> StageResult:
    """Run (or reuse) every point of ``stage`` for the workloads ``params`` names, in one environment.

    Complete runs are reused (resume); ``params.rerun`` adds ``repetitions`` new runs after
    the stored ones instead. Raw data is never replaced. With ``params.ci_target_pct`` the
    number of runs adapts to the intervals (``stages.adaptive``); with ``params.interleave``
    other environments are measured in the same call, runs alternating (``stages.interleave``).
    """
    stage = Stage.parse(stage)  # a misspelt stage is one line (exit 2), before anything is planned
    get_launcher(ctx.env.launcher).check(ctx)  # vhpc-slurm: settings the scheduler refuses stop here (exit 2)
    if params.interleave:
        from .interleave import run_interleaved

        try:
            return run_interleaved(ctx, stage, params, progress=progress)
        except StageStopped as exc:  # the same failure on one host run after run: what ran is kept
            stopped = exc.result if isinstance(exc.result, StageResult) else StageResult(stage)
            stopped.stopped = exc.message
            return stopped
    result = StageResult(stage, findings=ctx.topology_findings())
    try:
        return _run_points(ctx, stage, params, result, progress)
    except StageStopped as exc:
        result.stopped = exc.message
        return result


def _run_points(ctx: StageContext, stage: Stage, params: StageParams, result: StageResult,
                progress: bool) -> StageResult:
    points = _plan(ctx, stage, params, result)
    runner = PointRunner(ctx, stage, params, result, points)
    if params.adaptive:
        from .adaptive import run_adaptive

        result.stopping = run_adaptive({ctx.environment: runner}, stage, params, progress=progress)
        return result
    counts = ctx.store.measured_counts(ctx.campaign, ctx.environment, stage) if params.rerun else {}
    todo = [(w, p, rep) for w, mine in points for p in mine
            for rep in range(counts.get(p.stem, 0) + 1, counts.get(p.stem, 0) + params.repetitions + 1)]
    bar = tqdm(todo, desc=f"{stage} [{ctx.environment}]", unit="run", disable=not progress)
    for workload, point, rep in bar:
        runner.run(workload, point, rep)
    return result
