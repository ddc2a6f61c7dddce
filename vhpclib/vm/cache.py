"""Where vHPC keeps what it builds for guests: the per-user cache (``~/.cache/vhpc/vm``)."""

from __future__ import annotations

from pathlib import Path

from .. import paths


def cache_root() -> Path:
    """Images, base root filesystems, downloaded packages and wheelhouses, shared by every checkout of a user."""
    return paths.user_cache() / "vm"
