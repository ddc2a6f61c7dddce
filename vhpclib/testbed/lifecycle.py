"""Bring a testbed up, report its status, shape its links, and take it down.

``up`` records every object it creates in ``testbeds/<name>/state.json`` as it
goes, so ``down`` can undo a half-finished or crashed ``up``. ``down`` also
discovers leftovers by name (``vtb-<name>-...`` namespaces and links, sshd
processes whose config lives in the testbed folder) and touches nothing else.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psutil

from .. import paths
from ..exceptions import SlurmClusterError, TestbedError, VhpcError
from ..fsutil import atomic_write
from ..slurm import cluster as slurm_cluster
from ..sshd import SSHD, SshKeys, SshServer, generate_keys, sshd_available, write_known_hosts
from . import netns as ns
from .inventory import Launch, inventory_path, write_inventory
from .shaping import apply_rate, normalise_rate, shaping_status

SSH_PORT = 22  # every node has its own network namespace, so the standard port is free in each
STATE_FILE = "state.json"
STATE_SCHEMA = 1
REQUIRED_TOOLS = {"ip": "iproute2", "tc": "iproute2", "unshare": "util-linux", "nsenter": "util-linux",
                  "ssh": "openssh-client"}

# sshd servers started by this process, per testbed: stopping them through their Popen reaps them.
_servers: dict[str, list[SshServer]] = {}


@dataclass(frozen=True)
class NodeInfo:
    index: int
    hostname: str
    address: str
    namespace: str
    port: int
    sshd_pid: int | None


@dataclass(frozen=True)
class TestbedInfo:
    """A testbed that is up: where its nodes are and the files that describe it."""

    __test__ = False  # not a pytest test class

    name: str
    nodes: tuple[NodeInfo, ...]
    bridge: str
    bridge_address: str
    subnet: str
    rate: str | None
    folder: Path
    state_file: Path
    known_hosts: Path
    client_key: Path
    inventory: Path
    seconds: float = 0.0
    slurm_conf: Path | None = None  # the private Slurm cluster's slurm.conf (``up(..., slurm=True)``)

    @property
    def addresses(self) -> list[str]:
        return [n.address for n in self.nodes]

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("folder", "state_file", "known_hosts", "client_key", "inventory"):
            data[key] = str(data[key])
        data["slurm_conf"] = str(self.slurm_conf) if self.slurm_conf else None
        return data


@dataclass(frozen=True)
class NodeStatus:
    index: int
    hostname: str
    address: str
    namespace: str
    namespace_present: bool
    sshd_pid: int | None
    sshd_alive: bool
    uts_hostname: str | None  # what the node's sshd (and every session) sees as its host name
    qdisc: str | None
    rate: str | None
    tx_bytes: int | None
    rx_bytes: int | None


@dataclass(frozen=True)
class TestbedStatus:
    """What exists of a testbed now; ``leftovers`` lists objects found by name but not in a state file."""

    __test__ = False

    name: str
    up: bool
    subnet: str | None = None
    bridge: str | None = None
    bridge_present: bool = False
    rate: str | None = None
    inventory: Path | None = None
    nodes: tuple[NodeStatus, ...] = ()
    leftovers: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def healthy(self) -> bool:
        return self.up and not self.problems and not self.leftovers

    def to_dict(self) -> dict:
        data = asdict(self)
        data["inventory"] = str(self.inventory) if self.inventory else None
        data["healthy"] = self.healthy
        return data


# ------------------------------------------------------------------ preconditions

def _euid() -> int:
    return os.geteuid()


def require_root(action: str) -> None:
    """Network namespaces, bridges and tc need root: refuse early with a message that says so."""
    if _euid() != 0:
        raise TestbedError(f"'testbed {action}' needs root (it creates network namespaces, a bridge and "
                           f"an sshd per node); run it as root, e.g. with sudo, or in the CI container")


def _require_tools() -> None:
    missing = [f"{tool} ({package})" for tool, package in REQUIRED_TOOLS.items() if shutil.which(tool) is None]
    if not SSHD.is_file():
        missing.append(f"{SSHD} (openssh-server)")
    if missing:
        raise TestbedError("missing tools for a testbed: " + ", ".join(missing))


# ------------------------------------------------------------------ state file

def testbed_folder(name: str) -> Path:
    return paths.TESTBEDS / name


def _state_path(name: str) -> Path:
    return testbed_folder(name) / STATE_FILE


def _save_state(state: dict) -> None:
    atomic_write(Path(state["folder"]) / STATE_FILE, json.dumps(state, indent=2) + "\n")


def _load_state(name: str) -> dict | None:
    path = _state_path(name)
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"name": name, "corrupt": True}  # down still cleans up by discovery
    return state if isinstance(state, dict) else {"name": name, "corrupt": True}


def _info(state: dict, seconds: float = 0.0) -> TestbedInfo:
    return TestbedInfo(
        name=state["name"],
        nodes=tuple(NodeInfo(n["index"], n["hostname"], n["address"], n["namespace"], state["port"],
                             n.get("sshd_pid")) for n in state["nodes"]),
        bridge=state["bridge"]["name"], bridge_address=state["bridge"]["address"], subnet=state["subnet"],
        rate=state.get("rate"), folder=Path(state["folder"]), state_file=Path(state["folder"]) / STATE_FILE,
        known_hosts=Path(state["known_hosts"]), client_key=Path(state["client_key"]),
        inventory=Path(state["inventories"]["node"]), seconds=seconds,
        slurm_conf=Path(state["slurm"]["conf"]) if state.get("slurm") else None)


def info(name: str = "vhpc") -> TestbedInfo:
    """The recorded description of a testbed that is up (``TestbedError`` if there is none)."""
    ns.validate_name(name)
    state = _load_state(name)
    if state is None or state.get("corrupt") or not state.get("complete"):
        raise TestbedError(f"testbed {name!r} is not up (no complete state file); run `vhpc testbed up`",
                           file=str(_state_path(name)))
    return _info(state)


def state(name: str = "vhpc") -> dict:
    """The recorded state of a testbed that is up (its nodes, namespaces, keys; ``TestbedError`` if none)."""
    info(name)
    return dict(_load_state(name) or {})


# ------------------------------------------------------------------ processes

def _process(pid: int) -> psutil.Process | None:
    """The running process ``pid`` (a zombie counts as gone; reap it if it is our child)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return None
    except ChildProcessError:
        pass
    try:
        proc = psutil.Process(pid)
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc
    except psutil.Error:
        return None


def _alive(pid: int) -> bool:
    return _process(pid) is not None


def _is_testbed_sshd(pid: int, folder: Path) -> bool:
    """True only for an sshd whose config file lives in this testbed's folder."""
    proc = _process(pid)
    try:
        return proc is not None and proc.exe() == str(SSHD) and f" -f {folder}/" in " " + " ".join(proc.cmdline())
    except psutil.Error:
        return False


def _terminate(pid: int, timeout: float = 5.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; True if the process was running."""
    proc = _process(pid)
    if proc is None:
        return False
    try:
        proc.terminate()
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        proc.kill()
    except psutil.NoSuchProcess:
        pass
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:  # not our child: gone once it is a zombie
        time.sleep(0.02)
    return True


def _testbed_sshds(folder: Path) -> list[int]:
    """Discovery after a crash: every sshd started with a config from ``folder``."""
    return sorted(p.pid for p in psutil.process_iter(["exe"]) if p.info["exe"] == str(SSHD)
                  and _is_testbed_sshd(p.pid, folder))


def _uts_hostname(pid: int) -> str | None:
    done = subprocess.run(["nsenter", "-t", str(pid), "-u", "hostname"], capture_output=True, text=True,
                          timeout=10)
    return done.stdout.strip() if done.returncode == 0 else None


# ------------------------------------------------------------------ up

def _discover(names: ns.Names) -> list[str]:
    """Kernel objects and processes of this testbed that exist now, found by name."""
    found = [f"namespace {n}" for n in ns.list_namespaces() if names.owns(n)]
    found += [f"link {link['ifname']}" for link in ns.list_links() if names.owns(link.get("ifname", ""))]
    found += [f"sshd pid {pid}" for pid in _testbed_sshds(testbed_folder(names.name))]
    return found


def up(nodes: int, *, name: str = "vhpc", rate: str | None = None, slurm: bool = False) -> TestbedInfo:
    """Create ``nodes`` namespace nodes on a bridge, each with its own host name and sshd.

    Writes keys, known_hosts and ``state.json`` into ``testbeds/<name>/`` and a
    ready inventory ``inventories/testbed-<name>.yml`` (environment ``testbed``).
    ``rate`` (tc syntax, e.g. ``1gbit``) shapes every node's egress with tbf (a ceiling at every message
    size); latency cannot be emulated (no netem). ``slurm`` also starts a private Slurm cluster (slurmctld
    on node 1, a slurmd in every node, a private munged) and adds environment ``slurm`` to the inventory.
    Needs root. If anything fails, what was created is removed again and ``TestbedError`` says what failed.
    """
    ns.validate_name(name)
    ns.validate_nodes(nodes)
    rate = normalise_rate(rate) if rate is not None else None
    require_root("up")
    _require_tools()
    if (reason := sshd_available()):
        raise TestbedError(f"cannot start sshd: {reason}")
    if slurm:
        try:
            slurm_cluster.require_tools()
        except SlurmClusterError as exc:
            raise TestbedError(str(exc)) from None
    names = ns.Names(name)
    found = _discover(names)
    if _state_path(name).exists() or found:
        found_text = ", ".join(found) or f"state file {_state_path(name)}"
        raise TestbedError(f"testbed {name!r} already exists ({found_text}); "
                           f"run `vhpc testbed down --name {name}` first")

    started = time.perf_counter()
    folder = testbed_folder(name)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    subnet = ns.choose_subnet(name, ns.used_ipv4_networks())
    state: dict = {
        "schema": STATE_SCHEMA, "name": name, "complete": False,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "folder": str(folder), "subnet": str(subnet), "port": SSH_PORT, "rate": None,
        "bridge": {"name": names.bridge, "address": ns.bridge_address(subnet), "created": False},
        "nodes": [], "known_hosts": str(folder / "known_hosts"), "client_key": "",
        "inventories": {"node": str(inventory_path(paths.INVENTORIES, name, "node"))},
    }
    _save_state(state)
    try:
        _build(state, names, subnet, nodes, rate, slurm)
    except BaseException as exc:
        try:
            down(name)
        except VhpcError:
            pass  # the original failure is what the caller needs to see
        if isinstance(exc, VhpcError):
            raise TestbedError(f"testbed {name!r} could not be brought up (rolled back): {exc}") from exc
        raise
    return _info(state, time.perf_counter() - started)


def _build(state: dict, names: ns.Names, subnet: ipaddress.IPv4Network, nodes: int, rate: str | None,
           slurm: bool = False) -> None:
    folder = Path(state["folder"])
    ns.create_bridge(names.bridge, state["bridge"]["address"], subnet.prefixlen)
    state["bridge"]["created"] = True
    _save_state(state)
    for index in range(1, nodes + 1):
        node = {"index": index, "namespace": names.namespace(index), "veth": names.veth(index),
                "hostname": names.hostname(index), "address": ns.node_address(subnet, index), "sshd_pid": None}
        state["nodes"].append(node)
        _save_state(state)  # recorded before creation: down ignores what does not exist
        ns.create_namespace(node["namespace"])
        ns.create_node_link(node["namespace"], node["veth"], names.bridge, node["address"], subnet.prefixlen)

    client = generate_keys(folder / "keys")
    state["client_key"] = str(client.client_key)
    servers = _servers.setdefault(state["name"], [])
    for node in state["nodes"]:
        node_folder = folder / f"node{node['index']}"
        host = generate_keys(node_folder)  # a host key per node, like real machines
        keys = SshKeys(client_key=client.client_key, client_pub=client.client_pub, host_key=host.host_key,
                       host_pub=host.host_pub, authorized_keys=client.authorized_keys)
        server = SshServer(node_folder, keys, [node["address"]], SSH_PORT, netns=node["namespace"],
                           hostname=node["hostname"], name="sshd")
        node["sshd_pid"] = server.start()
        node["sshd_config"] = str(server.config_path)
        node["host_pub"] = str(host.host_pub)
        servers.append(server)
        _save_state(state)
    write_known_hosts(Path(state["known_hosts"]),
                      [(n["address"], SSH_PORT, Path(n["host_pub"])) for n in state["nodes"]])
    if rate is not None:
        for node in state["nodes"]:
            apply_rate(node["namespace"], rate)
        state["rate"] = rate
    if slurm:
        _start_slurm(state)
    write_inventory(state, Path(state["inventories"]["node"]), "node")
    state["complete"] = True
    _save_state(state)


def _start_slurm(state: dict) -> None:
    """A private Slurm cluster over the testbed's nodes, recorded in the state before it starts."""
    folder = Path(state["folder"]) / "slurm"
    state["slurm"] = {"folder": str(folder), "conf": str(folder / "slurm.conf")}
    _save_state(state)
    try:
        cluster = slurm_cluster.start_cluster(folder, slurm_cluster.testbed_nodes(state))
    except SlurmClusterError as exc:
        raise TestbedError(f"Slurm cluster did not start: {exc}") from None
    state["slurm"].update({"partition": cluster.partition, "job_dir": str(cluster.job_dir),
                           "cluster": cluster.name})
    _save_state(state)


# ------------------------------------------------------------------ shape, variant inventory

def shape(name: str, rate: str | None) -> None:
    """Set (or with ``None`` remove) the rate ceiling on every node link of a running testbed."""
    ns.validate_name(name)
    rate = normalise_rate(rate) if rate is not None else None
    require_root("shape")
    state = _load_state(name)
    if state is None or not state.get("complete"):
        raise TestbedError(f"testbed {name!r} is not up; run `vhpc testbed up --name {name}`")
    for node in state["nodes"]:
        apply_rate(node["namespace"], rate)
    state["rate"] = rate
    _save_state(state)
    for launch, path in state["inventories"].items():
        write_inventory(state, Path(path), launch)  # the description names the rate


def write_local_inventory(name: str = "vhpc", path: Path | None = None) -> Path:
    """Variant inventory: mpirun in this machine's root namespace, nodes through the bridge.

    Written to ``inventories/testbed-<name>-local.yml`` unless ``path`` is given;
    ``down`` removes it with the rest.
    """
    ns.validate_name(name)
    state = _load_state(name)
    if state is None or not state.get("complete"):
        raise TestbedError(f"testbed {name!r} is not up; run `vhpc testbed up --name {name}`")
    target = Path(path) if path else inventory_path(paths.INVENTORIES, name, "local")
    write_inventory(state, target, "local")
    state["inventories"]["local"] = str(target)
    _save_state(state)
    return target


# ------------------------------------------------------------------ status

def status(name: str = "vhpc") -> TestbedStatus:
    """Nodes, addresses, host names, sshd liveness, link shaping and byte counters of a testbed."""
    ns.validate_name(name)
    require_root("status")
    names = ns.Names(name)
    state = _load_state(name)
    if state is None or state.get("corrupt"):
        problems = ("state file is unreadable",) if state else ()
        return TestbedStatus(name=name, up=False, leftovers=tuple(_discover(names)), problems=problems)
    present_ns = set(ns.list_namespaces())
    links = {link.get("ifname") for link in ns.list_links()}
    problems: list[str] = []
    nodes = []
    for node in state.get("nodes", []):
        pid = node.get("sshd_pid")
        alive = bool(pid) and _alive(pid) and _is_testbed_sshd(pid, Path(state["folder"]))
        here = node["namespace"] in present_ns
        shaping = shaping_status(node["namespace"]) if here else {"qdisc": None, "rate": None}
        stats = ns.link_stats(node["namespace"]) if here else {}
        nodes.append(NodeStatus(
            index=node["index"], hostname=node["hostname"], address=node["address"],
            namespace=node["namespace"], namespace_present=here, sshd_pid=pid, sshd_alive=alive,
            uts_hostname=_uts_hostname(pid) if alive else None, qdisc=shaping["qdisc"], rate=shaping["rate"],
            tx_bytes=stats.get("tx", {}).get("bytes"), rx_bytes=stats.get("rx", {}).get("bytes")))
        if not here:
            problems.append(f"node {node['index']}: namespace {node['namespace']} is missing")
        if not alive:
            problems.append(f"node {node['index']}: sshd (pid {pid}) is not running")
    bridge_here = state["bridge"]["name"] in links
    if not bridge_here:
        problems.append(f"bridge {state['bridge']['name']} is missing")
    if not state.get("complete"):
        problems.append("testbed up did not finish (crashed or still running); run testbed down")
    known = {n["namespace"] for n in state.get("nodes", [])} | {n["veth"] for n in state.get("nodes", [])}
    known.add(state["bridge"]["name"])
    pids = {n.get("sshd_pid") for n in state.get("nodes", [])}
    leftovers = [item for item in _discover(names)
                 if item.split()[-1] not in known and not (item.startswith("sshd") and int(item.split()[-1]) in pids)]
    return TestbedStatus(name=name, up=bool(state.get("complete")) and bridge_here and all(
        n.namespace_present and n.sshd_alive for n in nodes), subnet=state.get("subnet"),
        bridge=state["bridge"]["name"], bridge_present=bridge_here, rate=state.get("rate"),
        inventory=Path(state["inventories"]["node"]), nodes=tuple(nodes), leftovers=tuple(leftovers),
        problems=tuple(problems))


# ------------------------------------------------------------------ down

def down(name: str = "vhpc") -> list[str]:
    """Remove everything testbed ``name`` created; return what was removed (empty if nothing was there).

    Idempotent, and works after a crash: it uses the state file when there is
    one and also finds leftovers by name (``vtb-<name>-<i>``, ``vtb-<name>-br``,
    sshds configured from the testbed folder). Processes still running inside
    the testbed's namespaces (SSH sessions, MPI ranks) are ended too. Nothing
    outside that naming scheme is touched.
    """
    ns.validate_name(name)
    require_root("down")
    names = ns.Names(name)
    folder = testbed_folder(name)
    state = _load_state(name) or {}
    removed = _stop_slurm(state, folder)
    removed += _stop_sshds(name, state, folder)
    namespaces = [n for n in ns.list_namespaces() if names.owns(n)]
    removed += _end_namespace_processes(namespaces)
    removed += _remove_links_and_namespaces(names, namespaces)
    removed += _remove_files(name, state, folder)
    return removed


def _stop_slurm(state: dict, folder: Path) -> list[str]:
    """The private Slurm cluster: jobs cancelled, daemons stopped by PID, its munged and key removed."""
    slurm_folder = Path(state["slurm"]["folder"]) if isinstance(state.get("slurm"), dict) else folder / "slurm"
    if not (slurm_folder / slurm_cluster.STATE_FILE).exists():
        return []
    try:
        return [f"slurm {item}" for item in slurm_cluster.stop_cluster(slurm_folder)]
    except SlurmClusterError as exc:
        raise TestbedError(f"could not stop the testbed's Slurm cluster: {exc}") from None


def _stop_sshds(name: str, state: dict, folder: Path) -> list[str]:
    """Those this process started (reaped through Popen), then recorded and discovered PIDs."""
    removed = []
    for server in _servers.pop(name, []):
        pid = server.pid
        if pid and _alive(pid):
            server.stop()
            removed.append(f"sshd pid {pid}")
    recorded = [n.get("sshd_pid") for n in state.get("nodes", []) if n.get("sshd_pid")]
    for pid in dict.fromkeys([*recorded, *_testbed_sshds(folder)]):
        if _is_testbed_sshd(pid, folder) and _terminate(pid):
            removed.append(f"sshd pid {pid}")
    return removed


def _end_namespace_processes(namespaces: list[str]) -> list[str]:
    """Whatever still runs inside our namespaces (sessions, MPI ranks) would keep them alive."""
    return [f"process pid {pid} in {netns}" for netns in namespaces for pid in ns.namespace_pids(netns)
            if pid != os.getpid() and _terminate(pid)]


def _remove_links_and_namespaces(names: ns.Names, namespaces: list[str]) -> list[str]:
    """Links first (deleting a veth is synchronous; a namespace's devices vanish asynchronously)."""
    removed = []
    for link in ns.list_links():
        ifname = link.get("ifname", "")
        if names.owns(ifname) and ifname != names.bridge and ns.delete_link(ifname):
            removed.append(f"link {ifname}")
    removed += [f"namespace {netns}" for netns in namespaces if ns.delete_namespace(netns)]
    if any(link.get("ifname") == names.bridge for link in ns.list_links()) and ns.delete_link(names.bridge):
        removed.append(f"bridge {names.bridge}")
    return removed


def _remove_files(name: str, state: dict, folder: Path) -> list[str]:
    """Inventories recorded in the state, the standard ones, then the testbed folder."""
    recorded = state.get("inventories")
    inventories = set(recorded.values()) if isinstance(recorded, dict) else set()
    inventories |= {str(inventory_path(paths.INVENTORIES, name, launch)) for launch in ("node", "local")}
    removed = []
    for path in sorted(inventories):
        if Path(path).is_file():
            Path(path).unlink()
            removed.append(f"file {path}")
    if folder.exists():
        shutil.rmtree(folder)
        removed.append(f"folder {folder}")
    return removed


def inventory_for(name: str = "vhpc", launch: Launch = "node") -> Path:
    """Path of a running testbed's inventory."""
    state = _load_state(name)
    if state is None or not state.get("complete") or launch not in state.get("inventories", {}):
        raise TestbedError(f"testbed {name!r} has no {launch!r} inventory; is it up?")
    return Path(state["inventories"][launch])
