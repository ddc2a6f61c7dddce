"""A virtualized cluster across namespace nodes (inventory section ``container_cluster:``): one container per
node of a ``nodes:`` environment, MPI between the containers over the nodes' (shaped) links.

The study's own topology on one machine: each node's container (podman + runc, the layers' image) joins
that node's network namespace (``--network ns:/run/netns/NODE``: no firewall rules) and serves its own
sshd on ``sshd_port`` with a host key of its own, so the containers are reached like any cluster over
SSH with strict host keys, and Intel MPI's Hydra starts the ranks of the other nodes by ssh from inside
the first container. ``up`` brings up the nodes when they are not (and ``down`` removes them again),
builds or finds the image and starts the containers; ``down`` removes them. Beside the bare nodes of
the ``over`` environment, the difference is the container and nothing else: same nodes, links, MPI
version, workloads' code.
"""

from __future__ import annotations

import shlex
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from ..exceptions import EnvironmentNotReady, LayerUnavailable
from ..providers import register_provider
from ..providers.container import Container, ContainerPlacement
from ..providers.base import Log

if TYPE_CHECKING:
    from ..config import Environment, HostSpec, Inventory

SSHD_CONFIG = "container-sshd.conf"
HOST_KEY = "container_ed25519"
KNOWN_HOSTS = "containers_known_hosts"
READY_S = 30.0


class ContainerClusterSection(ContainerPlacement):
    """One container per node of the ``nodes:`` environment named by ``over``, joined to the node's network."""

    over: str = Field(..., description="The `nodes:` environment of this inventory whose nodes get a container "
                      "each (brought up with the containers when it is not up).")
    sshd_port: int = Field(2222, ge=1, le=65535, description="Port of each container's own sshd on its node's "
                           "address (the node's own sshd keeps port 22).")


@register_provider
class ContainerCluster(Container):
    name = "container_cluster"
    Section = ContainerClusterSection
    summary = ("one podman container (runc) per node of a `nodes:` environment, in the node's network, with "
               "its own sshd; MPI between the containers over the nodes' links")
    vmms = {}
    brings_hosts = "containers on the nodes of the environment named by `over`"
    hosts_owner = "containers"
    layer_probes = ()
    #: Environments whose ``up`` also brought up their nodes (``down`` removes those again).
    _started_nodes: ClassVar[dict[str, bool]] = {}

    # ------------------------------------------------------------------ the nodes underneath

    def _over(self, inventory: Inventory, name: str) -> tuple[str, Any]:
        from ..providers import provider_for

        spec: ContainerClusterSection = self.section(inventory.environment(name))
        if spec.over not in inventory.environments or \
                provider_for(inventory.environment(spec.over)).name != "nodes":
            raise LayerUnavailable(f"environments.{name}.container_cluster.over: {spec.over!r} is not a `nodes:` "
                                   "environment of this inventory", file=str(inventory.source or "") or None,
                                   key=f"environments.{name}.container_cluster.over")
        return spec.over, provider_for(inventory.environment(spec.over))

    def _testbed(self, inventory: Inventory, name: str) -> dict:
        from .lifecycle import state

        over, provider = self._over(inventory, name)
        provider.resolve(inventory, over)  # the nodes are up as declared, else one line
        return state(provider.section(inventory.environment(over)).testbed)

    def _host_name(self, node: dict) -> str:
        return f"{node['hostname']}-ct"

    def container_name(self, env: Environment, host: HostSpec) -> str:
        import re

        from ..config import checkout_id

        return re.sub(r"[^A-Za-z0-9_.-]", "-", f"vhpc-cc-{checkout_id()[:8]}-{env.label}-{host.label}")

    # ------------------------------------------------------------------ contract

    def vmm(self, env: Environment) -> str:
        return "container"

    def system_packages(self, env: Environment) -> list[str]:
        return ["podman", self.runtime, "debootstrap", "e2fsprogs", "iproute2", "openssh-server"]

    def _environment(self, declared: Environment, spec: ContainerClusterSection, tb: dict) -> Environment:
        """The containers as a cluster of SSH hosts: the nodes' addresses at the containers' sshd port."""
        from ..config import Environment as EnvironmentModel
        from ..layers.image import PREFIX
        from ..sshd import SshKeys, ssh_client_options
        from .inventory import ENVIRONMENT, inventory_data

        data: dict[str, Any] = inventory_data(tb)["environments"][ENVIRONMENT]
        known = str(Path(tb["folder"]) / KNOWN_HOSTS)
        for host in [*data["hosts"], data["launch"]]:
            host.update(port=spec.sshd_port, name=f"{host['name']}-ct")
        keys = SshKeys(client_key=Path(tb["client_key"]), client_pub=Path(), host_key=Path(), host_pub=Path(),
                       authorized_keys=Path())
        data["mpi"]["env"]["I_MPI_HYDRA_BOOTSTRAP_EXEC_EXTRA_ARGS"] = " ".join(
            ssh_client_options(keys, spec.sshd_port, Path(known)))
        what = (f"a podman container (runc) on each of the {len(data['hosts'])} nodes of testbed {tb['name']!r}, "
                f"in the node's network, sshd on port {spec.sshd_port}; links "
                f"{'shaped to ' + tb['rate'] if tb.get('rate') else 'unshaped'}; Intel MPI over TCP, started by "
                "ssh from the first container")
        data.update(label=declared.label, baseline=declared.baseline, known_hosts=known, vmm="container",
                    description=f"{declared.description}; {what}" if declared.description else what,
                    vcpu_pinning="pinned" if spec.cpus else declared.vcpu_pinning)
        env = EnvironmentModel.model_validate(data).with_section(self.name, spec)
        return self._as_measured(env, PREFIX)

    def resolve(self, inventory: Inventory, name: str) -> Environment:
        """The containers as SSH hosts; not ready unless the nodes and every node's container run."""
        declared = inventory.environment(name)
        spec: ContainerClusterSection = self.section(declared)
        tb = self._testbed(inventory, name)
        env = self._environment(declared, spec, tb)
        running = set(self.podman().containers(name_prefix="vhpc-"))
        missing = [h.label for h in env.hosts if self.container_name(env, h) not in running]
        if missing:
            raise EnvironmentNotReady(
                f"the containers of environment {declared.label!r} are not running on {', '.join(missing)}: "
                "`vhpc run` and `vhpc paper-figures --rerun` start them", file=str(inventory.source or "") or None,
                key=f"environments.{name}.{self.name}")
        return env

    def up(self, inventory: Inventory, name: str, log: Log) -> bool:
        """Bring up the nodes if needed, build (or find) the image, start one container with an sshd per node."""
        from ..layers.image import build_root

        declared = inventory.environment(name)
        spec: ContainerClusterSection = self.section(declared)
        over, nodes = self._over(inventory, name)
        podman = self.podman()
        podman.argv()  # a missing podman or runtime is one line before anything is started
        started_nodes = nodes.up(inventory, over, log)
        self._started_nodes[name] = started_nodes
        try:
            tb = self._testbed(inventory, name)
            env = self._environment(declared, spec, tb)
            if all(self._as_declared(podman, env, h) for h in env.hosts):
                return started_nodes
            image = podman.ensure_image(build_root(log=log))
            self._write_ssh_files(tb, spec)
            for node, host in zip(tb["nodes"], env.hosts):
                self._start(podman, image, env, host, node, tb, spec)
                log(f"container {self.container_name(env, host)} started on {node['hostname']} "
                    f"({self.runtime}, cpus {self._read_back(podman, self.container_name(env, host))['cpus']})")
        except BaseException:
            self._remove(podman, inventory, name)
            if self._started_nodes.pop(name, False):
                nodes.down(inventory, over, log)
            raise
        return True

    def _write_ssh_files(self, tb: dict, spec: ContainerClusterSection) -> None:
        """A host key per container, its sshd_config, and the known_hosts Hydra and vHPC check them with."""
        from ..sshd import SshKeys, SshServer, keygen, write_known_hosts

        folder = Path(tb["folder"])
        entries = []
        for node in tb["nodes"]:
            node_folder = folder / f"node{node['index']}"
            keygen(node_folder / HOST_KEY, f"vhpc-container-{node['hostname']}")
            keys = SshKeys(client_key=Path(tb["client_key"]), client_pub=Path(), host_key=node_folder / HOST_KEY,
                           host_pub=node_folder / f"{HOST_KEY}.pub",
                           authorized_keys=Path(tb["client_key"]).parent / "authorized_keys")
            server = SshServer(node_folder, keys, [node["address"]], spec.sshd_port, name="container-sshd")
            (node_folder / SSHD_CONFIG).write_text(server.config_text())
            entries.append((node["address"], spec.sshd_port, keys.host_pub))
        write_known_hosts(folder / KNOWN_HOSTS, entries)

    def _start(self, podman: Any, image: str, env: Environment, host: HostSpec, node: dict, tb: dict,
               spec: ContainerClusterSection) -> None:
        cname = self.container_name(env, host)
        config = Path(tb["folder"]) / f"node{node['index']}" / SSHD_CONFIG
        serve = f"mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -f {shlex.quote(str(config))}"
        podman.start(cname, image, cpus=spec.cpus, mounts=[tb["folder"]], hostname=self._host_name(node),
                     shm_mib=spec.shm_mib, network=f"ns:/run/netns/{node['namespace']}", memory_mib=spec.memory_mib,
                     command=["sh", "-c", serve])
        self._check_started(podman, cname, spec)
        self._wait_for_sshd(podman, cname, node["address"], spec.sshd_port)

    def _wait_for_sshd(self, podman: Any, cname: str, address: str, port: int) -> None:
        """Until the container's sshd accepts connections (through the bridge from this namespace)."""
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((address, port), timeout=1.0) as conn:
                    if conn.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            if not self._read_back(podman, cname).get("running"):
                break
            time.sleep(0.2)
        logs = podman.call(["logs", "--tail", "3", cname], what=f"reading container {cname}'s log", check=False)
        tail = " ".join((logs.stdout + logs.stderr).split())[-200:]
        raise LayerUnavailable(f"container {cname}'s sshd did not answer on {address}:{port} within "
                               f"{READY_S:.0f} s{': ' + tail if tail else ''}")

    def _as_declared(self, podman: Any, env: Environment, host: HostSpec) -> bool:
        placed = self._read_back(podman, self.container_name(env, host))
        spec = self.section(env)
        return bool(placed.get("running")) and (not spec.cpus or placed.get("cpus") == sorted(spec.cpus))

    def _remove(self, podman: Any, inventory: Inventory, name: str) -> list[str]:
        """Remove every container of this environment (found by name: also when the nodes are gone)."""
        from ..config import checkout_id

        prefix = f"vhpc-cc-{checkout_id()[:8]}-{inventory.environment(name).label}-"
        gone = []
        for cname in podman.containers(name_prefix=prefix):
            podman.remove(cname)
            gone.append(cname)
        return gone

    def down(self, inventory: Inventory, name: str, log: Log) -> None:
        """Remove the containers, then the nodes (when ``up`` brought them up: ``environments_up`` asks)."""
        for cname in self._remove(self.podman(), inventory, name):
            log(f"container {cname} removed")
        if self._started_nodes.pop(name, False):
            over, nodes = self._over(inventory, name)
            nodes.down(inventory, over, log)

    def wrap(self, env: Environment, host: HostSpec, command: str) -> str:
        return command  # the containers are SSH hosts: commands run inside them already

    def detected(self, evidence: dict[str, str | None]) -> bool:
        return False  # from inside it is a podman container ("container"), as on one node

    def layer_findings(self, env: Environment, facts: dict[str, Any]) -> list[str]:
        seen = (facts.get("layer") or {}).get("detected")
        return [] if seen == "container" else [f"inventory says container but the host shows "
                                               f"{'no layer' if seen is None else seen!r} from inside"]
