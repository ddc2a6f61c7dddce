"""papermill parameters: one value for a list parameter (`-p workloads blockss`) is that one value, never its
letters; a comma list and a YAML list (`-y`) work too. The committed campaign is read from a tmp copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vhpclib.params import AppParams, MicrobenchParams

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("given, expected", [
    ("blockss", ("blockss",)), ("blockss,npb", ("blockss", "npb")), (["npb"], ("npb",)),
])
def test_a_list_parameter_takes_one_value_a_comma_list_or_a_list(given, expected) -> None:
    assert AppParams.build(workloads=given).workloads == expected


def test_one_process_count_and_one_interleaved_environment_are_one_element_lists() -> None:
    assert AppParams.build(processes=4).processes == (4,)
    assert MicrobenchParams.build(interleave="guest").interleave == ("guest",)


@pytest.mark.parametrize("args", [["-p", "workloads", "blockss"], ["-y", "workloads: [blockss]"]])
def test_papermill_runs_the_single_node_notebook_with_one_workload(tmp_path, args) -> None:
    shutil.copytree(ROOT / "data/raw/embedded-guest", tmp_path / "data/raw/eg")
    out = tmp_path / "out.ipynb"
    env = {**os.environ, "VHPC_DATA": str(tmp_path / "data"), "VHPC_FIGURES": str(tmp_path / "figures")}
    proc = subprocess.run([str(Path(sys.executable).parent / "papermill"), "02-single-node.ipynb", str(out),
                           "-k", "vhpc", *args, "-p", "measure", "False", "-p", "write_figures", "False",
                           "-p", "campaign", "eg", "-p", "progress", "False", "--no-progress-bar"],
                          cwd=ROOT / "notebooks", env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = "".join("".join(o.get("text", "")) for c in json.loads(out.read_text())["cells"]
                   for o in c.get("outputs", []))
    assert "single-node: 0 run(s) measured" in text and "campaign: eg" in text


def test_a_workload_list_parameter_takes_one_value_too() -> None:
    params = MicrobenchParams.build(placements="intra-socket")
    assert params.options["pingpong"].placements == ("intra-socket",)
