"""Several environments in one stage call, their runs alternating in randomized ABBA blocks.

If every host run came before every guest run, drift of a shared machine (other
jobs, temperature, frequency, a neighbour's backup) would show up as overhead. Here
each block gives every environment one run in a random order and then one in the
reverse order (A B | B A): linear drift cancels inside a block, anything else is
randomized (Hoefler & Belli: compare under the same conditions). Points alternate
too, one block of each after the other. The order comes from a seed recorded in the
stage record (default: derived from campaign, stage and environments, so a resumed
call plans the same order). Resume is unchanged: a complete repetition is reused
whatever order it was measured in.
"""

from __future__ import annotations

import zlib
from contextlib import ExitStack
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..exceptions import InputError
from ..names import Stage
from ..params import StageParams
from .adaptive import Group, Series, build_groups, run_adaptive
from .context import StageContext, layer_up
from .loop import PointRunner, StageResult, _plan


def abba_order(groups: list[Group], first: int, last: int, rng: np.random.Generator) -> list[tuple[Series, int]]:
    """Repetitions ``first..last`` of every series: per pair of repetitions and per point, a random
    order of its environments then the reverse (ABBA); an odd last repetition gets the first half only."""
    out: list[tuple[Series, int]] = []
    for k in range(first, last + 1, 2):
        for group in groups:
            perm = [group.series[i] for i in rng.permutation(len(group.series))]
            out += [(s, k) for s in perm]
            if k + 1 <= last:
                out += [(s, k + 1) for s in reversed(perm)]
    return out


def default_seed(campaign: str, stage: Stage, environments: list[str]) -> int:
    return zlib.crc32(f"{campaign}/{stage}/{','.join(environments)}".encode())


def run_interleaved(ctx: StageContext, stage: Stage, params: StageParams, *, progress: bool = True) -> StageResult:
    """Measure ``stage`` in ``ctx``'s environment and every environment of ``params.interleave``, alternating."""
    environments = list(dict.fromkeys([ctx.environment, *params.interleave]))
    for name in environments:
        ctx.inventory.environment(name)  # unknown names: one InputError before anything runs
    if len(environments) < 2:
        raise InputError(f"interleave names only {ctx.environment!r}, the environment measured anyway",
                         key="interleave")
    one = params.model_copy(update={"interleave": ()})
    seed = params.interleave_seed if params.interleave_seed is not None else \
        default_seed(ctx.campaign, stage, environments)
    rng = np.random.default_rng(seed)
    baseline = ctx.inventory.baseline if ctx.inventory.baseline in environments else ctx.environment
    with ExitStack() as stack:
        contexts = {ctx.environment: ctx}
        for name in environments[1:]:
            stack.enter_context(layer_up(ctx.inventory, name, True))  # a container: up while it is measured
            contexts[name] = stack.enter_context(StageContext(ctx.inventory, name, ctx.campaign, store=ctx.store))
        results = {name: StageResult(stage, findings=c.topology_findings()) for name, c in contexts.items()}
        runners = {name: PointRunner(c, stage, one, results[name], _plan(c, stage, one, results[name]))
                   for name, c in contexts.items()}
        order_info = {"interleave": {"seed": seed, "environments": environments, "order": "ABBA blocks"}}
        if one.adaptive:
            stopping = run_adaptive(runners, stage, one, progress=progress, baseline=baseline, extra=order_info,
                                    order=lambda groups, first, last: abba_order(groups, first, last, rng))
        else:
            stopping = []
            _fixed(runners, stage, one, rng, baseline, progress)
    return merge(stage, results, stopping)


def _fixed(runners: dict[str, PointRunner], stage: Stage, params: StageParams, rng: np.random.Generator,
           baseline: str, progress: bool) -> None:
    series: list[Series] = []
    for runner in runners.values():
        counts = runner.stored_counts() if params.rerun else {}
        series += [Series(runner, w, p, runner.params, counts.get(p.stem, 0)) for w, mine in runner.points
                   for p in mine]
    todo = abba_order(build_groups(series, stage, baseline), 1, params.repetitions, rng)
    for s, k in tqdm(todo, desc=f"{stage} [{', '.join(runners)}]", unit="run", disable=not progress):
        s.run(k)


def merge(stage: Stage, results: dict[str, StageResult], stopping: list[Any]) -> StageResult:
    """One result for the call: totals, and each environment's own result beside them."""
    out = StageResult(stage, environments=results, stopping=stopping)
    for name, r in results.items():
        out.measured += r.measured
        out.reused += r.reused
        out.runs += r.runs
        out.invalid += r.invalid
        out.skipped += [f"{name}: {s}" for s in r.skipped]
        out.failures += [f"{name}: {f}" for f in r.failures]
        out.findings += [f"{name}: {f}" for f in r.findings]
        out.bad_input |= r.bad_input
    return out
