"""Host CPU topology and the choice of cores for each PingPong placement.

Placements follow the paper: two ranks on two cores of one socket
(``intra-socket``), on two sockets of one node (``inter-socket``), or on two
nodes (``inter-node``). A host that cannot provide a placement yields a
``Skip`` with the reason; a placement is never faked.
"""

from __future__ import annotations

from dataclasses import dataclass

from .exceptions import ParseError

PLACEMENTS = ("intra-socket", "inter-socket", "inter-node")
LSCPU_COMMAND = "lscpu -p=CPU,CORE,SOCKET,NODE"
# The same CSV from sysfs, for hosts without lscpu (util-linux): CPU,CORE,SOCKET,NODE per online CPU.
SYSFS_TOPOLOGY_COMMAND = (
    "for c in /sys/devices/system/cpu/cpu[0-9]*; do [ -r $c/topology/core_id ] || continue; "
    "read -r core < $c/topology/core_id; read -r pkg < $c/topology/physical_package_id; node=; "
    "for n in $c/node[0-9]*; do [ -e $n ] && node=${n##*node}; done; "
    "echo ${c##*cpu},$core,$pkg,$node; done")
TOPOLOGY_COMMAND = f"{LSCPU_COMMAND} 2>/dev/null || {{ {SYSFS_TOPOLOGY_COMMAND}; }}"


@dataclass(frozen=True)
class LogicalCpu:
    cpu: int
    core: int
    socket: int
    node: int | None


@dataclass(frozen=True)
class HostTopology:
    """The logical CPUs of one host, as ``lscpu -p`` reports them."""

    cpus: tuple[LogicalCpu, ...]

    @property
    def sockets(self) -> int:
        return len({c.socket for c in self.cpus})

    @property
    def cores(self) -> int:
        return len({(c.socket, c.core) for c in self.cpus})

    @property
    def cores_per_socket(self) -> int:
        return self.cores // max(self.sockets, 1)

    @property
    def threads_per_core(self) -> int:
        return len(self.cpus) // max(self.cores, 1)

    @property
    def numa_nodes(self) -> int:
        return len({c.node for c in self.cpus if c.node is not None}) or 1

    def first_thread_of_cores(self, socket: int) -> list[int]:
        """One logical CPU per physical core of ``socket`` (the lowest numbered thread)."""
        seen: dict[int, int] = {}
        for c in sorted(self.cpus, key=lambda c: c.cpu):
            if c.socket == socket and c.core not in seen:
                seen[c.core] = c.cpu
        return list(seen.values())

    def socket_ids(self) -> list[int]:
        return sorted({c.socket for c in self.cpus})

    def socket_of(self, cpu: int) -> int | None:
        return next((c.socket for c in self.cpus if c.cpu == cpu), None)

    def core_of(self, cpu: int) -> tuple[int, int] | None:
        return next(((c.socket, c.core) for c in self.cpus if c.cpu == cpu), None)

    def summary(self) -> dict[str, int]:
        return {"sockets": self.sockets, "cores_per_socket": self.cores_per_socket,
                "threads_per_core": self.threads_per_core, "numa_nodes": self.numa_nodes,
                "logical_cpus": len(self.cpus)}


def parse_lscpu(text: str, file: str = "lscpu -p") -> HostTopology:
    """Parse ``lscpu -p=CPU,CORE,SOCKET,NODE`` output."""
    cpus = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(",")
        if len(fields) >= 3 and fields[0].strip().isdigit() and not fields[1].strip() and not fields[2].strip():
            # lscpu leaves core and socket empty where the kernel exposes no topology (gVisor's /sys): each
            # such CPU is a core of its own on socket 0, which is all that kernel says of it.
            fields = [fields[0], fields[0], "0", *fields[3:]]
        if len(fields) < 3 or not all(f.strip().isdigit() for f in fields[:3]):
            raise ParseError(f"expected 'CPU,CORE,SOCKET[,NODE]', got {line!r}", file=file, line=number)
        node = fields[3].strip() if len(fields) > 3 else ""
        cpus.append(LogicalCpu(int(fields[0]), int(fields[1]), int(fields[2]), int(node) if node.isdigit() else None))
    if not cpus:
        raise ParseError("no CPU lines in lscpu output", file=file)
    return HostTopology(tuple(cpus))


@dataclass(frozen=True)
class Placement:
    """Where the two PingPong ranks run: one logical CPU per rank, on one or two hosts."""

    name: str
    cpus: tuple[int, int]
    hosts: tuple[str, str] | None = None  # None: both ranks on the launch host

    @property
    def nodes(self) -> int:
        return 1 if self.hosts is None else 2


@dataclass(frozen=True)
class Skip:
    """A placement this environment cannot provide, and why."""

    name: str
    reason: str


def choose_placement(name: str, topology: HostTopology, hosts: list[str], *,
                     shared_machine: bool = False) -> Placement | Skip:
    """Pick cores for ``name`` from the topology of the (first) compute host.

    ``shared_machine``: the hosts are namespaces or containers of one machine (same kernel
    boot id), so inter-node ranks get distinct cores instead of the same core number on each.
    """
    if name == "intra-socket":
        for socket in topology.socket_ids():
            cores = topology.first_thread_of_cores(socket)
            if len(cores) >= 2:
                return Placement(name, (cores[0], cores[1]))
        return Skip(name, f"no socket with two physical cores (host has {topology.sockets} socket(s) x "
                          f"{topology.cores_per_socket} core(s))")
    if name == "inter-socket":
        sockets = topology.socket_ids()
        if len(sockets) < 2:
            return Skip(name, f"host has {len(sockets)} socket(s); inter-socket needs two")
        return Placement(name, (topology.first_thread_of_cores(sockets[0])[0],
                                topology.first_thread_of_cores(sockets[1])[0]))
    if name == "inter-node":
        if len(hosts) < 2:
            return Skip(name, f"environment has {len(hosts)} compute host(s); inter-node needs two")
        cores = [c for s in topology.socket_ids() for c in topology.first_thread_of_cores(s)]
        if shared_machine:
            if len(cores) < 2:
                return Skip(name, "the nodes share one machine with a single core: ranks would share it")
            return Placement(name, (cores[0], cores[1]), (hosts[0], hosts[1]))
        return Placement(name, (cores[0], cores[0]), (hosts[0], hosts[1]))
    raise ValueError(f"unknown placement {name!r}; known: {', '.join(PLACEMENTS)}")
