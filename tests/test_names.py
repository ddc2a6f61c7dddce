"""One name for each thing: the stage enum keeps what is stored on disk, a campaign is checked once."""

from __future__ import annotations

import json

import pytest
from papermill.translators import PythonTranslator

from vhpclib import names, stages
from vhpclib.exceptions import InputError, InvalidName
from vhpclib.names import Campaign, Stage


def test_stage_values_are_the_names_stored_in_run_records_folders_and_tables():
    assert [str(s) for s in Stage] == ["microbench", "single-node", "scaling"]
    assert f"{Stage.SINGLE_NODE}" == "single-node" and Stage.SCALING == "scaling"
    assert {"microbench": 1}[Stage.MICROBENCH] == 1  # a dict keyed by the stored string finds the member
    assert json.dumps({"stage": Stage.SINGLE_NODE}) == '{"stage": "single-node"}'


def test_the_stages_package_and_the_workloads_use_the_one_enum():
    from vhpclib.workloads import app_run, pingpong, pingpong_levels

    assert stages.MICROBENCH is Stage.MICROBENCH and stages.SCALING is Stage.SCALING
    assert app_run.APP_STAGES == (Stage.SINGLE_NODE, Stage.SCALING) and pingpong.STAGE is Stage.MICROBENCH
    assert pingpong_levels.PingPongLevels.stages == (Stage.MICROBENCH,)
    assert [d.name for _, d in stages.STAGES.items()] == list(Stage)


def test_an_unknown_stage_is_one_input_error_naming_the_known_ones():
    with pytest.raises(InputError, match="unknown stage 'single_node'; known: microbench, single-node, scaling"):
        stages.stage_def("single_node")


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "", "x y", "x" * 121])
def test_a_campaign_that_could_leave_the_store_is_refused_when_it_is_made(bad):
    with pytest.raises(InvalidName, match="campaign must be"):
        Campaign(bad)


def test_a_campaign_is_checked_once_then_passed_on_as_it_is(monkeypatch):
    calls = []
    real = names.check_id
    monkeypatch.setattr(names, "check_id", lambda kind, value: calls.append(value) or real(kind, value))
    first = Campaign("study-1")
    assert Campaign(first) is first and Campaign.optional(first) is first and Campaign.optional(None) is None
    assert calls == ["study-1"]


def test_notebook_parameters_and_json_see_plain_strings():
    code = PythonTranslator.codify({"campaign": Campaign("study-1"), "stage": Stage.SCALING})
    assert 'campaign = "study-1"' in code and 'stage = "scaling"' in code
    assert json.dumps([Campaign("study-1")]) == '["study-1"]'
