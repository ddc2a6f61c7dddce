"""A local multi-node testbed: network-namespace nodes on a bridge, an sshd per node, Intel MPI over TCP.

``up(2)`` gives two "nodes" (own network and UTS namespaces, own host name and
sshd, addresses in 198.18.0.0/15) and writes ``inventories/testbed-<name>.yml``;
``shape`` limits every node link with tbf (no latency: this kernel lacks netem);
``down`` removes everything, also after a crash. All of it needs root.
"""

from .check import peak_mb_s, run_pingpong, shaped_link_check
from .lifecycle import (NodeInfo, NodeStatus, TestbedInfo, TestbedStatus, down, info, inventory_for, shape,
                        status, testbed_folder, up, write_local_inventory)
from .shaping import NO_NETEM, parse_rate

__all__ = ["up", "down", "status", "shape", "info", "inventory_for", "write_local_inventory", "testbed_folder",
           "shaped_link_check", "run_pingpong", "peak_mb_s", "parse_rate", "NO_NETEM",
           "TestbedInfo", "TestbedStatus", "NodeInfo", "NodeStatus"]
