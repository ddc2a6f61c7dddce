"""Bring a guest up, report on guests, read its vCPU map, and take it down.

``up`` checks every input before it starts anything, records each object it
creates in ``vms/<name>/state.json`` as it goes, and undoes everything if a
later step fails. ``down`` also finds a QEMU of that guest by its ``-name``
after a crash, and touches nothing else; it verifies that no process, socket
or port of the guest is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from typing import Any
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import paths
from ..exceptions import VmError, VmInputError, VmUnavailable, VhpcError
from ..sshd import free_port
from . import pinning
from .accel import check_accel, choose_accel
from .guest_ssh import GuestSsh, wait_for_ssh
from .image import GuestImage, build_image, user_image
from .inventory import environment_name, inventory_path, write_inventory
from .passthrough import check_devices
from .provision import install, prepare_payload
from .qemu import QEMU, GuestSpec, create_overlay, start
from .qmp import QmpClient
from .seed import make_seed
from .state import (STATE_SCHEMA, known_names, load_state, load_state_file, save_state, state_path, validate_name,
                    vm_folder)

DEFAULT_READY_TIMEOUT = 300.0
POWERDOWN_TIMEOUT = 30.0


@dataclass(frozen=True)
class GuestInfo:
    """A guest that is up: how to reach it and how it runs."""

    name: str
    pid: int
    accel: str
    accel_reason: str
    vmm: str
    vcpus: int
    memory_mib: int
    ssh_port: int
    vcpu_map: dict[int, list[int]]
    pinned: bool
    inventory: Path
    environment: str
    state_file: Path
    ready_s: float
    provision: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["inventory"], data["state_file"] = str(self.inventory), str(self.state_file)
        return data


@dataclass(frozen=True)
class GuestStatus:
    name: str
    running: bool
    pid: int | None
    accel: str | None
    accel_reason: str | None
    vcpus: int | None
    ssh_port: int | None
    port_listening: bool
    pinned: bool
    vcpu_map: dict[int, list[int]] | None
    inventory: str | None
    problems: tuple[str, ...] = ()


# ------------------------------------------------------------------ processes

def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _qemu_name(name: str) -> str:
    return f"vhpc-{name},debug-threads=on"


def _is_guest_qemu(pid: int, name: str) -> bool:
    """True only for a QEMU started by ``up`` for guest ``name`` (its ``-name`` says so)."""
    argv = _cmdline(pid)
    return bool(argv) and Path(argv[0]).name == QEMU and _qemu_name(name) in argv


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def guest_qemus(name: str) -> list[int]:
    """PIDs of every running QEMU of guest ``name`` (found by its ``-name``, whatever the state file says)."""
    return sorted(int(p.name) for p in Path("/proc").iterdir()
                  if p.name.isdigit() and _is_guest_qemu(int(p.name), name) and _alive(int(p.name)))


def _port_listening(port: int | None) -> bool:
    if not port:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


# ------------------------------------------------------------------ up

def require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise VmUnavailable(f"'vm {action}' needs root (QEMU guests, vCPU pinning, VFIO); run it as root, "
                            "e.g. with sudo, or in the CI container")


def check_machine_fits(vcpus: int, memory_mib: int, ready_timeout: float) -> None:
    """Refuse, before anything starts, a guest this machine cannot hold or a wait that cannot end sensibly.

    More vCPUs than the CPUs vhpc may use would only time-share them (and boot for the whole timeout under
    TCG); more memory than the machine has makes QEMU refuse or the host swap.
    """
    import math

    if not (math.isfinite(ready_timeout) and ready_timeout > 0):
        raise VmInputError(f"--timeout must be a finite number of seconds above 0, got {ready_timeout}",
                           key="--timeout")
    cpus = len(os.sched_getaffinity(0))
    if vcpus > cpus:
        raise VmInputError(f"--vcpus {vcpus} is more than the {cpus} CPU(s) this machine lets vhpc use; "
                           f"use at most {cpus}", key="--vcpus")
    total_mib = _memory_total_mib()
    if total_mib is not None and memory_mib > total_mib:
        raise VmInputError(f"--memory {memory_mib} MiB is more than this machine has ({total_mib} MiB); "
                           f"use at most {total_mib}", key="--memory")


def _memory_total_mib() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def up(name: str, *, vcpus: int = 2, memory_mib: int = 2048, accel: str = "auto", pin: str | None = None,
       passthrough: list[str] | tuple[str, ...] = (), image_file: str | Path | None = None,
       ready_timeout: float = DEFAULT_READY_TIMEOUT) -> GuestInfo:
    """Boot guest ``name`` and write ``inventories/vm-<name>.yml``; needs root.

    Every input is checked before anything starts (``VmInputError``/``VmUnavailable``,
    exit 2). A guest that never answers SSH within ``ready_timeout`` gives
    ``VmNotReady`` with its serial log tail. On any failure everything started
    is removed again.
    """
    validate_name(name)
    check_accel(accel)
    if vcpus < 1:
        raise VmInputError(f"--vcpus must be at least 1, got {vcpus}", key="--vcpus")
    if memory_mib < 256:
        raise VmInputError(f"--memory is in MiB and must be at least 256, got {memory_mib}", key="--memory")
    check_machine_fits(vcpus, memory_mib, ready_timeout)
    require_root("up")
    cpus = pinning.parse_pin(pin, vcpus)
    devices = check_devices(list(passthrough))
    if image_file is not None and not Path(image_file).expanduser().is_file():
        raise VmInputError("image file does not exist", file=str(image_file), key="--image")
    claim = _claim_name(name)  # held until up returns: a second `vm up` of this name is refused meanwhile
    try:
        return _start(name, vcpus=vcpus, memory_mib=memory_mib, accel=accel, cpus=cpus, devices=devices,
                      image_file=image_file, ready_timeout=ready_timeout)
    finally:
        os.close(claim)


def _claim_name(name: str) -> int:
    """An exclusive ``flock`` on ``<vms>/.<name>.claim``: two ``vm up`` of one name at once cannot both start."""
    import fcntl

    paths.VMS.mkdir(parents=True, exist_ok=True)
    path = paths.VMS / f".{name}.claim"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise VmInputError(f"guest name {name!r} is in use (another `vhpc vm up` is starting it"
                           + (f", pid {holder}" if holder else "") + ")", key="--name") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _start(name: str, *, vcpus: int, memory_mib: int, accel: str, cpus: Any, devices: Any,
           image_file: str | Path | None, ready_timeout: float) -> GuestInfo:
    """``up`` once its inputs are checked and the name is claimed."""
    running = guest_qemus(name)
    if state_path(name).exists() or running or inventory_path(name).exists():
        what = f"QEMU pid {running[0]}" if running else (
            f"state {state_path(name)}" if state_path(name).exists() else f"inventory {inventory_path(name)}")
        raise VmInputError(f"guest name {name!r} is in use ({what}); run `vhpc vm down --name {name}` first",
                           key="--name")
    choice = choose_accel(accel) if accel != "auto" else None  # an explicit kvm is refused before any build
    image = user_image(image_file) if image_file is not None else build_image()
    choice = choice or choose_accel(accel, kernel=image.kernel)

    started = time.perf_counter()
    folder = vm_folder(name)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    state: dict = {
        "schema": STATE_SCHEMA, "name": name, "complete": False, "folder": str(folder),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "hostname": f"vm-{name}", "vcpus": vcpus, "memory_mib": memory_mib,
        "accel": choice.accel, "accel_reason": choice.reason, "vmm": choice.vmm, "accel_requested": accel,
        "pin": cpus, "passthrough": [d.bdf for d in devices], "image": image.to_dict(),
        "client_key": str(image.client_key), "known_hosts": str(folder / "known_hosts"),
        "overlay": str(folder / "overlay.qcow2"), "qmp_socket": str(folder / "qmp.sock"),
        "serial_log": str(folder / "serial.log"), "pidfile": str(folder / "qemu.pid"),
        "seed": str(folder / "seed.iso") if image.needs_seed else None,
        "inventory": str(inventory_path(name)), "pid": None, "ssh_port": None, "vcpu_threads": None,
        "vcpu_map": None,
    }
    # The guest's own copy of the key: the image (and its key) may be pruned from the cache while it runs.
    key = folder / "client_ed25519"
    shutil.copy2(image.client_key, key)
    shutil.copy2(image.client_key.with_suffix(".pub"), key.with_suffix(".pub"))
    key.chmod(0o600)
    state["client_key"] = str(key)
    save_state(state)
    try:
        _boot(state, image, ready_timeout)
    except BaseException as exc:
        kept = _keep_serial_log(state)
        try:
            down(name)
        except VhpcError:
            pass  # the original failure is what the caller needs to see
        if kept is not None and isinstance(exc, VhpcError):
            exc.file = str(kept)  # the error names the log that survives the clean-up
        raise exc
    state["ready_s"] = round(time.perf_counter() - started, 1)
    state["complete"] = True
    save_state(state)
    return _info(state)


def _keep_serial_log(state: dict) -> Path | None:
    """Copy a failed guest's serial console next to the guest folders before ``down`` removes the folder."""
    serial = Path(state["serial_log"])
    if not serial.is_file() or serial.stat().st_size == 0:
        return None
    kept = paths.VMS / f"{state['name']}-failed-{state['created_utc'].replace(':', '')}.serial.log"
    shutil.copy2(serial, kept)
    return kept


def _boot(state: dict, image: GuestImage, ready_timeout: float) -> None:
    create_overlay(image, Path(state["overlay"]))
    if image.needs_seed:
        make_seed(Path(state["seed"]), public_key=Path(state["client_key"]).with_suffix(".pub").read_text(),
                  hostname=state["hostname"], instance_id=f"vhpc-{state['name']}-{state['created_utc']}")
    for attempt in range(3):  # the free port can be taken between choosing and binding it
        state["ssh_port"] = free_port("127.0.0.1")
        save_state(state)
        spec = GuestSpec(name=state["name"], hostname=state["hostname"], vcpus=state["vcpus"],
                         memory_mib=state["memory_mib"], accel=state["accel"], image=image,
                         overlay=Path(state["overlay"]), ssh_port=state["ssh_port"],
                         qmp_socket=Path(state["qmp_socket"]), serial_log=Path(state["serial_log"]),
                         pidfile=Path(state["pidfile"]), seed=Path(state["seed"]) if state["seed"] else None,
                         passthrough=tuple(state["passthrough"]))
        try:
            state["pid"] = start(spec)
            break
        except VmError as exc:
            if "host forwarding" not in str(exc) or attempt == 2:
                raise
    save_state(state)
    with QmpClient(state["qmp_socket"]).connect(wait=10) as qmp:
        threads = pinning.vcpu_threads(qmp) if state["pin"] else {
            int(c["cpu-index"]): int(c["thread-id"]) for c in qmp.execute("query-cpus-fast")}
        state["vcpu_threads"] = threads
        if state["pin"]:
            state["vcpu_map"] = pinning.pin_threads(state["pid"], threads, state["pin"])
        else:
            state["vcpu_map"] = pinning.read_map(state["pid"], threads)
        if state["accel"] == "kvm":
            kvm = qmp.execute("query-kvm")
            if not kvm.get("enabled"):
                raise VmError(f"QEMU reports KVM not enabled ({kvm}) although -accel kvm was asked")
    save_state(state)
    ssh = GuestSsh(state["ssh_port"], Path(state["client_key"]), Path(state["known_hosts"]))
    pid = state["pid"]
    state["ssh_ready_s"] = round(wait_for_ssh(ssh, Path(state["serial_log"]), alive=lambda: _alive(pid),
                                              timeout=ready_timeout), 1)
    save_state(state)
    if image.provisioned:
        state["provision"] = image.provisioned
    else:
        state["provision"] = install(ssh, prepare_payload())
    save_state(state)
    write_inventory(state, Path(state["inventory"]))


def _info(state: dict) -> GuestInfo:
    return GuestInfo(name=state["name"], pid=state["pid"], accel=state["accel"], accel_reason=state["accel_reason"],
                     vmm=state["vmm"], vcpus=state["vcpus"], memory_mib=state["memory_mib"],
                     ssh_port=state["ssh_port"], vcpu_map={int(k): v for k, v in (state["vcpu_map"] or {}).items()},
                     pinned=bool(state["pin"]), inventory=Path(state["inventory"]),
                     environment=environment_name(state["name"]), state_file=state_path(state["name"]),
                     ready_s=state.get("ready_s", 0.0), provision=state.get("provision") or {})


def info(name: str) -> GuestInfo:
    """A guest that is up (``VmInputError`` if it is not)."""
    validate_name(name)
    state = load_state(name)
    if state is None or not state.get("complete"):
        raise VmInputError(f"guest {name!r} is not up; run `vhpc vm up --name {name}`", file=str(state_path(name)))
    return _info(state)


# ------------------------------------------------------------------ vCPU map

def vcpu_map(state: dict) -> dict[int, list[int]]:
    """``{vcpu: [host CPUs]}`` of a running guest as the kernel reports it now (read back from /proc).

    ``VmError`` if the guest's QEMU (or a vCPU thread) is gone.
    """
    pid = state.get("pid")
    if not _alive(pid) or not _is_guest_qemu(pid, state["name"]):
        raise VmError(f"guest {state['name']!r} is not running (QEMU pid {pid})", file=str(state_path(state["name"])))
    threads = {int(k): int(v) for k, v in (state.get("vcpu_threads") or {}).items()}
    return pinning.read_map(pid, threads)


def vcpu_map_for(state_file: str | Path) -> dict:
    """What a run record of a guest environment stores: placement as run and the vCPU map read back now.

    ``state_file`` is the guest's state file (``state.state_path``). Returns ``{"policy":
    "pinned"|"scheduler", "accel": ..., "map": {"0": [0], ...}, "verified": bool|None, "read_utc": ...}``.
    """
    state = load_state_file(state_file)
    read = vcpu_map(state)
    pin = state.get("pin")
    return {"policy": "pinned" if pin else "scheduler", "accel": state.get("accel"),
            "map": {str(v): cpus for v, cpus in read.items()},
            # pinned: every vCPU thread may run on exactly its host CPU, as asked
            "verified": (read == {v: [cpu] for v, cpu in enumerate(pin)}) if pin else None,
            "read_utc": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")}


# ------------------------------------------------------------------ status

def status() -> list[GuestStatus]:
    """Every guest with a folder under ``vms/``: process, accelerator, pinning read back now, SSH port."""
    out = []
    for name in known_names():
        state = load_state(name) or {}
        if state.get("corrupt"):
            out.append(GuestStatus(name, bool(guest_qemus(name)), None, None, None, None, None, False, False, None,
                                   None, ("state file is unreadable",)))
            continue
        pid = state.get("pid")
        running = _alive(pid) and _is_guest_qemu(pid, name)
        problems = []
        current = None
        if running:
            try:
                current = vcpu_map(state)
            except VmError as exc:
                problems.append(str(exc))
        elif pid:
            problems.append(f"QEMU pid {pid} is not running")
        if not state.get("complete"):
            problems.append("vm up did not finish (crashed or still running); run vm down")
        listening = _port_listening(state.get("ssh_port")) if running else False
        if running and not listening:
            problems.append(f"nothing listens on the SSH port {state.get('ssh_port')}")
        if running and state.get("pin") and current and any(current[v] != [c] for v, c in enumerate(state["pin"])):
            problems.append(f"pinning changed since up: asked {state['pin']}, now {current}")
        out.append(GuestStatus(name, running, pid, state.get("accel"), state.get("accel_reason"), state.get("vcpus"),
                               state.get("ssh_port"), listening, bool(state.get("pin")), current,
                               state.get("inventory"), tuple(problems)))
    return out


# ------------------------------------------------------------------ down

def _powerdown(state: dict, pid: int) -> str:
    """``poweroff`` over SSH, then the ACPI power button through QMP, then SIGTERM, then SIGKILL; how it ended.

    SSH first: a minimal guest has no logind/acpid listening to the power button.
    A guest whose ``up`` never finished has nothing to shut down cleanly: it is killed.
    """
    if not state.get("complete"):
        return _kill(pid)
    if state.get("ssh_port") and state.get("known_hosts") and Path(state["known_hosts"]).exists():
        ssh = GuestSsh(state["ssh_port"], Path(state["client_key"]), Path(state["known_hosts"]))
        try:
            ssh.run("systemctl poweroff", timeout=15, check=False)
        except VhpcError:
            pass
        if _wait_gone(pid, POWERDOWN_TIMEOUT):
            return "powered off (ssh)"
    qmp = state.get("qmp_socket")
    if qmp and Path(qmp).exists():
        try:
            with QmpClient(qmp, timeout=5).connect() as client:
                client.execute("system_powerdown")
            if _wait_gone(pid, POWERDOWN_TIMEOUT / 3):
                return "powered off (ACPI)"
        except VmError:
            pass
    return _kill(pid)


def _kill(pid: int) -> str:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return "gone"
        if _wait_gone(pid, wait):
            return f"killed ({sig.name})"
    raise VmError(f"QEMU pid {pid} survived SIGKILL")


def down(name: str) -> list[str]:
    """Stop guest ``name`` and remove what ``up`` created (never the cached image); idempotent.

    Returns what was removed. ``VmError`` if a QEMU process, the QMP socket or
    the SSH port is still there afterwards.
    """
    validate_name(name)
    require_root("down")
    state = load_state(name) or {}
    folder = vm_folder(name)
    removed: list[str] = []
    pids = [p for p in dict.fromkeys([state.get("pid"), *guest_qemus(name)]) if p]
    for pid in pids:
        if _alive(pid) and _is_guest_qemu(pid, name):
            removed.append(f"qemu pid {pid}: {_powerdown(state, pid)}")
    inventory = Path(state.get("inventory") or inventory_path(name))
    for path in dict.fromkeys([inventory, inventory_path(name)]):
        if path.is_file():
            path.unlink()
            removed.append(f"file {path}")
    if folder.exists():
        shutil.rmtree(folder)
        removed.append(f"folder {folder}")
    (paths.VMS / f".{name}.claim").unlink(missing_ok=True)  # an up that is starting keeps its open claim
    left = [f"qemu pid {p}" for p in guest_qemus(name)]
    if state.get("qmp_socket") and Path(state["qmp_socket"]).exists():
        left.append(f"socket {state['qmp_socket']}")
    if _port_listening(state.get("ssh_port")):
        left.append(f"port 127.0.0.1:{state['ssh_port']} still listening")
    if left:
        raise VmError(f"guest {name!r} not fully removed: {', '.join(left)}")
    return removed



