"""The stage notebooks, executed for real by papermill with tiny parameters (real IMB, real blockss)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
pytestmark = pytest.mark.mpi


@pytest.fixture()
def scratch(tmp_path, monkeypatch):
    """Kernels inherit this environment: raw data and figures go to tmp, never into the repo."""
    monkeypatch.setenv("VHPC_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("VHPC_FIGURES", str(tmp_path / "figures"))
    return tmp_path


def execute(name, out, **parameters):
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=parameters,
                               kernel_name="python3", progress_bar=False, cwd=str(NOTEBOOKS))
    return nbformat.read(out, as_version=4)


def outputs(nb, mime="text/plain"):
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", "") + str(out.get("data", {}).get(mime, "")))
    return "\n".join(text)


def test_every_notebook_has_a_parameters_cell_with_literals_only():
    for path in sorted(NOTEBOOKS.glob("0*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, path.name
        code = [line for line in params[0].source.splitlines() if line and not line.startswith("#")]
        assert all(" = " in line and "(" not in line.split(" = ", 1)[1] for line in code), path.name
        assert not any(line.lstrip().startswith(("def ", "class ")) for c in nb.cells
                       for line in c.source.splitlines()), f"{path.name} defines a function: move it to vhpclib"


def test_microbenchmark_notebook_runs_imb_and_writes_table2_and_figure2(scratch):
    nb = execute("01-microbenchmarks", scratch / "01.ipynb", campaign="nb", options={"msglog": "0:3", "iterations": 20},
                 repetitions=1, write_figures=True)
    text = outputs(nb)
    assert "local: microbench: 1 run(s) measured" in text and "skipped inter-socket" in text
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) and "text/html" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", []))
    run = scratch / "data/raw/nb/local/microbench/pingpong-intra-socket-m0-3-i20-r01/run.json"
    assert json.loads(run.read_text())["pinning"]["verification"] == "verified"
    for name in ("table2_latency", "figure2_throughput"):
        for ext in ("pdf", "svg", "png", "html"):
            assert (scratch / "figures/nb" / f"{name}.{ext}").stat().st_size > 1000
    assert "n=1 run" in text or "1 run(s) per point" in text, "the stage says what its interval covers"
    assert "a 95% interval needs 6 (--repetitions 6)" in text


def test_single_node_and_scaling_notebooks_run_blockss(scratch):
    nb = execute("02-single-node", scratch / "02.ipynb", campaign="nb", options={"blockss_preset": "tiny"},
                 repetitions=2, write_figures=False)
    text = outputs(nb)
    assert "single-node: 2 run(s) measured" in text
    assert "skipped NPB-MZ: the inventory gives no benchmarks.npb" in text
    nb = execute("03-scaling", scratch / "03.ipynb", campaign="nb", options={"blockss_preset": "tiny"},
                 repetitions=1, write_figures=False)
    assert "scaling: 2 run(s) measured" in outputs(nb)
    runs = sorted(p.name for p in (scratch / "data/raw/nb/local/scaling").iterdir())
    assert "blockss-tiny-p1-t1-r01" in runs and "blockss-tiny-p2-t1-r01" in runs
    record = json.loads((scratch / "data/raw/nb/local/scaling/blockss-tiny-p2-t1-r01/run.json").read_text())
    assert record["execution"]["exit_status"] == 0 and "blockss.json" in record["files"]


def vhpc(scratch, *args, timeout=600):
    env = {**os.environ, "VHPC_DATA": str(scratch / "data"), "VHPC_FIGURES": str(scratch / "figures"),
           "VHPC_EXECUTED": str(scratch / "executed")}
    return subprocess.run(list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_make_notebook_runs_a_stage_notebook_as_the_readme_writes_it(scratch):
    proc = vhpc(scratch, "make", "-s", "notebook", "NB=02", "INVENTORY=inventories/local.yml", "ENV=local",
                "CAMPAIGN=mk", f"PYTHON={sys.executable}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Kernel is running over TCP" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr
    executed = scratch / "executed/mk/local/02-single-node.ipynb"
    assert f"executed copy: {executed}" in proc.stdout
    assert "single-node: 6 run(s) measured" in outputs(nbformat.read(executed, as_version=4))


def test_a_failing_notebook_is_one_line_naming_notebook_cell_and_cause(scratch):
    proc = vhpc(scratch, sys.executable, "-m", "vhpclib.cli", "notebook", "02", "-c", "bad", "--no-progress",
                "-p", "blockss_preset=nope")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vhpc: error: notebooks/02-single-node.ipynb: cell "), lines
    assert "InputError" in lines[0] and "nope" in lines[0] and "executed copy kept" in lines[0]
    assert (scratch / "executed/bad/02-single-node.ipynb").is_file()


def test_unknown_notebook_parameter_is_refused_before_running(scratch):
    proc = vhpc(scratch, sys.executable, "-m", "vhpclib.cli", "notebook", "02", "-p", "colour=red")
    assert proc.returncode == 2 and "colour=red" in proc.stderr and proc.stderr.count("\n") == 1


def test_cloud_comparison_notebook_reads_a_campaign_without_an_inventory(scratch):
    import shutil

    shutil.copytree(ROOT / "data/raw/embedded", scratch / "data/raw/embedded")
    nb = execute("04-cloud-comparison", scratch / "04.ipynb", campaign="embedded")
    text = outputs(nb, "text/html")
    assert "No cloud environment measured in campaign embedded" in text and "EC2" in text
