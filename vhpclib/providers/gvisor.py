"""gVisor (runsc, ptrace platform) as an environment: inventory section ``gvisor:``.

The same image and lifecycle as ``container`` (podman starts one sandbox per host, jobs enter with
``podman exec``), with runsc as the OCI runtime: ``--network=none`` (runsc refuses the root network
namespace otherwise) and the ptrace platform (the kvm platform hangs on this kind of machine). Intel
MPI's Hydra reads the CPU topology through hwloc and segfaults under gVisor, so ``I_MPI_HYDRA_TOPOLIB=ipl``
is set inside. One rank runs; every 2-rank Intel MPI run crashed in the variants tried (RECIPES §10:
"Unhandled user fault ... sig=11" at the same offset), so points with more than one rank are skipped
with that reason, never measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import register_provider
from ..layers.podman import gvisor_evidence  # noqa: F401 - gVisor's evidence, beside the runtime code
from .container import Container, ContainerSection

if TYPE_CHECKING:
    from ..config import Environment

SKIP_MULTI_RANK = ("gVisor (runsc 2022-12-19, ptrace platform) crashes Intel MPI with more than one rank "
                   "(segfault right after start in every variant tried: shm, CMA off, no pinning, ofi tcp/shm)")


class GvisorSection(BaseModel):
    """A gVisor sandbox vHPC builds and starts on each of the environment's hosts (podman with runsc)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cpus: list[int] | None = Field(None, description="Host CPUs the sandbox may run on (podman --cpuset-cpus), "
                                   "read back from the kernel at every run; omitted: every CPU of the host.")
    shm_mib: int = Field(4096, ge=64, le=1 << 20, description="Size of the sandbox's /dev/shm in MiB.")
    memory_mib: int | None = Field(None, ge=256, description="Memory limit in MiB (podman --memory); omitted: none.")

    @property
    def network(self) -> str:
        return "none"

    _distinct = field_validator("cpus")(ContainerSection._distinct.__func__)  # type: ignore[attr-defined]


@register_provider
class Gvisor(Container):
    name = "gvisor"
    Section = GvisorSection
    summary = "a gVisor sandbox (runsc, ptrace) vHPC builds and starts on each host; one MPI rank"
    vmms = {"gvisor": ("gvisor",)}
    runtime = "runsc"
    runtime_flags = ("network=none", "platform=ptrace")
    forced_env = {"I_MPI_HYDRA_TOPOLIB": "ipl"}
    layer_vmm = "gvisor"
    layer_probes = (
        ("layer_gvisor_dmesg", "command -v dmesg", "dmesg 2>/dev/null | grep -m 1 -o 'Starting gVisor'"),
        ("layer_kernel_release", "[ -r /proc/sys/kernel/osrelease ]", "read -r r < /proc/sys/kernel/osrelease; "
                                                                      "printf '%s\\n' \"$r\""),
    )

    def detected(self, evidence: dict[str, str | None]) -> bool:
        return gvisor_evidence(evidence)

    def system_packages(self, env: Environment) -> list[str]:
        return ["podman", "runsc", "debootstrap", "e2fsprogs"]

    def skip_reason(self, env: Environment, nodes: int, ranks_per_node: int) -> str | None:
        if nodes * ranks_per_node > 1:
            return SKIP_MULTI_RANK
        return None
