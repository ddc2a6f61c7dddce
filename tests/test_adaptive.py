"""Adaptive repetitions, interleaved environments and the two IMB levels, through the real stage loop.

Runs are launched by the real mpirun launcher into the real store. The 'tick' workload prints a time
chosen per environment and repetition, so what the stopping rule must decide is known in advance:
a warm-up run, a point that meets its target, one that hits the cap, one stopped by the budget.
The microbenchmark test runs the real IMB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from vhpclib import analysis, stats
from vhpclib.launchers import Job
from vhpclib.mpi import LaunchSpec
from vhpclib.params import AppParams, MicrobenchParams
from vhpclib.stages.adaptive import RECORD_FOLDER, outcomes_table, stage_records
from vhpclib.stages.context import StageContext
from vhpclib.stages.driver import run_stage
from vhpclib.store import RawStore
from vhpclib.tables import build_tables
from vhpclib.workloads import Extracted, Point, Workload, register_workload, unregister_workload

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.mpi
TICK = re.compile(r"^tick (?P<t>[0-9.]+)$", re.MULTILINE)


class Tick(Workload):
    """One 'application' run per launch whose time is ``times(environment, repetition)``."""

    name = "tick"
    table = "apps"
    stages = ("single-node", "scaling")

    def __init__(self, times: Callable[[str, int], float]) -> None:
        self.times = times

    def plan(self, stage, ctx, params):
        return [Point(self.name, "tick-x-p1-t1", {"workload": "tick", "problem": "x", "processes": 1, "threads": 1,
                                                   "ppn": 1}, label="tick p=1")]

    def job(self, ctx, point, repetition, prepared, params):
        value = self.times(ctx.environment, repetition)
        return Job(["/bin/sh", "-c", f"echo tick {value:.6f}"], LaunchSpec(1, report_binding=False))

    def sanity(self, run):
        return [] if TICK.search(run.stdout()) else ["no tick line"]

    def extract(self, run):
        return Extracted([{"time_s": float(TICK.search(run.stdout())["t"]), "verified": True}])


@pytest.fixture()
def tick():
    registered: list[str] = []

    def register(times):
        register_workload(Tick(times), replace=True)
        registered.append("tick")

    yield register
    for name in registered:
        unregister_workload(name)


def steady(env: str, rep: int) -> float:
    """1 s within +-0.25 %, the first run 40 % slow (a warm-up)."""
    return 1.4 if rep == 1 else 1.0 + 0.0005 * ((rep * 7) % 11 - 5)


def ctx_for(tmp_path: Path, campaign: str, inventory: Path | None = None, env: str = "local") -> StageContext:
    return StageContext.open(inventory or ROOT / "inventories/local.yml", env, campaign,
                             store=RawStore(tmp_path / "raw"))


def test_runs_continue_until_the_interval_is_narrow_enough_and_the_warmup_is_left_out(tmp_path, tick):
    tick(steady)
    params = AppParams(workloads=("tick",), ci_target_pct=1.0, min_runs=10, max_runs=40)
    with ctx_for(tmp_path, "adapt") as ctx:
        result = run_stage(ctx, "single-node", params, progress=False)
    assert result.failures == []
    by_name = {o.quantity: o for o in result.stopping}
    assert set(by_name) == {"wall time", "A/A overhead"}
    wall, aa = by_name["wall time"], by_name["A/A overhead"]
    # 10 runs give the median its interval, but 4 vs 4 halves cannot give the A/A ratio one at 99.4 %
    assert wall.runs == aa.runs == 15 and result.measured == 15
    assert wall.reason == aa.reason == "target met" and wall.halfwidth_pct <= 1.0 and aa.halfwidth_pct <= 1.0
    assert wall.warmup == ["tick-x-p1-t1-r01"] and wall.values == 14  # left out of the statistics ...
    assert (tmp_path / "raw/adapt/local/single-node/tick-x-p1-t1-r01/run.json").is_file()  # ... kept in the store
    assert 0.99 < wall.estimate < 1.01 and wall.confidence > 0.95
    assert aa.low < 0 < aa.high and aa.unit == "%"
    assert any(line.startswith("local: wall time tick p=1: ") and "target met" in line for line in result.lines())
    [record_file] = (tmp_path / f"raw/adapt/local/single-node/{RECORD_FOLDER}").iterdir()
    record = json.loads(record_file.read_text())
    assert record["params"]["ci_target_pct"] == 1.0 and record["looks"] == [10, 15, 23, 35, 40]
    assert {q["quantity"] for q in record["quantities"]} == {"wall time", "A/A overhead"}
    table = outcomes_table(stage_records("adapt", store_root=tmp_path / "raw"))
    assert list(table["runs"]) == [15, 15] and "weighted Bonferroni" in record["rule"]
    # the stage folder still holds only runs besides the record: resume reuses all of them
    with ctx_for(tmp_path, "adapt") as ctx:
        again = run_stage(ctx, "single-node", params, progress=False)
    assert again.measured == 0 and again.reused == 15 and [o.runs for o in again.stopping] == [15, 15]
    assert len(stage_records("adapt", store_root=tmp_path / "raw")) == 2


def test_a_noisy_point_stops_at_the_cap_and_a_budget_stops_after_the_block_it_allows(tmp_path, tick):
    tick(lambda env, rep: 2.0 if rep % 4 in (0, 1) else 1.0)  # both A/A halves noisy
    with ctx_for(tmp_path, "cap") as ctx:
        capped = run_stage(ctx, "single-node", AppParams(workloads=("tick",), ci_target_pct=1.0, min_runs=6,
                                                         max_runs=9), progress=False)
    assert {o.reason for o in capped.stopping} == {"max runs"} and capped.measured == 9
    assert all(o.runs == 9 and o.halfwidth_pct > 1.0 for o in capped.stopping)
    with ctx_for(tmp_path, "budget") as ctx:
        budget = run_stage(ctx, "single-node", AppParams(workloads=("tick",), ci_target_pct=1.0, min_runs=4,
                                                         max_runs=40, budget_s=0.01), progress=False)
    assert {o.reason for o in budget.stopping} == {"budget"} and budget.measured == 4
    assert all(o.runs == 4 and o.look == 0 for o in budget.stopping)


def two_environments(tmp_path: Path) -> Path:
    """An embedded-style inventory with two environments on this machine (a host and a 'guest')."""
    local = {"hosts": [{"name": "localhost", "local": True}], "mpi": {"flavour": "intel"}, "timeout_s": 600}
    data = {"name": "two", "environments": {
        "host": {"label": "host", "vmm": "none", "baseline": True, **local},
        "guest": {"label": "guest", "vmm": "kvm", **local}}}
    path = tmp_path / "two.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def measured_order(store: RawStore, campaign: str) -> list[tuple[str, int]]:
    runs = [r for r in store.runs(campaign) if r.record.kind == "run"]
    runs.sort(key=lambda r: r.record.execution.started_utc)
    return [(r.record.environment, r.record.repetition) for r in runs]


def test_environments_alternate_in_abba_blocks_and_resume_keeps_working(tmp_path, tick):
    tick(lambda env, rep: 1.0)
    inventory = two_environments(tmp_path)
    params = AppParams(workloads=("tick",), repetitions=6, interleave=("guest",), interleave_seed=7)
    with ctx_for(tmp_path, "ab", inventory, "host") as ctx:
        result = run_stage(ctx, "single-node", params, progress=False)
    assert result.measured == 12 and result.failures == [] and set(result.environments) == {"host", "guest"}
    order = measured_order(RawStore(tmp_path / "raw"), "ab")
    assert len(order) == 12
    firsts = []
    for block in range(3):  # each pair of repetitions: one environment order, then its reverse
        four = order[4 * block: 4 * block + 4]
        envs = [e for e, _ in four]
        assert envs[:2] == envs[3:1:-1] and sorted(envs[:2]) == ["guest", "host"], four
        assert [r for _, r in four] == [2 * block + 1] * 2 + [2 * block + 2] * 2
        firsts.append(envs[0])
    assert any(r.startswith("guest: single-node: 6 run(s) measured") for r in result.lines())
    with ctx_for(tmp_path, "ab", inventory, "host") as ctx:  # resume: nothing measured again
        again = run_stage(ctx, "single-node", params, progress=False)
    assert again.measured == 0 and again.reused == 12
    bigger = params.model_copy(update={"repetitions": 8})
    with ctx_for(tmp_path, "ab", inventory, "host") as ctx:  # only the missing repetitions, still alternating
        more = run_stage(ctx, "single-node", bigger, progress=False)
    assert more.measured == 4 and more.reused == 12
    tail = measured_order(RawStore(tmp_path / "raw"), "ab")[12:]
    assert [r for _, r in tail] == [7, 7, 8, 8] and [e for e, _ in tail][:2] == [e for e, _ in tail][3:1:-1]


def test_interleaved_adaptive_call_reports_the_overhead_against_the_baseline(tmp_path, tick):
    tick(lambda env, rep: (1.09 if env == "guest" else 1.0) * (1.0 + 0.0005 * ((rep * 7) % 11 - 5)))
    inventory = two_environments(tmp_path)
    params = AppParams(workloads=("tick",), ci_target_pct=1.0, min_runs=8, max_runs=8, interleave=("guest",))
    with ctx_for(tmp_path, "abo", inventory, "host") as ctx:
        result = run_stage(ctx, "single-node", params, progress=False)
    overhead = next(o for o in result.stopping if o.quantity == "overhead vs host")
    assert overhead.environment == "guest" and overhead.low < 9.0 < overhead.high
    assert overhead.reason == "target met" and overhead.halfwidth_pct <= 1.0
    for env in ("host", "guest"):
        [record] = (tmp_path / f"raw/abo/{env}/single-node/{RECORD_FOLDER}").iterdir()
        doc = json.loads(record.read_text())
        assert doc["interleave"]["environments"] == ["host", "guest"] and doc["environments"] == ["host", "guest"]
    assert len(stage_records("abo", store_root=tmp_path / "raw")) == 1  # the same record, listed once


def test_imb_two_levels_choose_the_iterations_per_run_and_stay_out_of_table2(tmp_path):
    params = MicrobenchParams(placements=("intra-socket",), msglog=(0, 0), ci_target_pct=50.0, min_runs=4,
                              max_runs=4)
    with ctx_for(tmp_path, "levels") as ctx:
        result = run_stage(ctx, "microbench", params, progress=False)
    assert result.failures == [] and result.invalid == []
    [record] = stage_records("levels", store_root=tmp_path / "raw")
    [level] = record["two_level"]
    assert level["level_runs"] == 5 and level["iterations_per_block"] == 200
    assert level["blocks"] == 50 - sum(level["warmup_blocks"])  # each launch's warm-up blocks left out
    assert level["within_sd_usec_per_iteration"] > 0 and level["between_sd_usec"] >= 0
    chosen = level["chosen_iterations"]
    assert 100 <= chosen <= 1_000_000 and level["paper_iterations"] == 1_000_000
    latency = next(o for o in result.stopping if o.quantity == "latency 0 B")
    assert latency.runs == 4 and latency.unit == "usec"
    stems = {r.record.stem for r in result.runs}
    assert stems == {"pingpong-levels-intra-socket-b10-i200", f"pingpong-intra-socket-m0-0-i{chosen}"}
    micro = build_tables("levels", store=RawStore(tmp_path / "raw")).tables["microbench"]
    assert (micro["benchmark"] == "PingPong-blocks").sum() == 50
    table2 = analysis.latency_table(micro)
    zero = micro[(micro["benchmark"] == "PingPong") & (micro["bytes"] == 0)]
    warm = int(stats.mark_warmup(zero, ["environment"], "t_avg_usec")["warmup"].sum())  # the one warm-up rule
    assert list(table2["n"]) == [4 - warm]  # the dimensioning blocks are not Table 2 repetitions
    assert isinstance(table2, pd.DataFrame)


def test_distribution_figures_show_every_run_the_interval_and_the_warmup():
    from vhpclib.figures.artifacts import ARTIFACTS
    from vhpclib.figures.distributions import latency_distribution, wall_time_distribution

    base = {"campaign": "c", "stage": "single-node", "workload": "blockss", "problem": "small", "nprocs": 2,
            "threads_per_proc": 1, "verified": True, "status": "complete"}
    times = [1.9, 1.50, 1.52, 1.49, 1.51, 1.50, 1.48, 1.53]  # a cold first run
    apps = pd.DataFrame([{**base, "environment": env, "label": env, "repetition": i + 1, "run_id": f"{env}-r{i + 1}",
                          "time_s": t * (1.09 if env == "kvm" else 1.0)}
                         for env in ("local", "kvm") for i, t in enumerate(times)])
    fig = wall_time_distribution(apps)
    violins = [t for t in fig.data if t.type == "violin"]
    assert [v.name for v in violins] == ["kvm", "local"] and all(len(v.y) == 7 for v in violins)
    warm = [t for t in fig.data if t.name == "warm-up (left out)"]
    assert [list(t.customdata[:, 0]) for t in warm] == [["kvm-r1"], ["local-r1"]]
    medians = [t for t in fig.data if t.name == "median with its interval"]
    assert medians[1].y[0] == pytest.approx(1.50) and medians[1].error_y.array[0] > 0
    empty = latency_distribution(pd.DataFrame(columns=["status", "benchmark", "bytes", "placement"]))
    assert "no runs yet" in empty.layout.annotations[0].text
    assert {"distribution_latency", "distribution_single_node"} <= set(ARTIFACTS)


def test_iterations_per_run_are_the_cheapest_mix_and_dilute_the_launch_warmup():
    from vhpclib import stats
    from vhpclib.workloads.pingpong_sizing import choose_iterations, within_run_warmup

    params = MicrobenchParams(ci_target_pct=1.0, msglog=(0, 0))
    schedule = stats.LookSchedule.geometric(params.min_runs, params.max_runs)
    quiet = stats.TwoLevel(mean=0.30, runs=5, blocks=50, iterations_per_block=200, between_var=0.002 ** 2,
                           within_var=0.05 ** 2, block_var=0.05 ** 2 / 200)
    choice = choose_iterations(quiet, [0.6] * 5, params, schedule)
    assert choice["target_reachable"] and choice["predicted_runs"] <= params.max_runs
    # the cheapest mix within 10 %: never more iterations than Kalibera & Jones' optimum rounded up
    assert choice["chosen_iterations"] <= stats.nice_count(choice["kj_optimal_iterations"], 100, 1_000_000)
    assert choice["paper_run_sd_pct"] < choice["chosen_run_sd_pct"]
    # a slow first block per launch (IMB warms up with a tenth of the iterations) forces longer runs
    blocks = [np.array([1.8, 0.30, 0.31, 0.30, 0.30, 0.30, 0.31, 0.30, 0.30, 0.30]) for _ in range(5)]
    steady, excess = within_run_warmup(blocks, 200)
    assert all(len(b) == 9 for b in steady) and excess == pytest.approx(1.5 * 200)
    warm = choose_iterations(quiet, [0.6] * 5, params, schedule, excess)
    assert warm["chosen_iterations"] >= excess / (0.01 * 0.30) > choice["chosen_iterations"]


def test_cli_passes_the_adaptive_options_to_the_stage(tmp_path, tick, monkeypatch, capsys):
    from vhpclib import paths
    from vhpclib.cli import main

    monkeypatch.setattr(paths, "RAW", tmp_path / "data/raw")
    monkeypatch.setattr(paths, "PROCESSED", tmp_path / "data/processed")
    tick(steady)
    code = main(["run", "single-node", "-w", "tick", "-c", "cli", "--ci-target", "1", "--max-runs", "12",
                 "--budget", "600", "--no-figures", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "local: wall time tick p=1: " in out and "after 12 run(s)" in out and "warm-up left out" in out
    # one story (issue 22): no fixed-count advice ("6 runs per point") after an adaptive call, coverage as a sentence
    assert "runs per point" not in out and "run(s) per point" not in out
    assert re.search(r"the interval is within ±\d+\.\d % of the value at \d+(\.\d)? % coverage \(target ±1 %\)", out)
    [record] = stage_records("cli", store_root=tmp_path / "data/raw")
    assert record["params"]["max_runs"] == 12 and record["params"]["budget_s"] == 600 and record["looks"] == [10, 12]
    assert main(["run", "single-node", "-w", "tick", "-c", "cli", "--ci-target", "0", "--no-figures"]) == 2
    assert "--ci-target: expected a percentage above 0 and below 100" in capsys.readouterr().err
