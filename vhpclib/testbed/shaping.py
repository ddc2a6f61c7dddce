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
  the one frame an idle link lets through at once.
* a shaped link has a small MTU (``SHAPED_MTU``): the one frame an idle link lets
  through at once is short enough that its serialisation time at R (4.1 us at
  1 gbit) stays below the link's own one-way latency (~5 us between namespaces),
  so even a message of one full 1500-byte frame's size waits for the rate. With
  the standard MTU a 1 KiB PingPong message went out at veth speed (134 MB/s
  through a 1 gbit link); with it, every size stays under the rate.

The price: every frame waits for the qdisc's timer, and frames are small. Late
timer wake-ups are lost link time (a real NIC serialises in hardware), so bulk
transfers through a shaped link reach well below R (about 20-40 % of 1 gbit on
this kind of 2-core VM); no message size ever gets more than R. This kernel has no
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
#: MTU of a shaped link (IPv4's minimum datagram a host must take is 576; the testbed speaks IPv4 only).
SHAPED_MTU = 512
#: MTU a link gets back when its shaping is removed.
DEFAULT_MTU = 1500
#: One frame of a shaped link (``SHAPED_MTU`` + 14 B header) and headroom for tc's rounding of the bucket
#: size: a bucket smaller than a frame would drop full-size frames.
FRAME_BYTES = 600
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
    """The token bucket: one frame up to 1 gbit; above, ``BUCKET_S`` of link time when that is more (the
    qdisc's timer cannot release one small frame at a time that fast)."""
    bits = parse_rate(rate)
    return FRAME_BYTES if bits <= 1e9 else max(FRAME_BYTES, math.ceil(bits / 8 * BUCKET_S))


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
        run(["ip", "-n", netns, "link", "set", "dev", device, "mtu", str(DEFAULT_MTU)])
        return
    rate = normalise_rate(rate)
    run(["ip", "-n", netns, "link", "set", "dev", device, "mtu", str(SHAPED_MTU)])
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
