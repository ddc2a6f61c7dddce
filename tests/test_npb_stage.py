"""The NPB-MZ path of the application stages, end to end on MZ-DEMO (NPB's source cannot be fetched here).

Same code as for SP-MZ/BT-MZ: build once into the raw store, copy to the host,
verify the checksum before every run, launch processes x threads, parse, tabulate.
"""

from pathlib import Path

import pytest
import yaml

from vhpclib.config import load_inventory
from vhpclib.exceptions import ChecksumMismatch
from vhpclib.params import AppParams
from vhpclib.parsers import get_parser
from vhpclib.stages.context import StageContext
from vhpclib.stages.driver import run_stage
from vhpclib.store import RawStore
from vhpclib.tables import build_tables

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
        result = run_stage(ctx, "single-node", AppParams(workloads=("npb",), npb_class="S", repetitions=2),
                           progress=False)
    assert result.failures == [] and result.measured == 2
    [build] = list(store.runs("npb", "local", "build"))
    binary = build.record.extra["binaries"][0]
    run = result.runs[0].record
    assert run.workload == "npb"
    assert run.point == {"workload": "mz-demo", "problem": "S", "processes": 1, "threads": 2, "ppn": 1}
    assert run.extra["binary"]["sha256"] == binary["sha256"]
    assert run.extra["binary"]["built_in"]["build_id"] == build.run_id
    assert run.execution.env["OMP_NUM_THREADS"] == "2" and run.execution.env["I_MPI_PIN_DOMAIN"] == "omp"
    assert run.extra["compile_options"] == build.record.extra["compile_options"]  # checked against the log
    parsed = get_parser("mzdemo").parse(result.runs[0].stdout(), "log").records[0]
    assert parsed["verified"] and parsed["nprocs"] == 1 and parsed["total_threads"] == 2

    built = build_tables("npb", store=store)
    table = built.tables["apps"]
    assert list(table["workload"]) == ["MZ-DEMO", "MZ-DEMO"] and table["verified"].all() and not built.warnings

    with StageContext(inventory, "local", "npb", store) as ctx:  # a class S rerun reuses the stored build
        again = run_stage(ctx, "single-node", AppParams(workloads=("npb",), npb_class="S", repetitions=1,
                                                        rerun=True), progress=False)
    assert again.measured == 1 and len(list(store.runs("npb", "local", "build"))) == 1


def test_a_binary_changed_after_distribution_is_refused_before_the_run(inventory, tmp_path):
    from vhpclib.npb import verify_deployment
    from vhpclib.workloads.npb import NpbMz

    store = RawStore(tmp_path / "raw")
    params = AppParams(workloads=("npb",), npb_class="S")
    npb = NpbMz()
    with StageContext(inventory, "local", "npb", store) as ctx:
        [point] = npb.plan("single-node", ctx, params)
        prepared = npb.prepare(ctx, [point], params)
        [deployment] = prepared.deployments
        path = Path(deployment.path)
        path.write_bytes(path.read_bytes() + b"\0")
        with pytest.raises(ChecksumMismatch, match="mz-demo.S.1"):
            npb.job(ctx, point, 1, prepared, params)  # verifies every host's copy first
        with pytest.raises(ChecksumMismatch):
            verify_deployment(ctx.executor(ctx.env.hosts[0]), deployment)


def test_mz_demo_log_without_result_block_is_a_parse_error(inventory, tmp_path):
    from vhpclib.exceptions import ParseError

    with pytest.raises(ParseError, match="Benchmark Completed"):
        get_parser("mzdemo").parse(" vHPC MZ-DEMO: multi-zone heat solver (MPI+OpenMP); not an NPB benchmark\n", "x")
    with pytest.raises(ParseError, match="banner"):
        get_parser("mzdemo").parse(" NAS Parallel Benchmarks (NPB3.3-MZ-MPI) - SP-MZ Benchmark\n", "x")
