"""What ``vhpc cloud up`` created and where its hosts are: one folder per inventory and environment.

The state is written after every resource is created (atomically), so an interrupted ``up`` still knows
what to terminate, and ``resolve`` finds the hosts there. ``vhpc cloud down`` removes the folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import paths
from ..fsutil import atomic_write

STATE_FILE = "state.json"


def folder(inventory: str, environment: str) -> Path:
    return paths.CLOUD / f"{inventory}-{environment}"


def load(inventory: str, environment: str) -> dict | None:
    """The recorded state (None if ``up`` never ran or ``down`` removed it; unreadable counts as none)."""
    try:
        data = json.loads((folder(inventory, environment) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save(state: dict) -> Path:
    where = folder(state["inventory"], state["environment"])
    where.mkdir(parents=True, exist_ok=True)
    where.chmod(0o700)
    return atomic_write(where / STATE_FILE, json.dumps(state, indent=2, default=str) + "\n")


def remove(inventory: str, environment: str) -> bool:
    where = folder(inventory, environment)
    if not where.exists():
        return False
    shutil.rmtree(where)
    return True
