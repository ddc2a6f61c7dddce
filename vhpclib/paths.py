"""Every path of the project, derived from its root; no literal paths elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("VHPC_ROOT", Path(__file__).resolve().parent.parent))
DATA = PROJECT_ROOT / "data"
RAW = DATA / "raw"
PROCESSED = DATA / "processed"
REFERENCE = DATA / "reference"
FIGURES = PROJECT_ROOT / "figures"
NOTEBOOKS = PROJECT_ROOT / "notebooks"
EXECUTED_NOTEBOOKS = NOTEBOOKS / "executed"
INVENTORIES = PROJECT_ROOT / "inventories"
TESTBEDS = PROJECT_ROOT / "testbeds"
APPS = PROJECT_ROOT / "apps"
DEFAULT_INVENTORY = INVENTORIES / "local.yml"


def raw_dir(campaign: str, environment: str, stage: str | None = None) -> Path:
    """Folder of one campaign/environment (and stage) in the write-once raw store."""
    base = RAW / campaign / environment
    return base / stage if stage else base


def processed_dir(campaign: str) -> Path:
    """Folder of the derived tables of one campaign (regenerable from raw)."""
    return PROCESSED / campaign
