"""Host fingerprints: what a host really is (kernel, CPU, topology, virtualization, RDMA, MPI).

One shell round trip prints labelled sections; a pure parser turns them into a
dict. Every probe is guarded, so a missing tool yields ``None`` instead of a
failure. Fingerprints are stored write-once under
``data/raw/<campaign>/<environment>/fingerprint/<host>.json`` and referenced
by run records.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import paths
from .exceptions import ParseError, RemoteError, StoreError
from .mpi import MpiRuntime, version_command
from .remote import CommandResult, Executor, with_env
from .names import Campaign, check_id
from .topology import LSCPU_COMMAND, parse_lscpu

SCHEMA_VERSION = 1
#: Keys that change between two collections of an unchanged host.
VOLATILE = ("collected_utc", "duration_s")
_BEGIN = re.compile(r"^@@vhpc-begin (?P<name>[a-z_]+)@@$")
_END = re.compile(r"^@@vhpc-end (?P<name>[a-z_]+) rc=(?P<rc>\d+)@@$")
_MISSING = re.compile(r"^@@vhpc-missing (?P<name>[a-z_]+)@@$")
_RDMA_PCI = re.compile(r"mellanox|infiniband|rdma|omni-?path|\[15b3:", re.IGNORECASE)

def _cat(path: str) -> str:
    """Print a file with shell builtins only: every fork costs CPU on the probed host."""
    return f"while IFS= read -r l || [ -n \"$l\" ]; do printf '%s\\n' \"$l\"; done < {path}"


def _grep_prefix(path: str, prefix: str, strip: bool = False) -> str:
    """Lines of a file starting with ``prefix`` (optionally without it), with builtins only."""
    out = f'"${{l#{prefix}}}"' if strip else '"$l"'
    return f"while IFS= read -r l; do case $l in {prefix}*) printf '%s\\n' {out};; esac; done < {path}"


# (section, guard, command): the guard is a shell test that is false when the tool or file is absent.
# Commands use shell builtins where they can: the script runs on every host of a fan-out at once.
_PROBES: list[tuple[str, str, str]] = [
    ("hostname", "[ -r /proc/sys/kernel/hostname ]", _cat("/proc/sys/kernel/hostname")),
    ("boot_id", "[ -r /proc/sys/kernel/random/boot_id ]", _cat("/proc/sys/kernel/random/boot_id")),
    ("kernel", "[ -r /proc/sys/kernel/osrelease ]", _cat("/proc/sys/kernel/osrelease")),
    ("os", "[ -r /etc/os-release ]", _grep_prefix("/etc/os-release", "PRETTY_NAME=", strip=True)),
    ("lscpu_p", "command -v lscpu", f"LC_ALL=C {LSCPU_COMMAND}"),
    ("lscpu", "command -v lscpu", "LC_ALL=C lscpu | grep -E '^(Model name|Hypervisor vendor|Virtualization type|"
                                  "Virtualization|Socket\\(s\\)|Core\\(s\\) per socket|Thread\\(s\\) per core|"
                                  "NUMA node\\(s\\)|CPU\\(s\\)|Architecture):'"),
    ("meminfo", "[ -r /proc/meminfo ]", _grep_prefix("/proc/meminfo", "MemTotal:")),
    ("detect_virt_vm", "command -v systemd-detect-virt", "systemd-detect-virt --vm"),
    ("detect_virt_container", "command -v systemd-detect-virt", "systemd-detect-virt --container"),
    ("sys_hypervisor", "[ -r /sys/hypervisor/type ]", _cat("/sys/hypervisor/type")),
    ("infiniband", "[ -d /sys/class/infiniband ]",
     "for d in /sys/class/infiniband/*; do [ -e \"$d\" ] && printf '%s\\n' \"${d##*/}\"; done; true"),
    ("lspci", "command -v lspci", "lspci -nn | grep -Ei 'ethernet|network|infiniband|fabric'"),
    ("ibv_devinfo", "command -v ibv_devinfo", "ibv_devinfo | grep -E '^hca_id:|fw_ver:|state:|link_layer:'"),
    ("governor", "[ -r /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor ]",
     _cat("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")),
    ("clocksource", "[ -r /sys/devices/system/clocksource/clocksource0/current_clocksource ]",
     _cat("/sys/devices/system/clocksource/clocksource0/current_clocksource")),
]


def fingerprint_script(runtime: MpiRuntime | None = None) -> str:
    """The shell script printing every labelled section (one round trip, always exits 0)."""
    from .providers import layer_probes

    probes = [(name, guard, f"{{ {command}; }}") for name, guard, command in [*_PROBES, *layer_probes()]]
    if runtime is not None:  # a subshell: its variables must not leak into later probes
        probes.append(("mpi_version", f"command -v {shlex.quote(runtime.mpirun)}",
                       f"( {with_env(version_command(runtime), runtime.env)} )"))
        probes.append(("mpi_stat", f"[ -e {shlex.quote(runtime.mpirun)} ]",
                       f"stat -L -c '%s %Y' {shlex.quote(runtime.mpirun)}"))
    parts = []
    for name, guard, command in probes:
        parts.append(f"echo '@@vhpc-begin {name}@@'\n"
                     f"if {guard} >/dev/null 2>&1; then {command} 2>/dev/null; "
                     f"printf '\\n@@vhpc-end {name} rc=%s@@\\n' \"$?\"; "
                     f"else echo '@@vhpc-missing {name}@@'; fi")
    return "\n".join(parts) + "\nexit 0\n"


def split_sections(text: str) -> dict[str, tuple[str | None, int | None]]:
    """``{section: (output, exit code)}``; output is None when the tool or file was missing."""
    sections: dict[str, tuple[str | None, int | None]] = {}
    current: str | None = None
    buffer: list[str] = []
    for line in text.splitlines():
        if m := _BEGIN.match(line):
            current, buffer = m["name"], []
        elif m := _END.match(line):
            if current == m["name"]:
                sections[current] = ("\n".join(buffer).strip(), int(m["rc"]))
            current = None
        elif m := _MISSING.match(line):
            sections[m["name"]] = (None, None)
            current = None
        elif current is not None:
            buffer.append(line)
    return sections


def _key_values(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _value(sections: dict, name: str, ok_codes: tuple[int, ...] = (0,)) -> str | None:
    text, rc = sections.get(name, (None, None))
    if text is None or rc not in ok_codes or text == "":
        return None
    return text


def _parse_ibv(text: str | None) -> list[dict[str, str]]:
    devices: list[dict[str, str]] = []
    for line in (text or "").splitlines():
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if key == "hca_id":
            devices.append({"hca_id": value})
        elif devices and key in ("fw_ver", "state", "link_layer") and key not in devices[-1]:
            devices[-1][key] = value
    return devices


def parse_fingerprint(text: str) -> dict[str, Any]:
    """Turn the output of ``fingerprint_script`` into facts (pure; tested on captured output)."""
    sections = split_sections(text)
    if not sections:
        raise ParseError("no fingerprint sections in output (was fingerprint_script run?)", file="fingerprint")
    lscpu = _key_values(_value(sections, "lscpu"))

    topology: dict[str, int] | None = None
    if (lscpu_p := _value(sections, "lscpu_p")) is not None:
        try:
            topology = parse_lscpu(lscpu_p, file="lscpu -p").summary()
        except ParseError:
            topology = None
    if topology is None and _int(lscpu.get("Socket(s)")):
        sockets = _int(lscpu.get("Socket(s)")) or 1
        cores = _int(lscpu.get("Core(s) per socket")) or 1
        threads = _int(lscpu.get("Thread(s) per core")) or 1
        topology = {"sockets": sockets, "cores_per_socket": cores, "threads_per_core": threads,
                    "numa_nodes": _int(lscpu.get("NUMA node(s)")) or 1,
                    "logical_cpus": _int(lscpu.get("CPU(s)")) or sockets * cores * threads}

    mem_kib = None
    if (mem := _value(sections, "meminfo")) and (m := re.search(r"MemTotal:\s+(\d+)\s*kB", mem)):
        mem_kib = int(m.group(1))

    # systemd-detect-virt prints "none" and exits 1 on bare metal: "none" is an answer, not a failure.
    # Its plain answer is the container if there is one, else the VM: derived from the two probes.
    detect_vm = _value(sections, "detect_virt_vm", (0, 1))
    detect_container = _value(sections, "detect_virt_container", (0, 1))
    sys_hypervisor = _value(sections, "sys_hypervisor")
    vendor = lscpu.get("Hypervisor vendor")
    vm = detect_vm if detect_vm is not None else (
        vendor.lower() if vendor else (sys_hypervisor or ("none" if lscpu else None)))
    # A container only on positive evidence from the providers' layer probes: this project's machines have
    # /.dockerenv and systemd-detect-virt says "docker" on the bare host. What it said is kept beside it.
    layer = _layer(sections)
    container = detect_container if layer["detected"] is not None else "none"
    if container and container != "none":
        detected = container
    else:
        detected = vm or "unknown"
    is_vm = vm not in (None, "none")

    ib_devices = (_value(sections, "infiniband") or "").split()
    lspci_text = _value(sections, "lspci")
    nics = lspci_text.splitlines() if lspci_text else ([] if sections.get("lspci", (None,))[0] is not None else None)
    rdma_pci = [line for line in (nics or []) if _RDMA_PCI.search(line)]
    ibv = _parse_ibv(_value(sections, "ibv_devinfo"))

    os_name = _value(sections, "os")
    return {
        "schema_version": SCHEMA_VERSION,
        "hostname": _value(sections, "hostname"),
        "boot_id": _value(sections, "boot_id"),
        # What `probe` compares to tell whether a stored fingerprint still describes the host.
        "probe": {"boot_id": _value(sections, "boot_id"), "hostname": _value(sections, "hostname"),
                  "mpi_stat": _value(sections, "mpi_stat")},
        "kernel": _value(sections, "kernel"),
        "os": os_name.strip().strip('"').strip("'") if os_name else None,
        "cpu": {"model": lscpu.get("Model name"), "architecture": lscpu.get("Architecture"),
                "hypervisor_vendor": vendor, "virtualization_type": lscpu.get("Virtualization type")},
        "topology": topology,
        "memory": {"total_kib": mem_kib, "total_gib": round(mem_kib / 2**20, 1) if mem_kib else None},
        "virtualization": {"detected": detected, "vm": vm, "container": container,
                           "sys_hypervisor": sys_hypervisor, "is_vm": bool(is_vm),
                           "detect_virt_container": detect_container},
        "network": {"pci": nics},
        "rdma": {"devices": ib_devices, "pci": rdma_pci, "ibv": ibv,
                 "passthrough_suspected": bool(is_vm and (rdma_pci or ib_devices))},
        "governor": _value(sections, "governor"),
        "clocksource": _value(sections, "clocksource"),
        "mpi_version": _value(sections, "mpi_version"),
        "probes_missing": sorted(n for n, (t, _) in sections.items() if t is None),
        # The layer as seen from inside, on positive evidence only (the environment providers' own probes).
        "layer": layer,
    }


def _layer(sections: dict[str, tuple[str | None, int | None]]) -> dict[str, Any]:
    from .providers import LAYER_PREFIX, detect_layer

    evidence = {name: _value(sections, name) for name in sections if name.startswith(LAYER_PREFIX)}
    return {"detected": detect_layer(evidence), "evidence": evidence}


def facts_from_result(host: str, result: CommandResult) -> dict[str, Any]:
    """Facts of ``host`` from a finished run of ``fingerprint_script``."""
    if not result.ok:
        raise RemoteError("fingerprint script failed", host=host, command="fingerprint",
                          exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr)
    try:
        facts = parse_fingerprint(result.stdout)
    except ParseError as exc:
        raise RemoteError(f"fingerprint output unreadable: {exc.message}", host=host, command="fingerprint",
                          stdout=result.stdout, stderr=result.stderr) from None
    return {"host": host, **facts, "collected_utc": result.started_utc, "duration_s": round(result.duration_s, 3)}


def collect_fingerprint(executor: Executor, runtime: MpiRuntime | None = None,
                        timeout: float | None = None) -> dict[str, Any]:
    """Facts of one host in a single shell round trip; raises HostUnreachable/RemoteError."""
    result = executor.run(fingerprint_script(runtime), timeout=timeout, warn=True)
    return facts_from_result(executor.name, result)


# ---------------------------------------------------------------- storing

def _stable(facts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if k not in VOLATILE}


def _safe_host(host: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", host).lstrip(".") or "host"


def fingerprint_dir(campaign: str, environment: str, store_root: Path | None = None) -> Path:
    root = Path(store_root) if store_root else paths.RAW
    return root / Campaign(campaign) / check_id("environment", environment) / "fingerprint"


def _write_new(target: Path, text: str) -> bool:
    """Create ``target`` atomically; False if it already exists (never overwritten)."""
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text)  # a full disk fails here: the partial file goes too
        os.link(tmp, target)  # atomic and refuses to replace an existing file
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def store_fingerprint(facts: dict[str, Any], campaign: str, environment: str,
                      store_root: Path | None = None) -> Path:
    """Write facts write-once to ``.../fingerprint/<host>.json`` and return the path used.

    Unchanged facts (timestamps aside) reuse the latest existing file; changed
    facts go to a new ``<host>.<UTC stamp>.json`` so earlier runs keep their reference.
    """
    folder = fingerprint_dir(campaign, environment, store_root)
    folder.mkdir(parents=True, exist_ok=True)
    host = _safe_host(str(facts.get("host") or facts.get("hostname") or "host"))
    text = json.dumps(facts, indent=2, sort_keys=True, default=str) + "\n"
    for _ in range(5):
        versions = sorted(folder.glob(f"{host}.json")) + sorted(
            p for p in folder.glob(f"{host}.*.json") if re.fullmatch(rf"{re.escape(host)}\.\d{{8}}T\d+Z\.json", p.name))
        if versions:
            latest = versions[-1]
            try:
                if _stable(json.loads(latest.read_text())) == _stable(json.loads(text)):
                    return latest
            except (OSError, ValueError):
                pass
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            target = folder / f"{host}.{stamp}.json"
        else:
            target = folder / f"{host}.json"
        if _write_new(target, text):
            return target
    raise StoreError(f"could not store fingerprint of {host}: too many concurrent writers", file=str(folder))


def load_fingerprint(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())



# ---------------------------------------------------------------- reuse: once per host per campaign

def probe_script(runtime: MpiRuntime | None = None) -> str:
    """A few builtins and one stat: what tells whether a host changed since its fingerprint (boot, name, MPI)."""
    mpirun = shlex.quote(runtime.mpirun) if runtime is not None else "''"
    return ("printf 'boot_id=%s\\n' \"$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)\"\n"
            "printf 'hostname=%s\\n' \"$(cat /proc/sys/kernel/hostname 2>/dev/null)\"\n"
            f"printf 'mpi_stat=%s\\n' \"$(stat -L -c '%s %Y' {mpirun} 2>/dev/null)\"\n")


def parse_probe(text: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {"boot_id": None, "hostname": None, "mpi_stat": None}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in out:
            out[key] = value.strip() or None
    return out


def local_probe(runtime: MpiRuntime | None = None) -> dict[str, str | None]:
    """``probe_script``'s answer for this machine, without starting a process."""
    def read(path: str) -> str | None:
        try:
            return Path(path).read_text().strip() or None
        except OSError:
            return None

    mpi_stat = None
    if runtime is not None:
        try:
            info = os.stat(runtime.mpirun)
            mpi_stat = f"{info.st_size} {int(info.st_mtime)}"
        except OSError:
            pass
    return {"boot_id": read("/proc/sys/kernel/random/boot_id"), "hostname": read("/proc/sys/kernel/hostname"),
            "mpi_stat": mpi_stat}


def latest_fingerprint(campaign: str, environment: str, host: str,
                       store_root: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The newest stored fingerprint of ``host`` in a campaign (None when there is none or it is unreadable)."""
    folder = fingerprint_dir(campaign, environment, store_root)
    name = _safe_host(host)
    versions = sorted(folder.glob(f"{name}.json")) + sorted(
        p for p in folder.glob(f"{name}.*.json") if re.fullmatch(rf"{re.escape(name)}\.\d{{8}}T\d+Z\.json", p.name))
    if not versions:
        return None
    try:
        facts = json.loads(versions[-1].read_text())
    except (OSError, ValueError):
        return None
    return (versions[-1], facts) if isinstance(facts, dict) else None
