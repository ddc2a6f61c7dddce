"""Inventory loading and validation: environments, hosts, MPI and benchmarks.

An inventory is YAML validated with pydantic. Every error is reported as an
``InventoryError`` naming the file, the line and the key, so the CLI can print
one line and exit 2.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .exceptions import InventoryError

# RFC 1123 host names, IPv4 and bracket-less IPv6; nothing a shell could interpret.
_LABEL_RE = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL_RE}(?:\.{_LABEL_RE})*\.?$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:]+(%[A-Za-z0-9]+)?$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def validate_hostname(value: str) -> str:
    """Accept a DNS name or an IP address; reject anything else (e.g. shell syntax)."""
    if _HOSTNAME.match(value) or (":" in value and _IPV6.match(value)):
        return value
    raise ValueError(f"not a valid host name or address: {value!r}")


class _Located(ValueError):
    """A model-level error that knows which key it is about (pydantic reports those at the root)."""

    def __init__(self, loc: tuple, message: str) -> None:
        super().__init__(message)
        self.loc = loc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JumpHost(_Strict):
    address: str
    port: int = Field(22, ge=1, le=65535)
    user: str | None = None
    key_file: Path | None = None

    _check_address = field_validator("address")(classmethod(lambda cls, v: validate_hostname(v)))


class HostSpec(_Strict):
    """One machine: this one (``local: true``), an SSH target, or an ~/.ssh/config alias."""

    name: str | None = None
    local: bool = False
    address: str | None = None
    port: int = Field(22, ge=1, le=65535)
    user: str | None = None
    key_file: Path | None = None
    jump: JumpHost | None = None
    ssh_alias: str | None = None
    # Address MPI uses to reach this host when it differs from the SSH address.
    mpi_address: str | None = None

    @field_validator("address", "ssh_alias", "mpi_address")
    @classmethod
    def _host_syntax(cls, value: str | None) -> str | None:
        return None if value is None else validate_hostname(value)

    @field_validator("user")
    @classmethod
    def _user_syntax(cls, value: str | None) -> str | None:
        if value is not None and not _USER.match(value):
            raise ValueError(f"not a valid user name: {value!r}")
        return value

    @field_validator("name")
    @classmethod
    def _name_syntax(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL.match(value):
            raise ValueError(f"host name label must be letters, digits, '-', '_' or '.': {value!r}")
        return value

    @model_validator(mode="after")
    def _one_way_to_reach(self) -> "HostSpec":
        ways = sum([self.local, self.address is not None, self.ssh_alias is not None])
        if ways != 1:
            raise ValueError("a host needs exactly one of: local: true, address, ssh_alias")
        return self

    @property
    def label(self) -> str:
        return self.name or self.ssh_alias or self.address or "localhost"

    @property
    def mpi_name(self) -> str:
        """Name written into hostfiles."""
        return self.mpi_address or self.address or self.ssh_alias or "localhost"


class Topology(_Strict):
    sockets: int = Field(ge=1)
    cores_per_socket: int = Field(ge=1)
    threads_per_core: int = Field(1, ge=1)

    @property
    def cores(self) -> int:
        return self.sockets * self.cores_per_socket


class MpiSpec(_Strict):
    flavour: str = "intel"  # a registered MPI flavour (vhpclib.mpi): intel, openmpi, mpich
    # Installation prefix (bin/, lib/); None means this project's venv (impi-rt).
    prefix: Path | None = None
    mpirun: str | None = None
    options: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"not a valid environment variable name: {name!r}")
        return value

    @field_validator("flavour")
    @classmethod
    def _known_flavour(cls, value: str) -> str:
        from .mpi import FLAVOURS  # the registry imports this module

        return FLAVOURS.check(value)


class NpbSpec(_Strict):
    """Where NPB-MZ comes from in an environment: a source tree to build or built binaries."""

    source: Path | None = None
    version: Literal["3.3", "3.4"] = "3.3"
    fc: str = "mpif90"
    fflags: str = "-O3 -fopenmp"
    bin_dir: str | None = None
    built_in: str | None = None  # environment whose build is reused ("build once, run everywhere")
    # What the single-node and scaling stages run (the paper: SP-MZ and BT-MZ; mz-demo is ours, for tests).
    benchmarks: list[Literal["sp-mz", "bt-mz", "lu-mz", "mz-demo"]] = Field(
        default_factory=lambda: ["sp-mz", "bt-mz"], min_length=1)


class Benchmarks(_Strict):
    imb: str | None = None  # path of IMB-MPI1; default <mpi prefix>/bin/IMB-MPI1
    npb: NpbSpec | None = None
    blockss: str | None = None  # command running vhpc-blockss; default this venv's


class Environment(_Strict):
    label: str
    vmm: str = "none"  # none (bare metal), xen, kvm, ...; "unknown" makes no claim the check could test
    baseline: bool = False
    vcpu_pinning: Literal["pinned", "scheduler", "unknown"] = "unknown"
    launcher: str = "mpirun"  # a registered launcher (vhpclib.launchers)
    host_key_policy: Literal["strict", "accept-new", "insecure"] = "strict"
    known_hosts: Path | None = None
    launch: HostSpec | None = None
    hosts: list[HostSpec] = Field(min_length=1)
    topology: Topology | None = None
    mpi: MpiSpec = Field(default_factory=MpiSpec)
    benchmarks: Benchmarks = Field(default_factory=Benchmarks)
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(3600.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    workdir: str = "/tmp/vhpc"
    description: str = ""
    slurm: SlurmSettings | None = None
    # State file of the QEMU guest `vhpc vm up` booted for this environment: its vCPU -> host CPU
    # map is read back from there (vhpclib.vm.vcpu_map_for).
    vm_state: Path | None = None

    _env_names = field_validator("env")(MpiSpec._env_names.__func__)  # type: ignore[attr-defined]

    @field_validator("label")
    @classmethod
    def _label_syntax(cls, value: str) -> str:
        if not _LABEL.match(value):
            raise ValueError(f"label must be letters, digits, '-', '_' or '.': {value!r}")
        return value

    @field_validator("launcher")
    @classmethod
    def _known_launcher(cls, value: str) -> str:
        from .launchers import LAUNCHERS  # the registry imports this module

        return LAUNCHERS.check(value)

    @field_validator("workdir")
    @classmethod
    def _absolute_workdir(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("workdir must be an absolute path")
        return value

    @model_validator(mode="after")
    def _slurm_section(self) -> "Environment":
        if self.launcher == "slurm" and self.slurm is None:
            raise _Located(("launcher",), "launcher 'slurm' needs a 'slurm:' section (at least 'slurm: {}')")
        return self

    @property
    def launch_host(self) -> HostSpec:
        return self.launch or self.hosts[0]

    @property
    def is_local(self) -> bool:
        return all(h.local for h in self.hosts) and self.launch_host.local


class Inventory(_Strict):
    name: str = ""
    known_hosts: Path | None = None
    environments: dict[str, Environment] = Field(min_length=1)
    # Set by load_inventory: where this inventory came from.
    source: Path | None = None

    @model_validator(mode="after")
    def _one_baseline(self) -> "Inventory":
        for name in self.environments:
            if not _LABEL.match(name):
                raise _Located(("environments", name),
                               f"environment name must be letters, digits, '-', '_' or '.': {name!r}")
        flagged = [n for n, e in self.environments.items() if e.baseline]
        if len(flagged) > 1:
            raise _Located(("environments", flagged[1], "baseline"),
                           f"exactly one environment may be the baseline, found {flagged}")
        if not flagged and len(self.environments) > 1:
            raise _Located(("environments",), "one environment must have 'baseline: true'")
        return self

    @property
    def baseline(self) -> str:
        flagged = [n for n, e in self.environments.items() if e.baseline]
        return flagged[0] if flagged else next(iter(self.environments))

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            raise InventoryError(
                f"no environment {name!r} (has: {', '.join(self.environments)})",
                file=str(self.source) if self.source else None, key="environments") from None

    def known_hosts_for(self, env: Environment) -> Path | None:
        return env.known_hosts or self.known_hosts


# ---------------------------------------------------------------- loading

class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


def _compose_lines(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            _compose_lines(value_node, path + (key,), lines)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _compose_lines(item, path + (index,), lines)


def _resolve_paths(data: Any, base: Path) -> Any:
    """Make relative file paths of the inventory relative to the inventory's folder."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key in ("key_file", "known_hosts", "source", "prefix", "vm_state") and isinstance(value, str):
                p = Path(value).expanduser()
                out[key] = str(p if p.is_absolute() else (base / p).resolve())
            else:
                out[key] = _resolve_paths(value, base)
        return out
    if isinstance(data, list):
        return [_resolve_paths(v, base) for v in data]
    return data


def parse_inventory(text: str, source: str | Path = "<inventory>") -> Inventory:
    """Validate inventory YAML text; errors name the file, line and key."""
    source = Path(source)
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InventoryError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=str(source),
                             line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise InventoryError("an inventory must be a mapping with 'environments'", file=str(source), line=1)
    lines: dict[tuple, int] = {}
    if node is not None:
        _compose_lines(node, (), lines)
    try:
        return Inventory.model_validate({**_resolve_paths(data, source.parent), "source": source})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        located = (err.get("ctx") or {}).get("error")
        if isinstance(located, _Located):
            loc = loc + located.loc
        line = None
        for cut in range(len(loc), -1, -1):  # nearest enclosing key that exists in the file
            if loc[:cut] in lines:
                line = lines[loc[:cut]]
                break
        key = ".".join(str(p) for p in loc) or None
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required key is missing"
        raise InventoryError(message, file=str(source), line=line, key=key) from None


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InventoryError(f"cannot read inventory: {exc.strerror}", file=str(path)) from None
    return parse_inventory(text, path)


def default_mpi_prefix() -> Path:
    """The venv this code runs in: where impi-rt puts mpirun, IMB-MPI1 and libmpi."""
    return Path(sys.prefix)


# The Slurm section's model lives with the Slurm code and uses HostSpec from above: imported last.
from .slurm.settings import SlurmSettings  # noqa: E402

Environment.model_rebuild()
Inventory.model_rebuild()
