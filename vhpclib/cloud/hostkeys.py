"""SSH host keys an instance prints on its console at first boot (cloud-init), as known_hosts lines.

Consoles wrap long lines (at 80 columns on EC2) and may end lines with CR: a key and its comment can
span several lines. Each key's exact length is read from the key blob itself (SSH wire format: length-
prefixed fields), so a wrapped comment is never taken for part of the key.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

_BLOCK = re.compile(r"-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----", re.S)
#: Key type -> number of length-prefixed fields in its blob (the type name included).
_FIELDS = {"ssh-ed25519": 2, "ecdsa-sha2-nistp256": 3, "ecdsa-sha2-nistp384": 3, "ecdsa-sha2-nistp521": 3,
           "ssh-rsa": 3}
_START = re.compile(r"(?m)^(?:\[[^\]]*\]:? ?)?(" + "|".join(map(re.escape, _FIELDS)) + r") ")
_B64 = re.compile(r"[A-Za-z0-9+/=]+")


def _blob_chars(kind: str, text: str) -> str | None:
    """The base64 of one key at the start of ``text`` (line breaks already removed), exactly as long as its blob."""
    run = _B64.match(text)
    if not run:
        return None
    chars = run.group(0)
    try:
        raw = base64.b64decode(chars[: len(chars) // 4 * 4].rstrip("=") + "==", validate=False)
    except (binascii.Error, ValueError):
        return None
    offset = 0
    for _ in range(_FIELDS[kind]):
        if offset + 4 > len(raw):
            return None
        (size,) = struct.unpack(">I", raw[offset:offset + 4])
        offset += 4 + size
    if offset > len(raw) or raw[4:4 + len(kind)] != kind.encode():
        return None
    length = -(-offset // 3) * 4
    blob = chars[:length]
    return blob if base64.b64decode(blob)[:offset] == raw[:offset] else None


def console_host_keys(console: str) -> list[str]:
    """``type base64`` of each host key in the console's cloud-init block (empty while not printed yet)."""
    keys: list[str] = []
    for block in _BLOCK.findall((console or "").replace("\r", "")):
        starts = list(_START.finditer(block))
        for i, m in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(block)
            body = block[m.end():end].replace("\n", "")
            blob = _blob_chars(m.group(1), body)
            if blob:
                keys.append(f"{m.group(1)} {blob}")
    return keys


def known_hosts_lines(names: list[str], keys: list[str], port: int = 22) -> list[str]:
    """known_hosts lines for every name the host is reached by (``[name]:port`` off port 22)."""
    labels = [n if port == 22 else f"[{n}]:{port}" for n in names]
    return [f"{','.join(labels)} {key}" for key in keys]
