"""Slurm: settings, batch scripts and sacct parsing (pure), then jobs against a real private cluster.

The cluster is real: Debian's munged, slurmctld and slurmd, started once for the
session in a tmp folder with their own ports and a private munged (never the
system's), and stopped by PID at the end. Jobs run the real IMB-MPI1 from this
venv with ``srun --mpi=pmi2`` (Debian's libpmi2) or ``mpirun`` inside the allocation.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_helpers import need_slurm, private_cluster

from vhpclib.cli import main
from vhpclib.config import parse_inventory
from vhpclib.exceptions import (InventoryError, ParseError, SlurmJobPending, SlurmSettingError, SlurmUnreachable,
                                Interrupted)
from vhpclib.fingerprint import collect_fingerprint
from vhpclib.mpi import SYSTEM_PATH
from vhpclib.parsers import get_parser
from vhpclib.parsers.impi_pinmap import parse_pin_map
from vhpclib.remote import LocalExecutor
from vhpclib.slurm import cluster as cl
from vhpclib.slurm import jobs
from vhpclib.slurm.node_fingerprints import fingerprint_job, fingerprint_nodes, split_by_node
from vhpclib.slurm.sacct import outcome_of, parse_sacct
from vhpclib.slurm.script import BatchJob, batch_script, launch_argv
from vhpclib.slurm.settings import DEBIAN_PMI2_LIBRARY, SlurmSettings, check_time_limit, time_limit_minutes

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"
VENV = Path(sys.prefix)
IMB = str(VENV / "bin" / "IMB-MPI1")
TINY_PINGPONG = (IMB, "PingPong", "-msglog", "0:4", "-iter", "50")
MPI_ENV = {"LD_LIBRARY_PATH": str(VENV / "lib"), "PATH": f"{VENV / 'bin'}:{SYSTEM_PATH}", "I_MPI_DEBUG": "4"}


# ------------------------------------------------------------------ settings (pure)

@pytest.mark.parametrize("value", ["30", "0", "5:30", "1:00:00", "100:00:00", "2-12", "2-12:30", "2-12:30:15",
                                   "UNLIMITED", "unlimited", "INFINITE"])
def test_time_limit_accepts_every_sbatch_format(value: str) -> None:
    assert check_time_limit(value) in (value, value.upper())


@pytest.mark.parametrize("value", ["", "abc", "1:2:3:4", "5-", "-5", "1h", "30m", "1-2-3", "1:00:00 ", "1 day"])
def test_time_limit_rejects_what_sbatch_does_not_document(value: str) -> None:
    if value == "1:00:00 ":  # surrounding blanks are trimmed, not an error
        assert check_time_limit(value) == "1:00:00"
        return
    with pytest.raises(ValueError, match="not a Slurm time limit"):
        check_time_limit(value)


@pytest.mark.parametrize("value,minutes", [("30", 30), ("5:30", 6), ("1:00:00", 60), ("2-12", 3600),
                                           ("1-00:00:01", 1441), ("UNLIMITED", None)])
def test_time_limit_minutes_round_seconds_up_like_slurm(value: str, minutes: int | None) -> None:
    assert time_limit_minutes(value) == minutes


def _inventory(slurm_yaml: str, launcher: str = "slurm") -> str:
    return textwrap.dedent(f"""\
        environments:
          cluster:
            label: cluster
            launcher: {launcher}
            hosts: [{{local: true}}]
        """) + textwrap.indent(textwrap.dedent(slurm_yaml), "    ")


def test_inventory_with_a_slurm_section_loads_with_the_submit_host_as_a_host_spec() -> None:
    inv = parse_inventory(_inventory("""\
        slurm:
          partition: vms
          account: proj-1
          time_limit: '1:00:00'
          nodes: 2
          ntasks_per_node: 8
          sbatch_args: [--exclusive, --mem=4G]
          mpi_mode: mpirun
          submit_host: {address: login.example, user: alice}
          pending_limit_s: 600
        """), "c.yml")
    env = inv.environment("cluster")
    assert env.launcher == "slurm"
    assert env.slurm.partition == "vms" and env.slurm.nodes == 2 and env.slurm.mpi_mode == "mpirun"
    assert env.slurm.submit_host.address == "login.example"
    assert env.slurm.pmi_library == DEBIAN_PMI2_LIBRARY


def test_launcher_slurm_without_a_slurm_section_is_one_line_naming_the_key() -> None:
    with pytest.raises(InventoryError) as err:
        parse_inventory(_inventory(""), "c.yml")
    assert str(err.value) == ("c.yml:4: environments.cluster.launcher: launcher 'slurm' needs a 'slurm:' "
                              "section (at least 'slurm: {}')")


@pytest.mark.parametrize("slurm_yaml,key,words", [
    ("slurm: {time_limit: 1:00:00}\n", "slurm.time_limit", "quoted string"),
    ("slurm: {time_limit: '1 hour'}\n", "slurm.time_limit", "not a Slurm time limit"),
    ("slurm: {partition: 'a b'}\n", "slurm.partition", "not a Slurm name"),
    ("slurm: {account: 'x;rm -rf /'}\n", "slurm.account", "not a Slurm name"),
    ("slurm: {constraint: 'ib gpu'}\n", "slurm.constraint", "not a Slurm constraint"),
    ("slurm: {sbatch_args: [--exclusive, --output=/tmp/x]}\n", "slurm.sbatch_args.1", "set by vhpc"),
    ("slurm: {sbatch_args: ['-p debug']}\n", "slurm.sbatch_args.0", "set by vhpc"),
    ("slurm: {sbatch_args: [exclusive]}\n", "slurm.sbatch_args.0", "not an sbatch option"),
    ("slurm: {mpi_mode: srun-pmix}\n", "slurm", "needs pmi_library"),
    ("slurm: {mpi_mode: srun}\n", "slurm.mpi_mode", "srun-pmi2"),
    ("slurm: {nodes: 0}\n", "slurm.nodes", "greater than or equal to 1"),
    ("slurm: {job_dir: 'my jobs'}\n", "slurm.job_dir", "without blanks"),
    ("slurm: {partiton: vms}\n", "slurm.partiton", "unknown key"),
])
def test_bad_slurm_settings_are_one_line_naming_file_line_and_key(slurm_yaml: str, key: str, words: str) -> None:
    with pytest.raises(InventoryError) as err:
        parse_inventory(_inventory(slurm_yaml), "c.yml")
    text = str(err.value)
    assert "\n" not in text and err.value.exit_code == 2
    assert text.startswith(f"c.yml:6: environments.cluster.{key}: ") and words in text


def test_cli_reports_a_bad_slurm_setting_in_one_line_with_exit_2(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(_inventory("slurm: {time_limit: '90 minutes'}\n"))
    assert main(["inventory", "validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "environments.cluster.slurm.time_limit" in err and "bad.yml:6" in err


# ------------------------------------------------------------------ scripts (pure)

def test_batch_script_quotes_every_value_and_sends_output_into_the_job_folder() -> None:
    settings = SlurmSettings(partition="vms", account="proj-1", qos="normal", time_limit="0:30",
                             constraint="ib&haswell", nodes=2, ntasks_per_node=4,
                             sbatch_args=["--exclusive", "--comment=two words; $(rm -rf ~)"])
    job = BatchJob(name="imb.pingpong", program=(IMB, "PingPong", "-msglog", "0:4"), ntasks=2,
                   env={"GREETING": "it's $HOME"})
    text = batch_script(settings, job, "/shared/jobs/run 1")
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    for line in ["#SBATCH --partition=vms", "#SBATCH --account=proj-1", "#SBATCH --qos=normal",
                 "#SBATCH --time=0:30", "#SBATCH --constraint='ib&haswell'", "#SBATCH --nodes=2",
                 "#SBATCH --ntasks-per-node=4", "#SBATCH --ntasks=2", "#SBATCH --job-name=imb.pingpong",
                 "#SBATCH --output='/shared/jobs/run 1/stdout.log'",
                 "#SBATCH --error='/shared/jobs/run 1/stderr.log'", "#SBATCH --chdir='/shared/jobs/run 1'",
                 "#SBATCH --exclusive", "#SBATCH --comment='two words; $(rm -rf ~)'",
                 "set -euo pipefail", "export GREETING='it'\"'\"'s $HOME'",
                 f"export I_MPI_PMI_LIBRARY={DEBIAN_PMI2_LIBRARY}",
                 f"srun --mpi=pmi2 -n 2 {IMB} PingPong -msglog 0:4"]:
        assert line in lines, line
    assert lines.index("set -euo pipefail") > max(i for i, ln in enumerate(lines) if ln.startswith("#SBATCH"))
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_launch_line_follows_the_mpi_mode() -> None:
    job = BatchJob(name="j", program=("a.out",), ntasks=4, ntasks_per_node=2, mpirun="/opt/impi/bin/mpirun")
    assert launch_argv(SlurmSettings(), job) == ["srun", "--mpi=pmi2", "-n", "4", "a.out"]
    assert launch_argv(SlurmSettings(mpi_mode="srun-pmix", pmi_library="/usr/lib/libpmix.so.2"), job) == \
        ["srun", "--mpi=pmix", "-n", "4", "a.out"]
    assert launch_argv(SlurmSettings(mpi_mode="mpirun"), job) == ["/opt/impi/bin/mpirun", "-n", "4", "-ppn", "2",
                                                                  "a.out"]
    mpirun_script = batch_script(SlurmSettings(mpi_mode="mpirun"), job, "/j")
    assert "I_MPI_PMI_LIBRARY" not in mpirun_script
    pmix_script = batch_script(SlurmSettings(mpi_mode="srun-pmix", pmi_library="/usr/lib/libpmix.so.2"), job, "/j")
    assert "export I_MPI_PMI_LIBRARY=/usr/lib/libpmix.so.2" in pmix_script and "export I_MPI_PMI=pmix" in pmix_script
    plain = BatchJob(name="j", program=("hostname",), launch="srun", launcher_args=("--ntasks-per-node=1",))
    assert launch_argv(SlurmSettings(), plain) == ["srun", "--ntasks-per-node=1", "hostname"]


@pytest.mark.parametrize("kwargs,key", [({"name": "has space"}, "job.name"), ({"program": ()}, "job.program"),
                                        ({"env": {"1BAD": "x"}}, "job.env"), ({"ntasks": 0}, "job"),
                                        ({"time_limit": "soon"}, "job.time_limit")])
def test_batch_job_rejects_bad_fields_naming_them(kwargs: dict, key: str) -> None:
    fields = {"name": "ok", "program": ("true",), **kwargs}
    with pytest.raises(SlurmSettingError) as err:
        BatchJob(**fields)
    assert err.value.key == key and err.value.exit_code == 2


# ------------------------------------------------------------------ sacct and sbatch output (pure)

def _expected_rows() -> list[dict[str, str]]:
    with open(FIXTURES / "expected.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("row", _expected_rows(), ids=lambda r: f"{r['file']}:{r['job_id']}")
def test_sacct_records_and_outcomes_match_the_expected_table(row: dict[str, str], tmp_path: Path) -> None:
    text = (FIXTURES / row["file"]).read_text()
    record = parse_sacct(text, row["job_id"], source="sacct", file=row["file"])
    job = record.job
    blank = lambda v: v if v != "" else None  # noqa: E731
    assert job.state == row["state"]
    assert (job.exit_code, job.exit_signal) == (int(row["exit_code"]), int(row["exit_signal"]))
    assert job.elapsed_s == int(row["elapsed_s"])
    assert job.node_list == blank(row["node_list"])
    assert (job.nnodes, job.alloc_cpus) == (int(row["nnodes"]), int(row["alloc_cpus"]))
    assert job.time_limit == row["time_limit"] and len(record.steps) == int(row["steps"])
    assert outcome_of(job.state) == (row["outcome"], blank(row["reason"]))
    assert json.loads(json.dumps(record.to_dict()))["state"] == row["state"]


def test_sacct_steps_belong_to_their_job_and_other_jobs_are_ignored() -> None:
    record = parse_sacct((FIXTURES / "constructed_slurmdbd_steps.txt").read_text(), "4242")
    assert [s.job_id for s in record.steps] == ["4242.batch", "4242.extern", "4242.0"]
    assert record.steps[-1].job_name == "IMB-MPI1" and record.steps[-1].ntasks == 2
    assert record.job.account == "proj1" and record.job.qos == "normal" and record.job.reason is None
    assert parse_sacct((FIXTURES / "constructed_slurmdbd_steps.txt").read_text(), "4243").job.state_detail == \
        "CANCELLED by 0"


def test_sacct_parser_names_the_line_with_missing_fields_and_a_missing_job() -> None:
    text = (FIXTURES / "sacct_completion_states.txt").read_text()
    broken = text.replace("|vm|1|1||UNLIMITED|\n", "|vm|1\n", 1)
    with pytest.raises(ParseError) as err:
        parse_sacct(broken, "1", file="broken.txt")
    assert err.value.line is not None and "expected 19" in err.value.message
    with pytest.raises(ParseError, match="no sacct line for job 999"):
        parse_sacct(text, "999")


def test_active_states_have_no_outcome_yet() -> None:
    for state in ("PENDING", "RUNNING", "COMPLETING"):
        with pytest.raises(ValueError):
            outcome_of(state)
    assert outcome_of("CANCELLED by 0") == ("failed", "CANCELLED")
    assert outcome_of("PREEMPTED") == ("failed", "PREEMPTED")


@pytest.mark.parametrize("file,cls,key", [
    ("sbatch_invalid_partition.stderr", SlurmSettingError, "slurm.partition"),
    ("sbatch_invalid_time.stderr", SlurmSettingError, "slurm.time_limit"),
    ("sbatch_invalid_constraint.stderr", SlurmSettingError, "slurm.constraint"),
    ("sbatch_invalid_node_count.stderr", SlurmSettingError, "slurm.nodes"),
    ("sbatch_unrecognized_option.stderr", SlurmSettingError, "slurm.sbatch_args"),
    ("sbatch_no_controller.stderr", SlurmUnreachable, "slurm.slurm_conf"),
])
def test_sbatch_refusals_become_one_line_errors_naming_the_setting(file: str, cls: type, key: str) -> None:
    stderr = (FIXTURES / file).read_text()
    error = jobs.classify_sbatch_error(stderr, 1, SlurmSettings(partition="nope"))
    assert type(error) is cls and error.key == key and error.exit_code == 2
    assert "\n" not in str(error) and jobs._error_line(stderr) in str(error) and "sbatch" in str(error)


def test_slurmd_c_line_gives_the_node_name_and_real_topology() -> None:
    name, hw = cl.parse_slurmd_c((FIXTURES / "slurmd_C_vm.txt").read_text())
    assert name == "vm" and (hw.cpus, hw.sockets, hw.cores_per_socket, hw.threads_per_core) == (2, 1, 2, 1)
    assert hw.real_memory_mb == 24105


def test_node_prefixed_output_splits_back_per_node() -> None:
    text = "n1|@@vhpc-begin hostname@@\nn2|@@vhpc-begin hostname@@\nn1|n1\nn2|n2\nsrun: warning\nn1|a|b\n"
    assert split_by_node(text) == {"n1": "@@vhpc-begin hostname@@\nn1\na|b\n", "n2": "@@vhpc-begin hostname@@\nn2\n"}
    job = fingerprint_job(3)
    assert job.nodes == 3 and job.ntasks_per_node == 1 and job.launch == "srun"


# ------------------------------------------------------------------ the real cluster

@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cl.PrivateCluster]:
    """One real one-node private cluster for the whole session, stopped by PID at the end."""
    with private_cluster(tmp_path_factory, "slurm") as cluster:
        yield cluster


def _squeue(cluster: cl.PrivateCluster, *args: str) -> str:
    return subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, env={**os.environ, **cluster.env},
                          timeout=30).stdout.strip()


def _imb_job(name: str, **kw) -> BatchJob:
    return BatchJob(name=name, program=TINY_PINGPONG, ntasks=2, env={**MPI_ENV, "I_MPI_FABRICS": "shm"},
                    mpirun=str(VENV / "bin" / "mpirun"), **kw)


@pytest.mark.slurm
def test_private_cluster_runs_its_own_munged_as_munge_with_a_private_key(slurm_cluster: cl.PrivateCluster) -> None:
    munge_dir = slurm_cluster.munge_folder
    key = (munge_dir / "munge.key").stat()
    assert stat.S_IMODE(key.st_mode) == 0o400 and pwd.getpwuid(key.st_uid).pw_name == "munge"
    munged = slurm_cluster.pids["munged"]
    uid_line = next(ln for ln in Path(f"/proc/{munged}/status").read_text().splitlines()
                    if ln.startswith("Uid:"))
    assert set(uid_line.split()[1:]) == {str(pwd.getpwnam("munge").pw_uid)}
    conf = slurm_cluster.conf.read_text()
    assert f"AuthInfo=socket={munge_dir}/munge.socket" in conf
    assert f"SlurmctldPort={slurm_cluster.ctld_port}" in conf and f"SlurmdPort={slurm_cluster.slurmd_port}" in conf
    assert "/run/munge" not in conf
    name, hw = cl.parse_slurmd_c(subprocess.run(["slurmd", "-C"], capture_output=True, text=True).stdout)
    assert slurm_cluster.nodes[0].name == name and f"CPUs={hw.cpus} " in conf
    assert cl.node_states(slurm_cluster) == {name: "idle"}


@pytest.mark.slurm
@pytest.mark.mpi
@pytest.mark.parametrize("mode,submission", [("srun-pmi2", "batch"), ("mpirun", "batch"),
                                             ("srun-pmi2", "allocation"), ("mpirun", "allocation")])
def test_imb_pingpong_runs_as_a_batch_job_and_brings_back_its_sacct_record(
        slurm_cluster: cl.PrivateCluster, tmp_path: Path, mode: str, submission: str) -> None:
    settings = slurm_cluster.settings(mpi_mode=mode, time_limit="5", submission=submission)
    result = jobs.run_batch_job(LocalExecutor(), settings, _imb_job(f"imb-{mode}"), tmp_path / "run")
    assert result.ok and result.state == "COMPLETED" and result.reason is None, result.stderr_path.read_text()
    acct = result.accounting
    assert acct.job.job_id == result.job_id and acct.job.job_name == f"imb-{mode}"
    assert acct.job.node_list == slurm_cluster.nodes[0].name and acct.job.alloc_cpus == 2
    assert acct.job.exit_code == 0 and acct.job.time_limit == "5" and acct.source == "sacct --completion"
    records = get_parser("imb").parse(result.stdout_path.read_text(), str(result.stdout_path)).records
    assert [r["bytes"] for r in records] == [0, 1, 2, 4, 8, 16]
    pins = parse_pin_map(result.stdout_path.read_text())
    assert len(pins) == 2 and {p.node for p in pins} == {slurm_cluster.nodes[0].name}
    script = result.script_path.read_text()
    assert script == (tmp_path / "run" / "job.sbatch").read_text()
    assert ("srun --mpi=pmi2" in script) == (mode == "srun-pmi2") and "set -euo pipefail" in script
    layout = (tmp_path / "run" / "slurm_env.txt").read_text()
    assert "SLURM_NTASKS=2" in layout and f"SLURM_JOB_ID={result.job_id}" in layout
    record = result.record()
    assert record["job_id"] == result.job_id and record["sacct"]["state"] == "COMPLETED"
    assert json.loads(json.dumps(record))["script"] == "job.sbatch"
    assert not Path(result.job_dir).exists()  # the job folder on the submit host is cleaned up


@pytest.mark.slurm
@pytest.mark.parametrize("submission", ["batch", "allocation"])
def test_a_failing_job_is_a_failed_run_with_the_slurm_state_as_reason(slurm_cluster: cl.PrivateCluster,
                                                                      tmp_path: Path, submission: str) -> None:
    job = BatchJob(name="exit3", program=("bash", "-c", "echo about to fail; exit 3"), launch="none")
    result = jobs.run_batch_job(LocalExecutor(), slurm_cluster.settings(submission=submission), job, tmp_path / "run")
    assert (result.outcome, result.reason, result.accounting.job.exit_code) == ("failed", "FAILED", 3)
    assert result.stdout_path.read_text() == "about to fail\n"


@pytest.mark.slurm
@pytest.mark.parametrize("submission", ["batch", "allocation"])
def test_a_job_killed_by_its_time_limit_is_recorded_as_timeout(slurm_cluster: cl.PrivateCluster,
                                                                tmp_path: Path, submission: str) -> None:
    # A 1-minute limit, then the job moves its own end time to now: slurmctld's periodic time-limit check
    # (not vhpc) kills it, well before the minute is over.
    shorten = 'scontrol update JobId="$SLURM_JOB_ID" EndTime="$(date +%Y-%m-%dT%H:%M:%S)"; sleep 300'
    job = BatchJob(name="overtime", program=("bash", "-c", shorten), launch="none", time_limit="1")
    started = time.monotonic()
    result = jobs.run_batch_job(LocalExecutor(), slurm_cluster.settings(submission=submission), job, tmp_path / "run")
    assert (result.outcome, result.reason, result.state) == ("failed", "TIMEOUT", "TIMEOUT")
    assert result.accounting.job.time_limit == "1" and time.monotonic() - started < 58
    assert _squeue(slurm_cluster, "-j", result.job_id) == ""


@pytest.mark.slurm
@pytest.mark.parametrize("submission", ["batch", "allocation"])
def test_a_job_pending_past_the_limit_is_cancelled_and_reported(slurm_cluster: cl.PrivateCluster,
                                                                 tmp_path: Path, submission: str) -> None:
    # Two nodes from a one-node cluster: Slurm keeps it pending forever (PartitionConfig, then PartitionNodeLimit).
    job = BatchJob(name="too-big", program=("true",), nodes=2, launch="none")
    settings = slurm_cluster.settings(pending_limit_s=2.0)
    with pytest.raises(SlurmJobPending) as err:
        job_id = _submit(settings, job)
        jobs.wait_for_job(LocalExecutor(), settings, job_id)
    assert err.value.pending_reason.startswith("Partition") and "cancelled" in str(err.value)
    assert _squeue(slurm_cluster, "-j", err.value.job_id) == ""
    settings = slurm_cluster.settings(pending_limit_s=2.0, submission=submission)
    result = jobs.run_batch_job(LocalExecutor(), settings, job, tmp_path / "run")
    assert result.outcome == "failed" and result.state == "CANCELLED"
    assert result.reason.startswith("PENDING_LIMIT: ") and "(Slurm's reason: Partition" in result.reason
    assert result.accounting.job.node_list is None and result.stdout_path.read_text() == ""


def _submit(settings: SlurmSettings, job: BatchJob) -> str:
    job_dir = jobs.new_job_dir(LocalExecutor(), settings, job.name)
    return jobs.submit(LocalExecutor(), settings, batch_script(settings, job, job_dir), job_dir)


_INTERRUPTED_CHILD = """
import json, sys
from pathlib import Path
from vhpclib.remote import LocalExecutor
from vhpclib.slurm import jobs
from vhpclib.slurm.script import BatchJob
from vhpclib.slurm.settings import SlurmSettings
settings = SlurmSettings(**json.loads(sys.argv[1]))
job = BatchJob(name=sys.argv[3], program=("bash", "-c", "echo started; sleep 300"), launch="none")
try:
    jobs.run_batch_job(LocalExecutor(), settings, job, Path(sys.argv[2]), on_submit=lambda j: print(j, flush=True))
except KeyboardInterrupt as exc:
    print(type(exc).__name__, flush=True)
    sys.exit(130)
"""


def _running_job(cluster: cl.PrivateCluster, name: str, child: subprocess.Popen, timeout_s: float = 30) -> str:
    """The id of the job called ``name`` once squeue shows it running."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = _squeue(cluster, "-n", name, "-t", "RUNNING", "-o", "%i")
        if found:
            return found.splitlines()[0]
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.2)


@pytest.mark.slurm
@pytest.mark.parametrize("submission", ["batch", "allocation"])
@pytest.mark.parametrize("sig,raised", [(signal.SIGINT, "KeyboardInterrupt"), (signal.SIGTERM, "Interrupted")])
def test_interrupting_a_campaign_cancels_its_running_job(slurm_cluster: cl.PrivateCluster, tmp_path: Path,
                                                          sig: signal.Signals, raised: str, submission: str) -> None:
    settings = slurm_cluster.settings(submission=submission)
    name = f"sleeper-{sig.name}-{submission}"
    child = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_CHILD, settings.model_dump_json(),
                              str(tmp_path / "run"), name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        job_id = _running_job(slurm_cluster, name, child)
        time.sleep(0.5)  # let the job write its first line
        child.send_signal(sig)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    # the job id is announced (once known), then the interruption goes on
    assert child.returncode == 130 and out.split() == [job_id, raised], err
    assert _squeue(slurm_cluster, "-j", job_id) == ""  # nothing left queued or running
    state = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True,
                           env={**os.environ, **slurm_cluster.env}).stdout.strip()
    assert state == "CANCELLED"
    assert (tmp_path / "run" / "stdout.log").read_text() == "started\n"  # what the job wrote is kept


@pytest.mark.slurm
def test_cancel_on_interrupt_cancels_and_reraises(slurm_cluster: cl.PrivateCluster, tmp_path: Path) -> None:
    settings = slurm_cluster.settings()
    job = BatchJob(name="sleeper", program=("sleep", "300"), launch="none")
    with pytest.raises(Interrupted):
        with jobs.CancelOnInterrupt(LocalExecutor(), settings) as guard:
            guard.job_id = _submit(settings, job)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
    assert guard.cancelled is not None and _squeue(slurm_cluster, "-j", guard.cancelled) == ""
    assert signal.getsignal(signal.SIGTERM) != guard._on_signal  # handlers restored
    assert signal.getsignal(signal.SIGINT) != guard._on_signal


@pytest.mark.slurm
@pytest.mark.parametrize("submission,words", [
    ("batch", "sbatch: error: Batch job submission failed: Invalid partition name specified"),
    ("allocation", "salloc: error: Job submit/allocate failed: Invalid partition name specified")])
def test_unknown_partition_is_refused_by_sbatch_in_one_line_naming_the_setting(
        slurm_cluster: cl.PrivateCluster, tmp_path: Path, submission: str, words: str) -> None:
    settings = slurm_cluster.settings(partition="nosuchpart", submission=submission)
    with pytest.raises(SlurmSettingError) as err:
        jobs.run_batch_job(LocalExecutor(), settings, BatchJob(name="x", program=("true",), launch="none"),
                           tmp_path / "run")
    assert err.value.key == "slurm.partition" and err.value.exit_code == 2
    assert str(err.value) == f"slurm.partition: Slurm refused partition 'nosuchpart': {words}"


@pytest.mark.slurm
@pytest.mark.parametrize("submission", ["batch", "allocation"])
def test_no_slurmctld_listening_is_one_line_and_exit_2(slurm_cluster: cl.PrivateCluster, tmp_path: Path,
                                                       submission: str) -> None:
    dead = tmp_path / "dead.conf"
    closed = cl.free_port("0.0.0.0")
    # MessageTimeout 2 s: sbatch and salloc retry the closed port once a second that long (Slurm's 10 s default)
    dead.write_text("".join(f"SlurmctldPort={closed}\n" if line.startswith("SlurmctldPort=") else line
                            for line in slurm_cluster.conf.read_text().splitlines(keepends=True))
                    + "MessageTimeout=2\n")
    settings = slurm_cluster.settings(slurm_conf=str(dead), submission=submission)
    with pytest.raises(SlurmUnreachable) as err:
        jobs.run_batch_job(LocalExecutor(), settings, BatchJob(name="x", program=("true",), launch="none"),
                           tmp_path / "run")
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    assert str(err.value).startswith(f"slurm.slurm_conf: no slurmctld answered with SLURM_CONF={dead}: ")
    assert "Unable to contact slurm controller" in str(err.value)


@pytest.mark.slurm
def test_fingerprint_through_one_srun_step_matches_the_direct_fingerprint(slurm_cluster: cl.PrivateCluster,
                                                                         tmp_path: Path) -> None:
    facts, job = fingerprint_nodes(LocalExecutor(), slurm_cluster.settings(), 1, tmp_path / "run")
    node = slurm_cluster.nodes[0].name
    assert list(facts) == [node] and job.ok
    direct = collect_fingerprint(LocalExecutor())
    via = facts[node]
    for key in ("hostname", "kernel", "os", "cpu", "topology", "virtualization", "rdma", "clocksource"):
        assert via[key] == direct[key], key
    assert via["host"] == node and via["slurm_job_id"] == job.job_id


@pytest.mark.slurm
def test_stop_cluster_ends_every_daemon_by_pid_and_leaves_another_munged_alone(tmp_path: Path) -> None:
    need_slurm()
    other = cl.mg.start_munged(cl.mg.munge_folder(tmp_path / "someone-else"))  # stands in for a system munged
    try:
        cluster = cl.start_cluster(tmp_path / "c")
        pids = dict(cluster.pids)
        assert cluster.munge_folder != other.folder and other.pid not in pids.values()
        stopped = cl.stop_cluster(cluster.folder)
        assert sorted(s.split()[0] for s in stopped) == sorted(["munged", "slurmctld", *[
            r for r in pids if r.startswith("slurmd:")]])
        for pid in pids.values():
            assert not cl.mg.alive(pid)
        assert not (cluster.munge_folder / "munge.key").exists()
        assert cl.stop_cluster(cluster.folder) == []  # idempotent
        assert cl.mg.alive(other.pid)
        check = subprocess.run(f"munge -n -S {other.socket} | unmunge -S {other.socket}", shell=True,
                               capture_output=True, text=True)
        assert "STATUS:          Success (0)" in check.stdout
    finally:
        cl.mg.stop_munged(other)
        cl.mg.remove_folder(other.folder)


def test_the_slurm_example_inventory_loads_with_both_partitions() -> None:
    from vhpclib import paths
    from vhpclib.config import load_inventory

    inv = load_inventory(paths.INVENTORIES / "slurm-example.yml")
    assert {n: (e.launcher, e.slurm.partition) for n, e in inv.environments.items()} == {
        "bmm": ("slurm", "bare"), "kvm": ("slurm", "vms")}
    hosts = [inv.environment("bmm").slurm.submit_host.address] + [h.address for e in inv.environments.values()
                                                                   for h in e.hosts]
    assert all(h.endswith(".example") for h in hosts)


def test_a_job_folder_that_cannot_be_created_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = SlurmSettings(job_dir=str(blocker / "jobs"))
    with pytest.raises(SlurmSettingError) as err:
        jobs.new_job_dir(LocalExecutor(), settings, "x")
    assert err.value.key == "slurm.job_dir" and "\n" not in str(err.value) and "Not a directory" in str(err.value)


@pytest.mark.slurm
def test_a_cluster_that_fails_to_start_says_why_and_leaves_nothing_running(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    need_slurm()
    real = cl.slurm_conf_text
    monkeypatch.setattr(cl, "slurm_conf_text", lambda **kw: real(**kw) + "NoSuchParameter=1\n")
    with pytest.raises(cl.SlurmClusterError) as err:
        cl.start_cluster(tmp_path / "broken", timeout_s=20)
    assert "slurmctld" in str(err.value) and "NoSuchParameter" in str(err.value)
    stopped = json.loads((tmp_path / "broken" / "cluster.stopped.json").read_text())
    assert stopped["pids"] and not any(cl.mg.alive(pid) for pid in stopped["pids"].values())
    assert not (Path(stopped["munge_folder"]) / "munge.key").exists()


# ------------------------------------------------------------------ the launcher's pure parts

from vhpclib.mpi import LaunchSpec  # noqa: E402
from vhpclib.slurm.placement import binding_problems, parse_binding, srun_placement  # noqa: E402
from vhpclib.slurm.sacct import expand_hostlist  # noqa: E402
from vhpclib.slurm.session import parse_session, session_program  # noqa: E402


def test_placements_become_allocation_counts_and_srun_binding() -> None:
    intra = srun_placement(LaunchSpec(nprocs=2, cpus=(0, 1)))
    assert (intra.nodes, intra.ntasks, intra.ntasks_per_node, intra.exclusive) == (1, 2, 2, True)
    assert intra.srun_args == ("--cpu-bind=verbose,map_cpu:0,1",) and intra.cpu_map == ((0, 1),)
    same = srun_placement(LaunchSpec(nprocs=2, hosts=("a", "b"), host_cpus=(("a", (3,)), ("b", (3,)))))
    assert same.srun_args == ("--cpu-bind=verbose,map_cpu:3",) and same.program_prefix == ()
    split = srun_placement(LaunchSpec(nprocs=2, hosts=("a", "b"), host_cpus=(("a", (0,)), ("b", (1,)))))
    assert split.srun_args == ("--cpu-bind=verbose,none",) and split.program_prefix[:2] == ("bash", "-c")
    assert split.program_prefix[-1] == "vhpc-bind" and split.cpu_map == ((0,), (1,))
    threads = srun_placement(LaunchSpec(nprocs=4, hosts=("a", "b"), ppn=2, threads_per_proc=4))
    assert (threads.nodes, threads.ntasks_per_node, threads.cpus_per_task, threads.exclusive) == (2, 2, 4, False)
    assert threads.srun_args == ("--cpus-per-task=4", "--cpu-bind=verbose,cores")
    plain = srun_placement(LaunchSpec(nprocs=3))
    assert (plain.nodes, plain.ntasks, plain.srun_args) == (1, 3, ("--cpu-bind=verbose",))
    with pytest.raises(SlurmSettingError, match="same number of ranks"):
        srun_placement(LaunchSpec(nprocs=3, hosts=("a", "b"), host_cpus=(("a", (0, 1)), ("b", (1,)))))


def test_per_node_cpu_wrapper_picks_each_tasks_cpu_and_refuses_a_task_it_has_none_for(tmp_path: Path) -> None:
    split = srun_placement(LaunchSpec(nprocs=2, hosts=("a", "b"), host_cpus=(("a", (0,)), ("b", (1,)))))
    fake = tmp_path / "taskset"  # records what it was asked instead of pinning
    fake.write_text("#!/bin/sh\necho \"taskset $*\"\n")
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "SLURMD_NODENAME": "b", "SLURM_PROCID": "1"}
    done = subprocess.run([*split.program_prefix, "prog", "x y"], capture_output=True, text=True,
                          env={**env, "SLURM_NODEID": "1", "SLURM_LOCALID": "0"})
    assert done.stdout == "taskset -c 1 prog x y\n" and "vhpc-bind - b, node 1, task 1 0" in done.stderr
    refused = subprocess.run([*split.program_prefix, "prog"], capture_output=True, text=True,
                             env={**env, "SLURM_NODEID": "2", "SLURM_LOCALID": "0"})
    assert refused.returncode == 1 and "no CPU for node 2 task 0" in refused.stderr


def test_srun_cpu_bind_reports_are_read_back_and_checked_against_the_placement() -> None:
    mapped = parse_binding((FIXTURES / "srun_cpu_bind_map.stderr").read_text())
    assert [(b.task, b.node, b.cpus, b.source) for b in mapped] == [(0, "vm", (1,), "srun"), (1, "vm", (0,), "srun")]
    assert binding_problems(mapped, srun_placement(LaunchSpec(nprocs=2, cpus=(1, 0))), ["vm"]) == []
    wrong = binding_problems(mapped, srun_placement(LaunchSpec(nprocs=2, cpus=(0, 1))), ["vm"])
    assert wrong == ["task 0 on vm bound to cpus [1], expected [0]", "task 1 on vm bound to cpus [0], expected [1]"]
    wrapped = parse_binding((FIXTURES / "srun_cpu_bind_wrapper.stderr").read_text())
    assert [(b.node, b.cpus, b.source) for b in wrapped] == [("sgx-node1", (0,), "vhpc-bind"),
                                                              ("sgx-node2", (1,), "vhpc-bind")]
    split = srun_placement(LaunchSpec(nprocs=2, hosts=("a", "b"), host_cpus=(("a", (0,)), ("b", (1,)))))
    assert binding_problems(wrapped, split, ["sgx-node1", "sgx-node2"]) == []
    one_node = srun_placement(LaunchSpec(nprocs=2, cpus=(0, 1)))
    assert "tasks ran on 2 node(s) (sgx-node1, sgx-node2), expected 1" in binding_problems(
        wrapped, one_node, ["sgx-node1", "sgx-node2"])
    masks = parse_binding((FIXTURES / "srun_cpu_bind_mask_2nodes.stderr").read_text())
    assert [b.cpus for b in masks] == [(0,), (1,), (0,), (1,)]
    assert binding_problems([], one_node, ["vm"]) == [
        "srun printed no cpu-bind line (task/affinity missing?): binding not verified by Slurm"]


@pytest.mark.parametrize("text,names", [
    ("vm", ["vm"]), ("sgx-node[1-2]", ["sgx-node1", "sgx-node2"]), ("cn[001-003,010]", ["cn001", "cn002", "cn003",
                                                                                          "cn010"]),
    ("a[1-2],login", ["a1", "a2", "login"]), ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("(null)", []), (None, [])])
def test_slurm_node_lists_expand_in_order(text: str | None, names: list[str]) -> None:
    assert expand_hostlist(text) == names


@pytest.mark.parametrize("text", ["n[1-", "n[a-b]", "n]1["])
def test_malformed_node_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        expand_hostlist(text)


@pytest.mark.parametrize("submission", ["batch", "allocation"])
def test_the_submit_host_program_is_valid_bash_with_every_value_quoted(submission: str) -> None:
    settings = SlurmSettings(submission=submission, pending_limit_s=30, poll_interval_s=2)
    script = batch_script(settings, BatchJob(name="j", program=("true",)), "/jobs/it's here")
    program = session_program(settings, script, "/jobs/it's here", salloc=["--job-name=j", "--partition=a b"],
                              files=("result with blank.json",), timeout_s=60)
    assert subprocess.run(["bash", "-n"], input=program, text=True).returncode == 0
    assert "d='/jobs/it'\"'\"'s here'" in program and "limit_ms=30000; timeout_ms=60000; poll_max_ms=2000" in program
    assert ("'--partition=a b'" in program) == (submission == "allocation")
    assert "'result with blank.json'" in program


def test_submit_host_output_is_read_even_when_cut_short() -> None:
    text = ("noise\n@@vhpc job 42\n@@vhpc running 310\n@@vhpc cancel pending-limit\n@@vhpc ended CANCELLED 900\n"
            "@@vhpc sacct 1 0\n42|j|p|||CANCELLED|0:0||00:00:00|0|||||0|0||1|\n@@vhpc end-sacct\n"
            "@@vhpc file stdout.log\naGVsbG8K\n@@vhpc file blockss.json\n!!notbase64\n")
    out = parse_session(text)
    assert (out.job_id, out.running_ms, out.cancelled, out.ended, out.done) == ("42", 310, "pending-limit",
                                                                                   "CANCELLED", False)
    assert out.sacct == (True, 0, "42|j|p|||CANCELLED|0:0||00:00:00|0|||||0|0||1|")
    assert out.files == {"stdout.log": b"hello\n"} and out.damaged == ["blockss.json"]
    refused = parse_session("@@vhpc refused 1\nsbatch: error: Invalid partition name specified\n@@vhpc end-refused\n")
    assert refused.refused == (1, "sbatch: error: Invalid partition name specified") and refused.job_id is None
