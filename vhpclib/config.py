"""Inventory loading and validation: environments, hosts, MPI and benchmarks.

An inventory is YAML validated with pydantic. Every error is reported as an
``InventoryError`` naming the file, the line and the key; all of a file's errors
are reported at once (``InventoryError.problems``), one line each, so the CLI
can print them and exit 2.

The loader refuses what YAML allows but an inventory never needs: files above
``MAX_BYTES``, text that is not UTF-8, duplicate keys (the second would silently
replace the first), nesting deeper than ``MAX_DEPTH``, aliases expanding past
``MAX_NODES`` (a "billion laughs" bomb), and infinite or NaN numbers.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails

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
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
        return _owner("vhpclib.mpi").FLAVOURS.check(value)


class Benchmarks(_Strict):
    """Where each workload's programs come from: one key per workload section (``Workload.section``).

    The model is assembled from the sections the registered workloads declare
    (``add_benchmark_section``, called by ``workloads.register_workload``), so this module never
    imports a workload; ``benchmarks_model()`` is the current one.
    """


_SECTIONS: dict[str, tuple[Any, Any]] = {}
_BENCHMARKS: list[type[Benchmarks]] = [Benchmarks]
#: The package whose import registers the built-in workloads (and so their sections), loaded before the
#: first inventory is validated: the one place this module names it, as an entry point would.
WORKLOAD_PLUGINS = "vhpclib.workloads"


def benchmarks_model() -> type[Benchmarks]:
    """The ``benchmarks`` model of the workloads registered now."""
    return _BENCHMARKS[-1]


def add_benchmark_section(key: str, annotation: Any, description: str, default: Any = None) -> None:
    """Accept ``benchmarks.<key>`` in inventories, validated as ``annotation`` (a workload's section)."""
    _SECTIONS[key] = (annotation, Field(default, description=description))
    _rebuild_benchmarks()


def remove_benchmark_section(key: str) -> None:
    if _SECTIONS.pop(key, None) is not None:
        _rebuild_benchmarks()


def _rebuild_benchmarks() -> None:
    from pydantic import create_model

    model = create_model("Benchmarks", __base__=Benchmarks, __doc__=Benchmarks.__doc__, **_SECTIONS)
    _BENCHMARKS.append(model)
    del _BENCHMARKS[1:-1]
    if "Environment" in globals():  # the inventory models take the new sections
        Environment.model_fields["benchmarks"].annotation = model
        Environment.model_fields["benchmarks"].default_factory = model
        Environment.model_rebuild(force=True)
        Inventory.model_rebuild(force=True)


def load_workloads() -> None:
    """Register the built-in workloads and the plugins' (``vhpclib.plugins``), with their sections, before an
    inventory is validated."""
    import importlib

    from .plugins import load_plugins

    if WORKLOAD_PLUGINS not in sys.modules:
        importlib.import_module(WORKLOAD_PLUGINS)
    load_plugins()


def checkout_id() -> str:
    """A short name for this checkout of vHPC (its folder), so two checkouts never share a work folder."""
    from .paths import PROJECT_ROOT

    return hashlib.sha256(str(PROJECT_ROOT.resolve()).encode()).hexdigest()[:12]


#: Modules whose registries own inventory sections (``section_model(name)``), imported by name when an
#: inventory is validated: config.py has no import of them (no cycle through the backends), and a registry
#: loads only the plugin modules an inventory names (a plain inventory never loads Slurm or QEMU code).
SECTION_OWNERS = ("vhpclib.providers", "vhpclib.launchers")


def _owner(module: str) -> Any:
    """A registry module of ``SECTION_OWNERS``, imported by name on first use."""
    import importlib

    return importlib.import_module(module)


def _section_model(key: str) -> type[BaseModel] | None:
    """The model of inventory section ``key`` (``vm``, ``slurm``...), from the first registry that owns it."""
    for owner in SECTION_OWNERS:
        model = _owner(owner).section_model(key)
        if model is not None:
            return model
    return None


def _error_details(errors: list[dict], prefix: tuple = ()) -> list[InitErrorDetails]:
    return [InitErrorDetails(type=e["type"], loc=(*prefix, *e["loc"]), input=e.get("input"),
                             ctx=e.get("ctx") or {}) for e in errors]


class Environment(_Strict):
    """One environment: its hosts (or the section of the provider that brings them) and how runs reach them.

    A provider's or a launcher's section (``vm:``, ``slurm:``) is validated with its owner's model and kept
    beside the fields (``section(name)``); ``kind`` is the provider the environment's section names.
    """

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    label: str
    # What the environment runs on: "none" is bare metal; "unknown" makes no claim `inventory check` could
    # test; every provider adds the names of its layers (vhpclib.providers.vmm_names).
    vmm: str = "none"
    baseline: bool = False
    vcpu_pinning: Literal["pinned", "scheduler", "unknown"] = "unknown"
    launcher: str = "mpirun"  # a registered launcher (vhpclib.launchers)
    host_key_policy: Literal["strict", "accept-new", "insecure"] = "strict"
    known_hosts: Path | None = None
    launch: HostSpec | None = None
    # Compute hosts; left out when a provider's section brings them (``vm``: a guest vHPC boots).
    hosts: list[HostSpec] = Field(default_factory=list)
    topology: Topology | None = None
    mpi: MpiSpec = Field(default_factory=MpiSpec)
    # Where each workload's programs come from (one key per workload section; see Benchmarks).
    benchmarks: Benchmarks = Field(default_factory=Benchmarks)
    env: dict[str, str] = Field(default_factory=dict)
    # Seconds per run; None derives it from the benchmark (stages.loop.run_timeout).
    timeout_s: float | None = Field(None, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0, le=600)
    # Scratch folder on the hosts; None is one per user and checkout (``work_root``), mode 0700.
    workdir: str | None = None
    # Share of one core another process may use during a run before the run is invalid; "off" does not
    # check; unset is the default (vhpclib.contention.default_threshold).
    contention_threshold: float | Literal["off"] | None = None
    description: str = ""

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
        return _owner("vhpclib.launchers").LAUNCHERS.check(value)

    @field_validator("vmm")
    @classmethod
    def _known_vmm(cls, value: str) -> str:
        known = _owner("vhpclib.providers").vmm_names()
        if value not in known:
            raise ValueError(f"unknown vmm {value!r}; known: {', '.join(known)}")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _sections(cls, data: Any, handler: Any) -> "Environment":
        """Validate every provider or launcher section with its owner's model; any other key is unknown."""
        if not isinstance(data, dict):
            return handler(data)
        fields, sections, errors = {}, {}, []
        for key, value in data.items():
            if key in cls.model_fields:
                fields[key] = value
                continue
            model = _section_model(key) if isinstance(key, str) else None
            if model is None:
                errors += [InitErrorDetails(type="extra_forbidden", loc=(key,), input=value)]
                continue
            try:
                sections[key] = model.model_validate(value)
            except ValidationError as exc:
                errors += _error_details(exc.errors(), (key,))
        env = None
        try:
            env = handler(fields)
        except ValidationError as exc:
            errors = _error_details(exc.errors()) + errors
        if not errors:
            assert env is not None
            env.__pydantic_extra__.update(sections)  # type: ignore[union-attr]
            try:
                env._check_sections()
            except _Located as exc:
                errors = [InitErrorDetails(type="value_error", loc=(), input=data, ctx={"error": exc})]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return env  # type: ignore[return-value]

    def _check_sections(self) -> None:
        """One provider section at most; hosts come from the inventory or from that provider; the launcher's
        section is there when the launcher needs one."""
        PROVIDERS, LAUNCHERS = _owner("vhpclib.providers").PROVIDERS, _owner("vhpclib.launchers").LAUNCHERS
        kinds = [key for key in self.sections if key in PROVIDERS]
        if len(kinds) > 1:
            raise _Located((kinds[1],), f"an environment is one kind: it carries both '{kinds[0]}:' and "
                                        f"'{kinds[1]}:'")
        provider = PROVIDERS.get(self.kind)
        if provider.brings_hosts is None and not self.hosts:
            bring = ", ".join(f"a '{n}:' {p.brings_hosts}" for n, p in PROVIDERS.items() if p.brings_hosts)
            raise _Located(("hosts",), f"an environment needs at least one host (or {bring})")
        if provider.brings_hosts is not None and (self.hosts or self.launch is not None):
            raise _Located((self.kind,), f"a '{self.kind}:' environment's hosts are the {provider.hosts_owner}'s: "
                                         f"leave out 'hosts' and 'launch'")
        launcher = LAUNCHERS.get(self.launcher)
        if launcher.Section is not None and launcher.section_required and self.launcher not in self.sections:
            raise _Located(("launcher",), f"launcher '{self.launcher}' needs a '{self.launcher}:' section "
                                          f"(at least '{self.launcher}: {{}}')")

    @classmethod
    def section_models(cls) -> dict[str, tuple[type[BaseModel], str]]:
        """Every section an environment may carry: key -> (model, what it is), from every registry."""
        out: dict[str, tuple[type[BaseModel], str]] = {}
        for owner in SECTION_OWNERS:
            for key, value in _owner(owner).sections().items():
                out.setdefault(key, value)
        return out

    @property
    def sections(self) -> dict[str, Any]:
        """The provider and launcher sections this environment carries, by key."""
        return dict(self.__pydantic_extra__ or {})

    def section(self, key: str) -> Any:
        """Section ``key`` (``vm``, ``slurm``...) as its owner's model validated it; None if not given."""
        return (self.__pydantic_extra__ or {}).get(key)

    @property
    def kind(self) -> str:
        """The environment's provider: the one whose section it carries, else plain hosts."""
        providers = _owner("vhpclib.providers")
        return next((key for key in self.sections if key in providers.PROVIDERS), providers.DEFAULT)

    def with_section(self, key: str, section: Any, **update: Any) -> "Environment":
        """A copy carrying ``section`` under ``key`` (a resolved environment keeps its provider's section)."""
        copy = self.model_copy(update=update)
        copy.__pydantic_extra__ = {**(self.__pydantic_extra__ or {}), key: section}
        return copy

    @field_validator("workdir")
    @classmethod
    def _absolute_workdir(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or "\0" in value or "\n" in value):
            raise ValueError("workdir must be an absolute path")
        return value

    @field_validator("contention_threshold", mode="before")
    @classmethod
    def _threshold(cls, value: Any) -> Any:
        if value is None or value == "off":
            return value
        if value is False:  # YAML 1.1 reads a bare `off` as false
            return "off"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 64:
            raise ValueError(f"must be a share of one core above 0 (e.g. 0.25) or 'off', got {value!r}")
        return float(value)

    @property
    def contention_limit(self) -> float | None:
        """The contention threshold in force (None: not checked)."""
        if self.contention_threshold == "off":
            return None
        if self.contention_threshold is not None:
            return float(self.contention_threshold)
        from .contention import default_threshold

        return default_threshold()

    @property
    def work_root(self) -> str:
        """Scratch folder on every host: the inventory's ``workdir``, else ``/tmp/vhpc-<user>/<checkout>``.

        Per user and per checkout, never a folder everyone shares; ``secure_dir_command`` creates it
        with mode 0700 and refuses one somebody else owns.
        """
        if self.workdir:
            return self.workdir.rstrip("/") or "/"
        user = self.launch_host.user or _local_user()
        return f"/tmp/vhpc-{user}/{checkout_id()}"

    @property
    def launch_host(self) -> HostSpec:
        return self.launch or self.hosts[0]

    @property
    def is_local(self) -> bool:
        return all(h.local for h in self.hosts) and self.launch_host.local


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        import os

        return f"uid{os.getuid()}"


def secure_dir_command(path: str) -> str:
    """Shell: create ``path`` (mode 0700), refusing it when a folder on the way below a shared, world-writable
    folder (``/tmp``, ``/var/tmp``, ``/dev/shm``) is a symlink or belongs to someone else."""
    import shlex

    parts = [p for p in path.strip("/").split("/") if p]
    checks = []
    for shared in ("tmp", "var/tmp", "dev/shm"):
        depth = shared.count("/") + 1
        if "/".join(parts[:depth]) == shared:
            checks = ["/" + "/".join(parts[:i]) for i in range(depth + 1, len(parts) + 1)]
    q = shlex.quote(path)
    if not checks:
        return f"umask 077; mkdir -p {q} && chmod 700 {q}"
    # One folder at a time, each checked before anything is created inside it (mkdir never follows a
    # planted symlink; a folder appearing between the check and mkdir makes mkdir fail). `test -O` (owner is
    # the effective user) rather than stat(1): gVisor's runsc of Debian 12 lacks statx, which stat(1) uses.
    return (f"umask 077; for d in {' '.join(shlex.quote(c) for c in checks)}; do "
            'if [ -L "$d" ] || { [ -e "$d" ] && ! [ -O "$d" ]; }; then '
            'echo "vhpc: refusing work folder $d: a symlink or owned by someone else" >&2; exit 98; fi; '
            '[ -d "$d" ] || mkdir -m 700 "$d" || exit 98; done; ' + f"chmod 700 {q}")


class Inventory(_Strict):
    name: str = ""
    known_hosts: Path | None = None
    environments: dict[str, Environment] = Field(min_length=1)
    # Variables whose names look secret but are not (e.g. KEY_SIZE): their values stay readable in run
    # records. Credential-shaped values (URLs with a password, tokens) are redacted regardless.
    redaction_allow: list[str] = Field(default_factory=list)
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

    @field_validator("redaction_allow")
    @classmethod
    def _allow_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"not a valid environment variable name: {name!r}")
        return value


# ---------------------------------------------------------------- loading

#: Largest inventory file read (a cluster of thousands of hosts fits in a fraction of this).
MAX_BYTES = 1_000_000
#: Deepest nesting of mappings and lists (an inventory needs about 6).
MAX_DEPTH = 32
#: Most nodes after expanding aliases (refuses "billion laughs" bombs, allows sharing a host list).
MAX_NODES = 200_000


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, naming both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges a shared section; keys written beside it override it
            try:
                key = self.construct_object(key_node, deep=True)
                hash(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _check_shape(text: str, source: str) -> None:
    """Depth and alias-expansion limits, checked on YAML events (no recursion, no construction)."""
    depth = 0
    nodes = 0
    sizes: dict[str, int] = {}
    open_anchors: list[tuple[str | None, int]] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise InventoryError(f"nested deeper than {MAX_DEPTH} levels", file=source,
                                     line=event.start_mark.line + 1)
            nodes += 1
            open_anchors.append((event.anchor, nodes))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
            anchor, first = open_anchors.pop()
            if anchor:
                sizes[anchor] = nodes - first + 1
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            nodes += sizes.get(event.anchor, 1)
        if nodes > MAX_NODES:
            raise InventoryError(f"more than {MAX_NODES} values once aliases are expanded (a YAML bomb?)",
                                 file=source, line=event.start_mark.line + 1)


def _compose_lines(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
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
            if key in ("key_file", "known_hosts", "source", "prefix") and isinstance(value, str):
                p = Path(value).expanduser()
                out[key] = str(p if p.is_absolute() else (base / p).resolve())
            else:
                out[key] = _resolve_paths(value, base)
        return out
    if isinstance(data, list):
        return [_resolve_paths(v, base) for v in data]
    return data


def _yaml_error(exc: yaml.YAMLError, source: str) -> InventoryError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if not problem.startswith("duplicate key"):
        problem = f"not valid YAML: {problem}"
    return InventoryError(problem, file=source, line=mark.line + 1 if mark else None)


def _load_yaml(text: str, source: str) -> tuple[Any, dict[tuple, int]]:
    """The data and the line of every key, or one ``InventoryError``."""
    try:
        _check_shape(text, source)
        node = yaml.compose(text, Loader=_LineLoader)
        loader = _LineLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except RecursionError:  # unreachable past _check_shape's depth limit; kept as the last guard
        raise InventoryError(f"nested deeper than {MAX_DEPTH} levels", file=source) from None
    lines: dict[tuple, int] = {}
    if node is not None:
        _compose_lines(node, (), lines)
    return data, lines


def _problem(err: dict, lines: dict[tuple, int], source: str) -> InventoryError:
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
    elif err["type"] == "finite_number":
        message = "must be a finite number (not .inf or .nan)"
    elif err["type"] == "literal_error":
        message = f"{message} (got {err.get('input')!r})"
    return InventoryError(message, file=source, line=line, key=key)


def _problems(errors: list[dict], lines: dict[tuple, int], source: str) -> list[InventoryError]:
    """One problem per place: a value failing every branch of a union is reported once (the first)."""
    def branch_of(loc: tuple) -> tuple | None:  # the value's place when the last element is a union tag
        return loc[:-1] if len(loc) > 1 and loc not in lines and loc[:-1] in lines else None

    parents = [branch_of(tuple(e["loc"])) for e in errors]
    seen: set[tuple] = set()
    out = []
    for err, parent in zip(errors, parents):
        loc = tuple(err["loc"])
        place = parent if parent is not None and parents.count(parent) > 1 else loc
        if place in seen:
            continue
        seen.add(place)
        out.append(_problem({**err, "loc": place} if place != loc else err, lines, source))
    return out


def parse_inventory(text: str, source: str | Path = "<inventory>") -> Inventory:
    """Validate inventory YAML text; errors name the file, line and key (all of them, see ``problems``)."""
    source = Path(source)
    load_workloads()
    data, lines = _load_yaml(text, str(source))
    if not isinstance(data, dict):
        raise InventoryError("an inventory must be a mapping with 'environments'", file=str(source), line=1)
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise InventoryError(f"keys must be text, got {bad_keys[0]!r}", file=str(source), line=1)
    try:
        return Inventory.model_validate({**_resolve_paths(data, source.parent), "source": source})
    except ValidationError as exc:
        problems = sorted(_problems(exc.errors(), lines, str(source)), key=lambda p: (p.line or 0, p.key or ""))
        first = problems[0]
        first.problems = problems
        raise first from None
    except RecursionError:
        raise InventoryError(f"nested deeper than {MAX_DEPTH} levels", file=str(source)) from None


def read_inventory_text(path: str | Path) -> str:
    """An inventory file's text: a regular file, at most ``MAX_BYTES``, UTF-8."""
    import os
    import stat

    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InventoryError("cannot read inventory: not a regular file", file=str(path))
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InventoryError(f"cannot read inventory: {exc.strerror or exc}", file=str(path)) from None
    if len(data) > MAX_BYTES:
        raise InventoryError(f"larger than {MAX_BYTES // 1000} kB (an inventory is a few kB)", file=str(path))
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InventoryError("UTF-16 text; save the inventory as UTF-8", file=str(path))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InventoryError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", file=str(path), line=line) from None
    if "\0" in text:
        line = text[:text.index("\0")].count("\n") + 1
        raise InventoryError("binary data (a NUL byte) in a text file", file=str(path), line=line)
    return text


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file."""
    path = Path(path)
    return parse_inventory(read_inventory_text(path), path)


def default_mpi_prefix() -> Path:
    """The venv this code runs in: where impi-rt puts mpirun, IMB-MPI1 and libmpi."""
    return Path(sys.prefix)


_rebuild_benchmarks()
