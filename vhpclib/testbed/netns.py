"""Names, addresses and ``ip`` commands of a testbed's namespaces, veth links and bridge.

Everything a testbed creates is named ``vtb-<name>-...`` (namespaces and veth
links ``vtb-<name>-<i>``, the bridge ``vtb-<name>-br``) so that cleanup can find
leftovers by that prefix after a crash and never touch anything else. Names are
at most 15 characters (IFNAMSIZ) because testbed names are at most 8.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import zlib
from dataclasses import dataclass

from ..exceptions import InputError, TestbedError

PREFIX = "vtb"
MAX_NODES = 32
# RFC 2544 benchmarking range: never routed on the internet, unlikely to be used locally.
BENCHMARK_NET = ipaddress.ip_network("198.18.0.0/15")
_NAME = re.compile(r"^[a-z][a-z0-9]{0,7}$")
NODE_HOST_OFFSET = 10  # node i is .10+i, the bridge (root namespace) is .1


def validate_name(name: str) -> str:
    """A testbed name: 1-8 lower-case letters/digits, starting with a letter (fits IFNAMSIZ, no '-')."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"testbed name must be 1-8 lower-case letters or digits starting with a letter, "
                         f"got {name!r}", key="name")
    return name


def validate_nodes(nodes: int) -> int:
    if not isinstance(nodes, int) or not 1 <= nodes <= MAX_NODES:
        raise InputError(f"a testbed has 1 to {MAX_NODES} nodes, got {nodes!r}", key="nodes")
    return nodes


@dataclass(frozen=True)
class Names:
    """Every kernel object name of one testbed."""

    name: str

    @property
    def prefix(self) -> str:
        return f"{PREFIX}-{self.name}-"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    def namespace(self, index: int) -> str:
        return f"{self.prefix}{index}"

    def veth(self, index: int) -> str:
        """Root-namespace end of node ``index``'s link (the node end is ``eth0`` in its namespace)."""
        return f"{self.prefix}{index}"

    def hostname(self, index: int) -> str:
        return f"{self.name}-node{index}"

    def owns(self, object_name: str) -> bool:
        """True for exactly the names this testbed creates: ``vtb-<name>-<digits>`` and ``vtb-<name>-br``."""
        return re.fullmatch(re.escape(self.prefix) + r"(\d+|br)", object_name) is not None


# ------------------------------------------------------------------ commands

def run(argv: list[str], *, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run a local command (argv, no shell); raise ``TestbedError`` with its stderr on failure."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise TestbedError(f"{argv[0]} is not installed (Debian packages: iproute2, util-linux, "
                           f"openssh-server)") from None
    except subprocess.TimeoutExpired:
        raise TestbedError(f"timed out after {timeout} s: {' '.join(argv)}") from None
    if check and done.returncode != 0:
        detail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise TestbedError(f"command failed (exit {done.returncode}): {' '.join(argv)}: {detail}")
    return done


def _json(argv: list[str]) -> list[dict]:
    out = run(argv).stdout.strip()
    return json.loads(out) if out else []


def list_namespaces() -> list[str]:
    """Names of every named network namespace (``ip netns list``)."""
    return [line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines() if line.strip()]


def list_links(netns: str | None = None) -> list[dict]:
    """``ip -j link`` records of a namespace (root namespace by default)."""
    return _json(["ip", *(["-n", netns] if netns else []), "-j", "link", "show"])


def link_stats(netns: str, device: str = "eth0") -> dict:
    """``stats64`` (rx/tx bytes, packets, drops) of ``device`` in ``netns``."""
    records = _json(["ip", "-n", netns, "-j", "-s", "link", "show", "dev", device])
    return records[0].get("stats64", {}) if records else {}


def used_ipv4_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network configured on an interface of the root namespace."""
    nets = []
    for record in _json(["ip", "-j", "-4", "addr", "show"]):
        for addr in record.get("addr_info", []):
            nets.append(ipaddress.ip_interface(f"{addr['local']}/{addr['prefixlen']}").network)
    return nets


def choose_subnet(name: str, in_use: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """A /24 of 198.18.0.0/15 derived from the testbed name, skipping any already in use.

    The hash makes a testbed land on the same subnet each time; probing onwards keeps
    two testbeds (or anything else on this host) from colliding.
    """
    subnets = list(BENCHMARK_NET.subnets(new_prefix=24))
    start = zlib.crc32(name.encode()) % len(subnets)
    for step in range(len(subnets)):
        candidate = subnets[(start + step) % len(subnets)]
        if not any(candidate.overlaps(net) for net in in_use):
            return candidate
    raise TestbedError(f"every /24 of {BENCHMARK_NET} is in use on this host")


def node_address(subnet: ipaddress.IPv4Network, index: int) -> str:
    return str(subnet.network_address + NODE_HOST_OFFSET + index)


def bridge_address(subnet: ipaddress.IPv4Network) -> str:
    return str(subnet.network_address + 1)


def create_bridge(bridge: str, address: str, prefixlen: int) -> None:
    run(["ip", "link", "add", bridge, "type", "bridge"])
    run(["ip", "addr", "add", f"{address}/{prefixlen}", "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])


def create_namespace(netns: str) -> None:
    run(["ip", "netns", "add", netns])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])


def create_node_link(netns: str, veth: str, bridge: str, address: str, prefixlen: int) -> None:
    """A veth pair: ``veth`` on the bridge in the root namespace, ``eth0`` with ``address`` in ``netns``."""
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "link", "set", veth, "master", bridge])
    run(["ip", "link", "set", veth, "up"])
    run(["ip", "-n", netns, "addr", "add", f"{address}/{prefixlen}", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])


def namespace_pids(netns: str) -> list[int]:
    """PIDs of every process living in ``netns``."""
    done = run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def delete_link(link: str) -> bool:
    """Delete a root-namespace link (a veth also takes its peer); False if it was already gone."""
    done = run(["ip", "link", "del", link], check=False)
    if done.returncode != 0 and "Cannot find device" not in done.stderr:
        raise TestbedError(f"cannot delete link {link}: {done.stderr.strip()}")
    return done.returncode == 0


def delete_namespace(netns: str) -> bool:
    done = run(["ip", "netns", "del", netns], check=False)
    if done.returncode != 0 and "No such file" not in done.stderr:
        raise TestbedError(f"cannot delete namespace {netns}: {done.stderr.strip()}")
    return done.returncode == 0
