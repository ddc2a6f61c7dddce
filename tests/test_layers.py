"""Containers (podman + runc), user-mode Linux and gVisor as environments, measured for real.

The layers' root filesystem is built once into the per-user cache (the QEMU guest's debootstrap base
plus the workloads) and reused by later runs; measurements go to ``VHPC_DATA`` in tmp. Every test that
starts a layer checks that nothing of it is left: no container in vHPC's podman store, no other image,
no UML temp folder, no process carrying the run's tag.
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

from vhpclib.config import load_inventory, parse_inventory
from vhpclib.exceptions import InventoryError
from vhpclib.fingerprint import collect_fingerprint, parse_fingerprint
from vhpclib.remote import LocalExecutor

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "fingerprint"
pytestmark = [pytest.mark.root, pytest.mark.mpi]


def _need(*programs: tuple[str, str]) -> None:
    reason = None if os.geteuid() == 0 else "needs root (debootstrap, podman, user-mode Linux)"
    for tool, pkg in programs:
        if reason is None and shutil.which(tool) is None:
            reason = f"{tool} missing (Debian package {pkg})"
    if reason is None and len(os.sched_getaffinity(0)) < 2:
        reason = "needs 2 host CPUs"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"layer tests must run in CI: {reason}")
        pytest.skip(reason)


def _inventory(tmp_path: Path, **layers: dict) -> Path:
    envs: dict = {"local": {"label": "local", "baseline": True, "hosts": [{"name": "localhost", "local": True}]}}
    for name, section in layers.items():
        envs[name] = {"label": name, "vmm": name, "hosts": [{"name": "localhost", "local": True}], name: section}
    path = tmp_path / "layers.yml"
    path.write_text(yaml.safe_dump({"name": "layers", "environments": envs}, sort_keys=False))
    return path


def vhpc(args: list[str], tmp: Path, timeout: float = 1200, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "VHPC_DATA": str(tmp / "data"), "VHPC_FIGURES": str(tmp / "figures")}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _containers() -> list[str]:
    from vhpclib.layers.podman import Podman

    return Podman().containers()


def _images() -> list[str]:
    from vhpclib.layers.podman import Podman

    out = Podman().call(["images", "--format", "{{.Repository}}:{{.Tag}}"], what="images").stdout
    return out.split()


def _left_behind() -> list[str]:
    """Everything a layer could leave: containers in vHPC's store, UML temp folders, UML control folders."""
    left = [f"container {c}" for c in _containers()]
    left += [str(p) for p in Path("/tmp").glob("vhpc-uml.*")]
    left += [str(p) for p in (Path.home() / ".uml").glob("*")] if (Path.home() / ".uml").is_dir() else []
    return left


@pytest.fixture(scope="session")
def layer_root():
    _need(("debootstrap", "debootstrap"), ("podman", "podman"), ("runc", "runc"))
    from vhpclib.layers.image import build_root

    return build_root()


# ------------------------------------------------------------------ pure parts


def test_layer_sections_are_validated_with_file_line_and_key(tmp_path: Path) -> None:
    text = ("environments:\n  local: {label: local, baseline: true, hosts: [{name: h, local: true}]}\n"
            "  c:\n    label: c\n    hosts: [{name: h, local: true}]\n    container:\n      cpus: [1, 1]\n"
            "      colour: red\n")
    with pytest.raises(InventoryError) as exc:
        parse_inventory(text, tmp_path / "bad.yml")
    lines = [str(p) for p in exc.value.problems]
    assert any("bad.yml:7: environments.c.container.cpus" in line and "distinct" in line for line in lines), lines
    assert any("bad.yml:8: environments.c.container.colour: unknown key" in line for line in lines), lines


def test_the_embedded_default_lists_host_guest_container_uml_and_gvisor() -> None:
    inv = load_inventory(ROOT / "inventories/host-and-guest.yml")
    assert {n: e.kind for n, e in inv.environments.items()} == {
        "local": "host", "guest": "vm", "container": "container", "uml": "uml", "gvisor": "gvisor",
        "nodes": "nodes", "node-containers": "container_cluster"}


def test_skips_say_what_each_layer_cannot_run(tmp_path: Path) -> None:
    from vhpclib.providers import provider_for

    inv = parse_inventory(_inventory(tmp_path, uml={"cpu": 1}, gvisor={}, container={}).read_text())
    uml, gvisor, container = (inv.environment(n) for n in ("uml", "gvisor", "container"))
    assert provider_for(uml).skip_reason(uml, 1, 1) is None
    assert "one vCPU: 2 ranks would share it" in provider_for(uml).skip_reason(uml, 1, 2)
    assert provider_for(gvisor).skip_reason(gvisor, 1, 1) is None
    assert "crashes Intel MPI with more than one rank" in provider_for(gvisor).skip_reason(gvisor, 1, 2)
    assert provider_for(container).skip_reason(container, 1, 2) is None
    two = parse_inventory(_inventory(tmp_path, uml={"vcpus": 2}).read_text()).environment("uml")
    assert "has one vCPU (no SMP); the inventory asks for 2" in provider_for(two).skip_reason(two, 1, 1)


@pytest.mark.parametrize(("fixture", "layer", "container"), [
    ("layer-host-dockerenv.txt", None, "none"),
    ("layer-podman-runc.txt", "container", "podman"),
    ("layer-uml.txt", "uml", "none"),
    ("layer-gvisor.txt", "gvisor", None),
])
def test_layer_is_named_on_positive_evidence_from_inside(fixture: str, layer: str | None,
                                                         container: str | None, tmp_path: Path) -> None:
    copy = tmp_path / fixture
    shutil.copyfile(FIXTURES / fixture, copy)
    facts = parse_fingerprint(copy.read_text())
    assert facts["layer"]["detected"] == layer
    if container is not None:
        assert facts["virtualization"]["container"] == container
    if layer is None:  # captured on this kind of machine: systemd-detect-virt says docker, the host is no container
        assert facts["virtualization"]["detect_virt_container"] == "docker"


def test_gvisors_lscpu_without_core_and_socket_reads_as_one_core_per_cpu(tmp_path: Path) -> None:
    copy = tmp_path / "layer-gvisor.txt"
    shutil.copyfile(FIXTURES / "layer-gvisor.txt", copy)
    assert ",,," in copy.read_text()  # as gVisor's lscpu -p printed it (its /sys has no topology)
    topology = parse_fingerprint(copy.read_text())["topology"]
    assert topology["sockets"] == 1 and topology["cores_per_socket"] == topology["logical_cpus"] == 1


def test_this_machine_is_not_called_a_container_though_its_root_has_dockerenv() -> None:
    facts = collect_fingerprint(LocalExecutor())
    if Path("/.dockerenv").exists():
        assert facts["virtualization"]["detect_virt_container"] in ("docker", None)
    assert facts["layer"]["detected"] is None
    assert facts["virtualization"]["container"] == "none"


# ------------------------------------------------------------------ bad input: one line, exit 2, the package


@pytest.mark.parametrize(("env", "section", "missing", "package"), [
    ("container", {}, "podman", "podman"),
    ("container", {}, "runc", "runc"),
    ("gvisor", {}, "runsc", "runsc"),
    ("uml", {}, "linux", "user-mode-linux"),
])
def test_a_missing_layer_program_is_one_line_naming_the_package(tmp_path: Path, env: str, section: dict,
                                                                  missing: str, package: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("podman", "runc", "runsc", "linux", "sh", "env", "sed", "taskset", "tar", "grep", "mkdir"):
        found = shutil.which(tool)
        if found and tool != missing:
            (bin_dir / tool).symlink_to(found)
    inv = _inventory(tmp_path, **{env: section})
    proc = vhpc(["run", "microbench", "-i", str(inv), "-e", env, "-c", "missing", "--no-figures", "--no-progress"],
                tmp_path, timeout=300, path=str(bin_dir))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"apt-get install {package}" in lines[0] and "Traceback" not in proc.stderr, lines
    assert not (tmp_path / "data/raw/missing").exists() or not any((tmp_path / "data/raw/missing").rglob("run.json"))


def test_a_layer_that_cannot_start_is_one_line_and_leaves_nothing(layer_root, tmp_path: Path) -> None:
    inv = _inventory(tmp_path, container={"cpus": [4095]})  # no such CPU: runc cannot apply the cpuset
    proc = vhpc(["run", "microbench", "-i", str(inv), "-e", "container", "-c", "nostart", "--no-figures",
                 "--no-progress"], tmp_path, timeout=600)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "starting container" in lines[0] and "Traceback" not in proc.stderr, lines
    assert _left_behind() == []


def test_an_image_that_cannot_be_built_is_one_line_naming_the_package(tmp_path: Path) -> None:
    _need(("podman", "podman"), ("runc", "runc"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("podman", "runc", "sh", "env", "sed"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    inv = _inventory(tmp_path, container={})
    env_cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}  # nothing cached: the image must be built
    proc = subprocess.run([sys.executable, "-m", "vhpclib.cli", "run", "microbench", "-i", str(inv), "-e", "container",
                           "-c", "nobuild", "--no-figures", "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env_cache, "PATH": str(bin_dir),
                                            "VHPC_DATA": str(tmp_path / "data")})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt-get install debootstrap" in lines[0], lines


# ------------------------------------------------------------------ containers


def test_microbench_measures_inside_a_container_vhpc_builds_starts_and_removes(layer_root, tmp_path: Path) -> None:
    inv = _inventory(tmp_path, container={"cpus": [0, 1]})
    proc = vhpc(["run", "microbench", "-i", str(inv), "-e", "container", "-c", "ct", "--msglog", "0:4",
                 "--iterations", "50", "--repetitions", "1", "--no-figures", "--no-progress"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "container: microbench: 1 run(s) measured" in proc.stdout
    assert "started (runc, cpus [0, 1])" in proc.stderr and "removed" in proc.stderr
    env_dir = tmp_path / "data/raw/ct/container"
    run = env_dir / "microbench/pingpong-intra-socket-m0-4-i50-r01"
    record = json.loads((run / "run.json").read_text())
    assert record["pinning"]["verification"] == "verified"
    facts = record["environment_spec"]["facts"]
    placed = next(iter(facts["containers"].values()))
    assert facts["runtime"] == "runc" and placed["cpus"] == [0, 1] and placed["running"] is True
    assert record["environment_spec"]["vmm"] == "container"
    assert "podman" in record["execution"]["command"] and "/opt/vhpc/bin/IMB-MPI1" in record["execution"]["command"]
    fingerprint = json.loads(next((env_dir / "fingerprint").glob("*.json")).read_text())
    assert fingerprint["layer"]["detected"] == "container"
    assert "# Benchmarking PingPong" in (run / "stdout.log").read_text()
    assert _left_behind() == []
    from vhpclib.layers.podman import Podman

    assert _images() == [Podman().image_tag(layer_root)], "only the cached image stays"


def test_single_node_runs_blockss_inside_the_container(layer_root, tmp_path: Path) -> None:
    inv = _inventory(tmp_path, container={"cpus": [0, 1]})
    proc = vhpc(["run", "single-node", "-i", str(inv), "-e", "container", "-c", "ct", "--preset", "tiny",
                 "--repetitions", "1", "--no-figures", "--no-progress"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "container: single-node: 1 run(s) measured" in proc.stdout
    runs = list((tmp_path / "data/raw/ct/container/single-node").glob("blockss-tiny-p2-*"))
    assert runs and json.loads((runs[0] / "blockss.json").read_text())
    assert _left_behind() == []


# ------------------------------------------------------------------ user-mode Linux and gVisor


def test_uml_runs_one_rank_records_its_settings_and_skips_two(layer_root, tmp_path: Path) -> None:
    _need(("linux", "user-mode-linux"))
    inv = _inventory(tmp_path, uml={"cpu": 1})
    proc = vhpc(["run", "scaling", "-i", str(inv), "-e", "uml", "-c", "um", "--preset", "tiny", "--repetitions", "1",
                 "--no-figures", "--no-progress"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "uml: scaling: 1 run(s) measured" in proc.stdout
    assert "skipped blockss p=2" in proc.stdout
    record = json.loads((tmp_path / "data/raw/um/uml/scaling/blockss-tiny-p1-t1-r01/run.json").read_text())
    facts = record["environment_spec"]["facts"]
    assert facts["forced_env"] == {"I_MPI_PIN": "0", "I_MPI_HYDRA_TOPOLIB": "ipl", "I_MPI_THREAD_YIELD": "3",
                                   "I_MPI_SPIN_COUNT": "1"}
    assert facts["cpus_read_back"] == [1] and record["environment_spec"]["vmm"] == "uml"
    fingerprint = json.loads(next((tmp_path / "data/raw/um/uml/fingerprint").glob("*.json")).read_text())
    assert fingerprint["layer"]["detected"] == "uml" and fingerprint["topology"]["logical_cpus"] == 1
    assert _left_behind() == []


def test_gvisor_runs_one_rank_and_skips_two_with_the_reason(layer_root, tmp_path: Path) -> None:
    _need(("runsc", "runsc"))
    inv = _inventory(tmp_path, gvisor={"cpus": [0, 1]})
    proc = vhpc(["run", "scaling", "-i", str(inv), "-e", "gvisor", "-c", "gv", "--preset", "tiny", "--repetitions",
                 "1", "--no-figures", "--no-progress"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gvisor: scaling: 1 run(s) measured" in proc.stdout
    assert "crashes Intel MPI with more than one rank" in proc.stdout
    record = json.loads((tmp_path / "data/raw/gv/gvisor/scaling/blockss-tiny-p1-t1-r01/run.json").read_text())
    facts = record["environment_spec"]["facts"]
    assert facts["runtime"] == "runsc" and facts["forced_env"] == {"I_MPI_HYDRA_TOPOLIB": "ipl"}
    fingerprint = json.loads(next((tmp_path / "data/raw/gv/gvisor/fingerprint").glob("*.json")).read_text())
    assert fingerprint["layer"]["detected"] == "gvisor"
    assert _left_behind() == []


# ------------------------------------------------------------------ notebooks per layer


@pytest.mark.parametrize("environment", ["container", "uml", "gvisor"])
def test_notebooks_01_to_03_run_through_papermill_in_each_layer(layer_root, tmp_path: Path, environment: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    import papermill

    _need(("linux", "user-mode-linux"), ("runsc", "runsc"))
    monkeypatch.setenv("VHPC_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("VHPC_FIGURES", str(tmp_path / "figures"))
    inv = str(_inventory(tmp_path, container={"cpus": [0, 1]}, uml={"cpu": 1}, gvisor={"cpus": [0, 1]}))
    common = {"inventory": inv, "environment": environment, "campaign": "nb", "repetitions": 1,
              "write_figures": False, "progress": False}
    notebooks = {"01-microbenchmarks": {"msglog": "0:3", "iterations": 20},
                 "02-single-node": {"blockss_preset": "tiny"}, "03-scaling": {"blockss_preset": "tiny"}}
    for name, params in notebooks.items():
        out = tmp_path / f"{name}.ipynb"
        papermill.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out),
                                   parameters={**common, **params}, kernel_name="python3", progress_bar=False,
                                   cwd=str(ROOT / "notebooks"))
        text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                         for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
        assert f"{environment}: " in text, name
    measured = list((tmp_path / "data/raw/nb" / environment).rglob("result.json"))
    assert measured, "each layer measures what it can run"
    assert _left_behind() == []
