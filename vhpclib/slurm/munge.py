"""A private munged: its own key, socket, PID and log, never the system's (RECIPES §7).

munged refuses to run as root ("Logfile is insecure") and checks the permissions
of everything it touches: the key is owned by ``munge`` with mode 400, and the
socket's folder must be searchable by everyone (clients of every user connect
to it). Slurm finds this munged through ``AuthInfo=socket=<path>`` in its
slurm.conf, so a munged the machine itself runs is never used nor disturbed.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import SlurmClusterError

MUNGED = Path("/usr/sbin/munged")
MUNGE_USER = "munge"
_SOCKET_MAX = 100  # sun_path holds 108 bytes; munged adds ".lock" beside it


@dataclass(frozen=True)
class MungeDaemon:
    """A running private munged and the files it uses."""

    folder: Path
    pid: int

    @property
    def socket(self) -> Path:
        return self.folder / "munge.socket"

    @property
    def key(self) -> Path:
        return self.folder / "munge.key"

    @property
    def log(self) -> Path:
        return self.folder / "munged.log"


def _searchable_by_all(path: Path) -> bool:
    """True when every folder from / down to ``path`` lets any user pass (o+x)."""
    for folder in [path, *path.parents]:
        try:
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                return False
        except FileNotFoundError:
            continue  # created later with the right mode
    return True


def munge_folder(base: Path) -> Path:
    """Where a cluster in ``base`` keeps its munge files.

    ``base/munge`` when the munge user can reach it; otherwise (``base`` under a
    private folder such as pytest's 0700 tmp) a fresh folder under /run, which
    the cluster records and removes when it stops.
    """
    preferred = Path(base) / "munge"
    if _searchable_by_all(Path(base)) and len(str(preferred / "munge.socket")) < _SOCKET_MAX:
        return preferred
    return Path(tempfile.mkdtemp(prefix="vhpc-munge-", dir="/run" if os.access("/run", os.W_OK) else None))


def is_our_munged(pid: int, folder: Path) -> bool:
    """True only for a munged whose socket lives in ``folder`` (PIDs get reused)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return exe == os.path.realpath(MUNGED) and f"--socket={folder}/munge.socket".encode() in cmdline


def start_munged(folder: Path, *, timeout_s: float = 15.0) -> MungeDaemon:
    """Create a key and start munged as the munge user with everything in ``folder``; needs root."""
    if not MUNGED.is_file():
        raise SlurmClusterError(f"{MUNGED} is missing (Debian package munge)")
    try:
        user = pwd.getpwnam(MUNGE_USER)
    except KeyError:
        raise SlurmClusterError("there is no 'munge' user (Debian package munge creates it)") from None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    os.chown(folder, user.pw_uid, user.pw_gid)
    folder.chmod(0o755)  # munged: "execute permissions for all required" on the socket's folder
    daemon = MungeDaemon(folder, 0)
    if not daemon.key.exists():
        fd = os.open(daemon.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        try:
            os.write(fd, secrets.token_bytes(1024))
        finally:
            os.close(fd)
        os.chown(daemon.key, user.pw_uid, user.pw_gid)
    argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", str(MUNGED),
            "--foreground", f"--socket={daemon.socket}", f"--key-file={daemon.key}",
            f"--pid-file={folder / 'munged.pid'}", f"--seed-file={folder / 'munged.seed'}",
            f"--log-file={daemon.log}"]
    with open(daemon.log, "ab") as log:
        os.fchown(log.fileno(), user.pw_uid, user.pw_gid)
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    daemon = MungeDaemon(folder, process.pid)
    deadline = time.monotonic() + timeout_s
    while not daemon.socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_munged(daemon)
            tail = " | ".join(daemon.log.read_text(errors="replace").strip().splitlines()[-2:])
            raise SlurmClusterError(f"munged did not start: {tail or 'no socket after ' + str(timeout_s) + ' s'}",
                                    file=str(daemon.log))
        time.sleep(0.05)
    return daemon


def stop_munged(daemon: MungeDaemon, timeout_s: float = 10.0) -> bool:
    """Stop this munged by its PID (only if it is ours); True if it was running."""
    pid = daemon.pid
    if not pid or not is_our_munged(pid, daemon.folder):
        return False
    terminate(pid, timeout_s)
    return True


def terminate(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; reaps the process if it is our child."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout_s
        time.sleep(0.02)


def terminate_all(pids: Sequence[int], timeout_s: float = 10.0) -> None:
    """SIGTERM to every process of ``pids`` at once, SIGKILL to those still there after ``timeout_s``."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:  # reaped (our children) or gone
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def remove_folder(folder: Path) -> None:
    """Remove a munge folder (key included) once its munged is gone."""
    shutil.rmtree(folder, ignore_errors=True)
