"""Microbenchmark stage: IMB PingPong for every placement the environment can provide (Table 2, Figure 2)."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from ..exceptions import InputError, RemoteError
from ..mpi import LaunchSpec, runtime_for
from ..parsers.impi_pinmap import PinEntry, parse_pin_map
from ..store import COMPLETE, INVALID, RunRecord, RunWriter
from ..topology import PLACEMENTS, HostTopology, Placement, Skip, choose_placement
from ..launcher import Job, run_job
from .context import StageContext, record_skip

STAGE = "microbench"


@dataclass(frozen=True)
class PingPongParams:
    """How IMB PingPong is run. The paper used sizes up to 1 GB and 1,000,000 repetitions per size."""

    msglog: tuple[int, int] = (0, 22)
    iterations: int | None = None  # IMB -iter: repetitions per size (IMB's default policy otherwise)
    time_limit_s: float | None = None  # IMB -time: seconds per size before IMB cuts repetitions
    mem_gb: float | None = None  # IMB -mem: needed for sizes above 2^30 / 2

    def __post_init__(self) -> None:
        lo, hi = self.msglog
        if not (0 <= lo <= hi <= 30):
            raise ValueError(f"msglog must satisfy 0 <= lo <= hi <= 30, got {lo}:{hi}")

    @classmethod
    def from_text(cls, msglog: str, iterations: int | None = None, time_limit_s: float | None = None,
                  mem_gb: float | None = None) -> "PingPongParams":
        """Parameters as the CLI and notebooks take them (``msglog`` as ``"lo:hi"``)."""
        try:
            lo, hi = (int(x) for x in str(msglog).split(":"))
        except ValueError:
            raise InputError(f"msglog {msglog!r}: expected lo:hi with integers", key="msglog") from None
        try:
            return cls((lo, hi), iterations, time_limit_s, mem_gb)
        except ValueError as exc:
            raise InputError(str(exc), key="msglog") from None

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


@dataclass
class MicrobenchResult:
    runs: list[RunRecord] = field(default_factory=list)
    measured: int = 0
    reused: int = 0
    skipped: list[Skip] = field(default_factory=list)
    invalid: list[RunRecord] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.measured} run(s) measured, {self.reused} reused, {len(self.invalid)} invalid, "
               f"{len(self.skipped)} placement(s) skipped, {len(self.failures)} failed"]
        out += [f"skipped {s.name}: {s.reason}" for s in self.skipped]
        out += [f"invalid {x.run_id}: {x.record.get('invalid_reason')}" for x in self.invalid]
        out += [f"failed {f}" for f in self.failures]
        out += [f"topology: {f}" for f in self.findings]
        return out


def run_id_for(placement: str, params: PingPongParams, repetition: int) -> str:
    return f"pingpong-{placement}-{params.tag()}-r{repetition:02d}"


def run_microbench(ctx: StageContext, *, placements: Iterable[str] = PLACEMENTS,
                   params: PingPongParams = PingPongParams(), repetitions: int = 3, rerun: bool = False,
                   timeout_s: float | None = None, progress: bool = True) -> MicrobenchResult:
    """Run (or reuse) PingPong for every placement; skipped placements are recorded with their reason.

    Complete runs with the same parameters are reused (resume). ``rerun`` adds
    ``repetitions`` new runs after the existing ones instead; raw data is never replaced.
    A failed run is reported in ``failures`` (its logs kept) and the others go on.
    """
    placements = list(placements)
    unknown = [p for p in placements if p not in PLACEMENTS]
    if unknown:
        raise InputError(f"unknown placement(s) {', '.join(unknown)}; known: {', '.join(PLACEMENTS)}",
                         key="placement")
    if repetitions < 1:
        raise InputError(f"repetitions must be at least 1, got {repetitions}", key="repetitions")
    result = MicrobenchResult(findings=ctx.topology_findings())
    topology = ctx.topology()
    hosts = [h.mpi_name for h in ctx.env.hosts]
    imb = ctx.env.benchmarks.imb or runtime_for(ctx.env).binary("IMB-MPI1")
    plan: list[tuple[Placement, int]] = []
    stored = Counter(r.record["placement"]["name"] for r in ctx.store.runs(ctx.campaign, ctx.environment, STAGE)
                     if r.status in (COMPLETE, INVALID) and r.record.get("params_tag") == params.tag())
    for name in placements:
        shared = name == "inter-node" and len(hosts) > 1 and _needs_measuring(ctx, name, params, repetitions, rerun) \
            and ctx.shares_machine(ctx.env.hosts[:2])
        choice = choose_placement(name, topology, hosts, shared_machine=shared)
        if isinstance(choice, Skip):
            _record_skip(ctx, choice, params)
            result.skipped.append(choice)
            continue
        first_new = stored[name] if rerun else 0
        for rep in range(first_new + 1, first_new + repetitions + 1):
            plan.append((choice, rep))

    facts = None
    bar = tqdm(plan, desc=f"PingPong [{ctx.environment}]", unit="run", disable=not progress)
    for placement, rep in bar:
        run_id = run_id_for(placement.name, params, rep)
        if ctx.store.is_complete(ctx.campaign, ctx.environment, STAGE, run_id):
            record = ctx.store.load(ctx.campaign, ctx.environment, STAGE, run_id)
            result.reused += 1
        else:
            if facts is None:
                facts = ctx.host_facts(ctx.env.hosts[:2] if placement.hosts else ctx.env.hosts[:1])
            try:
                record = _measure(ctx, placement, rep, params, imb, topology, facts, timeout_s)
            except RemoteError as exc:
                result.failures.append(f"{run_id}: {exc}")
                continue
            result.measured += 1
        (result.invalid if record.status == INVALID else result.runs).append(record)
    return result


def _measure(ctx: StageContext, placement: Placement, rep: int, params: PingPongParams, imb: str,
             topology: HostTopology, facts: dict[str, Any], timeout_s: float | None) -> RunRecord:
    if placement.hosts and placement.cpus[0] != placement.cpus[1]:
        launch = LaunchSpec(nprocs=2, hosts=placement.hosts,
                            host_cpus=((placement.hosts[0], (placement.cpus[0],)),
                                       (placement.hosts[1], (placement.cpus[1],))))
    elif placement.hosts:
        launch = LaunchSpec(nprocs=2, ppn=1, hosts=placement.hosts, cpus=(placement.cpus[0],))
    else:
        launch = LaunchSpec(nprocs=2, hosts=ctx.mpi_hosts(1), cpus=placement.cpus)
    job = Job(program=[imb, *params.imb_args()], launch=launch, timeout_s=timeout_s,
              parameters={"benchmark": "IMB-MPI1 PingPong", **params.__dict__, "repetition": rep})
    record = {"placement": {"name": placement.name, "cpus": list(placement.cpus),
                            "hosts": list(placement.hosts) if placement.hosts else None},
              "params_tag": params.tag(), "repetition": rep, "host_facts": facts,
              **ctx.topology_record()}
    flavour = runtime_for(ctx.env).flavour

    def validate(writer: RunWriter) -> dict[str, Any]:
        return verify_pinning(writer.stdout_path.read_text(errors="replace"), placement, topology, flavour)

    return run_job(ctx.inventory, ctx.environment, job, campaign=ctx.campaign, stage=STAGE,
                   run_id=run_id_for(placement.name, params, rep), store=ctx.store, pool=ctx.pool,
                   record=record, validate=validate)


def _needs_measuring(ctx: StageContext, name: str, params: PingPongParams, repetitions: int, rerun: bool) -> bool:
    """Whether any run of this placement must be measured (reuse needs no connection)."""
    if rerun:
        return True
    return not all(ctx.store.is_complete(ctx.campaign, ctx.environment, STAGE, run_id_for(name, params, rep))
                   for rep in range(1, repetitions + 1))


def verify_pinning(stdout: str, placement: Placement, topology: HostTopology, flavour: str) -> dict[str, Any]:
    """Compare the pin map MPI printed with the placement asked for; a contradiction makes the run invalid."""
    if flavour != "intel":
        return {"pin_map": None, "pin_verification": f"unavailable for {flavour} (only Intel MPI's map is read)"}
    entries = parse_pin_map(stdout)
    pin_map = [{"rank": e.rank, "pid": e.pid, "node": e.node, "cpus": list(e.cpus)} for e in entries]
    problems = pin_problems(entries, placement, topology)
    if problems:
        return {"pin_map": pin_map, "pin_verification": "contradicts placement", "status": INVALID,
                "invalid_reason": "; ".join(problems)}
    return {"pin_map": pin_map, "pin_verification": "verified", "status": COMPLETE}


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


def _record_skip(ctx: StageContext, skip: Skip, params: PingPongParams) -> None:
    record_skip(ctx, STAGE, f"pingpong-{skip.name}-{params.tag()}-skipped", skip.name, skip.reason,
                placement={"name": skip.name}, params_tag=params.tag())


def describe_command(record: RunRecord) -> str:
    """The command line of a run as a user could paste it (variables first)."""
    env = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in sorted(record.record.get("env", {}).items()))
    return f"{env} {record.record.get('command', '')}".strip()
