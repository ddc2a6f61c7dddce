"""User-mode Linux as an environment: inventory section ``uml:``.

Paravirtualization in its oldest form: a Linux kernel (Debian ``user-mode-linux``) running as a process
on the host's kernel. Every command (each job, the fingerprint, the topology probe, blockss problem
generation) boots one instance from the layer's disk with a copy-on-write file of its own, runs the
command and powers off (``vhpclib.layers.uml``: ~2.4 s). Nothing runs between commands, so ``up``
only builds what is cached and there is nothing to stop.

UML has one vCPU (no SMP). Points with more than one rank per node are skipped with that reason: two
ranks would share the vCPU and measure its scheduler (a tick, ~10 ms, unless they sleep between
polls), not the layer. Intel MPI needs ``I_MPI_PIN=0 I_MPI_HYDRA_TOPOLIB=ipl`` inside (its pinning
asserts without a CPU topology); these, and the sleep-polling settings, are forced by the layer's
init and listed in every run record (``run_facts``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ..exceptions import LayerUnavailable
from . import register_provider
from .base import EnvironmentProvider, Log

if TYPE_CHECKING:
    from ..config import Environment, HostSpec, Inventory


class UmlSection(BaseModel):
    """A user-mode Linux kernel vHPC boots for every command, on this machine."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    vcpus: int = Field(1, ge=1, le=64, description="vCPUs asked for. User-mode Linux has one (no SMP): with any "
                       "other number every point is skipped with that reason.")
    memory_mib: int = Field(4096, ge=256, description="Memory of the UML kernel in MiB (mem=); Intel MPI maps "
                            "about 2.1 GB of shared memory even for one rank.")
    shm_mib: int = Field(3072, ge=64, description="Size of /dev/shm inside in MiB.")
    cpu: int | None = Field(None, ge=0, description="Host CPU the UML process runs on (taskset), read back at "
                            "every run; omitted: the host scheduler places it.")


@lru_cache(maxsize=1)
def _disk() -> Path | None:
    """The cached UML disk of this venv's workloads (None: not built yet; ``up`` builds it)."""
    from ..layers.image import cached_root
    from ..layers.uml import disk_path

    root = cached_root()
    if root is None:
        return None
    disk = disk_path(root)
    return disk if disk.is_file() else None


@register_provider
class Uml(EnvironmentProvider):
    name = "uml"
    Section = UmlSection
    summary = "a user-mode Linux kernel (a process on the host) vHPC boots for every command; one vCPU"
    vmms = {"uml": ("uml",)}
    starts_with_run = True
    layer_probes = (
        ("layer_uml_cpu", "[ -r /proc/cpuinfo ]", "grep -m 1 -o 'User Mode Linux' /proc/cpuinfo"),
    )

    def vmm(self, env: Environment) -> str:
        return "uml"

    def system_packages(self, env: Environment) -> list[str]:
        return ["user-mode-linux", "debootstrap", "e2fsprogs"]

    def detected(self, evidence: dict[str, str | None]) -> bool:
        return evidence.get("layer_uml_cpu") == "User Mode Linux"

    def layer_findings(self, env: Environment, facts: dict[str, Any]) -> list[str]:
        seen = (facts.get("layer") or {}).get("detected")
        return [] if seen == self.name else [f"inventory says uml but the host shows "
                                             f"{'no layer' if seen is None else seen!r} from inside"]

    def _check(self, env: Environment, inventory: Inventory, name: str) -> None:
        remote = [h.label for h in env.hosts if not h.local]
        if remote:
            raise LayerUnavailable(f"user-mode Linux runs on this machine's hosts (local: true); {', '.join(remote)} "
                                   "is not", file=str(inventory.source or "") or None, key=f"environments.{name}.hosts")

    def resolve(self, inventory: Inventory, name: str) -> Environment:
        """The declared environment with the workloads of the disk (``/opt/vhpc``), one core per node."""
        from ..exceptions import EnvironmentNotReady
        from ..layers.image import PREFIX

        declared = inventory.environment(name)
        self._check(declared, inventory, name)
        if _disk() is None:
            raise EnvironmentNotReady(f"the user-mode Linux disk of environment {declared.label!r} is not built: "
                                      "`vhpc run` and `vhpc paper-figures --rerun` build it",
                                      file=str(inventory.source or "") or None, key=f"environments.{name}.uml")
        spec: UmlSection = self.section(declared)
        mpi = declared.mpi.model_copy(update={"prefix": PREFIX})
        benchmarks = declared.benchmarks.model_copy(update={"imb": f"{PREFIX}/bin/IMB-MPI1",
                                                            "blockss": f"{PREFIX}/bin/vhpc-blockss"})
        return declared.model_copy(update={"mpi": mpi, "benchmarks": benchmarks, "vmm": "uml",
                                           "vcpu_pinning": "pinned" if spec.cpu is not None else "scheduler"})

    def up(self, inventory: Inventory, name: str, log: Log) -> bool:
        """Build (or find) the disk; nothing keeps running between commands, so nothing to stop."""
        from ..layers.image import build_root
        from ..layers.uml import ensure_disk, linux_binary

        env = inventory.environment(name)
        self._check(env, inventory, name)
        linux_binary()  # a missing user-mode-linux is one line before anything is built
        disk = ensure_disk(build_root(log=log))
        _disk.cache_clear()
        log(f"user-mode Linux disk ready: {disk.name}")
        return False

    def mounts(self, env: Environment) -> list[str]:
        from .. import paths

        return list(dict.fromkeys([str(paths.DATA.resolve()), env.work_root]))

    def wrap(self, env: Environment, host: HostSpec, command: str) -> str:
        """Boot UML, run ``command`` in the caller's folder with its variables, power off; its exit status."""
        from ..exceptions import EnvironmentNotReady
        from ..layers.uml import boot_command

        disk = _disk()
        if disk is None:
            raise EnvironmentNotReady("the user-mode Linux disk is not built: `vhpc run` builds it")
        spec: UmlSection = self.section(env)
        return boot_command(disk, command, mounts=self.mounts(env), memory_mib=spec.memory_mib,
                            shm_mib=spec.shm_mib, cpu=spec.cpu)

    def run_facts(self, ctx: Any, hosts: list[HostSpec]) -> dict[str, Any]:
        """The kernel, the settings forced inside, and where the UML process may run (read back)."""
        from ..layers.uml import MPI_SETTINGS, pinned_cpus

        spec: UmlSection = self.section(ctx.env)
        disk = _disk()
        return {"layer": "uml", "vcpus": 1, "memory_mib": spec.memory_mib, "shm_mib": spec.shm_mib,
                "disk": disk.name if disk else None, "forced_env": dict(MPI_SETTINGS),
                "cpu_asked": spec.cpu, "cpus_read_back": pinned_cpus(spec.cpu)}

    def skip_reason(self, env: Environment, nodes: int, ranks_per_node: int) -> str | None:
        spec: UmlSection = self.section(env)
        if spec.vcpus != 1:
            return f"user-mode Linux has one vCPU (no SMP); the inventory asks for {spec.vcpus}"
        if nodes > 1:
            return "one user-mode Linux instance per run: there is no network between instances"
        if ranks_per_node > 1:
            return (f"user-mode Linux has one vCPU: {ranks_per_node} ranks would share it and measure its "
                    "scheduler (a tick, ~10 ms, unless they sleep between polls), not the layer")
        return None
