"""``vhpc inventory check``: reach every host in parallel, fingerprint it, compare with the inventory.

Every host of the selected environments gets one row, answered or not; a host
that does not answer is named with its reason and makes the exit code 1. A
host that answers but differs from the inventory (topology, virtualization,
MPI missing) gets findings, which are reported but do not fail the check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import Environment, HostSpec, Inventory
from .exceptions import EnvironmentNotReady, RemoteError
from .fingerprint import facts_from_result, fingerprint_script, store_fingerprint
from .launchers import get_launcher
from .mpi import runtime_for
from .providers import provider_for, resolve_environment
from .remote import ConnectionPool, Executor, HostOutcome, fan_out_each
from .names import Campaign

@dataclass
class HostRow:
    """One host of one environment as the check saw it."""

    environment: str
    host: str
    role: str  # "compute" or "launch"
    answered: bool
    reason: str | None = None
    kernel: str | None = None
    cpu_model: str | None = None
    topology: str | None = None  # "sockets x cores x threads"
    numa: int | None = None
    memory_gib: float | None = None
    virtualization: str | None = None
    rdma: str | None = None
    governor: str | None = None
    clocksource: str | None = None
    mpi_version: str | None = None
    fingerprint_path: str | None = None
    findings: list[str] = field(default_factory=list)
    duration_s: float | None = None  # this host's own wall time (the check runs every host at once)


@dataclass
class CheckReport:
    campaign: str | None  # None: fingerprints were not stored
    rows: list[HostRow]

    @property
    def unanswered(self) -> list[HostRow]:
        return [r for r in self.rows if not r.answered]

    @property
    def exit_code(self) -> int:
        """0 when every host answered, 1 when some did not (findings alone do not fail)."""
        return 1 if self.unanswered else 0

    def summary(self) -> str:
        """One line for the end of the CLI output."""
        total = len(self.rows)
        findings = sum(len(r.findings) for r in self.rows)
        if not self.unanswered:
            return f"all {total} host(s) answered; {findings} finding(s)"
        names = "; ".join(f"{r.environment}/{r.host}: {r.reason}" for r in self.unanswered)
        return f"{len(self.unanswered)} of {total} host(s) did not answer: {names}"

    def problems(self) -> list[str]:
        """One line per unanswered host and per finding, for the CLI to print under the table."""
        lines = [f"{r.environment}/{r.host}: did not answer: {r.reason}" for r in self.unanswered]
        lines += [f"{r.environment}/{r.host}: {f}" for r in self.rows for f in r.findings]
        return lines

    def records(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.rows]


def _hosts_of(env: Environment) -> list[tuple[HostSpec, str]]:
    hosts = [(spec, "compute") for spec in env.hosts]
    if env.launch is not None and env.launch not in env.hosts:
        hosts.insert(0, (env.launch, "launch"))
    return hosts


def _virt_text(v: dict[str, Any]) -> str | None:
    vm, container = v.get("vm"), v.get("container")
    if container and container != "none" and vm and vm != "none":
        return f"{container} on {vm}"
    return v.get("detected")


def _rdma_text(r: dict[str, Any]) -> str:
    parts = []
    if r.get("devices"):
        parts.append(",".join(r["devices"]))
    elif r.get("pci"):
        parts.append(f"{len(r['pci'])} RDMA PCI function(s)")
    if r.get("passthrough_suspected"):
        parts.append("passthrough?")
    return " ".join(parts) or "none"


def compare_with_inventory(env: Environment, facts: dict[str, Any]) -> list[str]:
    """What the host reports that contradicts the inventory, one sentence each."""
    findings = []
    topo = facts.get("topology")
    if env.topology is not None:
        want = env.topology
        if topo is None:
            findings.append("topology unknown (lscpu missing); inventory expects "
                            f"{want.sockets}x{want.cores_per_socket}x{want.threads_per_core}")
        elif (topo["sockets"], topo["cores_per_socket"], topo["threads_per_core"]) != (
                want.sockets, want.cores_per_socket, want.threads_per_core):
            findings.append(f"topology: inventory expects {want.sockets} socket(s) x {want.cores_per_socket} "
                            f"core(s) x {want.threads_per_core} thread(s), host reports {topo['sockets']} x "
                            f"{topo['cores_per_socket']} x {topo['threads_per_core']}")
    findings += provider_for(env).layer_findings(env, facts)
    if facts.get("mpi_version") is None:
        findings.append(f"no MPI version from {runtime_for(env).mpirun}")
    placed = facts.get("vcpu_pinning")
    if placed and placed.get("verified") is False:
        findings.append(f"vCPUs not on the host CPUs they were pinned to: {placed.get('map')}")
    return findings


def _row(env_name: str, env: Environment, spec: HostSpec, role: str, outcome: HostOutcome, campaign: str | None,
         store_root: Path | None) -> HostRow:
    if outcome.error is not None:
        reason = outcome.error.message if isinstance(outcome.error, RemoteError) else str(outcome.error)
        return HostRow(env_name, spec.label, role, False, reason=reason or type(outcome.error).__name__,
                       duration_s=round(outcome.duration_s, 3))
    assert outcome.result is not None
    try:
        facts = provider_for(env).host_facts(env, facts_from_result(spec.label, outcome.result))
    except RemoteError as exc:
        detail = f" (exit {exc.returncode})" if exc.returncode is not None else ""
        return HostRow(env_name, spec.label, role, False, reason=exc.message + detail)
    path = store_fingerprint(facts, campaign, env_name, store_root) if campaign is not None else None
    topo = facts.get("topology")
    mem = (facts.get("memory") or {}).get("total_gib")
    return HostRow(
        env_name, spec.label, role, True,
        kernel=facts.get("kernel"), cpu_model=(facts.get("cpu") or {}).get("model"),
        topology=f"{topo['sockets']}x{topo['cores_per_socket']}x{topo['threads_per_core']}" if topo else None,
        numa=topo["numa_nodes"] if topo else None, memory_gib=mem,
        virtualization=_virt_text(facts.get("virtualization") or {}), rdma=_rdma_text(facts.get("rdma") or {}),
        governor=facts.get("governor"), clocksource=facts.get("clocksource"), mpi_version=facts.get("mpi_version"),
        fingerprint_path=str(path) if path else None, findings=compare_with_inventory(env, facts),
        duration_s=round(outcome.duration_s, 3))


def check_inventory(inventory: Inventory, environments: list[str] | None, campaign: str | None, *,
                    pool: ConnectionPool | None = None, timeout: float | None = None,
                    store_root: Path | None = None) -> CheckReport:
    """Fingerprint every host of ``environments`` (default: all) in parallel and compare with the inventory.

    One thread pool runs every (host, script) pair at once (the script differs per environment: its
    MPI version probe); a host listed twice with the same script is asked once. Fingerprints are
    stored under ``<store_root or data/raw>/<campaign>/<env>/fingerprint/`` when a campaign is
    named, and nowhere otherwise (a check must not add files to somebody's campaign). Raises
    InventoryError for an unknown environment name; unreachable hosts are rows, not errors.
    """
    campaign = Campaign.optional(campaign)
    names = list(environments) if environments else list(inventory.environments)
    envs, not_running = {}, []
    for name in names:
        try:
            envs[name] = resolve_environment(inventory, name)
        except EnvironmentNotReady as exc:  # an environment that is not up: a row saying so, not an abort
            declared = inventory.environment(name)
            not_running.append(HostRow(name, provider_for(declared).guest_label(declared), "compute", False,
                                       reason=exc.message))
    own_pool = pool is None
    pool = pool or ConnectionPool(inventory)
    try:
        # A launcher whose system answers for its hosts (Slurm: one srun step) gives its own rows.
        own = {name: rows for name, env in envs.items()
               if (rows := get_launcher(env.launcher).inventory_rows(
                   env, pool, timeout,
                   lambda spec, outcome, name=name, env=env: _row(name, env, spec, "compute", outcome, campaign,
                                                                  store_root),
                   lambda label, reason, name=name: HostRow(name, label, "compute", False, reason=reason),
               )) is not None}
        wanted: list[tuple[str, Environment, HostSpec, str, Executor, str]] = []
        for name, env in envs.items():
            if name in own:
                continue
            script, provider = fingerprint_script(runtime_for(env)), provider_for(env)
            for spec, role in _hosts_of(env):  # fingerprinted inside the environment's layer
                wanted.append((name, env, spec, role, pool.get(spec, env), provider.wrap(env, spec, script)))
        unique = list({(id(w[4]), w[5]): (w[4], w[5]) for w in wanted}.values())
        outcomes = fan_out_each(unique, timeout=timeout or 120.0) if unique else []
        by_key = {(id(e), script): o for (e, script), o in zip(unique, outcomes)}
        fanned = [_row(name, env, spec, role, by_key[(id(executor), script)], campaign, store_root)
                  for name, env, spec, role, executor, script in wanted]
        rows = []
        for name in envs:  # rows keep the environments' order
            rows += own.get(name) or [r for r in fanned if r.environment == name]
        return CheckReport(campaign, rows + not_running)
    finally:
        if own_pool:
            pool.close()


def render_table(report: CheckReport):
    """A rich Table of the report: one row per host, unanswered hosts in red with their reason."""
    from rich.markup import escape
    from rich.table import Table

    where = f"fingerprints stored in campaign {report.campaign}" if report.campaign else \
        "fingerprints not stored: -c CAMPAIGN stores them"
    table = Table(title=f"inventory check ({where})", show_lines=False)
    for column in ("env", "host", "ok", "s", "kernel", "cpu", "SxCxT", "numa", "mem GiB", "virt", "rdma",
                   "governor", "clock", "mpi", "notes"):
        table.add_column(column, overflow="fold")
    for r in report.rows:
        host = escape(r.host + (" (launch)" if r.role == "launch" else ""))
        seconds = f"{r.duration_s:.2f}" if r.duration_s is not None else "-"
        if not r.answered:
            table.add_row(r.environment, host, "[red]no[/red]", seconds, *[""] * 10,
                          f"[red]{escape(r.reason or '')}[/red]")
            continue
        notes = escape("; ".join(r.findings))
        cells = [r.kernel, r.cpu_model, r.topology, str(r.numa or "-"),
                 f"{r.memory_gib:g}" if r.memory_gib else None, r.virtualization, r.rdma, r.governor,
                 r.clocksource, (r.mpi_version or "")[:40] or None]
        table.add_row(r.environment, host, "[green]yes[/green]", seconds, *[escape(c) if c else "-" for c in cells],
                      f"[yellow]{notes}[/yellow]" if notes else "")
    return table
