"""Bandwidth shaping of node links with an htb qdisc.

Each node's ``eth0`` egress gets ``htb default 10`` with one class of rate =
ceil = R, so every packet a node sends is limited to R. This kernel has no
``netem``: latency, jitter and loss cannot be emulated, only bandwidth.
"""

from __future__ import annotations

import re

from ..exceptions import InputError
from .netns import run

_RATE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|tbit)$", re.IGNORECASE)
_FACTORS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12}
NO_NETEM = "this kernel has no netem qdisc, so a testbed can shape bandwidth (htb) but cannot emulate latency"


def parse_rate(rate: str) -> float:
    """Bits per second of a tc rate like ``1gbit``, ``100mbit``, ``500kbit`` (decimal units, like tc)."""
    match = _RATE.match(rate.strip()) if isinstance(rate, str) else None
    if not match:
        hint = f" ({NO_NETEM})" if isinstance(rate, str) and re.search(r"\d\s*(us|ms|s)$", rate.strip()) else ""
        raise InputError(f"rate must be a number with bit, kbit, mbit, gbit or tbit, like '1gbit'; "
                         f"got {rate!r}{hint}", key="rate")
    bits = float(match.group(1)) * _FACTORS[match.group(2).lower()]
    if bits < 8_000:
        raise InputError(f"rate {rate!r} is below 8kbit; htb cannot shape that slowly", key="rate")
    return bits


def normalise_rate(rate: str) -> str:
    parse_rate(rate)
    return rate.strip().lower()


def _class_args(rate: str) -> list[str]:
    # quantum 1514: one full frame per round; without it htb warns "quantum ... is big" at high rates.
    return ["htb", "rate", rate, "ceil", rate, "burst", "15k", "cburst", "15k", "quantum", "1514"]


def current_qdisc(netns: str, device: str = "eth0") -> str | None:
    """Kind of the root qdisc of ``device`` (``htb``, ``noqueue``...) or None."""
    out = run(["tc", "-n", netns, "qdisc", "show", "dev", device]).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[0] == "qdisc" and "root" in fields:
            return fields[1]
    return None


def apply_rate(netns: str, rate: str | None, device: str = "eth0") -> None:
    """Shape ``device`` egress to ``rate``, change an existing shaping, or remove it (``None``)."""
    has_htb = current_qdisc(netns, device) == "htb"
    if rate is None:
        if has_htb:
            run(["tc", "-n", netns, "qdisc", "del", "dev", device, "root"])
        return
    rate = normalise_rate(rate)
    if has_htb:
        run(["tc", "-n", netns, "class", "change", "dev", device, "parent", "1:", "classid", "1:10",
             *_class_args(rate)])
        return
    run(["tc", "-n", netns, "qdisc", "add", "dev", device, "root", "handle", "1:", "htb", "default", "10"])
    run(["tc", "-n", netns, "class", "add", "dev", device, "parent", "1:", "classid", "1:10", *_class_args(rate)])


def shaping_status(netns: str, device: str = "eth0") -> dict:
    """Root qdisc kind, htb rate/ceil as tc prints them, and bytes the htb class sent."""
    status: dict = {"qdisc": current_qdisc(netns, device), "rate": None, "ceil": None, "class_sent_bytes": None}
    if status["qdisc"] != "htb":
        return status
    out = run(["tc", "-n", netns, "-s", "class", "show", "dev", device]).stdout
    if (m := re.search(r"class htb 1:10 .*?\brate (\S+) ceil (\S+)", out)):
        status["rate"], status["ceil"] = m.group(1), m.group(2)
    if (m := re.search(r"Sent (\d+) bytes", out)):
        status["class_sent_bytes"] = int(m.group(1))
    return status
