"""Every path of the project, derived from its root; no literal paths elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("VHPC_ROOT", Path(__file__).resolve().parent.parent))
# VHPC_DATA / VHPC_FIGURES move outputs elsewhere (tests, scratch campaigns) without touching the repo.
DATA = Path(os.environ["VHPC_DATA"]) if os.environ.get("VHPC_DATA") else PROJECT_ROOT / "data"
RAW = DATA / "raw"
PROCESSED = DATA / "processed"
REFERENCE = PROJECT_ROOT / "data" / "reference"
FIGURES = Path(os.environ["VHPC_FIGURES"]) if os.environ.get("VHPC_FIGURES") else PROJECT_ROOT / "figures"
NOTEBOOKS = PROJECT_ROOT / "notebooks"
EXECUTED_NOTEBOOKS = Path(os.environ["VHPC_EXECUTED"]) if os.environ.get("VHPC_EXECUTED") else NOTEBOOKS / "executed"
INVENTORIES = PROJECT_ROOT / "inventories"
# VHPC_TESTBEDS / VHPC_CLOUD move testbed folders and cloud state (tests; a CLI subprocess finds them too).
TESTBEDS = Path(os.environ["VHPC_TESTBEDS"]) if os.environ.get("VHPC_TESTBEDS") else PROJECT_ROOT / "testbeds"
# One folder per cloud environment `vhpc cloud up` created: what it created, hosts, known_hosts.
CLOUD = Path(os.environ["VHPC_CLOUD"]) if os.environ.get("VHPC_CLOUD") else PROJECT_ROOT / "cloud"
# One folder per running guest: overlay, sockets, logs, state (vhpc vm up); VHPC_VMS moves it (tests).
VMS = Path(os.environ["VHPC_VMS"]) if os.environ.get("VHPC_VMS") else PROJECT_ROOT / "vms"
APPS = PROJECT_ROOT / "apps"
DEFAULT_INVENTORY = INVENTORIES / "local.yml"


def user_cache() -> Path:
    """Per-user cache folder of vHPC (XDG_CACHE_HOME, else ~/.cache): guest images, wheelhouses."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache") / "vhpc"


def raw_dir(campaign: str, environment: str, stage: str | None = None) -> Path:
    """Folder of one campaign/environment (and stage) in the write-once raw store."""
    base = RAW / campaign / environment
    return base / stage if stage else base


def processed_dir(campaign: str) -> Path:
    """Folder of the derived tables of one campaign (regenerable from raw)."""
    return PROCESSED / campaign


def figures_dir(campaign: str) -> Path:
    """Folder of one campaign's figures and report (``figures/<campaign>/``); never shared by campaigns."""
    return FIGURES / campaign


def export_cache() -> Path:
    """Static figure exports (PDF/SVG/PNG) by hash of the figure, shared by every campaign's folder."""
    return FIGURES / ".cache"


def project_path(path: str | Path) -> Path:
    """A user-given path: as given if it exists, else relative to the project root (notebooks run in notebooks/)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return PROJECT_ROOT / p
