"""Bandwidth shaping of node links: a ceiling at every message size, with a token bucket filter.

Each node's ``eth0`` egress gets ``tbf rate R burst B``. Two properties make it a
ceiling rather than an average:

* tbf charges a packet *before* sending it and splits TCP's segmentation-offload
  super-packets (up to 64 KB) into wire-size frames, each charged on its own. (htb
  charged a whole super-packet after sending it: a 32 KiB PingPong message went
  out at veth speed, and because each direction has its own bucket, which refills
  while the other side answers, PingPong saw up to ~1.5x the rate for 2-32 KiB.)
* the bucket holds ``B`` = one Ethernet frame (or 12 us of the rate when that is
  more, for rates above 1 gbit), so a message can never pass faster than R beyond
  the one frame an idle link lets through at once. A message of one frame still
  goes at veth speed; it stays under R as long as the one-way latency of the link
  (~10-20 us here) is at least the frame's serialisation time (12 us at 1 gbit).

The price: every frame waits for the qdisc's timer. On a loaded machine late timer
wake-ups are lost link time (a real NIC serialises in hardware), so the shaped
link can deliver well below R there; it never delivers more. This kernel has no
``netem``: latency, jitter and loss cannot be emulated, only bandwidth.
"""

from __future__ import annotations

import math
import re

from ..exceptions import InputError
from .netns import run

_RATE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|tbit)$", re.IGNORECASE)
_FACTORS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12}
NO_NETEM = "this kernel has no netem qdisc, so a testbed can shape bandwidth (tbf) but cannot emulate latency"
#: One Ethernet frame (1500 B MTU + 14 B header) and headroom for tc's rounding of the bucket size:
#: a bucket smaller than a frame would drop full-size frames.
FRAME_BYTES = 1600
#: Above ~1 gbit one frame is less than the timer can keep up with: the bucket holds this much link time.
BUCKET_S = 12e-6
QUEUE_LATENCY = "20ms"


def parse_rate(rate: str) -> float:
    """Bits per second of a tc rate like ``1gbit``, ``100mbit``, ``500kbit`` (decimal units, like tc)."""
    match = _RATE.match(rate.strip()) if isinstance(rate, str) else None
    if not match:
        hint = f" ({NO_NETEM})" if isinstance(rate, str) and re.search(r"\d\s*(us|ms|s)$", rate.strip()) else ""
        raise InputError(f"rate must be a number with bit, kbit, mbit, gbit or tbit, like '1gbit'; "
                         f"got {rate!r}{hint}", key="rate")
    bits = float(match.group(1)) * _FACTORS[match.group(2).lower()]
    if bits < 8_000:
        raise InputError(f"rate {rate!r} is below 8kbit; the shaper cannot shape that slowly", key="rate")
    return bits


def normalise_rate(rate: str) -> str:
    parse_rate(rate)
    return rate.strip().lower()


def bucket_bytes(rate: str) -> int:
    """The token bucket: one frame, or ``BUCKET_S`` of link time when that is more."""
    return max(FRAME_BYTES, math.ceil(parse_rate(rate) / 8 * BUCKET_S))


def ceiling_mb_s(rate: str) -> float:
    """The most a shaped link delivers, in 10^6 B/s (what IMB prints): the rate itself."""
    return parse_rate(rate) / 8e6


def _tbf_args(rate: str) -> list[str]:
    return ["tbf", "rate", rate, "burst", str(bucket_bytes(rate)), "latency", QUEUE_LATENCY]


def current_qdisc(netns: str, device: str = "eth0") -> str | None:
    """Kind of the root qdisc of ``device`` (``tbf``, ``noqueue``...) or None."""
    out = run(["tc", "-n", netns, "qdisc", "show", "dev", device]).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[0] == "qdisc" and "root" in fields:
            return fields[1]
    return None


def apply_rate(netns: str, rate: str | None, device: str = "eth0") -> None:
    """Shape ``device`` egress to ``rate``, change an existing shaping, or remove it (``None``)."""
    shaped = current_qdisc(netns, device) in ("tbf", "htb")  # htb: left by an older vhpc
    if rate is None:
        if shaped:
            run(["tc", "-n", netns, "qdisc", "del", "dev", device, "root"])
        return
    rate = normalise_rate(rate)
    run(["tc", "-n", netns, "qdisc", "replace", "dev", device, "root", "handle", "1:", *_tbf_args(rate)])


def shaping_status(netns: str, device: str = "eth0") -> dict:
    """Root qdisc kind, the rate and bucket as tc prints them, and bytes the shaper sent."""
    status: dict = {"qdisc": current_qdisc(netns, device), "rate": None, "burst": None, "class_sent_bytes": None}
    if status["qdisc"] not in ("tbf", "htb"):
        return status
    out = run(["tc", "-n", netns, "-s", "qdisc", "show", "dev", device]).stdout
    if (m := re.search(r"qdisc (?:tbf|htb) \S+ root .*?\brate (\S+) burst (\S+)", out)):
        status["rate"], status["burst"] = m.group(1), m.group(2)
    if (m := re.search(r"Sent (\d+) bytes", out)):
        status["class_sent_bytes"] = int(m.group(1))
    return status
