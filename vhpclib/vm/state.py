"""The state file of a guest (``vms/<name>/state.json``): what ``up`` made, so ``down`` can undo it.

Written atomically after every step of ``up`` (so a crashed ``up`` is still
undone), and read by ``status``, ``down`` and the vCPU map read-back.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .. import paths
from .names import GUEST_NAME
from ..exceptions import VmInputError

STATE_FILE = "state.json"
STATE_SCHEMA = 1
_NAME = re.compile(GUEST_NAME)


def validate_name(name: str) -> str:
    """Guest names become host names, QEMU names and file names: 1-20 of a-z, 0-9, '-', starting with a letter."""
    if not _NAME.match(name or ""):
        raise VmInputError(f"guest name must be 1-20 of a-z, 0-9 and '-', starting with a letter: {name!r}",
                           key="--name")
    return name


def vm_folder(name: str) -> Path:
    return paths.VMS / name


def state_path(name: str) -> Path:
    return vm_folder(name) / STATE_FILE


def save_state(state: dict) -> None:
    path = Path(state["folder"]) / STATE_FILE
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(state, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def load_state(name: str) -> dict | None:
    """The state of guest ``name``; None if there is none; ``{"corrupt": True}`` if unreadable."""
    path = state_path(name)
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"name": name, "folder": str(vm_folder(name)), "corrupt": True}
    return state if isinstance(state, dict) else {"name": name, "folder": str(vm_folder(name)), "corrupt": True}


def load_state_file(path: str | Path) -> dict:
    """A guest's state file (``state_path``); ``VmInputError`` if it is missing or unreadable."""
    path = Path(path)
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise VmInputError(f"cannot read guest state: {reason}", file=str(path)) from None
    if not isinstance(state, dict):
        raise VmInputError("guest state is not a mapping", file=str(path))
    return state


def known_names() -> list[str]:
    """Names of every guest with a folder under ``vms/``."""
    if not paths.VMS.is_dir():
        return []
    return sorted(p.name for p in paths.VMS.iterdir() if p.is_dir() and _NAME.match(p.name))
