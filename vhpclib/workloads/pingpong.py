"""IMB PingPong for the paper's three placements (Table 2, Figure 2).

Two ranks on two cores of one socket (``intra-socket``), on two sockets of one
node (``inter-socket``), or on two nodes (``inter-node``), pinned through the
MPI's own mechanism. The pin map the MPI prints is checked against the
placement asked for: a run that contradicts it is kept but invalid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import ParseError
from ..launchers import Job
from ..mpi import LaunchSpec, flavour
from ..parsers import get_parser
from ..record import PinCheck, PinRow
from ..topology import HostTopology, Placement, Skip as PlacementSkip, choose_placement, parse_lscpu
from .base import Extracted, Point, Skip, Workload

if TYPE_CHECKING:
    from ..params import MicrobenchParams
    from ..parsers.impi_pinmap import PinEntry
    from ..stages.context import StageContext
    from ..store import StoredRun

STAGE = "microbench"
ROW_KEYS = ("benchmark", "nprocs", "bytes", "repetitions", "t_min_usec", "t_max_usec", "t_avg_usec",
            "mbytes_per_sec", "msgs_per_sec")


class PingPong(Workload):
    name = "pingpong"
    paper_name = "IMB PingPong"
    table = "microbench"
    stages = (STAGE,)

    def display_name(self, point: Any) -> str:
        return "PingPong"

    def plan(self, stage: str, ctx: StageContext, params: MicrobenchParams) -> list[Point | Skip]:
        if stage != STAGE:
            return []
        topology = ctx.topology()
        hosts = [h.mpi_name for h in ctx.env.hosts]
        out: list[Point | Skip] = []
        for name in params.placements:
            stem = f"pingpong-{name}-{params.tag()}"
            choice = choose_placement(name, topology, hosts)
            if isinstance(choice, PlacementSkip):
                out.append(Skip(self.name, stem, name, choice.reason,
                                {"placement": name, "params_tag": params.tag()}))
                continue
            out.append(Point(self.name, stem, {"placement": name, "params_tag": params.tag()},
                             nodes=choice.nodes, label=f"PingPong {name}", ranks_per_node=2 // choice.nodes))
        return out

    def prepare(self, ctx: StageContext, points: list[Point], params: MicrobenchParams) -> dict[str, Placement]:
        """Cores per placement; namespaces of one machine (same boot id) get distinct cores inter-node."""
        topology = ctx.topology()
        hosts = [h.mpi_name for h in ctx.env.hosts]
        chosen: dict[str, Placement] = {}
        for point in points:
            name = point.fields["placement"]
            shared = name == "inter-node" and ctx.shares_machine(ctx.env.hosts[:2])
            choice = choose_placement(name, topology, hosts, shared_machine=shared)
            if isinstance(choice, Placement):
                chosen[name] = choice
        return chosen

    def job(self, ctx: StageContext, point: Point, repetition: int, prepared: dict[str, Placement],
            params: MicrobenchParams) -> Job:
        placement = prepared[point.fields["placement"]]
        if placement.hosts and placement.cpus[0] != placement.cpus[1]:
            launch = LaunchSpec(nprocs=2, hosts=placement.hosts,
                                host_cpus=((placement.hosts[0], (placement.cpus[0],)),
                                           (placement.hosts[1], (placement.cpus[1],))))
        elif placement.hosts:
            launch = LaunchSpec(nprocs=2, ppn=1, hosts=placement.hosts, cpus=(placement.cpus[0],))
        else:
            launch = LaunchSpec(nprocs=2, hosts=ctx.mpi_hosts(1), cpus=placement.cpus)
        imb = ctx.env.benchmarks.imb or ctx.runtime.binary("IMB-MPI1")
        return Job(program=[imb, *params.imb_args()], launch=launch, timeout_s=params.timeout_s,
                   point={"cpus": list(placement.cpus),
                          "hosts": list(placement.hosts) if placement.hosts else None},
                   record={"imb": {"msglog": list(params.msglog), "iterations": params.iterations,
                                   "time_limit_s": params.time_limit_s, "mem_gb": params.mem_gb}})

    def sanity(self, run: StoredRun) -> list[str]:
        problems: list[str] = []
        try:
            parsed = get_parser("imb").parse(run.stdout(), str(run.stdout_path))
            if not any(r["benchmark"] == "PingPong" for r in parsed.records):
                problems.append("IMB printed no PingPong table")
        except ParseError as exc:
            problems.append(f"output has no result: {exc.message}")
        problems += self._check_pinning(run)
        return problems

    def _check_pinning(self, run: StoredRun) -> list[str]:
        record = run.record
        mpi = record.execution.mpi if record.execution else None
        if mpi is None or not record.lscpu:
            return []
        try:
            entries = flavour(mpi.flavour).pin_map(run.stdout(), str(run.stdout_path))
        except ParseError as exc:
            record.pinning = PinCheck(verification="unreadable")
            return [f"pin map unreadable: {exc}"]
        if entries is None:
            record.pinning = PinCheck(verification=f"unavailable for {mpi.flavour} (only Intel MPI's map is read)")
            return []
        placement = placement_of(record.point)
        problems = pin_problems(entries, placement, parse_lscpu(record.lscpu))
        record.pinning = PinCheck(pin_map=[PinRow(rank=e.rank, pid=e.pid, node=e.node, cpus=list(e.cpus))
                                           for e in entries],
                                  verification="contradicts placement" if problems else "verified")
        return problems

    def extract(self, run: StoredRun) -> Extracted:
        parsed = get_parser("imb").parse(run.stdout(), str(run.stdout_path))
        rows = [{k: r.get(k) for k in ROW_KEYS} for r in parsed.records if r["benchmark"] == "PingPong"]
        return Extracted(rows, [str(w) for w in parsed.warnings])


def placement_of(point: dict[str, Any]) -> Placement:
    hosts = point.get("hosts")
    return Placement(point["placement"], tuple(point["cpus"]), tuple(hosts) if hosts else None)


def pin_problems(entries: list[PinEntry], placement: Placement, topology: HostTopology) -> list[str]:
    """Why a pin map does not show ``placement`` (empty when it does)."""
    if not entries:
        return ["no pin map in the output (expected with I_MPI_DEBUG=4)"]
    by_rank = {e.rank: e for e in entries}
    if sorted(by_rank) != [0, 1]:
        return [f"pin map lists ranks {sorted(by_rank)}, expected [0, 1]"]
    problems = []
    for rank in (0, 1):
        want = placement.cpus[rank]
        if set(by_rank[rank].cpus) != {want}:
            problems.append(f"rank {rank} pinned to cpus {list(by_rank[rank].cpus)}, expected [{want}]")
    same_node = by_rank[0].node == by_rank[1].node
    if placement.nodes == 2 and same_node:
        problems.append(f"both ranks ran on node {by_rank[0].node!r}, expected two nodes")
    if placement.nodes == 1 and not same_node:
        problems.append(f"ranks ran on nodes {by_rank[0].node!r} and {by_rank[1].node!r}, expected one")
    if placement.nodes == 1 and not problems:
        s0, s1 = (topology.socket_of(by_rank[r].cpus[0]) for r in (0, 1))
        c0, c1 = (topology.core_of(by_rank[r].cpus[0]) for r in (0, 1))
        if placement.name == "intra-socket" and (s0 != s1 or c0 == c1):
            problems.append(f"ranks on sockets {s0}/{s1}, cores {c0}/{c1}: not two cores of one socket")
        if placement.name == "inter-socket" and s0 == s1:
            problems.append(f"both ranks on socket {s0}: not inter-socket")
    return problems
