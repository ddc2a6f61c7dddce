"""What every stage needs: the inventory, the store, reused connections and host facts."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..config import Environment, HostSpec, Inventory, load_inventory
from ..exceptions import EnvironmentNotReady, RemoteError
from ..mpi import MpiRuntime, runtime_for
from ..paths import project_path
from ..names import Campaign
from ..providers import EnvironmentProvider, provider_for
from ..record import MEASURED, EnvironmentSummary, summarize_facts
from ..remote import CommandResult, ConnectionPool, fan_out_each
from ..store import RawStore
from ..topology import TOPOLOGY_COMMAND, HostTopology, parse_lscpu


@dataclass
class StageContext:
    """One campaign in one environment: connections and host facts are reused across runs.

    The first run measured takes the campaign's writer lock (held until ``close``; ``wait``
    queues behind another writer instead of refusing) and cleans up what a killed vhpc left
    on the campaign (``recovery.recover``).
    """

    inventory: Inventory
    environment: str
    campaign: Campaign
    store: RawStore = field(default_factory=RawStore)
    pool: ConnectionPool | None = None
    wait: bool = False
    _facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    _topology: HostTopology | None = None
    _boot_ids: dict[tuple, bool] = field(default_factory=dict)
    _lscpu: str | None = None
    _lock: Any = None
    _durations: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    _not_ready: EnvironmentNotReady | None = None

    def __post_init__(self) -> None:
        self.campaign = Campaign(self.campaign)  # a notebook's or a test's str: checked once, here
        self.env: Environment = self._resolved()
        if self.pool is None:
            self.pool = ConnectionPool(self.inventory)

    def _resolved(self) -> Environment:
        """The environment as its provider resolves it (a guest's: the running guest's); analysing stored
        runs needs nothing up, so a provider that is not ready only stops what would reach its hosts."""
        declared = self.inventory.environment(self.environment)
        self.provider: EnvironmentProvider = provider_for(declared)
        try:
            return self.provider.resolve(self.inventory, self.environment)
        except EnvironmentNotReady as exc:
            self._not_ready = exc
            return declared

    def _require_guest(self) -> None:
        if self._not_ready is not None:
            raise self._not_ready

    def begin_writing(self) -> None:
        """Take the campaign's writer lock (once) and recover what a killed vhpc left behind."""
        if self._lock is not None:
            return
        self._require_guest()
        from ..store import refuse_symlinks

        refuse_symlinks(self.store.root, self.campaign, self.environment)  # fingerprints go there before any run
        lock = self.store.lock(self.campaign, wait=self.wait)
        lock.__enter__()
        self._lock = lock
        from .recovery import recover

        for line in recover(self):
            warnings.warn(line, stacklevel=2)

    def durations(self, stage: str) -> dict[str, list[float]]:
        """Durations of the stage's measured runs per point stem (read once; measure() adds new ones)."""
        if stage not in self._durations:
            found: dict[str, list[float]] = {}
            for run in self.store.runs(self.campaign, self.environment, stage):
                if run.status in MEASURED and run.record.kind == "run" and run.record.duration_s:
                    found.setdefault(run.record.stem, []).append(run.record.duration_s)
            self._durations[stage] = found
        return self._durations[stage]

    @classmethod
    def open(cls, inventory: Inventory | str | Path, environment: str, campaign: str, *,
             store: RawStore | None = None, pool: ConnectionPool | None = None, wait: bool = False) -> "StageContext":
        inv = inventory if isinstance(inventory, Inventory) else load_inventory(project_path(inventory))
        return cls(inv, environment, campaign, store or RawStore(), pool, wait)

    def executor(self, host: HostSpec):
        self._require_guest()
        assert self.pool is not None
        return self.pool.get(host, self.env)

    @cached_property
    def runtime(self) -> MpiRuntime:
        return runtime_for(self.env)

    def environment_summary(self) -> EnvironmentSummary:
        """What every run record keeps of this environment, with what its provider reads back now."""
        env = self.env
        return EnvironmentSummary(label=env.label, vmm=self.provider.vmm(env), baseline=env.baseline,
                                  vcpu_pinning=env.vcpu_pinning, launcher=env.launcher, provider=env.kind,
                                  facts=self.provider.run_facts(self, list(env.hosts)) or None)

    def inside(self, host: HostSpec, command: str) -> str:
        """``command`` as it runs inside the environment's layer on ``host`` (the provider's ``wrap``)."""
        return self.provider.wrap(self.env, host, command)

    def skip_reason(self, nodes: int, ranks_per_node: int) -> str | None:
        """Why the environment's layer cannot run this shape (None: it can); the stage records it as a skip."""
        return self.provider.skip_reason(self.env, nodes, ranks_per_node)

    def topology(self) -> HostTopology:
        """Topology of the first compute host (placements are chosen from it).

        A campaign's runs record the topology they saw; reusing it means a campaign whose
        runs are all complete is re-analysed without connecting to any host.
        """
        if self._topology is None:
            for run in self.store.runs(self.campaign, self.environment):
                if run.record.lscpu:
                    self._topology = parse_lscpu(run.record.lscpu, file=str(run.path / "run.json"))
                    self._lscpu = run.record.lscpu
                    return self._topology
            self._require_guest()
            host = self.env.hosts[0]
            result = self.executor(host).run(self.inside(host, TOPOLOGY_COMMAND), timeout=60)
            self._topology = parse_lscpu(result.stdout, file=f"{host.label}: lscpu -p (or sysfs)")
            self._lscpu = result.stdout
        return self._topology

    def topology_record(self) -> dict[str, Any]:
        """What a run record keeps of the topology: the raw lscpu text and its summary."""
        topology = self.topology()
        return {"lscpu": self._lscpu, "topology": topology.summary()}

    def mpi_hosts(self, nodes: int) -> tuple[str, ...]:
        """Hosts to name to mpirun for a run on ``nodes`` nodes; none when it runs on the launch host itself."""
        if nodes <= 1 and self.env.launch_host == self.env.hosts[0]:
            return ()
        return tuple(h.mpi_name for h in self.env.hosts[:nodes])

    def shares_machine(self, hosts: list[HostSpec]) -> bool:
        """Whether these hosts are one kernel (namespaces/containers): same boot id."""
        key = tuple(h.label for h in hosts)
        if key not in self._boot_ids:
            probe = "cat /proc/sys/kernel/random/boot_id"
            ids = {self.executor(h).run(self.inside(h, probe), timeout=60).stdout.strip() for h in hosts}
            self._boot_ids[key] = len(ids) == 1
        return self._boot_ids[key]

    def topology_findings(self) -> list[str]:
        """Differences between the inventory's expected topology and the host's."""
        expected = self.env.topology
        if expected is None:
            return []
        got = self.topology()
        findings = []
        for name in ("sockets", "cores_per_socket", "threads_per_core"):
            if getattr(expected, name) != getattr(got, name):
                findings.append(f"{self.env.hosts[0].label}: expected {name}={getattr(expected, name)}, "
                                f"host reports {getattr(got, name)}")
        return findings

    def run_on(self, hosts: list[HostSpec], command: str, *, env: dict[str, str] | None = None,
               timeout: float | None = None) -> list[CommandResult]:
        """One command on several hosts at once, inside the environment's layer; a failure raises
        ``RemoteError`` naming every failed host."""
        outcomes = fan_out_each([(self.executor(h), self.inside(h, command)) for h in hosts], env=env,
                                timeout=timeout)
        failed = [o for o in outcomes if not o.ok]
        if failed:
            why = "; ".join(f"{o.host}: {o.error}" if o.error else f"{o.host}: exit {o.result.exit_code}"
                            for o in failed)
            detail = next((o.result for o in failed if o.result is not None), None)
            raise RemoteError(f"failed on {len(failed)} of {len(hosts)} host(s): {why}",
                              host=",".join(o.host for o in failed), command=command,
                              exit_code=detail.exit_code if detail else None,
                              stdout=detail.stdout if detail else "", stderr=detail.stderr if detail else "")
        return [o.result for o in outcomes]

    def host_facts(self, hosts: list[HostSpec]) -> dict[str, dict[str, Any]]:
        """Fingerprints of ``hosts`` as run records reference them: once per host per campaign.

        A host whose stored fingerprint still matches a cheap probe (same boot, host name and
        mpirun) reuses it; the others are fingerprinted, all at once.
        """
        from ..fingerprint import facts_from_result, fingerprint_script, store_fingerprint
        from ..launchers import get_launcher

        gathered = get_launcher(self.env.launcher).host_facts(self, hosts)  # e.g. Slurm: one srun step
        if gathered is not None:
            return gathered
        missing = [h for h in dict.fromkeys(hosts) if h.label not in self._facts]
        if missing:
            for host, path, facts in self.unchanged_hosts(missing):
                self._keep_facts(host, path, facts)
            missing = [h for h in missing if h.label not in self._facts]
        if missing:
            results = self.run_on(missing, fingerprint_script(self.runtime), timeout=120)
            for host, result in zip(missing, results):
                facts = self.provider.host_facts(self.env, facts_from_result(host.label, result))
                path = store_fingerprint(facts, self.campaign, self.environment, store_root=self.store.root)
                self._keep_facts(host, Path(path), facts)
        return {h.label: self._facts[h.label] for h in hosts}

    def _keep_facts(self, host: HostSpec, path: Path, facts: dict[str, Any]) -> None:
        self._facts[host.label] = {"fingerprint": str(Path(path).relative_to(self.store.root)),
                                   **summarize_facts(facts)}

    def unchanged_hosts(self, hosts: list[HostSpec]) -> list[tuple[HostSpec, Path, dict[str, Any]]]:
        """Hosts whose stored fingerprint the probe confirms (local hosts probed without a process)."""
        from ..fingerprint import latest_fingerprint, local_probe, parse_probe, probe_script

        stored = {h.label: latest_fingerprint(self.campaign, self.environment, h.label, self.store.root)
                  for h in hosts}
        candidates = [h for h in hosts if stored[h.label] and stored[h.label][1].get("probe")]
        remote = [h for h in candidates if not h.local]
        probes = {h.label: local_probe(self.runtime) for h in candidates if h.local}
        if remote:
            outcomes = fan_out_each([(self.executor(h), self.inside(h, probe_script(self.runtime))) for h in remote],
                                    timeout=60)
            probes.update({h.label: parse_probe(o.result.stdout) for h, o in zip(remote, outcomes) if o.ok})
        out = []
        for host in candidates:
            path, facts = stored[host.label]  # type: ignore[misc]
            probe = probes.get(host.label)
            if probe and probe.get("boot_id") and probe == facts["probe"]:
                out.append((host, path, facts))
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.__exit__(None, None, None)

    def __enter__(self) -> "StageContext":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def layer_up(inventory: Inventory | str | Path, environment: str, measure: bool):  # noqa: ANN202
    """Bring up, for this stage only, what an environment whose provider ``starts_with_run`` needs (a container:
    started and removed again around the stage); others (a QEMU guest) must be up already."""
    import sys
    from contextlib import nullcontext

    from ..providers import environments_up, provider_for

    if not measure:
        return nullcontext()
    inv = inventory if isinstance(inventory, Inventory) else load_inventory(project_path(inventory))
    if not provider_for(inv.environment(environment)).starts_with_run:
        return nullcontext()
    return environments_up(inv, [environment], log=lambda line: print(line, file=sys.stderr))
