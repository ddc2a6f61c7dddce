"""A local multi-node testbed: network-namespace nodes on a bridge, an sshd per node, Intel MPI over TCP.

``up(2)`` gives two "nodes" (own network and UTS namespaces, own host name and
sshd, addresses in 198.18.0.0/15) and writes ``inventories/testbed-<name>.yml``;
``shape`` limits every node link with tbf (no latency: this kernel lacks netem);
``down`` removes everything, also after a crash. All of it needs root.

Names are imported from their modules on first use: the environment kinds this package registers
(``provider``, ``containers``) are loaded with every inventory, and must not pull in the link check's
stage machinery with them.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "check": ("peak_mb_s", "run_pingpong", "shaped_link_check"),
    "lifecycle": ("NodeInfo", "NodeStatus", "TestbedInfo", "TestbedStatus", "down", "info", "inventory_for", "shape",
                  "status", "testbed_folder", "up", "write_local_inventory"),
    "shaping": ("NO_NETEM", "parse_rate"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = ["up", "down", "status", "shape", "info", "inventory_for", "write_local_inventory", "testbed_folder",
           "shaped_link_check", "run_pingpong", "peak_mb_s", "parse_rate", "NO_NETEM",
           "TestbedInfo", "TestbedStatus", "NodeInfo", "NodeStatus"]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value
