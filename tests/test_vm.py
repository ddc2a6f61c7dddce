"""QEMU guests as environments: a real Debian guest built with debootstrap, booted, measured, removed.

One guest boots for the whole file (TCG here: this machine's /dev/kvm is
kvm_pvm); the image is built once into the per-user cache and reused by
later runs. Guest folders and inventories go to tmp folders (``paths.VMS`` and
``paths.INVENTORIES`` are patched), measurements to ``VHPC_DATA`` in tmp.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from vhpclib import paths
from vhpclib.cli import main
from vhpclib.config import load_inventory
from vhpclib.exceptions import HostUnreachable, VmInputError, VmUnavailable
from vhpclib.providers import resolve_environment
from vhpclib.remote import SshExecutor
from vhpclib.vm import accel, apt_sources, guest_ssh, lifecycle, passthrough, pinning, provision, seed
from vhpclib.vm.image import build_image, qemu_img_info, user_image
from vhpclib.vm.qemu import GuestSpec, qemu_argv

ROOT = Path(__file__).resolve().parent.parent
NAME = f"pyt{uuid.uuid4().hex[:6]}"
pytestmark = [pytest.mark.root, pytest.mark.mpi]


def _need_vm() -> None:
    reason = None if os.geteuid() == 0 else "needs root (debootstrap, QEMU, vCPU pinning)"
    for tool, pkg in (("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils"),
                      ("debootstrap", "debootstrap"), ("ssh", "openssh-client")):
        if reason is None and shutil.which(tool) is None:
            reason = f"{tool} missing (Debian package {pkg})"
    if reason is None and len(os.sched_getaffinity(0)) < 2:
        reason = "needs 2 host CPUs to pin 2 vCPUs"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"VM tests must run in CI: {reason}")
        pytest.skip(reason)


def vhpc(args: list[str], tmp: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    # VHPC_VMS: a guest's inventory resolves against its state under the (test's) guest folder
    env = {**os.environ, "VHPC_DATA": str(tmp / "data"), "VHPC_FIGURES": str(tmp / "figures"),
           "VHPC_VMS": str(paths.VMS)}
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _qemus(name: str) -> list[int]:
    return lifecycle.guest_qemus(name)


def _running(pid: int) -> bool:
    """A process that exists and is not a zombie waiting for init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="session")
def vm_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Guest folders and inventories in a tmp folder for this session (the image cache stays per-user)."""
    base = tmp_path_factory.mktemp("vm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paths, "VMS", base / "vms")
        mp.setattr(paths, "INVENTORIES", base / "inventories")
        yield base


@pytest.fixture(scope="session")
def image(vm_dirs: Path):
    _need_vm()
    return build_image()


@pytest.fixture(scope="session")
def guest(image, vm_dirs: Path) -> Iterator[lifecycle.GuestInfo]:
    """One guest, 2 vCPUs pinned to host CPUs 0 and 1, booted through the CLI once for this file."""
    rc = main(["vm", "up", "--name", NAME, "--vcpus", "2", "--memory", "1536", "--pin", "0,1"])
    assert rc == 0, "vhpc vm up failed"
    try:
        yield lifecycle.info(NAME)
    finally:
        lifecycle.down(NAME)


# ------------------------------------------------------------------ pure parts (no guest)

def test_deb822_and_one_line_sources_give_the_configured_mirror(tmp_path: Path) -> None:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n")
    assert apt_sources.debian_mirror("bookworm", apt) == "http://mirror.example/debian"
    (apt / "sources.list.d" / "debian.sources").unlink()
    (apt / "sources.list").write_text("deb [arch=amd64] http://other.example/debian bookworm main contrib\n")
    assert apt_sources.debian_mirror("bookworm", apt) == "http://other.example/debian"
    (apt / "sources.list").write_text("# nothing\n")
    with pytest.raises(VmUnavailable, match="no Debian apt source"):
        apt_sources.debian_mirror("bookworm", apt)


def test_this_machines_mirror_comes_from_its_apt_sources() -> None:
    sources = apt_sources.configured_sources()
    if not sources:
        pytest.skip("no apt sources on this machine")
    assert apt_sources.debian_mirror("bookworm") in {s.uri for s in sources}


def test_pin_must_give_one_available_cpu_per_vcpu() -> None:
    assert pinning.parse_pin("none", 2) is None
    assert pinning.parse_pin("1,0", 2, allowed=[0, 1]) == [1, 0]
    with pytest.raises(VmInputError, match="out of range"):
        pinning.parse_pin("0,7", 2, allowed=[0, 1])
    with pytest.raises(VmInputError, match="2 vCPU"):
        pinning.parse_pin("0", 2, allowed=[0, 1])
    with pytest.raises(VmInputError, match="twice"):
        pinning.parse_pin("1,1", 2, allowed=[0, 1])
    with pytest.raises(VmInputError, match="commas"):
        pinning.parse_pin("0-1", 2, allowed=[0, 1])
    assert pinning.parse_cpu_list("0-2,5") == [0, 1, 2, 5] and pinning.format_cpu_list([0, 1, 2, 5]) == "0-2,5"


def test_host_key_is_taken_from_the_last_key_block_on_the_serial_console() -> None:
    serial = ("[ 1.0] boot\r\n-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAAold root@x\n"
              "-----END SSH HOST KEY KEYS-----\nnoise\n-----BEGIN SSH HOST KEY KEYS-----\r\n"
              "ecdsa-sha2-nistp256 AAAAe root@y\r\nssh-ed25519 AAAAnew root@y\r\n-----END SSH HOST KEY KEYS-----\r\n")
    assert guest_ssh.host_keys_from_serial(serial) == ["ecdsa-sha2-nistp256 AAAAe", "ssh-ed25519 AAAAnew"]
    assert guest_ssh.host_keys_from_serial("-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAA") == []


def _fake_pci(root: Path, bdf: str, driver: str | None, group: int | None) -> None:
    dev = root / "sys/bus/pci/devices" / bdf
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x15b3\n")
    (dev / "device").write_text("0x673c\n")
    if driver:
        (root / "sys/bus/pci/drivers" / driver).mkdir(parents=True, exist_ok=True)
        (dev / "driver").symlink_to(root / "sys/bus/pci/drivers" / driver)
    if group is not None:
        gdir = root / "sys/kernel/iommu_groups" / str(group) / "devices"
        gdir.mkdir(parents=True, exist_ok=True)
        (dev / "iommu_group").symlink_to(gdir.parent)
        (gdir / bdf).symlink_to(dev)


def test_passthrough_checks_iommu_group_vfio_binding_and_group_members(tmp_path: Path) -> None:
    """The checks on a sysfs laid out like a VT-d host's (this machine has no IOMMU to try them on)."""
    _fake_pci(tmp_path, "0000:3b:00.0", "mlx4_core", 7)
    with pytest.raises(VmUnavailable, match="bound to mlx4_core, not vfio-pci"):
        passthrough.check_device("3b:00.0", tmp_path / "sys", tmp_path / "dev/vfio")
    _fake_pci(tmp_path, "0000:3c:00.0", "vfio-pci", 8)
    _fake_pci(tmp_path, "0000:3c:00.1", "ixgbe", None)
    member = tmp_path / "sys/kernel/iommu_groups/8/devices/0000:3c:00.1"
    member.symlink_to(tmp_path / "sys/bus/pci/devices/0000:3c:00.1")
    with pytest.raises(VmUnavailable, match="also holds 0000:3c:00.1 \\(ixgbe\\)"):
        passthrough.check_device("0000:3c:00.0", tmp_path / "sys", tmp_path / "dev/vfio")
    _fake_pci(tmp_path, "0000:3d:00.0", "vfio-pci", 9)
    with pytest.raises(VmUnavailable, match="/dev/vfio/9 is missing"):
        passthrough.check_device("3d:00.0", tmp_path / "sys", tmp_path / "dev/vfio")
    (tmp_path / "dev/vfio").mkdir(parents=True)
    (tmp_path / "dev/vfio/9").write_text("")
    device = passthrough.check_device("3d:00.0", tmp_path / "sys", tmp_path / "dev/vfio")
    assert device.iommu_group == 9 and device.qemu_args() == ["-device", "vfio-pci,host=0000:3d:00.0"]
    with pytest.raises(VmInputError, match="not a PCI address"):
        passthrough.check_device("3d:00", tmp_path / "sys")


def test_passthrough_on_this_machine_gives_one_line_and_exit_2(vm_dirs: Path, capsys) -> None:
    """No IOMMU here: a real device has no group; a missing one is named. Nothing is started."""
    _need_vm()
    devices = sorted(p.name for p in Path("/sys/bus/pci/devices").iterdir())
    assert main(["vm", "up", "--name", "pt", "--passthrough", devices[0]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--passthrough" in err
    if not any(Path("/sys/kernel/iommu_groups").glob("*")):
        assert "no IOMMU group" in err
    assert main(["vm", "up", "--name", "pt", "--passthrough", "00:1f.7"]) in (2,)
    assert "no PCI device 0000:00:1f.7" in capsys.readouterr().err
    assert not (paths.VMS / "pt").exists() and not _qemus("pt")


def test_qemu_command_line_has_virtio_qmp_loopback_ssh_and_vfio(tmp_path: Path) -> None:
    from vhpclib.vm.image import GuestImage

    image = GuestImage("built", tmp_path, tmp_path / "disk.raw", "raw", tmp_path / "key",
                       kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd.img")
    spec = GuestSpec(name="g1", hostname="vm-g1", vcpus=4, memory_mib=4096, accel="tcg", image=image,
                     overlay=tmp_path / "o.qcow2", ssh_port=2222, qmp_socket=tmp_path / "q.sock",
                     serial_log=tmp_path / "s.log", pidfile=tmp_path / "p", passthrough=("0000:3b:00.0",))
    argv = qemu_argv(spec)
    text = " ".join(argv)
    assert "-accel tcg,thread=multi" in text and "-smp 4,sockets=1,cores=4,threads=1" in text
    assert f"file={tmp_path / 'o.qcow2'},if=virtio,format=qcow2" in text and "virtio-net-pci" in text
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in text and "restrict=on" in text
    assert f"unix:{tmp_path / 'q.sock'},server=on,wait=off" in text and "-daemonize" in argv
    assert argv[-2:] == ["-device", "vfio-pci,host=0000:3b:00.0"]
    kvm = qemu_argv(GuestSpec(**{**spec.__dict__, "accel": "kvm", "passthrough": ()}))
    assert "-accel kvm -cpu host" in " ".join(kvm) and "vfio-pci" not in " ".join(kvm)


def test_accel_choice_is_explained_and_kvm_pvm_is_never_used() -> None:
    with pytest.raises(VmInputError, match="unknown accelerator"):
        accel.choose_accel("xen")
    assert accel.choose_accel("tcg").vmm == "qemu-tcg"
    choice = accel.choose_accel("auto")
    usable, why = accel.kvm_status()
    assert choice.accel == ("kvm" if usable else "tcg") and why in choice.reason
    if Path("/sys/module/kvm_pvm").exists():
        assert choice.accel == "tcg" and "kvm_pvm" in choice.reason
        with pytest.raises(VmUnavailable, match="kvm_pvm"):
            accel.choose_accel("kvm")


def test_kvm_probe_fails_where_kvm_cannot_boot_the_guest_kernel(image) -> None:
    """The short probe boot: on kvm_pvm the stock kernel prints nothing (RECIPES §6)."""
    if not Path("/sys/module/kvm_pvm").exists():
        pytest.skip("only meaningful where /dev/kvm is kvm_pvm")
    ok, why = accel.probe_kvm(image.kernel, timeout=5)
    assert not ok and "KVM probe" in why


def test_seed_iso_is_a_cidata_volume_with_our_key(tmp_path: Path) -> None:
    if shutil.which("genisoimage") is None or shutil.which("isoinfo") is None:
        if os.environ.get("CI"):
            pytest.fail("genisoimage needed in CI")
        pytest.skip("genisoimage missing")
    iso = seed.make_seed(tmp_path / "seed.iso", public_key="ssh-ed25519 AAAAkey vhpc", hostname="vm-x",
                         instance_id="vhpc-x-1")
    info = subprocess.run(["isoinfo", "-d", "-i", str(iso)], capture_output=True, text=True).stdout
    assert "Volume id: cidata" in info
    listing = subprocess.run(["isoinfo", "-R", "-f", "-i", str(iso)], capture_output=True, text=True).stdout.split()
    assert sorted(listing) == ["/meta-data", "/user-data"]
    user = subprocess.run(["isoinfo", "-R", "-x", "/user-data", "-i", str(iso)], capture_output=True, text=True).stdout
    assert user.startswith("#cloud-config\n")
    assert yaml.safe_load(user)["users"][0]["ssh_authorized_keys"] == ["ssh-ed25519 AAAAkey vhpc"]


def test_user_image_must_be_an_existing_qcow2(tmp_path: Path, vm_dirs: Path) -> None:
    _need_vm()
    with pytest.raises(VmInputError, match="does not exist"):
        user_image(tmp_path / "missing.qcow2")
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\0" * 1024 * 1024)
    with pytest.raises(VmInputError, match="expected a qcow2"):
        user_image(raw)
    qcow = tmp_path / "cloud.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow), "64M"], check=True)
    registered = user_image(qcow)
    assert registered.kind == "user" and registered.needs_seed and registered.disk == qcow.resolve()
    assert registered.client_key.is_file() and qemu_img_info(qcow)["format"] == "qcow2"
    shutil.rmtree(registered.folder)


def test_prune_keeps_the_newest_images_and_bases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vhpclib.vm.image import MANIFEST, prune_images

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = tmp_path / "vhpc" / "vm"
    for age, name in enumerate(["aaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaa3", "base-1", "base-2",
                                "base-3"]):
        folder = root / name
        folder.mkdir(parents=True)
        if not name.startswith("base-"):
            (folder / "disk.raw").write_bytes(b"")
            (folder / MANIFEST).write_text(json.dumps({"kind": "built", "disk": "disk.raw", "disk_format": "raw",
                                                       "client_key": "k"}))
        os.utime(folder, (1000 + age, 1000 + age))
    (root / "debs").mkdir()
    removed = {p.name for p in prune_images(keep=2)}
    assert removed == {"aaaaaaaaaaaaaaa1", "base-1"}
    assert sorted(p.name for p in root.iterdir()) == ["aaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaa3", "base-2", "base-3",
                                                      "debs"]


# ------------------------------------------------------------------ bad input: one line, exit 2, nothing left

@pytest.mark.parametrize("args, message", [
    (["--accel", "xen"], "unknown accelerator 'xen'"),
    (["--pin", "0,4096"], "out of range"),
    (["--pin", "0"], "1 CPU(s) for 2 vCPU(s)"),
    (["--image", "/nonexistent/cloud.qcow2"], "image file does not exist"),
    (["--name", "Bad_Name"], "guest name must be"),
    (["--memory", "16"], "at least 256"),
])
def test_bad_up_input_is_one_line_exit_2_and_starts_nothing(vm_dirs: Path, capsys, args: list[str],
                                                            message: str) -> None:
    _need_vm()
    argv = ["vm", "up", "--vcpus", "2", *([] if "--name" in args else ["--name", "bad"]), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vhpc: error:") and "\n" not in err and message in err, err
    assert not _qemus("bad") and not (paths.VMS / "bad").exists()
    assert not (paths.INVENTORIES / "vm-bad.yml").exists()


def test_up_refuses_without_root(vm_dirs: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["vm", "up", "--name", "noroot"]) == 2
    assert "needs root" in capsys.readouterr().err


# ------------------------------------------------------------------ the real guest

def test_second_build_is_cached_and_the_cached_disk_is_read_only(image) -> None:
    again = build_image()
    assert again.cached and again.folder == image.folder
    assert image.disk.stat().st_mode & 0o222 == 0
    assert image.provisioned and "impi-rt" in image.provisioned["mpi"]
    assert not list(image.folder.parent.glob(".build-*")), "no half-built folder is left in the cache"


def test_guest_answers_strict_ssh_with_the_host_key_from_its_serial_console(guest, tmp_path: Path) -> None:
    env = resolve_environment(load_inventory(guest.inventory), guest.environment)  # the running guest's
    host = env.hosts[0]
    with SshExecutor(host, policy="strict", known_hosts=env.known_hosts, connect_timeout=20) as ex:
        out = ex.run("hostname; systemd-detect-virt; nproc").stdout.split()
    assert out == [f"vm-{NAME}", "qemu" if guest.accel == "tcg" else "kvm", "2"]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostUnreachable):
        with SshExecutor(host, policy="strict", known_hosts=empty, connect_timeout=10) as ex:
            ex.run("true")


def test_inventory_names_vmm_pinning_mpi_and_blockss_as_run(guest) -> None:
    inv = load_inventory(guest.inventory)
    assert inv.environment(guest.environment).kind == "vm" and not inv.environment(guest.environment).hosts
    env = resolve_environment(inv, guest.environment)  # the file declares the guest; it resolves to the running one
    assert env.kind == "vm" and env.section("vm").name == NAME
    assert env.vmm == ("qemu-tcg" if guest.accel == "tcg" else "kvm")
    assert env.vcpu_pinning == "pinned" and env.host_key_policy == "strict"
    assert str(env.mpi.prefix) == "/opt/vhpc" and env.benchmarks.blockss == "/opt/vhpc/bin/vhpc-blockss"
    assert env.hosts[0].address == "127.0.0.1"
    if guest.accel == "tcg":
        assert "emulation" in env.description


def test_vcpu_map_is_read_back_from_the_kernel_for_each_vcpu_thread(guest) -> None:
    record = lifecycle.vcpu_map_for(guest.state_file)
    assert record["policy"] == "pinned" and record["map"] == {"0": [0], "1": [1]}
    state = json.loads(guest.state_file.read_text())
    for vcpu, tid in state["vcpu_threads"].items():
        comm = Path(f"/proc/{guest.pid}/task/{tid}/comm").read_text().strip()
        assert comm.startswith(f"CPU {vcpu}/")  # QEMU's own name for the vCPU thread (debug-threads=on)
        status = Path(f"/proc/{guest.pid}/task/{tid}/status").read_text()
        assert f"Cpus_allowed_list:\t{vcpu}" in status


def test_status_shows_pid_accel_reason_pinning_and_port(guest, capsys) -> None:
    assert main(["vm", "status"]) == 0
    out = capsys.readouterr().out
    assert f"{NAME}: running pid={guest.pid} accel={guest.accel}" in out
    assert "vcpu0->0 vcpu1->1" in out and f"ssh=127.0.0.1:{guest.ssh_port} " in out
    assert "accel reason:" in out


def test_name_in_use_is_refused(guest, capsys) -> None:
    assert main(["vm", "up", "--name", NAME]) == 2
    assert "is in use" in capsys.readouterr().err
    assert _qemus(NAME) == [guest.pid]


def test_inventory_check_fingerprints_the_guest_as_qemu(guest, tmp_path: Path) -> None:
    proc = vhpc(["inventory", "check", str(guest.inventory), "-c", "vmcheck"], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    prints = list((tmp_path / "data/raw/vmcheck" / guest.environment / "fingerprint").glob("*.json"))
    facts = json.loads(prints[0].read_text())
    assert facts["virtualization"]["vm"] == ("qemu" if guest.accel == "tcg" else "kvm")
    assert facts["topology"]["sockets"] == 1 and facts["topology"]["cores_per_socket"] == 2
    assert facts["hostname"] == f"vm-{NAME}" and "Intel(R) MPI" in facts["mpi_version"]
    if guest.accel == "tcg":
        assert "QEMU" in facts["cpu"]["model"]  # the CPU as the emulated guest sees it


def test_microbench_runs_imb_in_the_guest_through_its_inventory(guest, tmp_path: Path) -> None:
    proc = vhpc(["run", "microbench", "-i", str(guest.inventory), "-e", guest.environment, "-c", "vmtest",
                 "--msglog", "0:4", "--iterations", "50", "--repetitions", "1", "--no-figures", "--no-progress"],
                tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{guest.environment}: microbench: 1 run(s) measured" in proc.stdout
    run = tmp_path / "data/raw/vmtest" / guest.environment / "microbench/pingpong-intra-socket-m0-4-i50-r01"
    record = json.loads((run / "run.json").read_text())
    assert record["pinning"]["verification"] == "verified"
    assert "# Benchmarking PingPong" in (run / "stdout.log").read_text()


def test_single_node_runs_blockss_in_the_guest_through_its_inventory(guest, tmp_path: Path) -> None:
    proc = vhpc(["run", "single-node", "-i", str(guest.inventory), "-e", guest.environment, "-c", "vmtest",
                 "--preset", "tiny", "--repetitions", "1", "--no-figures", "--no-progress"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = list((tmp_path / "data/raw/vmtest" / guest.environment / "single-node").glob("blockss-*"))
    assert runs and json.loads((runs[0] / "blockss.json").read_text())


def _declared(tmp_path: Path, name: str = NAME, vcpus: int = 2, pin: list[int] | None = None) -> Path:
    """An inventory as a user writes it: this machine, and a guest described by its ``vm:`` section."""
    path = tmp_path / "declared.yml"
    path.write_text(yaml.safe_dump({"name": "declared", "environments": {
        "host": {"label": "host", "baseline": True, "hosts": [{"name": "localhost", "local": True}]},
        "guest": {"label": "guest", "vm": {"name": name, "vcpus": vcpus, "memory_mib": 1536,
                                             "pin": [0, 1] if pin is None else pin}}}}))
    return path


def _env(tmp_path: Path, vm_dirs: Path) -> dict[str, str]:
    return {**os.environ, "VHPC_DATA": str(tmp_path / "data"), "VHPC_FIGURES": str(tmp_path / "figures"),
            "VHPC_EXECUTED": str(tmp_path / "executed"), "VHPC_VMS": str(vm_dirs / "vms")}


def test_notebook_02_runs_through_papermill_in_a_guest_the_inventory_declares(guest, tmp_path: Path,
                                                                               vm_dirs: Path) -> None:
    """Papermill per VMM: the notebook gets ``-p environment guest``; the runs are the booted guest's."""
    out = tmp_path / "02-guest.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", str(ROOT / "notebooks/02-single-node.ipynb"), str(out),
         "-p", "inventory", str(_declared(tmp_path)), "-p", "environment", "guest", "-p", "campaign", "vmnb",
         "-p", "repetitions", "2", "-p", "progress", "False",
         "-p", "write_figures", "False", "-y", "{workloads: [blockss], options: {blockss_preset: tiny}}"],
        cwd=ROOT, env=_env(tmp_path, vm_dirs), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "single-node: 2 run(s) measured" in out.read_text()
    env_dir = tmp_path / "data/raw/vmnb/guest"
    runs = sorted((env_dir / "single-node").glob("blockss-tiny-*-r0*"))
    assert len(runs) == 2
    record = json.loads((runs[0] / "run.json").read_text())
    spec = record["environment_spec"]
    assert spec["label"] == "guest" and spec["vmm"] == guest.vmm and spec["vcpu_pinning"] == "pinned"
    assert spec["provider"] == "vm"
    assert spec["facts"]["vcpu_map"] == {"0": [0], "1": [1]}  # read back from the host kernel for this run
    assert record["host_facts"][f"vm-{NAME}"]["virtualization"]["is_vm"]
    [fingerprint] = (env_dir / "fingerprint").glob("*.json")
    facts = json.loads(fingerprint.read_text())
    assert facts["vcpu_pinning"] == {"policy": "pinned", "accel": guest.accel, "map": {"0": [0], "1": [1]},
                                     "verified": True}


def test_a_declared_guest_must_run_as_declared(guest, tmp_path: Path, vm_dirs: Path) -> None:
    from vhpclib.config import load_inventory
    from vhpclib.providers import environments_up

    inv = load_inventory(_declared(tmp_path))
    with environments_up(inv, ["host", "guest"], log=lambda line: None) as started:
        assert started == []  # running as declared: neither booted nor stopped here
    assert lifecycle.info(NAME).pid == guest.pid
    other = _declared(tmp_path, vcpus=1, pin=[0])
    proc = subprocess.run([sys.executable, "-m", "vhpclib.cli", "run", "microbench", "-i", str(other), "-e", "guest",
                           "-c", "vmdeclared", "--no-figures", "--no-progress"], cwd=ROOT, env=_env(tmp_path, vm_dirs),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert f"environments.guest.vm: guest {NAME!r} runs with vcpus 2 (the inventory asks for 1)" in line
    assert not (tmp_path / "data/raw/vmdeclared").exists()


def test_a_declared_guest_that_is_not_up_is_one_line_and_a_row_of_the_check(tmp_path: Path) -> None:
    inv = _declared(tmp_path, name="notup")
    env = _env(tmp_path, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "vhpclib.cli", "run", "single-node", "-i", str(inv), "-e", "guest",
                           "-c", "vmdown", "--no-figures", "--no-progress"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert "guest 'notup' of environment 'guest' is not running: boot it with `vhpc vm up --name notup" in line
    assert "--pin 0,1`" in line and not (tmp_path / "data/raw/vmdown").exists()
    check = subprocess.run([sys.executable, "-m", "vhpclib.cli", "inventory", "check", str(inv)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert "Traceback" not in check.stderr and "guest notup" in check.stdout and "localhost" in check.stdout


def test_workloads_can_also_be_copied_in_over_ssh_as_for_user_images(guest) -> None:
    """User cloud images cannot be chroot-ed into: the payload goes in over SSH (another prefix here).

    Only mpi4py is pip-installed from the wheelhouse: unpacking scipy alone takes minutes under TCG,
    and the full set is already checked in the image (installed the same way, in a chroot).
    """
    state = json.loads(guest.state_file.read_text())
    ssh = guest_ssh.GuestSsh(state["ssh_port"], Path(state["client_key"]), Path(state["known_hosts"]))
    full = provision.prepare_payload()
    small = provision.Payload(full.mpi_tarball, full.mpi_version, full.wheel_dirs,
                              tuple(w for w in full.wheels if w.startswith(("pip-", "mpi4py-"))))
    done = provision.install(ssh, small, prefix="/opt/vhpc-ssh", requirement="mpi4py")
    assert done["how"] == "ssh at up" and "impi-rt" in done["mpi"]  # install() checked mpirun, IMB, import mpi4py
    libs = ssh.run("LD_LIBRARY_PATH=/opt/vhpc-ssh/lib ldd /opt/vhpc-ssh/bin/IMB-MPI1; rm -rf /opt/vhpc-ssh").stdout
    assert "/opt/vhpc-ssh/lib/libmpi.so.12" in libs and "not found" not in libs


def test_a_guest_that_never_answers_is_reported_one_line_and_removed(vm_dirs: Path, tmp_path: Path, capsys) -> None:
    """A blank qcow2 as the user's cloud image: QEMU boots, finds nothing to boot, SSH never comes."""
    _need_vm()
    blank = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(blank), "64M"], check=True)
    name = f"{NAME}-late"
    assert main(["vm", "up", "--name", name, "--vcpus", "1", "--memory", "512", "--accel", "tcg", "--image",
                 str(blank), "--timeout", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did not answer SSH" in err and "within 10 s" in err and "serial console:" in err and "\n" not in err
    assert not _qemus(name) and not (paths.VMS / name).exists()
    assert not (paths.INVENTORIES / f"vm-{name}.yml").exists()
    shutil.rmtree(user_image(blank).folder)


def test_a_failed_guests_serial_log_is_kept_before_its_folder_is_removed(vm_dirs: Path, tmp_path: Path) -> None:
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "serial.log").write_text("[    0.000000] Linux version 6.1\nKernel panic - not syncing\n")
    state = {"name": "kept", "serial_log": str(folder / "serial.log"), "created_utc": "2026-11-29T20:00:00Z"}
    paths.VMS.mkdir(parents=True, exist_ok=True)
    kept = lifecycle._keep_serial_log(state)
    assert kept is not None and kept.parent == paths.VMS and "Kernel panic" in kept.read_text()
    (folder / "serial.log").write_text("")
    assert lifecycle._keep_serial_log({**state, "name": "empty"}) is None  # nothing to keep


def test_down_removes_everything_up_created_but_never_the_cached_image(guest, image) -> None:
    state = json.loads(guest.state_file.read_text())
    assert main(["vm", "down", "--name", NAME]) == 0
    assert not _qemus(NAME) and not _running(guest.pid)
    assert not Path(state["qmp_socket"]).exists() and not Path(state["overlay"]).exists()
    assert not guest.inventory.exists() and not guest.state_file.parent.exists()
    with socket.socket() as s:  # nothing listens on the forwarded port (closed connections may linger in TIME_WAIT)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", guest.ssh_port))
        s.listen()
    assert image.disk.is_file() and build_image().cached
    assert lifecycle.down(NAME) == []  # idempotent
