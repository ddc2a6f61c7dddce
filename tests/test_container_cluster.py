"""A virtualized cluster across namespace nodes: one container per node, MPI between the containers.

Measured for real beside the bare nodes it runs on: `vhpc run` brings up the nodes (a testbed with
shaped links) and the containers (podman + runc, each in its node's network with its own sshd), runs
IMB PingPong and blockss between them, and removes everything again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vhpclib.config import parse_inventory
from vhpclib.exceptions import InventoryError

ROOT = Path(__file__).resolve().parent.parent
TESTBED = "cctest"
pytestmark = [pytest.mark.root, pytest.mark.mpi]


def _need() -> None:
    reason = None if os.geteuid() == 0 else "needs root (namespaces, podman)"
    for tool, pkg in (("podman", "podman"), ("runc", "runc"), ("debootstrap", "debootstrap"), ("ip", "iproute2")):
        if reason is None and shutil.which(tool) is None:
            reason = f"{tool} missing (Debian package {pkg})"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"container cluster tests must run in CI: {reason}")
        pytest.skip(reason)


def _inventory(tmp_path: Path, cluster: dict | None = None) -> Path:
    envs = {
        "local": {"label": "local", "baseline": True, "hosts": [{"name": "localhost", "local": True}]},
        "bare": {"label": "bare", "nodes": {"count": 2, "rate": "1gbit", "testbed": TESTBED}},
        "cluster": {"label": "cluster", "container_cluster": cluster or {"over": "bare", "cpus": [0, 1]}},
    }
    path = tmp_path / "cluster.yml"
    path.write_text(yaml.safe_dump({"name": "cluster", "environments": envs}, sort_keys=False))
    return path


def vhpc(args: list[str], tmp: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "VHPC_DATA": str(tmp / "data"), "VHPC_FIGURES": str(tmp / "figures"),
           "VHPC_TESTBEDS": str(tmp / "testbeds")}
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _left_behind() -> list[str]:
    """The cluster's containers, the testbed's namespaces and links, its inventory file."""
    from vhpclib.layers.podman import Podman

    left = [f"container {c}" for c in Podman().containers(name_prefix="vhpc-cc-")]
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    left += [n for n in names if n.startswith(f"vtb-{TESTBED}-")]
    left += [f"link {line.split(':')[1].strip()}" for line in links.splitlines() if f"vtb-{TESTBED}-" in line]
    inventory = ROOT / "inventories" / f"testbed-{TESTBED}.yml"
    return left + ([str(inventory)] if inventory.exists() else [])


# ------------------------------------------------------------------ pure parts


def test_cluster_and_node_sections_are_validated_with_file_line_and_key(tmp_path: Path) -> None:
    text = ("environments:\n  local: {label: local, baseline: true, hosts: [{name: h, local: true}]}\n"
            "  n:\n    label: n\n    nodes:\n      rate: fast\n      testbed: Not-A-Name\n"
            "  c:\n    label: c\n    container_cluster:\n      over: n\n      sshd_port: 0\n")
    with pytest.raises(InventoryError) as exc:
        parse_inventory(text, tmp_path / "bad.yml")
    lines = [str(p) for p in exc.value.problems]
    assert any("bad.yml:6: environments.n.nodes.rate" in line for line in lines), lines
    assert any("bad.yml:7: environments.n.nodes.testbed" in line and "lower-case" in line for line in lines), lines
    assert any("bad.yml:12: environments.c.container_cluster.sshd_port" in line for line in lines), lines


def test_the_embedded_default_has_bare_nodes_and_containers_across_them() -> None:
    from vhpclib.config import load_inventory

    inv = load_inventory(ROOT / "inventories/host-and-guest.yml")
    assert inv.environment("nodes").kind == "nodes" and inv.environment("node-containers").kind == "container_cluster"
    assert inv.environment("node-containers").section("container_cluster").over == "nodes"


def test_a_cluster_over_an_environment_without_nodes_is_one_line(tmp_path: Path) -> None:
    _need()
    inv = _inventory(tmp_path, cluster={"over": "local"})
    proc = vhpc(["run", "microbench", "-i", str(inv), "-e", "cluster", "-c", "x", "--no-figures", "--no-progress"],
                tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "container_cluster.over: 'local' is not a `nodes:` environment" in lines[0], lines
    assert "Traceback" not in proc.stderr and _left_behind() == []


@pytest.mark.parametrize("missing", ["podman", "runc"])
def test_a_missing_container_program_is_one_line_naming_the_package_before_any_node_starts(
        tmp_path: Path, missing: str) -> None:
    _need()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("podman", "runc", "ip", "sh", "env", "sed", "tar", "grep", "mkdir", "tc", "unshare", "hostname"):
        found = shutil.which(tool)
        if found and tool != missing:
            (bin_dir / tool).symlink_to(found)
    inv = _inventory(tmp_path)
    env = {**os.environ, "VHPC_DATA": str(tmp_path / "data"), "VHPC_TESTBEDS": str(tmp_path / "testbeds"),
           "PATH": str(bin_dir)}
    proc = subprocess.run([sys.executable, "-m", "vhpclib.cli", "run", "microbench", "-i", str(inv), "-e", "cluster",
                           "-c", "missing", "--no-figures", "--no-progress"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"apt-get install {missing}" in lines[0] and "Traceback" not in proc.stderr, lines
    assert _left_behind() == [] and not (tmp_path / "testbeds" / TESTBED).exists()


# ------------------------------------------------------------------ measured


def test_inter_node_pingpong_between_containers_and_between_bare_nodes(tmp_path: Path) -> None:
    _need()
    inv = _inventory(tmp_path)
    common = ["--placement", "inter-node", "--msglog", "0:4", "--iterations", "200", "--repetitions", "1",
              "--no-figures", "--no-progress", "-c", "cc"]
    for env in ("cluster", "bare"):
        proc = vhpc(["run", "microbench", "-i", str(inv), "-e", env, *common], tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"{env}: microbench: 1 run(s) measured" in proc.stdout, proc.stdout
        assert f"testbed '{TESTBED}' up: 2 nodes, links 1gbit" in proc.stderr
        assert f"testbed '{TESTBED}' removed" in proc.stderr
        assert _left_behind() == [], env
    assert proc.stderr.count("container ") == 0  # the bare nodes start no container
    raw = tmp_path / "data/raw/cc"
    run = raw / "cluster/microbench/pingpong-inter-node-m0-4-i200-r01"
    record = json.loads((run / "run.json").read_text())
    spec = record["environment_spec"]
    assert spec["vmm"] == "container" and "/opt/vhpc/bin/IMB-MPI1" in record["execution"]["command"]
    placed = spec["facts"]["containers"]
    assert len(placed) == 2 and all(p["running"] and p["cpus"] == [0, 1] for p in placed.values()), placed
    pins = record["pinning"]["pin_map"]
    assert record["pinning"]["verification"] == "verified" and len({p["node"] for p in pins}) == 2, pins
    assert all(p["node"].endswith("-ct") for p in pins), pins  # the ranks ran in the containers' UTS
    prints = [json.loads(p.read_text()) for p in (raw / "cluster/fingerprint").glob("*.json")]
    assert len(prints) == 2 and all(p["layer"]["detected"] == "container" for p in prints)
    bare = json.loads(next((raw / "bare/fingerprint").glob("*.json")).read_text())
    assert bare["layer"]["detected"] is None  # the bare node is not called a container
    import pandas as pd

    table = pd.read_csv(tmp_path / "data/processed/cc/microbench.csv")
    rows = table[(table["placement"] == "inter-node") & (table["bytes"] == 0)]
    assert set(rows["environment"]) == {"cluster", "bare"}
    assert (rows["t_avg_usec"] > 1).all(), rows  # TCP over veth: microseconds, not shared memory


def test_blockss_scales_across_the_containers_of_two_nodes(tmp_path: Path) -> None:
    _need()
    inv = _inventory(tmp_path)
    proc = vhpc(["run", "scaling", "-i", str(inv), "-e", "cluster", "-c", "cs", "-w", "blockss", "--preset", "tiny",
                 "-p", "2", "--repetitions", "1", "--no-figures", "--no-progress"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cluster: scaling: 1 run(s) measured" in proc.stdout, proc.stdout
    runs = list((tmp_path / "data/raw/cs/cluster/scaling").glob("blockss-tiny-p2-*"))
    assert len(runs) == 1
    record = json.loads((runs[0] / "run.json").read_text())
    command = record["execution"]["command"]
    segments = command.split(" : ")  # one MPMD segment per node, each rank pinned to a core of its own
    assert len(segments) == 2 and "PROCESSOR_LIST 0 " in segments[0] and "PROCESSOR_LIST 1 " in segments[1], command
    assert command.startswith("/opt/vhpc/bin/mpirun")
    assert json.loads((runs[0] / "blockss.json").read_text())
    assert _left_behind() == []
