"""Never delete through a mount: a build's chroot may still have /proc, /sys or /dev mounted.

debootstrap mounts /proc and /sys in the target (and may bind /dev in a
container); if it is interrupted they stay mounted, and removing the folder
would recurse into the host's /dev. Everything below a folder is unmounted
(deepest first) and checked before the folder is removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..exceptions import VmError


def _unescape(field: str) -> str:
    """/proc/self/mounts escapes blanks and backslashes as octal (``\\040``)."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts_below(folder: Path) -> list[Path]:
    """Mount points at or below ``folder``, deepest first."""
    base = str(Path(folder).resolve())
    found = []
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2:
            point = _unescape(fields[1])
            if point == base or point.startswith(base + "/"):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_below(folder: Path) -> None:
    """Unmount everything mounted at or below ``folder`` (lazily if busy); VmError if something stays."""
    for point in mounts_below(folder):
        done = subprocess.run(["umount", str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, text=True)
    left = mounts_below(folder)
    if left:
        raise VmError(f"cannot unmount {', '.join(map(str, left))}; remove it by hand after unmounting",
                      file=str(folder))


def remove_tree(folder: Path) -> None:
    """Remove ``folder`` after unmounting everything below it; never follows a mount."""
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return
    unmount_below(folder)
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
        return
    # onerror re-raises: a read-only file in the tree is made writable first.
    def _writable(func, path, exc_info):  # noqa: ANN001
        os.chmod(path, 0o700)
        func(path)
    shutil.rmtree(folder, onerror=_writable)
