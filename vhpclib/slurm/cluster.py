"""A private Slurm cluster: munged, slurmctld and slurmd from Debian, in one folder of our own.

Used by the tests and by ``vhpc testbed up --slurm`` (RECIPES §7). Everything
lives in the cluster's folder (slurm.conf, state, spool, logs, the job
completion file); the ports are chosen free; munged is a private one (see
``munge.py``). A cluster has either one node, this machine under its own host
name, or one slurmd per testbed node, each entering that node's UTS and network
namespaces through the PID of a process living there (the node's sshd), with
slurmctld on the first node. CPUs, sockets and cores come from ``slurmd -C``,
i.e. the real topology. ``cluster.json`` records every PID, so another process
(``testbed down``) can stop the cluster: only processes whose command line
names this cluster's slurm.conf (or munge socket) are ever signalled.

There is no slurmdbd: ``sacct`` reads the job completion file
(``JobCompType=jobcomp/filetxt``) with ``--completion`` (see ``jobs.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import SlurmClusterError
from ..sshd import free_port
from . import munge as mg
from .settings import SlurmSettings

SLURMCTLD = Path("/usr/sbin/slurmctld")
SLURMD = Path("/usr/sbin/slurmd")
SLURMSTEPD = Path("/usr/sbin/slurmstepd")
STATE_FILE = "cluster.json"
DEFAULT_PARTITION = "vhpc"
LOCAL_ADDRESS = "127.0.0.1"
# Marks every daemon of a cluster (inherited by its slurmstepd processes) so leftovers can be found.
MARKER = "VHPC_SLURM_CLUSTER"
REQUIRED = {SLURMCTLD: "slurmctld", SLURMD: "slurmd", mg.MUNGED: "munge", Path("/usr/bin/sbatch"): "slurm-client"}
_HARDWARE_KEYS = {"CPUs": "cpus", "SocketsPerBoard": "sockets", "CoresPerSocket": "cores_per_socket",
                  "ThreadsPerCore": "threads_per_core", "RealMemory": "real_memory_mb"}


@dataclass(frozen=True)
class ClusterNode:
    """One Slurm node: its NodeName (= its host name), NodeAddr, and for a testbed node the PID
    of a process in its namespaces (``None``: this machine's own namespaces)."""

    name: str
    address: str
    netns_pid: int | None = None


@dataclass(frozen=True)
class NodeHardware:
    """What ``slurmd -C`` reports: the node line slurm.conf must match or the node is drained."""

    cpus: int
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    real_memory_mb: int | None = None


def parse_slurmd_c(text: str) -> tuple[str, NodeHardware]:
    """The node name and hardware of ``slurmd -C`` output (``NodeName=vm CPUs=2 ...``)."""
    line = next((ln for ln in text.splitlines() if ln.startswith("NodeName=")), None)
    if line is None:
        raise SlurmClusterError(f"slurmd -C printed no NodeName line: {text.strip()[:200]!r}")
    values = dict(item.split("=", 1) for item in line.split() if "=" in item)
    try:
        fields: dict[str, Any] = {name: int(values[key]) for key, name in _HARDWARE_KEYS.items()
                                  if key in values}
        return values["NodeName"], NodeHardware(**fields)
    except (KeyError, ValueError, TypeError) as exc:
        raise SlurmClusterError(f"slurmd -C line not understood ({exc}): {line!r}") from None


def slurm_conf_text(*, cluster: str, folder: Path, nodes: Sequence[ClusterNode],
                    hardware: dict[str, NodeHardware], partition: str, ctld_port: int, slurmd_port: int,
                    munge_socket: Path, message_timeout_s: int | None = None) -> str:
    """The slurm.conf of a private cluster: controller on the first node, one partition of all nodes.

    ``message_timeout_s`` is Slurm's ``MessageTimeout`` (default 10 s): a client retries an unreachable
    slurmctld once a second for that long, so a case that kills slurmctld waits that long per command."""
    head = nodes[0]
    lines = [
        f"# Written by vhpclib.slurm.cluster: private cluster '{cluster}'.",
        f"ClusterName={cluster}",
        f"SlurmctldHost={head.name}({head.address})",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        "SlurmUser=root",
        "SlurmdUser=root",
        # No cgroups in containers: track processes through /proc, leave pinning to the MPI library.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/affinity",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "MpiDefault=none",
        "ReturnToService=2",
        "InactiveLimit=0",
        "KillWait=2",  # seconds between SIGTERM and SIGKILL of a cancelled or timed-out job
        # Schedule a batch job as soon as its resources are free (Slurm's default may wait 3 s to batch
        # submissions of high-throughput sites; here one campaign submits one job at a time).
        "SchedulerParameters=batch_sched_delay=0",
        "MinJobAge=300",
        f"SlurmctldPidFile={folder}/slurmctld.pid",
        f"SlurmdPidFile={folder}/slurmd.%n.pid",
        f"SlurmdSpoolDir={folder}/spool.%n",
        f"StateSaveLocation={folder}/state",
        f"SlurmctldLogFile={folder}/slurmctld.log",
        f"SlurmdLogFile={folder}/slurmd.%n.log",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/filetxt",  # what `sacct --completion` reads
        f"JobCompLoc={folder}/jobcomp.txt",
    ]
    if message_timeout_s is not None:
        lines.append(f"MessageTimeout={int(message_timeout_s)}")
    for node in nodes:
        hw = hardware[node.name]
        memory = f" RealMemory={int(hw.real_memory_mb * 0.95)}" if hw.real_memory_mb else ""
        lines.append(f"NodeName={node.name} NodeAddr={node.address} CPUs={hw.cpus} Boards=1 "
                     f"SocketsPerBoard={hw.sockets} CoresPerSocket={hw.cores_per_socket} "
                     f"ThreadsPerCore={hw.threads_per_core}{memory} State=UNKNOWN")
    lines.append(f"PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


@dataclass
class PrivateCluster:
    """A private Slurm cluster that is (or was) running, as recorded in ``<folder>/cluster.json``."""

    folder: Path
    name: str
    partition: str
    nodes: tuple[ClusterNode, ...]
    ctld_port: int
    slurmd_port: int
    munge_folder: Path
    pids: dict[str, int] = field(default_factory=dict)  # "munged", "slurmctld", "slurmd:<node>"
    seconds: float = 0.0

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a Slurm client on this machine needs to talk to this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    @property
    def job_dir(self) -> Path:
        return self.folder / "jobs"

    def settings(self, **overrides: Any) -> SlurmSettings:
        """Settings submitting to this cluster from this machine (overrides: any other setting)."""
        values: dict[str, Any] = {"partition": self.partition, "slurm_conf": str(self.conf),
                                  "job_dir": str(self.job_dir), "poll_interval_s": 1.0}
        values.update(overrides)
        return SlurmSettings(**values)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["folder"] = str(self.folder)
        data["munge_folder"] = str(self.munge_folder)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PrivateCluster":
        return cls(folder=Path(data["folder"]), name=data["name"], partition=data["partition"],
                   nodes=tuple(ClusterNode(**n) for n in data["nodes"]), ctld_port=data["ctld_port"],
                   slurmd_port=data["slurmd_port"], munge_folder=Path(data["munge_folder"]),
                   pids=dict(data.get("pids", {})), seconds=data.get("seconds", 0.0))

    def save(self) -> None:
        path = self.folder / STATE_FILE
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)

    def stop(self) -> list[str]:
        return stop_cluster(self.folder)


# ------------------------------------------------------------------ processes

def _nsenter(node: ClusterNode, argv: list[str]) -> list[str]:
    """argv run inside the node's UTS and network namespaces (nsenter execs: the PID stays argv's)."""
    if node.netns_pid is None:
        return argv
    return ["nsenter", f"--target={node.netns_pid}", "--uts", "--net", *argv]


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _is_ours(pid: int, conf: Path) -> bool:
    """A slurmctld or slurmd started with this cluster's slurm.conf (PIDs are reused)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    # Debian installs the daemons through alternatives (/usr/sbin/slurmd -> slurmd-wlm): compare real paths.
    daemons = (os.path.realpath(SLURMCTLD), os.path.realpath(SLURMD))
    return exe in daemons and str(conf).encode() in _cmdline(pid)


def _marked_processes(folder: Path, conf: Path | None = None) -> list[int]:
    """slurmstepd (and any daemon) processes carrying this cluster's marker in their environment, and
    slurmstepd processes naming this cluster's ``slurm.conf`` (a step daemon rewrites its environment down to
    ``SLURM_CONF``; a job whose slurmctld died leaves them behind)."""
    marker = f"{MARKER}={folder}".encode()
    step_conf = f"SLURM_CONF={conf}".encode() if conf is not None else None
    stepd = os.path.realpath(SLURMSTEPD)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
            if marker in environ or (step_conf in environ and os.readlink(entry / "exe") == stepd):
                found.append(int(entry.name))
        except OSError:
            continue
    return sorted(found)


def _spawn(argv: list[str], log: Path, folder: Path) -> int:
    env = {**os.environ, MARKER: str(folder)}
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                   start_new_session=True)
    return process.pid


def _slurm_client(argv: list[str], conf: Path, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "SLURM_CONF": str(conf)})


def node_hardware(node: ClusterNode) -> tuple[str, NodeHardware]:
    """``slurmd -C`` run where the node's slurmd will run: its host name and real topology."""
    done = subprocess.run(_nsenter(node, [str(SLURMD), "-C"]), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SlurmClusterError(f"slurmd -C failed on {node.name}: {done.stderr.strip()[-300:]}")
    return parse_slurmd_c(done.stdout)


def require_tools() -> None:
    missing = sorted({pkg for path, pkg in REQUIRED.items() if not path.is_file()})
    if missing:
        raise SlurmClusterError("missing Slurm tools; Debian packages: " + " ".join(missing + ["libpmi2-0"]))
    if os.geteuid() != 0:
        raise SlurmClusterError("a private Slurm cluster needs root (munged runs as the munge user, "
                                "slurmd as root)")


# ------------------------------------------------------------------ start / stop

def cluster_name(folder: Path) -> str:
    """A short lower-case ClusterName derived from the folder (two clusters never share one)."""
    return f"vhpc{zlib.crc32(str(folder).encode()) % 100000:05d}"


def start_cluster(folder: Path, nodes: Sequence[ClusterNode] | None = None, *,
                  partition: str = DEFAULT_PARTITION, timeout_s: float = 60.0,
                  message_timeout_s: int | None = None) -> PrivateCluster:
    """Start munged, slurmctld and a slurmd per node; return when every node is idle.

    ``nodes=None`` is this machine as one node (``slurmd -C``'s name, address
    127.0.0.1). Testbed nodes give their host name, address and namespace PID;
    slurmctld runs on the first. If anything fails, what was started is stopped
    and ``SlurmClusterError`` says what failed (with the log's last lines).
    ``message_timeout_s``: slurm.conf's ``MessageTimeout`` (Slurm's 10 s when None).
    """
    if message_timeout_s is not None and not 1 <= message_timeout_s <= 100:
        raise SlurmClusterError(f"MessageTimeout must be 1-100 s, got {message_timeout_s}")
    require_tools()
    folder = Path(folder).resolve()
    if (folder / STATE_FILE).exists():
        raise SlurmClusterError(f"a cluster is already recorded in {folder}; stop it first",
                                file=str(folder / STATE_FILE))
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "jobs"):
        (folder / sub).mkdir(exist_ok=True)
    if (folder / "jobcomp.txt").exists():  # job ids restart at 1: old records must not answer for new jobs
        os.replace(folder / "jobcomp.txt", folder / f"jobcomp.{time.strftime('%Y%m%dT%H%M%S')}.txt")
    if nodes is None:
        name, hw = node_hardware(ClusterNode("localhost", LOCAL_ADDRESS))
        nodes = [ClusterNode(name, LOCAL_ADDRESS)]
        hardware = {name: hw}
    else:
        nodes = list(nodes)
        if not nodes:
            raise SlurmClusterError("a cluster needs at least one node")
        hardware = {}
        for node in nodes:
            reported, hw = node_hardware(node)
            if reported != node.name:
                raise SlurmClusterError(f"node {node.name}: its namespace calls itself {reported!r}")
            hardware[node.name] = hw
    ctld_port = free_port("0.0.0.0")
    slurmd_port = free_port("0.0.0.0")
    while slurmd_port == ctld_port:
        slurmd_port = free_port("0.0.0.0")
    cluster = PrivateCluster(folder=folder, name=cluster_name(folder), partition=partition, nodes=tuple(nodes),
                             ctld_port=ctld_port, slurmd_port=slurmd_port, munge_folder=mg.munge_folder(folder))
    cluster.save()  # recorded before anything runs: stop_cluster cleans up a half-started cluster
    try:
        daemon = mg.start_munged(cluster.munge_folder)
        cluster.pids["munged"] = daemon.pid
        cluster.save()
        cluster.conf.write_text(slurm_conf_text(
            cluster=cluster.name, folder=folder, nodes=nodes, hardware=hardware, partition=partition,
            ctld_port=ctld_port, slurmd_port=slurmd_port, munge_socket=daemon.socket,
            message_timeout_s=message_timeout_s))
        head = nodes[0]
        # -c: no jobs or node states from an earlier cluster in this folder
        cluster.pids["slurmctld"] = _spawn(_nsenter(head, [str(SLURMCTLD), "-D", "-c", "-f", str(cluster.conf)]),
                                           folder / "slurmctld.out", folder)
        cluster.save()
        for node in nodes:
            argv = _nsenter(node, [str(SLURMD), "-D", "-f", str(cluster.conf), "-N", node.name])
            cluster.pids[f"slurmd:{node.name}"] = _spawn(argv, folder / f"slurmd.{node.name}.out", folder)
            cluster.save()
        wait_until_idle(cluster, timeout_s)
    except BaseException:
        stop_cluster(folder)
        raise
    cluster.seconds = time.perf_counter() - started
    cluster.save()
    return cluster


def node_states(cluster: PrivateCluster) -> dict[str, str]:
    """``{node: state}`` as sinfo reports it (``idle``, ``unknown*``, ``down*`` ...)."""
    done = _slurm_client(["sinfo", "-h", "-N", "-o", "%N %T"], cluster.conf, timeout=30)
    if done.returncode != 0:
        raise SlurmClusterError(f"sinfo failed: {done.stderr.strip()[-300:]}")
    return dict(line.split(None, 1) for line in done.stdout.splitlines() if line.strip())


def _log_tail(path: Path, lines: int = 2) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def wait_until_idle(cluster: PrivateCluster, timeout_s: float = 60.0) -> None:
    """Poll sinfo until every node is idle (a node shows ``unk*`` for a few seconds after its slurmd starts)."""
    deadline = time.monotonic() + timeout_s
    states: dict[str, str] = {}
    while True:
        for role, pid in cluster.pids.items():
            if not mg.alive(pid):
                name = role.replace(":", ".")
                logs = ([cluster.munge_folder / "munged.log"] if role == "munged"
                        else [cluster.folder / f"{name}.log", cluster.folder / f"{name}.out"])
                log = next((path for path in logs if _log_tail(path)), logs[0])
                raise SlurmClusterError(f"{role} (pid {pid}) exited: {_log_tail(log) or 'no output'}",
                                        file=str(log))
        try:
            states = node_states(cluster)
        except (SlurmClusterError, subprocess.TimeoutExpired):
            states = {}
        if states and all(states.get(n.name) == "idle" for n in cluster.nodes):
            return
        if time.monotonic() > deadline:
            detail = ", ".join(f"{n}={s}" for n, s in states.items()) or "sinfo got no answer"
            raise SlurmClusterError(f"Slurm nodes not idle within {timeout_s:.0f} s ({detail}); see "
                                    f"{cluster.folder}/slurmctld.log", file=str(cluster.folder))
        time.sleep(0.25)


def load_cluster(folder: Path) -> PrivateCluster | None:
    """The cluster recorded in ``folder``, or None."""
    try:
        return PrivateCluster.from_dict(json.loads((Path(folder) / STATE_FILE).read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SlurmClusterError(f"cluster state unreadable: {exc}", file=str(Path(folder) / STATE_FILE)) from None


def _cancel_all_jobs(cluster: PrivateCluster, timeout_s: float = 15.0) -> None:
    """Cancel every job (slurmd leaves running steps behind when it stops) and wait for the queue to empty."""
    ctld = cluster.pids.get("slurmctld")
    if not ctld or not _is_ours(ctld, cluster.conf):
        return
    try:
        _slurm_client(["scancel", f"--partition={cluster.partition}"], cluster.conf, timeout=15)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = _slurm_client(["squeue", "-h", "-o", "%i"], cluster.conf, timeout=15)
            if done.returncode != 0 or not done.stdout.strip():
                return
            time.sleep(0.25)
    except subprocess.TimeoutExpired:
        return


def stop_cluster(folder: Path) -> list[str]:
    """Stop the cluster recorded in ``folder`` by its PIDs; return what was stopped (idempotent).

    Jobs are cancelled first, then slurmd(s), slurmctld, leftover slurmstepd
    processes of this cluster, and munged; the munge folder (key included) is
    removed. Logs and the state file stay in ``folder`` (the state file is
    renamed ``cluster.stopped.json``).
    """
    folder = Path(folder).resolve()
    cluster = load_cluster(folder)
    if cluster is None:
        return []
    stopped: list[str] = []
    _cancel_all_jobs(cluster)
    daemons = [(r, p) for r, p in cluster.pids.items() if r.startswith("slurmd:")]
    daemons += [(r, p) for r, p in cluster.pids.items() if r == "slurmctld"]
    for role, pid in daemons:
        if _is_ours(pid, cluster.conf):
            mg.terminate(pid)
            stopped.append(f"{role} pid {pid}")
    # Leftovers (step daemons of a job whose slurmctld died ignore SIGTERM) are signalled together and given
    # one 5 s grace between them, not 5 s each.
    leftovers = [pid for pid in _marked_processes(folder, cluster.conf) if pid != os.getpid()]
    mg.terminate_all(leftovers, 5.0)
    stopped += [f"process pid {pid}" for pid in leftovers]
    munged = cluster.pids.get("munged")
    if munged and mg.stop_munged(mg.MungeDaemon(cluster.munge_folder, munged)):
        stopped.append(f"munged pid {munged}")
    if cluster.munge_folder != folder / "munge" and cluster.munge_folder.exists():
        mg.remove_folder(cluster.munge_folder)
    elif (cluster.munge_folder / "munge.key").exists():
        (cluster.munge_folder / "munge.key").unlink()
    os.replace(folder / STATE_FILE, folder / "cluster.stopped.json")
    return stopped


def testbed_nodes(state: dict) -> list[ClusterNode]:
    """Cluster nodes of a testbed state (``testbeds/<name>/state.json``): one per namespace node."""
    nodes = []
    for node in state["nodes"]:
        if not node.get("sshd_pid"):
            raise SlurmClusterError(f"testbed node {node['hostname']} has no sshd to enter its namespaces")
        nodes.append(ClusterNode(node["hostname"], node["address"], int(node["sshd_pid"])))
    return nodes

