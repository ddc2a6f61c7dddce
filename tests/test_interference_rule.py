"""The one interference rule of the analysis, and the verdict column of the overhead table."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from vhpclib import analysis


def apps(times_a, times_b, share_a=None, share_b=None) -> pd.DataFrame:
    rows = []
    for env, times, shares in (("host", times_a, share_a), ("guest", times_b, share_b)):
        for i, t in enumerate(times):
            rows.append({"campaign": "c", "environment": env, "label": env, "stage": "single-node",
                         "workload": "blockss", "problem": "small", "nprocs": 2, "threads_per_proc": 1, "nodes": 1,
                         "repetition": i + 1, "run_id": f"{env}-r{i + 1:02d}", "time_s": t, "verified": True,
                         "status": "complete", "other_share": None if shares is None else shares[i]})
    return pd.DataFrame(rows)


def test_a_run_with_outlying_interference_is_excluded_and_counted() -> None:
    shares = [0.10, 0.12, 0.11, 0.09, 0.10, 0.85]  # the last run shared the machine with a build
    table = apps([1.0] * 6, [1.1] * 6, shares, [0.1, 0.11, 0.1, 0.12, 0.09, 0.1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rule = analysis.interference_rule(table)
    assert list(rule.excluded["run_id"]) == ["host-r06"] and rule.considered == 12
    assert rule.line().startswith("interference rule: 1 of 12 run(s) excluded (a run is excluded when")
    assert any("host-r06" in str(w.message) for w in caught)


def test_a_uniformly_loaded_machine_loses_no_run() -> None:
    rng = np.random.default_rng(3)
    table = apps([1.0] * 8, [1.1] * 8, list(0.6 + rng.normal(0, 0.03, 8)), list(0.6 + rng.normal(0, 0.03, 8)))
    assert analysis.interference_rule(table).excluded.empty


def test_runs_without_recorded_interference_are_kept_and_said_so() -> None:
    rule = analysis.interference_rule(apps([1.0] * 3, [1.1] * 3))
    assert len(rule.kept) == 6 and rule.considered == 0 and "no run recorded" in rule.line()


def test_the_overhead_table_leaves_out_excluded_runs_and_gives_a_verdict() -> None:
    slow = [1.0, 1.01, 0.99, 1.0, 1.02, 3.0]  # the run measured beside the build is 3x slower
    table = apps(slow, [1.1, 1.11, 1.09, 1.1, 1.12, 1.1], [0.1, 0.1, 0.11, 0.1, 0.12, 0.9], [0.1] * 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = analysis.overhead_table(table, "host").set_index("environment")
        kept_all = analysis.overhead_table(table, "host", interference=False).set_index("environment")
    assert out.loc["host", "n"] == 5 and kept_all.loc["host", "n"] == 6
    assert out.loc["guest", "verdict"] == "resolved" and out.loc["host", "verdict"] == ""
