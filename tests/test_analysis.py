"""Analysis functions on small hand-made tidy tables with known answers."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from vhpclib import analysis as an


def micro_frame(spec: dict[tuple[str, str], list[float]], sizes=(0, 1024, 1 << 20),
                peak_mb: dict[tuple[str, str], list[float]] | None = None) -> pd.DataFrame:
    """PingPong rows: spec maps (label, placement) -> 0-byte latency per run."""
    rows = []
    for (label, placement), lats in spec.items():
        for rep, lat in enumerate(lats):
            run = f"{label}-{placement}-{rep}"
            for b in sizes:
                mb = 0.0 if b == 0 else (peak_mb[(label, placement)][rep] if peak_mb and
                                         b == sizes[-1] else 100.0 * (rep + 1))
                rows.append(dict(campaign="c", environment=label, label=label,
                                 placement=placement, run_id=run, repetition=rep,
                                 benchmark="PingPong", nprocs=2, bytes=b, repetitions=1000,
                                 t_min_usec=lat, t_max_usec=lat, t_avg_usec=lat + b / 1e4,
                                 mbytes_per_sec=mb, msgs_per_sec=np.nan, status="complete"))
    return pd.DataFrame(rows)


def apps_frame(times: dict[tuple[str, str, int], list[float]], stage: str = "single-node",
               threads: int = 2, **phases: dict) -> pd.DataFrame:
    """Application rows: times maps (label, workload, nprocs) -> wall times of repetitions."""
    rows = []
    for (label, workload, p), ts in times.items():
        for rep, t in enumerate(ts):
            row = dict(campaign="c", environment=label, label=label, stage=stage,
                       workload=workload, problem="C" if workload != "blockss" else "small",
                       nprocs=p, threads_per_proc=threads, nodes=max(1, p // 4), repetition=rep,
                       run_id=f"{label}-{workload}-{p}-{rep}", time_s=t, verified=True,
                       solve_s=np.nan, reduce_s=np.nan, extract_s=np.nan)
            for name, per in phases.items():
                row[name] = per.get((label, workload, p), np.nan)
            rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ statistics

def test_median_ci_single_value_has_nan_bounds() -> None:
    med, lo, hi, n = an.median_ci([3.0])
    assert (med, n) == (3.0, 1) and np.isnan(lo) and np.isnan(hi)


def test_median_ci_is_the_binomial_order_statistic_interval() -> None:
    # n = 10 at 95 %: the classic interval is [x_(2), x_(9)] (1-based), coverage 97.9 %.
    vals = np.arange(1.0, 11.0)[::-1]
    med, lo, hi, n = an.median_ci(vals)
    assert (med, lo, hi, n) == (5.5, 2.0, 9.0, 10)
    j, k, cov = an.order_statistic_ci(10)
    assert (j, k) == (1, 8) and cov == pytest.approx(0.9785, abs=1e-4)


def test_median_ci_small_n_falls_back_to_range_with_its_true_coverage() -> None:
    assert an.median_ci([1.0, 5.0, 2.0])[1:] == (1.0, 5.0, 3)
    assert an.order_statistic_ci(3)[2] == pytest.approx(0.75)


def test_median_ci_ignores_nan() -> None:
    assert an.median_ci([1.0, np.nan, 3.0])[::3] == (2.0, 2)


# ------------------------------------------------------------------ Table 2 / Figure 2

def test_latency_table_medians_and_ratio_to_intra_socket() -> None:
    micro = micro_frame({("kvm", "intra-socket"): [0.5, 0.54, 0.6],
                         ("kvm", "inter-socket"): [1.2, 1.21, 1.3],
                         ("kvm", "inter-node"): [1.7, 1.71, 1.8]})
    lat = an.latency_table(micro)
    assert list(lat["placement"]) == ["intra-socket", "inter-socket", "inter-node"]
    row = lat.set_index("placement").loc["inter-node"]
    assert row["latency_usec"] == pytest.approx(1.71)
    assert row["ratio_to_intra_socket"] == pytest.approx(1.71 / 0.54)
    assert (row["latency_usec_ci_low"], row["latency_usec_ci_high"], row["n"]) == (1.7, 1.8, 3)


def test_latency_table_excludes_invalid_runs_with_a_warning() -> None:
    micro = micro_frame({("bmm", "intra-socket"): [0.4, 0.41, 0.42, 99.0]})
    micro.loc[micro["run_id"] == "bmm-intra-socket-3", "status"] = "invalid"
    with pytest.warns(UserWarning, match="bmm-intra-socket-3"):
        lat = an.latency_table(micro)
    assert lat["latency_usec"].iloc[0] == pytest.approx(0.41) and lat["n"].iloc[0] == 3


def test_throughput_curves_in_gbytes_per_sec_without_zero_bytes() -> None:
    micro = micro_frame({("bmm", "inter-node"): [1.8, 1.8, 1.8]},
                        peak_mb={("bmm", "inter-node"): [2400.0, 2500.0, 2450.0]})
    curves = an.throughput_curves(micro)
    assert list(curves["bytes"]) == [1024, 1 << 20]
    assert curves.iloc[-1]["gbytes_per_sec"] == pytest.approx(2.45)
    assert curves.iloc[0]["gbytes_per_sec"] == pytest.approx(0.2)


def test_peak_throughput_is_the_median_of_per_run_peaks() -> None:
    micro = micro_frame({("bmm", "inter-node"): [1.8, 1.8, 1.8]},
                        peak_mb={("bmm", "inter-node"): [2400.0, 2500.0, 50.0]})
    peak = an.peak_throughput(micro).iloc[0]
    # run 3 peaks at 1024 B with 0.3 GB/s; per-run peaks are 2.4, 2.5, 0.3.
    assert peak["peak_gbytes_per_sec"] == pytest.approx(2.4)
    assert peak["n"] == 3


# ------------------------------------------------------------------ Table 3

def test_overhead_of_a_20_percent_slowdown_is_significant() -> None:
    rng = np.random.default_rng(1)
    base = 100 + rng.normal(0, 0.3, 5)
    apps = apps_frame({("bmm", "SP-MZ", 4): list(base),
                       ("kvm", "SP-MZ", 4): list(base * 1.2)})
    tab = an.overhead_table(apps, baseline="BMM").set_index("label")
    assert tab.loc["kvm", "overhead_pct"] == pytest.approx(20, abs=0.01)
    assert tab.loc["kvm", "overhead_pct_ci_low"] > 15 and tab.loc["kvm", "significant"]
    assert tab.loc["bmm", "overhead_pct"] == 0 and not tab.loc["bmm", "significant"]


def test_overhead_within_noise_is_not_significant() -> None:
    apps = apps_frame({("bmm", "BT-MZ", 4): [100, 110, 95, 105, 90],
                       ("xen", "BT-MZ", 4): [101, 96, 108, 92, 104]})
    row = an.overhead_table(apps, baseline="bmm").set_index("label").loc["xen"]
    assert row["overhead_pct_ci_low"] < 0 < row["overhead_pct_ci_high"]
    assert not row["significant"]


def test_overhead_is_deterministic() -> None:
    apps = apps_frame({("bmm", "SP-MZ", 4): [100, 101, 99], ("xen", "SP-MZ", 4): [110, 109, 111]})
    a = an.overhead_table(apps, baseline="bmm")
    b = an.overhead_table(apps, baseline="bmm")
    pd.testing.assert_frame_equal(a, b)


def test_aa_check_on_identical_distributions_is_not_significant() -> None:
    rng = np.random.default_rng(7)
    apps = apps_frame({("local", "SP-MZ", 4): list(50 + rng.normal(0, 1.0, 8))})
    aa = an.aa_check(apps, "local").set_index("label")
    row = aa.loc["local/B"]
    assert row["n"] == 4 and aa.loc["local/A", "n"] == 4
    assert row["overhead_pct_ci_low"] < 0 < row["overhead_pct_ci_high"]
    assert not row["significant"]


def test_aa_check_halves_are_interleaved_so_slow_drift_is_not_an_overhead() -> None:
    # The machine got 20 % slower half way through (other work started): both halves see it.
    apps = apps_frame({("local", "SP-MZ", 4): [50.0, 50.1, 49.9, 50.05, 60.0, 60.1, 59.9, 60.05]})
    row = an.aa_check(apps, "local").set_index("label").loc["local/B"]
    assert not row["significant"]
    assert row["overhead_pct_ci_low"] < 0 < row["overhead_pct_ci_high"]


def test_aa_check_flags_runs_that_are_not_exchangeable() -> None:
    # Every other run is 20 % slower (e.g. interference in step with the runs): A/A must say so.
    apps = apps_frame({("local", "SP-MZ", 4): [50.0, 60.0, 50.1, 60.1, 49.9, 59.9, 50.05, 60.05]})
    row = an.aa_check(apps, "local").set_index("label").loc["local/B"]
    assert row["significant"] and row["overhead_pct"] == pytest.approx(20, abs=0.5)


def test_unverified_runs_are_excluded_with_a_warning_naming_them() -> None:
    apps = apps_frame({("bmm", "SP-MZ", 4): [100, 100, 100, 500]})
    apps.loc[3, "verified"] = False
    with pytest.warns(UserWarning, match=r"bmm-SP-MZ-4-3 \(SP-MZ, bmm\)"):
        tab = an.overhead_table(apps, baseline="bmm")
    assert tab["time_s"].iloc[0] == 100 and tab["n"].iloc[0] == 3


# ------------------------------------------------------------------ Figures 3 / 4

def test_efficiency_of_exact_one_over_p_times_is_100_percent() -> None:
    apps = apps_frame({("bmm", "SP-MZ", p): [400.0 / p] * 3 for p in (4, 8, 16)}, stage="scaling")
    eff = an.efficiency_table(apps)
    assert eff["efficiency_pct"].to_numpy() == pytest.approx([100, 100, 100])
    assert eff["speedup"].to_numpy() == pytest.approx([1, 2, 4])
    assert (eff["base_nprocs"] == 4).all()


def test_efficiency_relative_to_chosen_base() -> None:
    apps = apps_frame({("xen", "BT-MZ", 4): [100.0] * 3, ("xen", "BT-MZ", 8): [80.0] * 3,
                       ("xen", "BT-MZ", 16): [40.0] * 3}, stage="scaling")
    eff = an.efficiency_table(apps, base_nprocs=8).set_index("nprocs")
    assert eff.loc[16, "efficiency_pct"] == pytest.approx(100.0)
    assert eff.loc[4, "efficiency_pct"] == pytest.approx(160.0)


def test_efficiency_ci_brackets_the_estimate() -> None:
    apps = apps_frame({("kvm", "SP-MZ", 4): [100, 102, 98], ("kvm", "SP-MZ", 8): [60, 61, 59]},
                      stage="scaling")
    row = an.efficiency_table(apps).set_index("nprocs").loc[8]
    assert row["efficiency_pct_ci_low"] < row["efficiency_pct"] < row["efficiency_pct_ci_high"]
    assert row["efficiency_pct"] == pytest.approx(100 * 100 * 4 / (60 * 8))


def test_performance_table_uses_mops_when_present() -> None:
    apps = apps_frame({("bmm", "SP-MZ", 4): [100.0, 100.0]}, stage="scaling")
    perf = an.performance_table(apps)
    assert perf["runs_per_hour"].iloc[0] == pytest.approx(36.0) and "mops_total" not in perf
    perf = an.performance_table(apps.assign(mops_total=[2000.0, 2100.0]))
    assert perf["mops_total"].iloc[0] == pytest.approx(2050.0)


def test_ideal_efficiency_formula_scalars_and_arrays() -> None:
    assert an.ideal_efficiency(10.0, 0.0, 16, 2) == 1.0
    assert an.ideal_efficiency(9.0, 1.0, 2, 2) == 1.0
    # P=9, D=1, p/p0=4: 10 / (9 + 4) = 0.769...
    got = an.ideal_efficiency(9.0, 1.0, np.array([2, 4, 8]), 2)
    assert got == pytest.approx([1.0, 10 / 11, 10 / 13])
    assert isinstance(an.ideal_efficiency(9.0, 1.0, 4, 2), float)


def test_ideal_curve_uses_base_solve_as_parallel_and_extract_as_duplicated() -> None:
    times = {("bmm", "blockss", p): [100.0] for p in (2, 4, 8)}
    apps = apps_frame(times, stage="scaling", threads=4,
                      solve_s={("bmm", "blockss", 2): 90.0, ("bmm", "blockss", 4): 45.0},
                      extract_s={("bmm", "blockss", p): 5.0 for p in (2, 4, 8)},
                      reduce_s={("bmm", "blockss", p): 5.0 for p in (2, 4, 8)})
    ideal = an.ideal_curve(apps).set_index("nprocs")
    assert (ideal["parallel_s"] == 90).all() and (ideal["duplicated_s"] == 5).all()
    assert ideal.loc[8, "efficiency_ideal_pct"] == pytest.approx(100 * 95 / (90 + 5 * 4))
    assert ideal.loc[2, "efficiency_ideal_pct"] == pytest.approx(100)


# ------------------------------------------------------------------ paper vs measured

def test_paper_vs_measured_lists_every_paper_value_and_ratios() -> None:
    micro = micro_frame({("local", "intra-socket"): [0.41, 0.41, 0.41],
                         ("kvm", "inter-node"): [3.42, 3.42, 3.42]})
    lat = an.latency_table(micro)
    pvm = an.paper_vs_measured(latency=lat, measured_hardware={"local": "2-core VM"})
    assert set(pvm.columns) >= {"artifact", "environment", "quantity", "unit", "paper_value",
                                "measured_value", "ratio", "paper_hardware", "measured_hardware"}
    kvm = pvm[(pvm["environment"] == "kvm") & (pvm["quantity"] == "latency inter-node")].iloc[0]
    assert kvm["paper_value"] == 1.71 and kvm["ratio"] == pytest.approx(2.0)
    local = pvm[(pvm["environment"] == "local") & (pvm["quantity"] == "latency intra-socket")]
    assert local.iloc[0]["paper_environment"] == "BMM" and local.iloc[0]["ratio"] == 1.0
    assert local.iloc[0]["measured_hardware"] == "2-core VM"
    assert "E5540" in local.iloc[0]["paper_hardware"]
    xen = pvm[(pvm["paper_environment"] == "Xen") & (pvm["quantity"] == "latency inter-node")]
    assert xen.iloc[0]["note"] == "not measured here" and np.isnan(xen.iloc[0]["measured_value"])
    # 9 latencies + 6 ratios, each present at least once.
    assert pvm[["paper_environment", "quantity"]].drop_duplicates().shape[0] == 15


def test_paper_vs_measured_maps_blockss_to_bloss_and_notes_missing_scale() -> None:
    apps = apps_frame({("local", "blockss", 2): [100.0] * 2, ("local", "blockss", 4): [55.0] * 2},
                      stage="scaling", threads=4)
    eff = an.efficiency_table(apps)
    pvm = an.paper_vs_measured(efficiency=eff)
    row = pvm[(pvm["artifact"] == "fig4") & (pvm["paper_environment"] == "BMM")].iloc[0]
    assert row["paper_value"] == 78 and np.isnan(row["measured_value"])
    assert row["note"] == "measured only up to 4 processes"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        an.paper_vs_measured(overhead=an.overhead_table(apps_frame(
            {("local", "SP-MZ", 4): [80.0, 81.0]}), baseline="local"))
