"""The paper's stages through the Slurm launcher, against real private clusters.

A one-node cluster (this machine, submitting locally) runs the microbench and
scaling stages, an interrupted campaign, a time limit and refused settings; a
2-node namespace testbed with a slurmd per node (submitting from node 1 over
SSH) runs PingPong across nodes, blockss across nodes, the tables and figures
of that campaign, and ``vhpc inventory check`` through one srun step. Every
daemon is real (Debian's munged, slurmctld, slurmd) and stopped by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_helpers import need_slurm, private_cluster
import yaml

from vhpclib import paths
from vhpclib import stages
from vhpclib.cli import main
from vhpclib.params import AppParams, MicrobenchParams
from vhpclib.slurm import cluster as cl
from vhpclib.stages.context import StageContext
from vhpclib.stages.driver import run_stage
from vhpclib.store import RawStore

VENV = Path(sys.prefix)
TINY = {"msglog": (0, 4), "iterations": 50}


@pytest.fixture(scope="module")
def one_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cl.PrivateCluster]:
    """This machine as a one-node Slurm cluster, for the module."""
    with private_cluster(tmp_path_factory, "slurm-stages") as cluster:
        yield cluster


@pytest.fixture()
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Raw store, tables and figures of the test in tmp (the library's paths patched)."""
    monkeypatch.setattr(paths, "RAW", tmp_path / "data/raw")
    monkeypatch.setattr(paths, "PROCESSED", tmp_path / "data/processed")
    monkeypatch.setattr(paths, "FIGURES", tmp_path / "figures")
    return tmp_path


IMB_WRAPPER = """\
#!/bin/bash
# Test stand-in for IMB-MPI1: does what the control file says, then runs the real IMB.
ctl={control}
case "$(cat "$ctl" 2>/dev/null)" in
  hold) echo "holding (rank ${{SLURM_PROCID:-?}})"; sleep 300;;
  timeout-once)
    if [ "${{SLURM_PROCID:-0}}" = 0 ]; then
      : > "$ctl"
      scontrol update JobId="$SLURM_JOB_ID" EndTime="$(date +%Y-%m-%dT%H:%M:%S)"
    fi
    sleep 300;;
esac
exec {imb} "$@"
"""


def _inventory(folder: Path, cluster: cl.PrivateCluster, **slurm: object) -> Path:
    """A one-environment inventory (``cluster``) submitting to ``cluster`` from this machine."""
    control = folder / "imb-control"
    control.write_text("")
    wrapper = folder / "imb-wrapper"
    wrapper.write_text(IMB_WRAPPER.format(control=control, imb=VENV / "bin" / "IMB-MPI1"))
    wrapper.chmod(0o755)
    settings = {"partition": cluster.partition, "slurm_conf": str(cluster.conf), "job_dir": str(cluster.job_dir),
                "poll_interval_s": 1.0, **slurm}
    data = {"name": "slurm-test", "environments": {"cluster": {
        "label": "cluster", "baseline": True, "launcher": "slurm", "hosts": [{"local": True}],
        "benchmarks": {"imb": str(wrapper)}, "timeout_s": 600, "slurm": settings}}}
    path = folder / "inventory.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _control(inventory: Path, value: str) -> None:
    (inventory.parent / "imb-control").write_text(value)


def _squeue(cluster: cl.PrivateCluster, *args: str) -> str:
    return subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, env={**os.environ, **cluster.env},
                          timeout=30).stdout.strip()


# ------------------------------------------------------------------ one node, submitting locally

@pytest.mark.slurm
@pytest.mark.mpi
@pytest.mark.parametrize("submission", ["batch", "allocation"])
def test_microbench_and_scaling_run_through_slurm_with_job_records_and_figures(
        one_node: cl.PrivateCluster, data: Path, submission: str) -> None:
    inventory = _inventory(data, one_node, submission=submission)
    micro = stages.run(inventory, "cluster", "sl", stages.MICROBENCH, MicrobenchParams(**TINY, repetitions=2),
                       progress=False)
    assert not micro.failed and micro.result.measured == 2 and micro.result.invalid == []
    node = one_node.nodes[0].name
    job_ids = set()
    for run in micro.result.runs:
        record = json.loads((run.path / "run.json").read_text())
        execution, scheduler = record["execution"], record["execution"]["scheduler"]
        assert execution["launcher"] == "slurm" and execution["hosts"] == [node] and execution["exit_status"] == 0
        assert scheduler["state"] == "COMPLETED" and scheduler["sacct"]["state"] == "COMPLETED"
        assert scheduler["sacct"]["node_list"] == node and scheduler["sacct"]["job_id"] == scheduler["job_id"]
        assert record["pinning"]["verification"] == "verified"  # Intel MPI's pin map, as for mpirun runs
        assert scheduler["binding_verification"] == "verified"  # and srun's own cpu-bind report
        assert [b["cpus"] for b in scheduler["task_binding"]] == [[c] for c in record["point"]["cpus"]]
        assert {"job.sbatch", "stdout.log", "stderr.log", "slurm_env.txt"} <= set(record["files"])
        script = (run.path / "job.sbatch").read_text()
        assert "srun --mpi=pmi2" in script and "--cpu-bind=verbose,map_cpu:" in script
        assert f"SLURM_JOB_ID={scheduler['job_id']}" in (run.path / "slurm_env.txt").read_text()
        assert list(record["host_facts"]) == [node] and record["host_facts"][node]["slurm_job_id"]
        job_ids.add(scheduler["job_id"])
    assert len(job_ids) == 2  # one job per run
    assert any(p.name == "table2_latency.html" for p in micro.figures)
    assert "intra-socket" in (data / "data/processed/sl/microbench.csv").read_text()

    scaling = stages.run(inventory, "cluster", "sl", stages.SCALING,
                         AppParams(workloads=("blockss",), blockss_preset="tiny", repetitions=1), progress=False)
    assert not scaling.failed and sorted(r.record.point["processes"] for r in scaling.result.runs) == [1, 2]
    for run in scaling.result.runs:
        assert "blockss.json" in run.record.files  # written in the job's folder, brought back
        assert run.record.execution.scheduler["sacct"]["state"] == "COMPLETED"
    assert any(p.name == "figure4_blockss.html" for p in scaling.figures)


_CAMPAIGN = [sys.executable, "-m", "vhpclib.cli", "run", "microbench", "-c", "intr", "-e", "cluster",
             "--placement", "intra-socket", "--msglog", "0:4", "--iterations", "50", "--no-figures", "--no-progress"]


def _run_cli(inventory: Path, data: Path, repetitions: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "VHPC_DATA": str(data / "data"), "VHPC_FIGURES": str(data / "figures")}
    return subprocess.run([*_CAMPAIGN, "-i", str(inventory), "--repetitions", str(repetitions)], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slurm
@pytest.mark.mpi
@pytest.mark.parametrize("sig,submission", [(signal.SIGINT, "batch"), (signal.SIGTERM, "allocation")])
def test_interrupting_a_campaign_cancels_its_job_keeps_the_run_as_failed_and_resume_measures_it(
        one_node: cl.PrivateCluster, tmp_path: Path, sig: signal.Signals, submission: str) -> None:
    inventory = _inventory(tmp_path, one_node, submission=submission)
    first = _run_cli(inventory, tmp_path, 1)
    assert first.returncode == 0, first.stderr
    _control(inventory, "hold")  # repetition 2 will hold its job until interrupted
    env = {**os.environ, "VHPC_DATA": str(tmp_path / "data"), "VHPC_FIGURES": str(tmp_path / "figures")}
    child = subprocess.Popen([*_CAMPAIGN, "-i", str(inventory), "--repetitions", "2"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # the campaign's job for repetition 2 (after the one fingerprinting the node)
            running = [line.split() for line in _squeue(one_node, "-t", "RUNNING", "-o", "%i %j").splitlines()]
            found = [(i, n) for i, n in running if n.endswith("-r02")]
            if found:
                break
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.2)
        ((job_id, name),) = found
        time.sleep(1)  # the job is holding
        child.send_signal(sig)
        out, err = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130 and "Traceback" not in err, err
    assert _squeue(one_node, "-j", job_id) == ""  # no job left queued or running
    folder = tmp_path / "data/raw/intr/cluster/microbench"
    stem = name.removesuffix("-r02")
    kept = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert kept[0] == f"{stem}-r01" and len(kept) == 2 and kept[1].startswith(f"{stem}-r02.failed-")
    failed = json.loads((folder / kept[1] / "run.json").read_text())
    how = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
    job = failed["execution"]["scheduler"]["job_id"]
    assert failed["status"] == "failed" and failed["reasons"] == [f"interrupted ({how}): Slurm job {job} cancelled"]
    assert failed["execution"]["scheduler"]["job_id"] == job_id
    assert failed["execution"]["failure"] == f"interrupted ({how}): Slurm job {job_id} cancelled"
    assert "holding" in (folder / kept[1] / "stdout.log").read_text()  # what the job wrote is kept
    assert RawStore(tmp_path / "data/raw").measured_counts("intr", "cluster", "microbench") == {stem: 1}

    _control(inventory, "")
    resumed = _run_cli(inventory, tmp_path, 2)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 run(s) measured, 1 reused" in resumed.stdout
    assert (folder / f"{stem}-r02" / "run.json").is_file()


@pytest.mark.slurm
@pytest.mark.mpi
def test_a_run_killed_by_its_time_limit_is_failed_with_timeout_and_the_campaign_goes_on(
        one_node: cl.PrivateCluster, tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, one_node, time_limit="1")
    _control(inventory, "timeout-once")  # the first job moves its end time to now: slurmctld kills it
    with StageContext.open(inventory, "cluster", "tl", store=RawStore(tmp_path / "raw")) as ctx:
        result = run_stage(ctx, "microbench", MicrobenchParams(**TINY, repetitions=2), progress=False)
    (failure,) = result.failures
    assert "-r01.failed-" in failure and failure.endswith(": TIMEOUT")
    assert [r.run_id[-3:] for r in result.runs] == ["r02"] and result.measured == 1
    failed = next((tmp_path / "raw/tl/cluster/microbench").glob("*-r01.failed-*"))
    record = json.loads((failed / "run.json").read_text())
    assert record["execution"]["scheduler"]["sacct"]["state"] == "TIMEOUT"
    assert record["execution"]["scheduler"]["sacct"]["time_limit"] == "1"


@pytest.mark.slurm
@pytest.mark.parametrize("change,words", [
    ({"partition": "nosuchpart"}, "environments.cluster.slurm.partition: Slurm refused partition 'nosuchpart'"),
    ({"time_limit": "90 minutes"}, "environments.cluster.slurm.time_limit: not a Slurm time limit"),
    ({"dead_controller": True}, "environments.cluster.slurm.slurm_conf: no slurmctld answered with SLURM_CONF="),
    ({"more_hosts": True}, "environments.cluster.hosts: Slurm refused nodes: allocation failure: Requested node "
                           "configuration is not available (the environment lists 2 hosts"),
])
def test_bad_slurm_settings_stop_a_campaign_with_one_line_and_exit_2(
        one_node: cl.PrivateCluster, data: Path, capsys: pytest.CaptureFixture, change: dict, words: str) -> None:
    change = dict(change)
    if change.pop("dead_controller", False):
        dead = data / "dead.conf"
        closed = cl.free_port("0.0.0.0")
        # MessageTimeout 2 s: Slurm's clients retry the closed port once a second that long (10 s by default)
        dead.write_text("".join(f"SlurmctldPort={closed}\n" if line.startswith("SlurmctldPort=") else line
                                for line in one_node.conf.read_text().splitlines(keepends=True))
                        + "MessageTimeout=2\n")
        change["slurm_conf"] = str(dead)
    more_hosts = change.pop("more_hosts", False)
    inventory = _inventory(data, one_node, **change)
    if more_hosts:  # two hosts listed, one node in the partition
        spec = yaml.safe_load(inventory.read_text())
        spec["environments"]["cluster"]["hosts"].append({"address": "node2.example"})
        inventory.write_text(yaml.safe_dump(spec, sort_keys=False))
    code = main(["run", "microbench", "-i", str(inventory), "-e", "cluster", "-c", "bad", "--no-progress",
                 "--no-figures"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and words in err, err
    assert not (data / "data/raw/bad").exists()  # nothing measured, nothing half-written


@pytest.mark.slurm
def test_inventory_check_fingerprints_the_nodes_through_one_srun_step(one_node: cl.PrivateCluster, data: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    inventory = _inventory(data, one_node)
    assert main(["inventory", "check", str(inventory), "-c", "chk"]) == 0
    out = capsys.readouterr().out
    node = one_node.nodes[0].name
    assert node in out and "yes" in out
    stored = json.loads((data / f"data/raw/chk/cluster/fingerprint/{node}.json").read_text())
    assert stored["hostname"] == node and stored["topology"]["cores_per_socket"] >= 1


def test_the_slurm_launcher_is_registered_and_the_example_inventory_uses_it() -> None:
    from vhpclib.config import load_inventory
    from vhpclib.launchers import get_launcher

    assert get_launcher("slurm").name == "slurm"
    inv = load_inventory(paths.INVENTORIES / "slurm-example.yml")
    assert {e.launcher for e in inv.environments.values()} == {"slurm"}


# ------------------------------------------------------------------ 2 namespace nodes, submitting over SSH

TESTBED = "sgst"


@pytest.fixture(scope="module")
def slurm_testbed(tmp_path_factory: pytest.TempPathFactory):
    """A 2-node namespace testbed with its private Slurm cluster (a slurmd per node), for the module."""
    from vhpclib import testbed as tb
    from vhpclib.sshd import sshd_available

    need_slurm()
    reason = sshd_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the Slurm testbed must run in CI: {reason}")
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("slurm-testbed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paths, "TESTBEDS", base / "testbeds")
        mp.setattr(paths, "INVENTORIES", base / "inventories")
        tb.down(TESTBED)
        info = tb.up(2, name=TESTBED, slurm=True)
        try:
            yield info
        finally:
            tb.down(TESTBED)


@pytest.mark.root
@pytest.mark.ssh
@pytest.mark.mpi
@pytest.mark.slurm
def test_paper_stages_across_two_namespace_nodes_through_slurm_build_tables_and_figures(
        slurm_testbed, data: Path) -> None:
    names = [n.hostname for n in slurm_testbed.nodes]
    micro = stages.run(slurm_testbed.inventory, "slurm", "sl2", stages.MICROBENCH,
                       MicrobenchParams(**TINY, repetitions=1), progress=False)
    assert not micro.failed and micro.result.invalid == []
    (inter,) = [r for r in micro.result.runs if r.record.point["placement"] == "inter-node"]
    execution = inter.record.execution
    assert execution.hosts == names and execution.launch_host == names[0]
    assert execution.scheduler["sacct"]["nnodes"] == 2 and execution.scheduler["sacct"]["state"] == "COMPLETED"
    # Namespaces of one machine: each node's rank on its own core, seen by Intel MPI and by the wrapper.
    assert [(p.node, p.cpus) for p in inter.record.pinning.pin_map] == [(names[0], [0]), (names[1], [1])]
    assert inter.record.pinning.verification == "verified"
    assert execution.scheduler["binding_verification"] == "verified"
    assert sorted(inter.record.host_facts) == names

    scaling = stages.run(slurm_testbed.inventory, "slurm", "sl2", stages.SCALING,
                         AppParams(workloads=("blockss",), blockss_preset="tiny", repetitions=1), progress=False)
    assert not scaling.failed and scaling.result.runs
    by_procs = {r.record.point["processes"]: r for r in scaling.result.runs}
    for run in scaling.result.runs:  # every point the plan kept, on as many nodes as it asked for
        nodes = -(-run.record.point["processes"] // run.record.point["ppn"])
        assert run.record.execution.hosts == names[:nodes] and "blockss.json" in run.record.files
        assert run.record.execution.scheduler["sacct"]["nnodes"] == nodes
    figures = {p.name for p in micro.figures + scaling.figures}
    assert {"table2_latency.html", "figure2_throughput.html", "figure4_blockss.html"} <= figures
    import pandas as pd

    apps = pd.read_csv(data / "data/processed/sl2/apps.csv")
    assert sorted(apps.loc[apps["workload"] == "blockss", "nprocs"]) == sorted(by_procs) and apps["verified"].all()


@pytest.mark.root
@pytest.mark.ssh
@pytest.mark.slurm
def test_inventory_check_of_the_testbed_answers_for_both_nodes_through_slurm(
        slurm_testbed, data: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["inventory", "check", str(slurm_testbed.inventory), "-e", "slurm", "-c", "chk2"]) == 0
    out = capsys.readouterr().out
    for node in slurm_testbed.nodes:
        assert node.hostname in out
        stored = json.loads((data / f"data/raw/chk2/slurm/fingerprint/{node.hostname}.json").read_text())
        assert stored["hostname"] == node.hostname


def test_batch_script_of_a_launched_run_is_valid_bash(tmp_path: Path) -> None:
    """The launcher's script for a per-node CPU map (namespaces of one machine) parses as bash."""
    from vhpclib.mpi import LaunchSpec
    from vhpclib.slurm.placement import srun_placement
    from vhpclib.slurm.script import BatchJob, batch_script
    from vhpclib.slurm.settings import SlurmSettings

    placement = srun_placement(LaunchSpec(nprocs=2, hosts=("a", "b"), host_cpus=(("a", (0,)), ("b", (1,)))))
    job = BatchJob(name="x", program=(*placement.program_prefix, "IMB-MPI1", "PingPong"), ntasks=2,
                   nodes=placement.nodes, launcher_args=placement.srun_args, exclusive=placement.exclusive)
    text = batch_script(SlurmSettings(), job, str(tmp_path))
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    assert textwrap.dedent("#SBATCH --exclusive") in text


def _context(tmp_path: Path, **slurm: object) -> StageContext:
    from vhpclib.config import parse_inventory

    inv = parse_inventory(yaml.safe_dump({"environments": {"c": {
        "label": "c", "launcher": "slurm", "hosts": [{"local": True}], "timeout_s": 600,
        "slurm": {"partition": "p", **slurm}}}}), tmp_path / "inv.yml")
    return StageContext(inv, "c", "plan", store=RawStore(tmp_path / "raw"))


def test_a_pinned_run_under_srun_lets_slurm_bind_and_keeps_the_mpi_report_but_not_its_pinning(tmp_path: Path) -> None:
    from vhpclib.launchers import Job
    from vhpclib.launchers.slurm import job_name, plan_job
    from vhpclib.mpi import LaunchSpec

    ctx = _context(tmp_path)
    job = Job(["IMB-MPI1", "PingPong"], LaunchSpec(nprocs=2, cpus=(0, 1)), timeout_s=90)
    plan = plan_job(ctx, job, job_name("pingpong-intra-socket-m0-4-r01"))
    assert plan.argv == ["srun", "--mpi=pmi2", "-n", "2", "--cpu-bind=verbose,map_cpu:0,1", "IMB-MPI1", "PingPong"]
    assert plan.variables["I_MPI_DEBUG"] == "4" and plan.variables["I_MPI_FABRICS"] == "shm"
    assert not any(k.startswith("I_MPI_PIN") for k in plan.variables)  # srun binds; Intel MPI only reports
    assert plan.variables["I_MPI_PMI_LIBRARY"].endswith("libpmi2.so.0")
    assert (plan.batch.nodes, plan.batch.ntasks, plan.batch.exclusive) == (1, 2, True)
    assert plan.batch.time_limit == "3"  # the run's 90 s timeout, in whole minutes, plus one
    assert _context(tmp_path, time_limit="0:30:00").env.slurm.time_limit == "0:30:00"
    assert plan_job(_context(tmp_path, time_limit="0:30:00"), job, "x").batch.time_limit is None  # the setting's own
    assert job_name("a=b/c..r01") == "a_b_c..r01" and len(job_name("x" * 300)) == 128


def test_mpirun_inside_the_allocation_pins_per_node_segments_without_host_names(tmp_path: Path) -> None:
    from vhpclib.launchers import Job
    from vhpclib.launchers.slurm import plan_job
    from vhpclib.mpi import LaunchSpec

    ctx = _context(tmp_path, mpi_mode="mpirun")
    spec = LaunchSpec(nprocs=2, hosts=("10.0.0.1", "10.0.0.2"), host_cpus=(("10.0.0.1", (0,)), ("10.0.0.2", (1,))))
    plan = plan_job(ctx, Job(["IMB-MPI1"], spec), "x")
    assert plan.batch.launch == "none" and plan.placement is None
    assert "-host" not in plan.argv and "10.0.0.1" not in " ".join(plan.argv)
    assert plan.argv.count("I_MPI_PIN_PROCESSOR_LIST") == 2 and ":" in plan.argv
    assert (plan.batch.nodes, plan.batch.ntasks_per_node, plan.batch.exclusive) == (2, 1, True)
    assert "I_MPI_PMI_LIBRARY" not in plan.variables


@pytest.mark.root
@pytest.mark.ssh
@pytest.mark.mpi
@pytest.mark.slurm
def test_interrupting_a_campaign_submitting_over_ssh_cancels_its_job_and_keeps_the_run(
        slurm_testbed, tmp_path: Path) -> None:
    """Over SSH the interruption cuts the session to the login node: its program cancels the job."""
    control = tmp_path / "imb-control"
    control.write_text("hold")
    wrapper = tmp_path / "imb-wrapper"
    wrapper.write_text(IMB_WRAPPER.format(control=control, imb=VENV / "bin" / "IMB-MPI1"))
    wrapper.chmod(0o755)
    data_ = yaml.safe_load(slurm_testbed.inventory.read_text())
    data_["environments"]["slurm"]["benchmarks"] = {"imb": str(wrapper)}
    inventory = tmp_path / "testbed.yml"
    inventory.write_text(yaml.safe_dump(data_, sort_keys=False))
    cluster_env = {**os.environ, "SLURM_CONF": str(slurm_testbed.slurm_conf)}
    env = {**os.environ, "VHPC_DATA": str(tmp_path / "data"), "VHPC_FIGURES": str(tmp_path / "figures")}
    args = [sys.executable, "-m", "vhpclib.cli", "run", "microbench", "-i", str(inventory), "-e", "slurm", "-c", "cut",
            "--placement", "inter-node", "--msglog", "0:4", "--iterations", "50", "--repetitions", "1",
            "--no-figures", "--no-progress"]
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            running = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %j"], capture_output=True,
                                     text=True, env=cluster_env).stdout.split("\n")
            found = [line.split() for line in running if line.endswith("-r01")]
            if found:
                break
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.2)
        ((job_id, _),) = found
        time.sleep(1)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130 and "Traceback" not in err, err
    state = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True,
                           env=cluster_env).stdout.strip()
    assert state == "CANCELLED"
    folder = tmp_path / "data/raw/cut/slurm/microbench"
    (failed,) = [p for p in folder.iterdir() if ".failed-" in p.name]
    record = json.loads((failed / "run.json").read_text())
    assert record["reasons"] == [f"interrupted (SIGINT): Slurm job {job_id} cancelled"]
    assert record["execution"]["scheduler"]["job_id"] == job_id
    assert "holding" in (failed / "stdout.log").read_text()
    assert not [p for p in folder.iterdir() if not p.name.startswith(".") and ".failed-" not in p.name]
