"""A registry lists its items in declaration order, whichever lazily registered module was imported first:
docs/inventory.md, error messages and the CLI must not change with the order tests or users import things."""

from __future__ import annotations

import subprocess
import sys


def _order(first_import: str) -> list[str]:
    code = (f"import {first_import}\nfrom vhpclib.providers import PROVIDERS\n"
            "print(' '.join(PROVIDERS.names())); print(' '.join(n for n, _ in PROVIDERS.items()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def test_loading_a_later_provider_first_keeps_the_declared_order() -> None:
    plain = _order("vhpclib.providers")
    assert plain[0] == plain[1] and plain[0].split()[:4] == ["host", "vm", "throttle", "cloud"]
    assert _order("vhpclib.providers.ec2") == plain
    assert _order("vhpclib.providers.qemu") == plain
