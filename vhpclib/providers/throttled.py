"""A ground truth: the baseline's own hosts with a known CPU slowdown injected (inventory section ``throttle:``).

Every command a run launches goes into a fresh cgroup whose CPU bandwidth keeps ``100 - cpu_loss_pct`` %
of ``cpus`` CPUs (``vhpclib.injector``: cgroup v1 ``cpu.cfs_quota_us`` here, cgroup v2 ``cpu.max``
elsewhere). The group is removed after each run; its accounting (periods, throttled periods, throttled
time, CPU time used) is kept in the run record (``execution.injected``), so the overhead a comparison
should find is measured for every run, not assumed from the quota. ``cpu_loss_pct: 0`` is an A/A
environment: the same group and accounting, no limit.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..exceptions import EnvironmentNotReady
from ..injector import DEFAULT_PERIOD_US, InjectionError, plan_limit, wrap_script
from . import register_provider
from .base import EnvironmentProvider

if TYPE_CHECKING:
    from ..config import Environment, HostSpec, Inventory
    from ..injector import CpuLimit


class ThrottleSection(BaseModel):
    """A known CPU loss injected into every run of this environment (its hosts are listed as usual)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cpu_loss_pct: float = Field(ge=0, lt=100, description="Percent of the job's CPU time taken away (a CPU "
                                "bandwidth quota of (100 - loss) % of `cpus`); 0: accounted, not limited (A/A).")
    cpus: float | None = Field(None, gt=0, description="CPUs the job keeps busy, which the quota is a share of; "
                               "default: the CPUs of this machine. A job using fewer CPUs loses less: every "
                               "run records what it lost.")
    period_us: int = Field(DEFAULT_PERIOD_US, ge=1000, le=1_000_000, description="CFS bandwidth period (us); "
                           "the quota per period must stay at least 1000 us.")

    @model_validator(mode="after")
    def _quota_the_kernel_can_give(self) -> ThrottleSection:
        from ..config import _Located

        try:
            plan_limit(self.cpu_loss_pct, self.cpus or float(os.cpu_count() or 1), self.period_us)
        except InjectionError as exc:
            raise _Located((exc.key or "cpu_loss_pct",), exc.message) from None
        return self


@register_provider
class Throttled(EnvironmentProvider):
    name = "throttle"
    Section = ThrottleSection
    summary = "the listed hosts with a known CPU loss injected per run (a cgroup CPU bandwidth limit): a ground truth"
    vmms = {"throttled": ()}
    # seen from inside: the process's own CPU cgroup is one vHPC made for the run
    layer_probes = (("layer_throttle", "[ -r /proc/self/cgroup ]",
                     "grep -o 'vhpc-inject-[0-9a-f]*' /proc/self/cgroup | head -n 1"),)

    def detected(self, evidence: dict[str, str | None]) -> bool:
        return bool((evidence.get("layer_throttle") or "").strip())

    def limit(self, env: Environment) -> CpuLimit:
        section: ThrottleSection = self.section(env)
        return plan_limit(section.cpu_loss_pct, section.cpus or float(os.cpu_count() or 1), section.period_us)

    def vmm(self, env: Environment) -> str:
        return "throttled"

    def layer_findings(self, env: Environment, facts: dict[str, Any]) -> list[str]:
        return []  # a cgroup limit on the hosts themselves: no hypervisor to confirm

    def resolve(self, inventory: Inventory, name: str) -> Environment:
        """The listed hosts; on this machine, refuses (one line) when no cgroup can be created here."""
        env = inventory.environment(name)
        if any(h.local for h in env.hosts):
            reason = _cannot_create_here()
            if reason:
                raise EnvironmentNotReady(f"environment {name!r} injects a CPU loss with a cgroup, but {reason}",
                                          key="throttle")
        return env

    def wrap(self, env: Environment, host: HostSpec, command: str) -> str:
        """``command`` inside a fresh CPU-limited group; a job (``VHPC_JOB`` set) leaves its accounting behind."""
        return wrap_script(command, self.limit(env), uuid.uuid4().hex[:12], jobs_only=True)

    def run_facts(self, ctx: Any, hosts: list[HostSpec]) -> dict[str, Any]:
        limit = self.limit(ctx.env)
        return {"injected": "cpu bandwidth (cgroup)", "cpu_loss_pct": limit.loss_pct, "cpus": limit.cpus,
                "period_us": limit.period_us, "quota_us": limit.quota_us,
                "nominal_overhead_pct": round(limit.nominal_overhead_pct, 4)}

    def down(self, inventory: Inventory, name: str, log: Any) -> None:
        """Remove empty groups a killed run left on this machine (a running one is never touched)."""
        from ..injector import leftover_groups

        for path in leftover_groups():
            try:
                os.rmdir(path)
            except OSError:
                pass


def _cannot_create_here() -> str | None:
    """Why this process cannot create a CPU cgroup (None: it can), by creating and removing one."""
    from ..injector import CGROUP_ROOT, GROUP_PREFIX

    v1 = f"{CGROUP_ROOT}/cpu"
    parent = v1 if os.path.exists(f"{v1}/cpu.cfs_quota_us") else CGROUP_ROOT
    if parent == CGROUP_ROOT:
        try:
            controllers = open(f"{CGROUP_ROOT}/cgroup.controllers").read().split()
        except OSError:
            controllers = []
        if "cpu" not in controllers:
            return f"{CGROUP_ROOT} has no CPU controller (neither cgroup v1 cpu nor cgroup v2 cpu)"
    probe = f"{parent}/{GROUP_PREFIX}probe-{os.getpid()}"
    try:
        os.mkdir(probe)
    except OSError as exc:
        return f"this user cannot create {probe}: {exc.strerror} (run as root, or grant a delegated cgroup)"
    os.rmdir(probe)
    return None
