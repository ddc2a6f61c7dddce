"""The NPB-MZ path of the application stages, end to end on MZ-DEMO (NPB's source cannot be fetched here).

Same code as for SP-MZ/BT-MZ: build once into the raw store, copy to the host,
verify the checksum before every run, launch processes x threads, parse, tabulate.
"""

import json
from pathlib import Path

import pytest
import yaml

from vhpclib.config import load_inventory
from vhpclib.exceptions import ChecksumMismatch
from vhpclib.parsers import get_parser
from vhpclib.stages.apps import run_app_stage
from vhpclib.stages.context import StageContext
from vhpclib.store import RawStore
from vhpclib.tables import apps_table

from npb_helpers import MPIF90

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.mpi


@pytest.fixture()
def inventory(tmp_path):
    data = {"environments": {"local": {
        "label": "local", "hosts": [{"local": True}], "workdir": str(tmp_path / "work"),
        "benchmarks": {"npb": {"source": str(ROOT / "apps/mzdemo"), "version": "3.3",
                               "fc": str(MPIF90), "benchmarks": ["mz-demo"]}}}}}
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(data))
    return load_inventory(path)


def test_single_node_stage_builds_distributes_verifies_and_runs_mz_demo(inventory, tmp_path):
    store = RawStore(tmp_path / "raw")
    with StageContext(inventory, "local", "npb", store) as ctx:
        result = run_app_stage(ctx, "single-node", workloads=("npb",), npb_class="S", repetitions=2,
                               progress=False)
    assert result.failures == [] and result.measured == 2
    [build] = list(store.runs("npb", "local", "build"))
    binary = build.record["binaries"][0]
    run = result.runs[0].record
    assert run["app_run"] == {"workload": "mz-demo", "problem": "S", "processes": 1, "threads": 2, "ppn": 1}
    assert run["binary"]["sha256"] == binary["sha256"] and run["binary"]["built_in"]["build_id"] == build.run_id
    assert run["env"]["OMP_NUM_THREADS"] == "2" and run["env"]["I_MPI_PIN_DOMAIN"] == "omp"
    parsed = get_parser("mzdemo").parse(result.runs[0].stdout(), "log").records[0]
    assert parsed["verified"] and parsed["nprocs"] == 1 and parsed["total_threads"] == 2

    table, warnings = apps_table("npb", store=store)
    assert list(table["workload"]) == ["MZ-DEMO", "MZ-DEMO"] and table["verified"].all() and not warnings


def test_a_binary_changed_after_distribution_is_refused_before_the_run(inventory, tmp_path):
    from vhpclib.npb import verify_deployment
    from vhpclib.stages import apps

    store = RawStore(tmp_path / "raw")
    with StageContext(inventory, "local", "npb", store) as ctx:
        plan = apps.npb_plan("single-node", cores_per_node=2, nodes=1, klass="S", benchmarks=("mz-demo",))
        [deployment] = apps._npb_deployments(ctx, plan)
        path = Path(deployment.path)
        path.write_bytes(path.read_bytes() + b"\0")
        with pytest.raises(ChecksumMismatch, match="mz-demo.S.1"):
            apps._npb_job(ctx, plan[0], [deployment], (), None)  # verifies every host's copy first
        with pytest.raises(ChecksumMismatch):
            verify_deployment(ctx.executor(ctx.env.hosts[0]), deployment)


def test_mz_demo_log_without_result_block_is_a_parse_error(inventory, tmp_path):
    from vhpclib.exceptions import ParseError

    with pytest.raises(ParseError, match="Benchmark Completed"):
        get_parser("mzdemo").parse(" vHPC MZ-DEMO: multi-zone heat solver (MPI+OpenMP); not an NPB benchmark\n", "x")
    with pytest.raises(ParseError, match="banner"):
        get_parser("mzdemo").parse(" NAS Parallel Benchmarks (NPB3.3-MZ-MPI) - SP-MZ Benchmark\n", "x")
