"""Durable, atomic file operations: a reader never sees half a file, a power cut never leaves one.

Every file vHPC writes outside the raw store's run folders goes through
``atomic_write``: the data goes to a temporary sibling, is flushed to disk, and
is renamed over the target; the parent folder is then synced so the rename
itself survives a crash.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new entry in ``path`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: str | bytes, *, mode: int | None = None,
                 durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (temporary sibling, fsync, rename, fsync of the folder).

    ``mode`` sets the permissions before the data is written (e.g. 0o600 for secrets).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    payload = data.encode() if isinstance(data, str) else data
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    fd = os.open(tmp, flags, 0o600 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if mode is None:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def fsync_tree(folder: str | Path) -> None:
    """Flush every file of a folder (not recursive) and the folder itself."""
    folder = Path(folder)
    for entry in folder.iterdir():
        if entry.is_file():
            try:
                fd = os.open(entry, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(folder)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
