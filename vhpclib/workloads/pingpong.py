"""IMB PingPong for the paper's three placements (Table 2, Figure 2).

Two ranks on two cores of one socket (``intra-socket``), on two sockets of one
node (``inter-socket``), or on two nodes (``inter-node``), pinned through the
MPI's own mechanism. The pin map the MPI prints is checked against the
placement asked for: a run that contradicts it is kept but invalid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..exceptions import ParseError
from ..launchers import Job
from ..mpi import LaunchSpec, flavour
from ..names import Stage
from ..parsers import get_parser
from ..record import PinCheck, PinRow
from ..schema import Column, TableSpec, Watch, register_table
from ..topology import PLACEMENTS, HostTopology, Placement, Skip as PlacementSkip, choose_placement, parse_lscpu
from .base import Extracted, Point, Section, Skip, Workload

if TYPE_CHECKING:
    from ..params import StageParams
    from ..parsers.impi_pinmap import PinEntry
    from ..stages.context import StageContext
    from ..store import StoredRun

STAGE = Stage.MICROBENCH
ROW_KEYS = ("benchmark", "nprocs", "bytes", "repetitions", "t_min_usec", "t_max_usec", "t_avg_usec",
            "mbytes_per_sec", "msgs_per_sec")
#: The throughput peak is watched when sizes reach 64 KiB (it lies at large messages).
PEAK_MIN_MSGLOG = 16


class PingPongParams(BaseModel):
    """IMB PingPong's parameters. The paper used sizes up to 1 GB and 1,000,000 repetitions per size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    msglog: tuple[int, int] = Field((0, 22), description="Message sizes 2^lo..2^hi bytes, as lo:hi.")
    iterations: int | None = Field(None, ge=1, le=2**31 - 1,
                                   description="IMB -iter: repetitions per size (IMB's own policy when unset).")
    time_limit_s: float | None = Field(None, gt=0, allow_inf_nan=False, json_schema_extra={"cli": "--time-limit"},
                                       description="IMB -time: seconds per size before IMB cuts repetitions.")
    mem_gb: float | None = Field(None, gt=0, allow_inf_nan=False,
                                 description="IMB -mem: GB per process, needed for sizes above 2^30 / 2.")
    placements: tuple[str, ...] = Field(PLACEMENTS, description="Only these placements.",
                                        json_schema_extra={"cli": "--placement"})

    @field_validator("msglog", mode="before")
    @classmethod
    def _msglog(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                lo, hi = (int(x) for x in value.split(":"))
            except ValueError:
                raise ValueError(f"msglog {value!r}: expected lo:hi with integers") from None
            return (lo, hi)
        return value

    @field_validator("msglog")
    @classmethod
    def _msglog_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        lo, hi = value
        if not 0 <= lo <= hi <= 30:
            raise ValueError(f"msglog must satisfy 0 <= lo <= hi <= 30, got {lo}:{hi}")
        return value

    @field_validator("placements")
    @classmethod
    def _placements(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [p for p in value if p not in PLACEMENTS]
        if unknown:
            raise ValueError(f"unknown placement(s) {', '.join(unknown)}; known: {', '.join(PLACEMENTS)}")
        return value

    def imb_args(self) -> list[str]:
        args = ["PingPong", "-msglog", f"{self.msglog[0]}:{self.msglog[1]}"]
        if self.iterations is not None:
            # -iter_policy off: every size gets exactly the repetitions asked for, as in the paper.
            args += ["-iter", str(self.iterations), "-iter_policy", "off"]
        if self.time_limit_s is not None:
            args += ["-time", str(self.time_limit_s)]
        if self.mem_gb is not None:
            args += ["-mem", str(self.mem_gb)]
        return args

    def tag(self) -> str:
        """Part of the run id, so runs with other parameters are never mistaken for these."""
        tag = f"m{self.msglog[0]}-{self.msglog[1]}"
        if self.iterations is not None:
            tag += f"-i{self.iterations}"
        if self.time_limit_s is not None:
            tag += f"-t{self.time_limit_s:g}"
        if self.mem_gb is not None:
            tag += f"-g{self.mem_gb:g}"
        return tag


def latency_0b(rows: list[dict[str, Any]]) -> float | None:
    """The run's 0-byte PingPong latency (usec); several 0-byte rows are averaged by their iterations."""
    zero = [r for r in rows if r.get("benchmark") == "PingPong" and r.get("bytes") == 0
            and r.get("t_avg_usec") is not None]
    if not zero:
        return None
    import numpy as np

    weights = [r.get("repetitions") or 1 for r in zero]
    return float(np.average([r["t_avg_usec"] for r in zero], weights=weights))


def peak_throughput(rows: list[dict[str, Any]]) -> float | None:
    """The run's peak PingPong throughput over message sizes (GB/s, 10^9 B/s)."""
    rates = [r["mbytes_per_sec"] for r in rows if r.get("benchmark") == "PingPong" and (r.get("bytes") or 0) > 0
             and r.get("mbytes_per_sec") is not None]
    return max(rates) / 1000.0 if rates else None


LATENCY = Watch("latency 0 B", "usec", latency_0b)
PEAK = Watch("peak throughput", "GB/s", peak_throughput)


def _identity(run: StoredRun, workload: Workload, row: dict[str, Any]) -> dict[str, Any]:
    rec = run.record
    return {"campaign": rec.campaign, "environment": rec.environment, "label": rec.label, "run_id": rec.run_id,
            "repetition": rec.repetition, "status": rec.status, "placement": rec.point.get("placement")}


#: The microbenchmark table (Table 2, Figure 2): one row per message size and run.
MICROBENCH = register_table(TableSpec(
    "microbench",
    (
        Column("campaign", description="the campaign (folder under data/raw)"),
        Column("environment", description="the inventory's environment"),
        Column("label", description="the environment's label"),
        Column("placement", description="intra-socket, inter-socket or inter-node"),
        Column("run_id", description="the run's folder: <point>-r<repetition>"),
        Column("repetition", description="1, 2, ... per point"),
        Column("benchmark", description="IMB benchmark (PingPong; PingPong-blocks)"),
        Column("nprocs", "processes", "MPI ranks"),
        Column("bytes", "B", "message size"),
        Column("repetitions", "iterations", "iterations IMB ran at this size"),
        Column("t_min_usec", "usec", "fastest rank's time (IMB prints it for some benchmarks)"),
        Column("t_max_usec", "usec", "slowest rank's time (IMB prints it for some benchmarks)"),
        Column("t_avg_usec", "usec", "one-way latency"),
        Column("mbytes_per_sec", "MB/s", "10^6 bytes/s"),
        Column("msgs_per_sec", "1/s", "messages per second (IMB-P2P)"),
    ),
    _identity, (STAGE,), (LATENCY,), "IMB PingPong per placement and message size",
    tail=(Column("status", description="complete, or invalid with the run's reason"),)), replace=True)


class PingPong(Workload):
    name = "pingpong"
    paper_name = "IMB PingPong"
    table = "microbench"
    stages = (STAGE,)
    Params = PingPongParams
    section = Section("imb", str | None, "Path of IMB-MPI1 on the hosts; default <mpi prefix>/bin/IMB-MPI1.")

    def watch(self, params: StageParams) -> list[Watch]:
        return [LATENCY] + ([PEAK] if self.settings(params).msglog[1] >= PEAK_MIN_MSGLOG else [])

    def dimension(self, runner: Any, point: Point, params: StageParams, schedule: Any,
                  counts: Mapping[str, int]) -> tuple[Point, StageParams, dict[str, Any] | None]:
        """Without ``iterations``: measure the two levels at this placement and choose IMB's iterations per run."""
        if self.settings(params).iterations is not None:
            return point, params, None
        from .pingpong_sizing import dimension

        return dimension(self, runner, point, params, schedule, counts)

    def display_name(self, point: Any) -> str:
        return "PingPong"

    def plan(self, stage: str, ctx: StageContext, params: StageParams) -> list[Point | Skip]:
        if stage != STAGE:
            return []
        topology = ctx.topology()
        hosts = [h.mpi_name for h in ctx.env.hosts]
        out: list[Point | Skip] = []
        mine = self.settings(params)
        for name in mine.placements:
            stem = f"pingpong-{name}-{mine.tag()}"
            choice = choose_placement(name, topology, hosts)
            if isinstance(choice, PlacementSkip):
                out.append(Skip(self.name, stem, name, choice.reason,
                                {"placement": name, "params_tag": mine.tag()}))
                continue
            out.append(Point(self.name, stem, {"placement": name, "params_tag": mine.tag()},
                             nodes=choice.nodes, label=f"PingPong {name}", ranks_per_node=2 // choice.nodes))
        return out

    def prepare(self, ctx: StageContext, points: list[Point], params: StageParams) -> dict[str, Placement]:
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
            params: StageParams) -> Job:
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
        mine = self.settings(params)
        return Job(program=[imb, *mine.imb_args()], launch=launch, timeout_s=params.timeout_s,
                   point={"cpus": list(placement.cpus),
                          "hosts": list(placement.hosts) if placement.hosts else None},
                   record={"imb": {"msglog": list(mine.msglog), "iterations": mine.iterations,
                                   "time_limit_s": mine.time_limit_s, "mem_gb": mine.mem_gb}})

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
