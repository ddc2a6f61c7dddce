"""What a reviewer sees in a figure: no overhead drawn without its interval, the paper's range readable beside
an emulator's, one warm-up rule and one coverage label, Figure 3 saying what to measure."""

from __future__ import annotations

import plotly.graph_objects as go

from test_analysis import apps_frame
from vhpclib import analysis as an
from vhpclib import figures as fg


def _bars(fig: go.Figure) -> list:
    return [t for t in fig.data if t.type == "bar"]


def _notes(fig: go.Figure) -> str:
    return " ".join(str(a.text) for a in fig.layout.annotations)


def test_an_aa_check_from_one_run_per_side_draws_no_overhead_and_says_what_is_missing() -> None:
    apps = apps_frame({("local", "blockss", 2): [30.0, 71.4]})  # 1 run per half: a 138 % "overhead"
    fig = fg.table3_figure(an.aa_check(apps, "local"))
    assert [b for b in _bars(fig) if "local/B" in str(b.name)] == [], "no bar without an interval"
    notes = _notes(fig)
    assert "local/B vs local/A" in notes and "at least 2 valid runs on each side (have 1 and 1)" in notes
    assert "--rerun" in notes
    legend = {t.name for t in fig.data if t.showlegend is not False and not str(t.name).startswith("paper")}
    assert legend == {"local/A (run 1)", "local/B (run 2)"}, "the legend names the runs there are"


def test_an_aa_check_with_enough_runs_draws_its_overhead_with_an_interval() -> None:
    apps = apps_frame({("local", "blockss", 2): [30, 31, 29, 30, 31, 30]})
    fig = fg.table3_figure(an.aa_check(apps, "local"))
    bar = [b for b in _bars(fig) if "local/B" in str(b.name)][0]
    assert bar.error_y.array is not None and "at least 2 valid runs" not in _notes(fig)


def test_table3_times_are_markers_and_a_far_overhead_gets_its_own_labelled_panel() -> None:
    apps = apps_frame({("local", "blockss", 2): [1.8, 1.9, 1.7, 1.8, 1.8, 1.9],
                       ("guest", "blockss", 2): [66, 67, 65, 68, 66, 70]})  # an emulator: ~ +3600 %
    fig = fg.table3_figure(an.overhead_table(apps, "local"))
    assert {t.type for t in fig.data if t.xaxis in (None, "x")} == {"scatter"}, "no bars on the log time axis"
    guest = [b for b in _bars(fig) if str(b.name).startswith("guest")][0]
    assert guest.xaxis == "x3", "the emulator's overhead is on a panel of its own"
    paper = [t for t in fig.data if str(t.name).startswith("paper Xen overhead")][0]
    assert paper.xaxis == "x2" and fig.layout.yaxis2.range is None, "the paper's 4-20 % keep their own scale"
    titles = _notes(fig)
    assert "beyond<br>100 %" in titles and "its own scale" in titles and "in the paper's range" in titles


def test_table3_with_overheads_in_the_paper_range_has_two_panels() -> None:
    apps = apps_frame({("bmm", "SP-MZ", 4): [90, 91, 89], ("kvm", "SP-MZ", 4): [99, 100, 101]})
    fig = fg.table3_figure(an.overhead_table(apps, "bmm"))
    assert "xaxis3" not in fig.layout.to_plotly_json()
    assert [b.xaxis for b in _bars(fig)] == ["x2", "x2"]


def test_figure3_without_npb_shows_the_paper_efficiencies_and_how_to_measure_them() -> None:
    fig = fg.figure3_npb(None, None)
    panels = [a.text for a in fig.layout.annotations if "parallel efficiency" in str(a.text)]
    assert len(panels) == 2 and not any("performance" in str(a.text) for a in fig.layout.annotations)
    assert all(len(t.x) for t in fig.data), "no empty placeholder panels"
    assert any(str(t.name).startswith("paper") for t in fig.data)
    assert "vhpc run scaling --workload npb" in _notes(fig)
    assert "not measured in this campaign" in fig.layout.title.subtitle.text


def test_figure3_with_npb_keeps_performance_and_efficiency_rows() -> None:
    apps = apps_frame({("bmm", "SP-MZ", 1): [100, 101, 99], ("bmm", "SP-MZ", 2): [52, 53, 51]}, stage="scaling")
    fig = fg.figure3_npb(an.efficiency_table(apps, stage="scaling"), an.performance_table(apps, stage="scaling"))
    texts = _notes(fig)
    assert "SP-MZ performance" in texts and "SP-MZ parallel efficiency" in texts
    assert "to measure BT-MZ" in texts and "to measure SP-MZ" not in texts


# ------------------------------------------------------------------ one warm-up rule, one coverage label

def _guest(campaign: str = "embedded-guest"):
    import warnings

    from vhpclib.figures.artifacts import CampaignData
    from vhpclib.tables import build_tables

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = CampaignData.of(campaign, build_tables(campaign).tables)
        latency = an.latency_table(data.table("microbench"))
    return data, latency, [str(w.message) for w in caught]


def test_the_warmup_run_the_distribution_marks_is_left_out_of_table2_too() -> None:
    from vhpclib.figures.distributions import latency_distribution

    data, latency, notes = _guest()
    guest = latency[latency["environment"] == "guest"].iloc[0]
    assert guest["n"] == 5 and guest["latency_usec_ci_high"] < 14.0, "r01 (14.01 usec) is a warm-up"
    assert any("warm-up left out" in n and "pingpong-intra-socket-m0-22-r01 (guest)" in n for n in notes)
    local = latency[latency["environment"] == "local"].iloc[0]
    assert local["n"] == 6, "run ids repeat across environments: only the guest's r01 goes"
    fig = latency_distribution(data.table("microbench"))
    crosses = [t for t in fig.data if t.name == "warm-up (left out)"]
    assert [list(t.y) for t in crosses] == [[14.01]]
    medians = {t.x[0]: t.y[0] for t in fig.data if t.legendgroup == "median"}
    assert medians[guest["label"]] == guest["latency_usec"], "the figure and the table give the same median"


def test_the_distribution_states_the_true_coverage_not_95() -> None:
    from vhpclib.figures.distributions import latency_distribution

    data, _, _ = _guest()
    fig = latency_distribution(data.table("microbench"))
    names = {str(t.name) for t in fig.data}
    assert not any("95 %" in n for n in names)
    sub = fig.layout.title.subtitle.text
    assert "n = 5, min–max, 93.7 %" in sub and "n = 6, min–max, 96.8 %" in sub


def test_the_warmup_rule_is_applied_per_stage_where_run_ids_repeat() -> None:
    """blockss-small-p2-t1-r01 exists in the guest's single-node and scaling stages: only the scaling one is a
    warm-up, and it alone is left out."""
    data, _, _ = _guest()
    ov = data.overhead().set_index("environment")
    assert ov.loc["guest", "n"] == 6 and round(ov.loc["guest", "overhead_pct"]) == 3641
    apps = data.table("apps")
    eff = an.efficiency_table(apps[apps["workload"] == "blockss"], stage="scaling").set_index(["environment", "nprocs"])
    assert eff.loc[("guest", 2), "n"] == 5 and eff.loc[("guest", 1), "n"] == 6 and eff.loc[("local", 2), "n"] == 6
