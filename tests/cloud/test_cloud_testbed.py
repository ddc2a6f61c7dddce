"""``vhpc cloud up|status|down`` end to end against moto, each instance reached at a testbed node.

moto creates, tags and terminates the instances; SSH (strict host keys) and MPI go to a 2-node
network-namespace testbed (198.18.0.0/15, a real sshd per node), never to an address moto invents.
The last tests stop node 2's sshd: the second instance then never answers, and whatever ``up`` created
must be gone afterwards (an error, --keep then down, Ctrl-C, SIGTERM). Root; run under the system lock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from vhpclib import paths
from vhpclib import testbed as tb
from vhpclib.config import default_mpi_prefix, load_inventory
from vhpclib.sshd import sshd_available

pytestmark = [pytest.mark.root, pytest.mark.ssh]
TESTBED = os.environ.get("VHPC_TEST_CLOUD_TESTBED", "pycl")


def _need_root() -> None:
    reason = None if os.geteuid() == 0 else "needs root (network namespaces for the testbed)"
    reason = reason or sshd_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"cloud testbed tests must run in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, moto_server) -> Iterator[dict]:
    """A 2-node testbed, cloud state and inventories in tmp, and the environment a CLI subprocess needs."""
    _need_root()
    base = tmp_path_factory.mktemp("cloudtb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(moto_server.env(), VHPC_TESTBEDS=str(base / "testbeds"), VHPC_CLOUD=str(base / "cloud"),
               AWS_CONFIG_FILE=str(base / "none"), AWS_SHARED_CREDENTIALS_FILE=str(base / "none"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paths, "TESTBEDS", base / "testbeds")
        mp.setattr(paths, "INVENTORIES", base / "inventories")
        mp.setattr(paths, "CLOUD", base / "cloud")
        for name, value in env.items():
            if name.startswith(("AWS_", "VHPC_CLOUD")):
                mp.setenv(name, value)
        tb.down(TESTBED)
        info = tb.up(2, name=TESTBED)
        try:
            yield {"base": base, "env": env, "testbed": info, "moto": moto_server}
        finally:
            tb.down(TESTBED)


def inventory(world: dict, name: str, **cloud) -> Path:
    spec = {"region": "us-east-1", "instance_type": "c5n.18xlarge", "count": 2,
            "image": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
            "user": "ec2-user", "key_pair": "vhpc-test", "key_file": "/nonexistent/ec2.pem",
            "placement_group": "none", "ssh_from": "127.0.0.1/32", "max_instances": 2, "max_hours": 1,
            "ssh_timeout_s": 60, "emulator": {"testbed": TESTBED}, **cloud}
    data = {"name": name, "environments": {"ec2": {
        "label": "EC2", "vmm": "ec2", "description": "moto-provisioned, testbed-reached",
        "mpi": {"flavour": "intel", "prefix": str(default_mpi_prefix())}, "cloud": spec}}}
    path = world["base"] / f"{name}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def vhpc(world: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], env=world["env"], capture_output=True,
                          text=True, timeout=timeout)


def nothing_left(world: dict, name: str) -> None:
    assert world["moto"].tagged(name) == {"instances": [], "security_groups": []}
    assert not (world["base"] / "cloud" / f"{name}-ec2").exists()


def test_up_tags_guards_reaches_every_node_then_status_and_down_leave_nothing(world: dict) -> None:
    inv = inventory(world, "cl-e2e")
    up = vhpc(world, "cloud", "up", "-i", str(inv), "-e", "ec2", "--campaign", "c1", "--yes")
    assert up.returncode == 0, up.stderr
    assert "2 x c5n.18xlarge in us-east-1: about $7.78/h" in up.stdout
    nodes = world["testbed"].addresses[:2]
    for address in nodes:
        assert f"@{address}:" in up.stdout and "host key checked" in up.stdout
    ec2 = world["moto"].ec2()
    (reservation,) = ec2.describe_instances(Filters=[{"Name": "tag:vhpc:inventory", "Values": ["cl-e2e"]}])[
        "Reservations"]
    instances = reservation["Instances"]
    assert len(instances) == 2 and all(i["State"]["Name"] == "running" for i in instances)
    for i in instances:
        tags = {t["Key"]: t["Value"] for t in i["Tags"]}
        assert tags["vhpc:campaign"] == "c1" and tags["vhpc:environment"] == "ec2" and tags["vhpc:managed"] == "true"
        behaviour = ec2.describe_instance_attribute(InstanceId=i["InstanceId"],
                                                    Attribute="instanceInitiatedShutdownBehavior")
        assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
        data = ec2.describe_instance_attribute(InstanceId=i["InstanceId"], Attribute="userData")["UserData"]["Value"]
        import base64

        assert "shutdown -h +60" in base64.b64decode(data).decode()
        assert i["PublicIpAddress"] not in up.stdout  # moto's invented address is never used
    (group,) = ec2.describe_security_groups(Filters=[{"Name": "tag:vhpc:inventory", "Values": ["cl-e2e"]}])[
        "SecurityGroups"]
    rules = group["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules if r.get("IpRanges")] == [(22, 22)]
    assert [x["CidrIp"] for r in rules for x in r.get("IpRanges", [])] == ["127.0.0.1/32"]
    assert [p["GroupId"] for r in rules for p in r.get("UserIdGroupPairs", [])] == [group["GroupId"]]

    # the guard counts what runs: a second up of the same environment is not a second cluster
    again = vhpc(world, "cloud", "up", "-i", str(inv), "-e", "ec2", "--yes")
    assert again.returncode == 0 and "already up" in again.stdout

    # the stage context finds the hosts through the provider: strict SSH to each testbed node
    from vhpclib.providers import resolve_environment
    from vhpclib.remote import SshExecutor

    env = resolve_environment(load_inventory(inv), "ec2")
    assert [h.address for h in env.hosts] == nodes and env.vmm == "ec2-moto" and env.host_key_policy == "strict"
    for host, node in zip(env.hosts, world["testbed"].nodes):
        with SshExecutor(host, policy="strict", known_hosts=env.known_hosts, connect_timeout=5) as ex:
            assert ex.run("hostname").stdout.strip() == node.hostname

    status = vhpc(world, "cloud", "status", "-i", str(inv))
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("cl-e2e/ec2 campaign=c1 c5n.18xlarge running age=") == 2
    assert "2 instance(s), about $" in status.stdout

    down = vhpc(world, "cloud", "down", "-i", str(inv), "-e", "ec2")
    assert down.returncode == 0, down.stderr
    assert "2 instance(s) terminated" in down.stdout and "deleted security group" in down.stdout
    nothing_left(world, "cl-e2e")
    assert "nothing running" in vhpc(world, "cloud", "status", "-i", str(inv)).stdout


@pytest.mark.mpi
def test_microbench_runs_across_two_instances_and_records_what_moto_said(world: dict, tmp_path: Path) -> None:
    from vhpclib.cloud.provision import up as cloud_up
    from vhpclib.cloud.teardown import down
    from vhpclib.params import MicrobenchParams
    from vhpclib.providers import ec2
    from vhpclib.stages.context import StageContext
    from vhpclib.stages.loop import run_stage
    from vhpclib.store import RawStore

    inv = load_inventory(inventory(world, "cl-mpi"))
    target = ec2.target(inv, "ec2", "cmpi")
    cloud_up(target, yes=True, log=lambda m: None)
    try:
        with StageContext.open(inv, "ec2", "cmpi", store=RawStore(tmp_path / "raw")) as ctx:
            result = run_stage(ctx, "microbench", MicrobenchParams(placements=("inter-node",), msglog=(0, 2),
                                                                   iterations=10, repetitions=1), progress=False)
    finally:
        down(target, lambda m: None)
    assert result.failures == [] and result.invalid == []
    (run,) = result.runs
    assert run.record.execution.hosts == world["testbed"].addresses[:2]
    spec = run.record.environment_spec
    assert spec.vmm == "ec2-moto" and spec.provider == "cloud"
    cloud = spec.facts["cloud"]
    assert cloud["emulated"] is True and [i["type"] for i in cloud["instances"]] == ["c5n.18xlarge"] * 2
    assert all(i["hypervisor"] == "xen" for i in cloud["instances"])
    nothing_left(world, "cl-mpi")


@pytest.mark.mpi
def test_notebook_04_compares_the_moto_provisioned_cluster_with_the_baseline(world: dict, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Single-node and scaling runs (blockss tiny) on the testbed (baseline) and on the moto-created cluster
    reached at the same nodes; notebook 04 through papermill shows the cloud environment beside it."""
    import nbformat
    import papermill

    from vhpclib.cloud.provision import up as cloud_up
    from vhpclib.cloud.teardown import down
    from vhpclib.params import AppParams
    from vhpclib.providers import ec2
    from vhpclib.stages.context import StageContext
    from vhpclib.stages.loop import run_stage
    from vhpclib.store import RawStore

    path = inventory(world, "cl-nb")
    data = yaml.safe_load(path.read_text())
    baseline = yaml.safe_load(Path(world["testbed"].inventory).read_text())["environments"]["testbed"]
    data["environments"] = {"testbed": {**baseline, "baseline": True}, **data["environments"]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    inv = load_inventory(path)
    monkeypatch.setenv("VHPC_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("VHPC_FIGURES", str(tmp_path / "figures"))
    target = ec2.target(inv, "ec2", "nbcloud")
    cloud_up(target, yes=True, log=lambda m: None)
    try:
        for env in ("testbed", "ec2"):
            with StageContext.open(inv, env, "nbcloud", store=RawStore(tmp_path / "data" / "raw")) as ctx:
                for stage in ("single-node", "scaling"):
                    result = run_stage(ctx, stage, AppParams(workloads=("blockss",), blockss_preset="tiny",
                                                             repetitions=1), progress=False)
                    assert result.failures == [] and result.runs, (env, stage, result.failures)
    finally:
        down(target, lambda m: None)
    nothing_left(world, "cl-nb")
    tables = subprocess.run([sys.executable, "-m", "vhpclib.cli", "tables", "--campaign", "nbcloud"],
                            env={**world["env"], "VHPC_DATA": str(tmp_path / "data")}, capture_output=True, text=True)
    assert tables.returncode == 0, tables.stderr
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "04.ipynb"
    papermill.execute_notebook(str(root / "notebooks/04-cloud-comparison.ipynb"), str(out),
                               parameters={"campaign": "nbcloud"}, kernel_name="python3", progress_bar=False,
                               cwd=str(root / "notebooks"))
    html = "\n".join(str(o.get("data", {}).get("text/html", "")) for c in nbformat.read(out, as_version=4).cells
                     for o in c.get("outputs", []))
    assert "cloud environment measured: ec2" in html
    assert "Single node: time and overhead versus the baseline" in html and "Scaling: parallel efficiency" in html
    # the cluster's rows beside the baseline's, labelled as what they are: moto-invented instances
    assert html.count("<td>EC2 (emulation: ec2-moto)</td>") == 3 and "<td>testbed</td>" in html, html


def test_a_failed_stage_under_paper_figures_brings_the_cluster_down(world: dict, monkeypatch) -> None:
    """``paper-figures --rerun`` wraps the measuring in ``environments_up``: up with VHPC_CLOUD_YES=1, down after."""
    from vhpclib.exceptions import CloudInputError
    from vhpclib.providers import environments_up, resolve_environment

    inv = load_inventory(inventory(world, "cl-pf"))
    monkeypatch.delenv("VHPC_CLOUD_YES", raising=False)
    with pytest.raises(CloudInputError, match="VHPC_CLOUD_YES=1"):
        with environments_up(inv, ["ec2"], log=lambda m: None):
            pass
    nothing_left(world, "cl-pf")
    monkeypatch.setenv("VHPC_CLOUD_YES", "1")
    with pytest.raises(RuntimeError, match="the stage failed"):
        with environments_up(inv, ["ec2"], log=lambda m: None) as started:
            assert started == ["ec2"] and len(resolve_environment(inv, "ec2").hosts) == 2
            raise RuntimeError("the stage failed")
    nothing_left(world, "cl-pf")


def test_a_cluster_that_ended_behind_our_back_is_one_line_not_a_stale_host_list(world: dict) -> None:
    from vhpclib.cloud.provision import up as cloud_up
    from vhpclib.cloud.teardown import down
    from vhpclib.exceptions import CloudInputError
    from vhpclib.providers import PROVIDERS, ec2

    inv = load_inventory(inventory(world, "cl-gone"))
    target = ec2.target(inv, "ec2")
    record = cloud_up(target, yes=True, log=lambda m: None)
    world["moto"].ec2().terminate_instances(InstanceIds=record["created"]["instances"][:1])  # the self-destruct
    with pytest.raises(CloudInputError, match="no longer run"):
        cloud_up(target, yes=True, log=lambda m: None)
    with pytest.raises(CloudInputError, match="no longer run"):
        PROVIDERS.get("cloud").up(inv, "ec2", lambda m: None)
    down(target, lambda m: None)
    nothing_left(world, "cl-gone")


@pytest.fixture()
def node2_down(world: dict) -> None:
    """Stop node 2's sshd (started by this module's testbed): instance 2 never answers SSH from here on."""
    pid = world["testbed"].nodes[1].sshd_pid
    if pid and tb.lifecycle._alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while tb.lifecycle._alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def test_second_instance_never_answering_terminates_both_and_says_why(world: dict, node2_down: None) -> None:
    inv = inventory(world, "cl-part", ssh_timeout_s=6)
    up = vhpc(world, "cloud", "up", "-i", str(inv), "-e", "ec2", "--yes")
    assert up.returncode == 1
    (line,) = up.stderr.strip().splitlines()
    assert "did not answer SSH in time" in line and line.startswith("vhpc: error: ")
    assert "terminating what was created" in up.stdout and "terminated i-" in up.stdout
    assert f"SSH answers at {world['testbed'].addresses[0]}:" in up.stdout  # the first one did answer
    nothing_left(world, "cl-part")


def test_keep_leaves_the_instances_for_down_to_remove(world: dict, node2_down: None) -> None:
    inv = inventory(world, "cl-keep", ssh_timeout_s=4)
    up = vhpc(world, "cloud", "up", "-i", str(inv), "-e", "ec2", "--yes", "--keep")
    assert up.returncode == 1 and "kept what was created" in up.stdout
    assert len(world["moto"].tagged("cl-keep")["instances"]) == 2
    import shutil

    shutil.rmtree(world["base"] / "cloud" / "cl-keep-ec2")  # down finds everything by its tags alone
    down = vhpc(world, "cloud", "down", "-i", str(inv), "-e", "ec2")
    assert down.returncode == 0 and "2 instance(s) terminated" in down.stdout
    nothing_left(world, "cl-keep")


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_up_terminates_what_was_created(world: dict, node2_down: None, signum: int,
                                                        code: int) -> None:
    name = f"cl-sig{signum}"
    inv = inventory(world, name, ssh_timeout_s=300)
    proc = subprocess.Popen([sys.executable, "-m", "vhpclib.cli", "cloud", "up", "-i", str(inv), "-e", "ec2", "--yes"],
                            env=world["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = world["base"] / "cloud" / f"{name}-ec2" / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until up is waiting for SSH: instances exist and are recorded
        try:
            if json.loads(state.read_text()).get("hosts"):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("up never reached the SSH wait")
    assert len(world["moto"].tagged(name)["instances"]) == 2
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "terminated i-" in out
    nothing_left(world, name)
