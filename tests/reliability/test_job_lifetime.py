"""Nothing outlives a job: kill -9, SIGTERM, SIGHUP, SIGINT and timeouts, locally and on an SSH launch host.

Every case runs the real CLI and real Intel MPI ranks, then checks with psutil
that no process carrying the job's tag is left on this machine (the loopback
"remote" hosts are this machine too).
"""

from __future__ import annotations

import json
import signal

import pytest
import yaml

from rl_helpers import (LONG_PINGPONG, SHORT_PINGPONG, assert_one_error_line, job_pids, partials, ranks,
                        start_vhpc, vhpc, wait_for)

pytestmark = pytest.mark.mpi


def running_ranks(data):
    return ranks(job_pids(data=data))


def tagged_ranks_left(data):
    """Ranks of jobs whose tag appears in any record or marker under ``data``."""
    tags = set()
    for path in (data / "raw").rglob("run.json"):
        tags.add((json.loads(path.read_text()).get("execution") or {}).get("job_tag"))
    for path in (data / "raw").rglob(".vhpc-job.json"):
        tags.add(json.loads(path.read_text()).get("tag"))
    return [pid for tag in tags - {None} for pid in ranks(job_pids(tag=tag))]


def test_a_vhpc_killed_with_sigkill_leaves_ranks_the_next_run_kills_before_measuring(tmp_path):
    data = tmp_path / "d"
    proc = start_vhpc(["run", "microbench", "-c", "k9", *LONG_PINGPONG], data)
    try:
        assert len(wait_for(lambda: running_ranks(data), 60)) == 2, "the job never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert len(running_ranks(data)) == 2  # nothing can run after SIGKILL: the ranks are orphans now
        [partial] = partials(data)
        assert json.loads((partial / ".vhpc-job.json").read_text())["sid"] > 0
        resumed = vhpc(["run", "microbench", "-c", "k9", *SHORT_PINGPONG], data)
        assert resumed.returncode == 0, resumed.stderr
        assert "killed 5 process(es) its job left running" in resumed.stderr or \
            "process(es) its job left running" in resumed.stderr
        assert running_ranks(data) == [] and partials(data) == []
        assert "1 run(s) measured" in resumed.stdout
    finally:
        proc.kill()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_to_vhpc_kills_the_whole_job_and_exits_with_one_line(tmp_path, sig, code):
    data = tmp_path / "d"
    # start_new_session: SIGINT must not be ignored as it is for background jobs of a shell
    proc = start_vhpc(["run", "microbench", "-c", "sig", *LONG_PINGPONG], data)
    try:
        assert len(wait_for(lambda: running_ranks(data), 60)) == 2
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    lines = [line for line in err.splitlines() if line.startswith("vhpc: error: ")]
    assert proc.returncode == code and len(lines) == 1 and "Traceback" not in err, err
    assert "interrupted" in lines[0]
    assert running_ranks(data) == [] and partials(data) == []


def test_a_run_past_its_timeout_is_killed_and_recorded_as_failed_with_its_times(tmp_path):
    data = tmp_path / "d"
    proc = vhpc(["run", "microbench", "-c", "to", "--timeout", "3", *LONG_PINGPONG], data)
    assert proc.returncode == 1, proc.stderr
    [folder] = list((data / "raw/to/local/microbench").glob("*.failed-*"))
    record = json.loads((folder / "run.json").read_text())
    execution = record["execution"]
    assert record["status"] == "failed" and record["reasons"] == [
        "timed out after 3 s (the job was killed: exit status 124)"]
    assert execution["killed"] and execution["started_utc"] and execution["ended_utc"]
    assert 3 <= execution["duration_s"] < 20 and execution["timeout_s"] == 3
    assert tagged_ranks_left(data) == [] and running_ranks(data) == []


@pytest.fixture
def ssh_inventory(sshd_hosts, tmp_path):
    data = sshd_hosts.inventory_data(sshd_hosts.addresses[2:3])
    path = tmp_path / "ssh.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.ssh
def test_a_timeout_on_an_ssh_launch_host_kills_the_remote_ranks_and_removes_the_remote_folder(ssh_inventory,
                                                                                                 tmp_path):
    data = tmp_path / "d"
    proc = vhpc(["run", "microbench", "-i", str(ssh_inventory), "-e", "ssh", "-c", "rto", "--timeout", "3",
                 *LONG_PINGPONG], data)
    assert proc.returncode == 1, proc.stderr
    [folder] = list((data / "raw/rto/ssh/microbench").glob("*.failed-*"))
    record = json.loads((folder / "run.json").read_text())
    assert record["execution"]["killed"] and record["execution"]["remote_dir"]
    assert tagged_ranks_left(data) == []
    from pathlib import Path

    assert not Path(record["execution"]["remote_dir"]).exists()


@pytest.mark.ssh
def test_sigkill_of_vhpc_ends_the_remote_job_with_its_connection_and_resume_cleans_up(ssh_inventory, tmp_path):
    data = tmp_path / "d"
    args = ["run", "microbench", "-i", str(ssh_inventory), "-e", "ssh", "-c", "rk9"]
    proc = start_vhpc([*args, *LONG_PINGPONG], data)
    try:
        marker = wait_for(lambda: [p for p in partials(data) if (p / ".vhpc-job.json").exists() and
                                   json.loads((p / ".vhpc-job.json").read_text()).get("sid")], 60)
        assert marker, "the remote job never started"
        tag = json.loads((marker[0] / ".vhpc-job.json").read_text())["tag"]
        assert len(wait_for(lambda: ranks(job_pids(tag=tag)), 30)) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        # the job script on the host notices the closed connection and kills its session
        assert wait_for(lambda: not ranks(job_pids(tag=tag)), 20)
    finally:
        proc.kill()
    resumed = vhpc([*args, *SHORT_PINGPONG], data)
    assert resumed.returncode == 0, resumed.stderr
    assert "a stopped vhpc did not finish" in resumed.stderr and partials(data) == []


def test_bad_option_values_are_refused_before_anything_runs(tmp_path):
    for value in ("inf", "nan", "0", "-1"):
        proc = vhpc(["run", "microbench", "-c", "x", "--timeout", value], tmp_path / "d")
        assert_one_error_line(proc, 2, "timeout")
    assert not (tmp_path / "d").exists()


@pytest.mark.ssh
def test_sigterm_during_a_remote_job_kills_it_and_removes_its_folder_on_the_host(ssh_inventory, tmp_path):
    data = tmp_path / "d"
    proc = start_vhpc(["run", "microbench", "-i", str(ssh_inventory), "-e", "ssh", "-c", "rterm", *LONG_PINGPONG],
                      data)
    try:
        marker = wait_for(lambda: [p for p in partials(data) if (p / ".vhpc-job.json").exists() and
                                   json.loads((p / ".vhpc-job.json").read_text()).get("sid")], 60)
        assert marker, "the remote job never started"
        job = json.loads((marker[0] / ".vhpc-job.json").read_text())
        assert len(wait_for(lambda: ranks(job_pids(tag=job["tag"])), 30)) == 2
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143 and "interrupted by SIGTERM" in err and "Traceback" not in err, err
    assert ranks(job_pids(tag=job["tag"])) == [] and partials(data) == []
    from pathlib import Path

    assert not Path(job["remote_dir"]).exists()
