"""Stages whose launch host is reached over SSH (real sshd): no shared filesystem assumed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vhpclib import paths
from vhpclib.config import load_inventory
from vhpclib.workloads.npb import NpbSpec
from vhpclib.exceptions import ChecksumMismatch
from vhpclib.npb import build_env, build_npb, distribute, verify_deployment
from vhpclib.remote import LocalExecutor, SshExecutor
from vhpclib.store import RawStore

from npb_helpers import MPIF90

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.ssh, pytest.mark.mpi]


def vhpc(args, data, timeout=300):
    env = {**os.environ, "VHPC_DATA": str(data / "data"), "VHPC_FIGURES": str(data / "figures")}
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def ssh_inventory(sshd_hosts, tmp_path, addresses, **kw):
    data = sshd_hosts.inventory_data(addresses, **kw)
    data["environments"]["ssh"]["workdir"] = str(tmp_path / "remote-scratch")  # the "remote" side's disk
    import yaml

    path = tmp_path / "ssh.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_microbench_stage_runs_on_a_launch_host_reached_over_ssh(sshd_hosts, tmp_path):
    inv = ssh_inventory(sshd_hosts, tmp_path, ["127.0.0.3"])
    proc = vhpc(["run", "microbench", "-i", str(inv), "-e", "ssh", "-c", "viassh", "--msglog", "0:4",
                 "--iterations", "20", "--repetitions", "1", "--no-progress", "--no-figures"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ssh: microbench: 1 run(s) measured" in proc.stdout
    run = tmp_path / "data/raw/viassh/ssh/microbench/pingpong-intra-socket-m0-4-i20-r01"
    record = json.loads((run / "run.json").read_text())
    assert record["execution"]["launch_host"] == "127.0.0.3" and record["pinning"]["verification"] == "verified"
    assert "# Benchmarking PingPong" in (run / "stdout.log").read_text()  # brought back over SFTP
    assert record["host_facts"]["127.0.0.3"]["fingerprint"].startswith("viassh/ssh/fingerprint/")
    assert not list((tmp_path / "remote-scratch").glob("*")), "remote scratch folders are removed"
    seen = record["execution"]["interference"]  # read on the launch host by the job script, around the job
    assert seen["host"] == "127.0.0.3" and len(seen["load_before"]) == 3 and seen["job_cpu_s"] > 0
    assert seen["other_cpu_s"] is not None and seen["busy_s"] >= seen["job_cpu_s"] - 0.05


def test_single_node_stage_runs_blockss_over_ssh_and_brings_its_json_back(sshd_hosts, tmp_path):
    inv = ssh_inventory(sshd_hosts, tmp_path, ["127.0.0.4"])
    proc = vhpc(["run", "single-node", "-i", str(inv), "-e", "ssh", "-c", "viassh", "--preset", "tiny",
                 "--repetitions", "1", "--no-progress", "--no-figures"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "data/raw/viassh/ssh/single-node/blockss-tiny-p2-t1-r01"
    result = json.loads((run / "blockss.json").read_text())
    assert result["nprocs"] == 2 and result["eigenvalues"]


def test_inventory_check_cli_prints_a_row_per_host_and_names_the_refusing_one(sshd_hosts, tmp_path):
    good = ssh_inventory(sshd_hosts, tmp_path, ["127.0.0.5", "127.0.0.6"])
    proc = vhpc(["inventory", "check", str(good), "-c", "chk"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "127.0.0.5" in proc.stdout and "127.0.0.6" in proc.stdout
    assert len(list((tmp_path / "data/raw/chk/ssh/fingerprint").glob("*.json"))) == 2

    refusing = ssh_inventory(sshd_hosts, tmp_path, ["127.0.0.5", "127.0.0.9"])  # nothing listens on .9
    proc = vhpc(["inventory", "check", str(refusing), "-c", "chk"], tmp_path)
    assert proc.returncode == 1
    assert "127.0.0.9" in proc.stderr and "refused" in proc.stderr


def test_npb_binaries_built_once_are_copied_over_ssh_and_verified(sshd_hosts, tmp_path):
    spec = NpbSpec(source=paths.APPS / "mzdemo", version="3.3", fc=str(MPIF90))
    env = load_inventory(ssh_inventory(sshd_hosts, tmp_path, ["127.0.0.7"])).environment("ssh")
    build = build_npb(LocalExecutor("buildhost"), spec, benchmarks=["mz-demo"], klass="S", nprocs=[2],
                      campaign="c1", environment="bare", store=RawStore(tmp_path / "raw"), build_id="b1",
                      workdir=str(tmp_path / "buildwork"), env=build_env(env), timeout=300)
    host = SshExecutor(env.hosts[0], policy="strict", known_hosts=sshd_hosts.known_hosts)
    [deployment] = distribute(build, [host], workdir=str(tmp_path / "remote-npb"))
    verify_deployment(host, deployment)
    host.run(f"printf x >> {deployment.path}")  # someone changed the binary on the host
    with pytest.raises(ChecksumMismatch, match="127.0.0.7"):
        verify_deployment(host, deployment)
    host.close()
