"""Containers (podman + runc) as an environment: inventory section ``container:``.

vHPC builds the image (the QEMU guest's debootstrap base with Intel MPI, IMB and blockss at
``/opt/vhpc``, cached), starts one long-running container per host it needs (``up``: pinned with
``--cpuset-cpus``, no network, a private podman store), runs every job inside it with ``podman exec``
(``wrap``), reads the pinning back from the kernel at every run (``run_facts``) and removes the
containers afterwards (``down``). The run's folder and the environment's work folder are mounted at
the same paths, so logs and blockss problems are where the host expects them. Containers run on this
machine's hosts (``local: true``); gVisor (``providers.gvisor``) is the same with another runtime.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..exceptions import EnvironmentNotReady, LayerUnavailable
from . import register_provider
from .base import EnvironmentProvider, Log

if TYPE_CHECKING:
    from ..config import Environment, HostSpec, Inventory
    from ..layers.podman import Podman

_NETWORK = re.compile(r"^(none|ns:/run/netns/[A-Za-z0-9_.-]+)$")


class ContainerPlacement(BaseModel):
    """Where a container runs and what it may use (every container kind's section has these)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cpus: list[int] | None = Field(None, description="Host CPUs the container may run on (podman --cpuset-cpus), "
                                   "read back from the kernel at every run; omitted: every CPU of the host.")
    shm_mib: int = Field(4096, ge=64, le=1 << 20, description="Size of the container's /dev/shm in MiB; Intel MPI "
                         "maps about 2.1 GB of shared memory even for one rank.")
    memory_mib: int | None = Field(None, ge=256, description="Memory limit in MiB (podman --memory); omitted: none.")

    @field_validator("cpus")
    @classmethod
    def _distinct(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or len(set(value)) != len(value) or min(value) < 0):
            raise ValueError(f"cpus needs distinct host CPU numbers, got {value}")
        return value


class ContainerSection(ContainerPlacement):
    """A container vHPC builds and starts on each of the environment's hosts (``podman`` with ``runc``)."""

    network: str = Field("none", description="`none` (no network: one node) or `ns:/run/netns/NAME` (a namespace "
                         "node's network); neither adds firewall rules.")

    @field_validator("network")
    @classmethod
    def _network(cls, value: str) -> str:
        if not _NETWORK.match(value):
            raise ValueError(f"network must be 'none' or 'ns:/run/netns/NAME', got {value!r}")
        return value


@register_provider
class Container(EnvironmentProvider):
    name = "container"
    Section = ContainerSection
    summary = "a podman container (runc) vHPC builds and starts on each host; jobs run inside with podman exec"
    vmms = {"container": ("podman",)}
    #: The OCI runtime and its flags (gVisor overrides them).
    runtime: ClassVar[str] = "runc"
    runtime_flags: ClassVar[tuple[str, ...]] = ()
    #: Variables the layer itself needs set for Intel MPI, exported inside before the job's command.
    forced_env: ClassVar[dict[str, str]] = {}
    layer_vmm: ClassVar[str] = "container"
    starts_with_run = True
    # Positive evidence from inside (podman's marker file, PID 1's variable, the libpod cgroup); gVisor under
    # podman has them too, and its own evidence wins (``detected``).
    layer_probes = (
        ("layer_containerenv", "[ -e /run/.containerenv ]", "echo present"),
        ("layer_pid1_container", "[ -r /proc/1/environ ]",
         "tr '\\0' '\\n' < /proc/1/environ | sed -n 's/^container=//p'"),
        ("layer_cgroup_libpod", "[ -r /proc/self/cgroup ]", "grep -m 1 -o 'libpod-[0-9a-f]*' /proc/self/cgroup"),
    )

    # ------------------------------------------------------------------ helpers

    def podman(self) -> Podman:
        from ..layers.podman import Podman

        return Podman(runtime=self.runtime, runtime_flags=self.runtime_flags)

    def container_name(self, env: Environment, host: HostSpec) -> str:
        """One name per checkout, environment and host: found again by any later vhpc of this checkout."""
        from ..config import checkout_id

        text = f"vhpc-{self.name}-{checkout_id()[:8]}-{env.label}-{host.label}"
        return re.sub(r"[^A-Za-z0-9_.-]", "-", text)

    def mounts(self, env: Environment) -> list[str]:
        """Folders a job reads and writes at the host's paths: the raw store (its run folders) and the work folder."""
        from .. import paths

        return list(dict.fromkeys([str(paths.DATA.resolve()), env.work_root]))

    def _check_hosts(self, env: Environment, inventory: Inventory, name: str) -> None:
        remote = [h.label for h in env.hosts if not h.local]
        if remote:
            raise LayerUnavailable(f"{self.name} environments run on this machine's hosts (local: true); "
                                   f"{', '.join(remote)} is not", file=str(inventory.source or "") or None,
                                   key=f"environments.{name}.hosts")

    # ------------------------------------------------------------------ contract

    def vmm(self, env: Environment) -> str:
        return self.layer_vmm

    def system_packages(self, env: Environment) -> list[str]:
        return ["podman", self.runtime, "debootstrap", "e2fsprogs"]

    def resolve(self, inventory: Inventory, name: str) -> Environment:
        """The declared environment with the workloads of the image (``/opt/vhpc``); not ready unless its
        containers run (``up`` starts them: ``vhpc run`` and ``paper-figures --rerun`` do it themselves)."""
        from ..layers.image import PREFIX

        declared = inventory.environment(name)
        self._check_hosts(declared, inventory, name)
        running = set(self.podman().containers(name_prefix="vhpc-"))
        missing = [h.label for h in declared.hosts if self.container_name(declared, h) not in running]
        if missing:
            raise EnvironmentNotReady(
                f"the {self.name} of environment {declared.label!r} is not running on {', '.join(missing)}: "
                f"`vhpc run` and `vhpc paper-figures --rerun` start it", file=str(inventory.source or "") or None,
                key=f"environments.{name}.{self.name}")
        return self._as_measured(declared, PREFIX)

    def _as_measured(self, declared: Environment, prefix: str) -> Environment:
        mpi = declared.mpi.model_copy(update={"prefix": prefix, "env": {**self.forced_env, **declared.mpi.env}})
        benchmarks = declared.benchmarks.model_copy(update={"imb": f"{prefix}/bin/IMB-MPI1",
                                                            "blockss": f"{prefix}/bin/vhpc-blockss"})
        pinning = "pinned" if self.section(declared).cpus else declared.vcpu_pinning
        return declared.model_copy(update={"mpi": mpi, "benchmarks": benchmarks, "vmm": self.layer_vmm,
                                           "vcpu_pinning": pinning})

    def up(self, inventory: Inventory, name: str, log: Log) -> bool:
        """Build (or find) the image and start one container per host, pinned as the section says."""
        from ..layers.image import build_root

        env = inventory.environment(name)
        self._check_hosts(env, inventory, name)
        spec: ContainerSection = self.section(env)
        podman = self.podman()
        podman.argv()  # a missing podman or runtime is one line before anything is built
        if all(self._as_declared(podman, env, host) for host in env.hosts):
            return False  # already up as declared (e.g. by paper-figures --rerun): whoever started it stops it
        image = podman.ensure_image(build_root(log=log))
        for host in env.hosts:
            cname = self.container_name(env, host)
            podman.start(cname, image, cpus=spec.cpus, mounts=self.mounts(env), hostname=f"vhpc-{host.label}",
                         shm_mib=spec.shm_mib, network=spec.network, memory_mib=spec.memory_mib)
            self._check_started(podman, cname, spec)
            log(f"{self.name} {cname} started ({self.runtime}, cpus {self._read_back(podman, cname)['cpus']})")
        return True

    def _as_declared(self, podman: Podman, env: Environment, host: HostSpec) -> bool:
        placed = self._read_back(podman, self.container_name(env, host))
        spec = self.section(env)
        return bool(placed.get("running")) and placed.get("mounts") == sorted(self.mounts(env)) and (
            not spec.cpus or placed.get("cpus") == sorted(spec.cpus))

    def _check_started(self, podman: Podman, cname: str, spec: ContainerSection) -> None:
        placed = self._read_back(podman, cname)
        if not placed.get("running"):
            podman.remove(cname)
            raise LayerUnavailable(f"{self.name} {cname} did not stay up (runtime {self.runtime})")
        if spec.cpus and placed.get("cpus") != sorted(spec.cpus):
            podman.remove(cname)
            raise LayerUnavailable(f"{self.name} {cname} runs on CPUs {placed.get('cpus')}, asked for {spec.cpus}")

    def down(self, inventory: Inventory, name: str, log: Log) -> None:
        env = inventory.environment(name)
        podman = self.podman()
        for host in env.hosts:
            cname = self.container_name(env, host)
            podman.remove(cname)
            log(f"{self.name} {cname} removed")

    def wrap(self, env: Environment, host: HostSpec, command: str) -> str:
        """``podman exec`` into the host's container, in the job's folder, with the job's variables."""
        import shlex

        forced = "".join(f"export {k}={shlex.quote(v)}; " for k, v in self.forced_env.items())
        return self.podman().exec_command(self.container_name(env, host), forced + command)

    def _read_back(self, podman: Podman, cname: str) -> dict[str, Any]:
        """What the kernel says of the container: PID 1's allowed CPUs (the cgroup cpuset applied), running."""
        from ..layers.podman import read_back

        return read_back(podman, cname)

    def detected(self, evidence: dict[str, str | None]) -> bool:
        from ..layers.podman import gvisor_evidence

        if gvisor_evidence(evidence):
            return False
        return bool(evidence.get("layer_containerenv") or evidence.get("layer_cgroup_libpod")
                    or evidence.get("layer_pid1_container"))

    def layer_findings(self, env: Environment, facts: dict[str, Any]) -> list[str]:
        seen = (facts.get("layer") or {}).get("detected")
        return [] if seen == self.name else [f"inventory says {self.name} but the host shows "
                                             f"{'no layer' if seen is None else seen!r} from inside"]

    def own_processes(self, env: Environment, host: HostSpec) -> set[int]:
        """Every process of the host's container (its cgroup): runsc's sandbox and gofer run the job's code."""
        from ..layers.podman import container_pids

        return container_pids(self.podman(), self.container_name(env, host))

    def run_facts(self, ctx: Any, hosts: list[HostSpec]) -> dict[str, Any]:
        """Per host: the container, its runtime, the CPUs its processes may use as read back now."""
        podman = self.podman()
        spec: ContainerSection | None = self.section(ctx.env)
        out: dict[str, Any] = {"layer": self.layer_vmm, "runtime": self.runtime,
                               "runtime_flags": list(self.runtime_flags), "forced_env": dict(self.forced_env),
                               "cpus_asked": list(spec.cpus) if spec and spec.cpus else None, "containers": {}}
        for host in hosts:
            cname = self.container_name(ctx.env, host)
            out["containers"][host.label] = {"name": cname, **self._read_back(podman, cname)}
        return out
