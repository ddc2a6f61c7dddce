"""Processes a job started that left its session and its tag: found by parenthood, ended with the job.

A daemon that clears its environment (``env -i``) and starts its own session
(``setsid``) escapes both ways ``lifetime`` finds a job's processes. vhpc
therefore makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``):
such an orphan is re-parented to vhpc instead of init, so when the job ends
every child of vhpc that appeared while the job ran (and is not the job's own
launcher) is the job's leftover, and is killed and reaped with its
descendants.

``live_ranks`` spots the other way a job never ends: its ranks exited (zombies
their launcher never reaps) while a process they forked holds the launcher's
output pipes open, so the launcher waits for an end of file that never comes.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Collection, Iterable

PR_SET_CHILD_SUBREAPER = 36
_subreaper: bool | None = None


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans (once; False where the kernel refuses)."""
    global _subreaper
    if _subreaper is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            _subreaper = False
    return _subreaper


def children(pid: int | None = None) -> set[int]:
    """Direct children of ``pid`` (default: this process), from every thread's ``children`` list."""
    pid = pid or os.getpid()
    out: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.update(int(x) for x in fh.read().split())
        except (OSError, ValueError):
            continue
    return out


def descendants(pid: int) -> list[int]:
    """``pid``'s descendants, parents before children."""
    out, todo = [], [pid]
    while todo:
        for child in sorted(children(todo.pop())):
            out.append(child)
            todo.append(child)
    return out


def end_orphans(before: Iterable[int], terminate: Callable[[list[int]], object],
                keep: Iterable[int] = ()) -> list[int]:
    """Kill (and reap) the children of this process that were not there ``before`` and their descendants.

    ``keep`` are children this process started on purpose (the job's launcher, already ended);
    ``terminate`` ends a list of pids (``lifetime.terminate``: SIGTERM, then SIGKILL).
    """
    new = children() - set(before) - set(keep)
    if not new:
        return []
    pids = [p for pid in sorted(new) for p in [pid, *descendants(pid)]]
    terminate(pids)
    for pid in new:  # re-parented to us: ours to reap
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return pids


def _state_and_name(pid: int) -> tuple[str, str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            head, _, rest = fh.read().rpartition(b") ")
    except OSError:
        return None
    return rest[:1].decode(), head.partition(b" (")[2].decode(errors="replace")


def live_ranks(root: int, launcher_processes: Collection[str]) -> int:
    """How many processes of the job's tree are running and are not the launcher's own (mpirun, its proxies).

    A launcher whose ranks were seen and of which none is left, yet which does not end, waits on output
    descriptors a process the ranks forked still holds: ``LocalJob.wait`` ends such a job after a grace.
    """
    count = 0
    for pid in [root, *descendants(root)]:
        found = _state_and_name(pid)
        if found is None or found[0] in ("Z", "X"):
            continue
        if found[1] not in launcher_processes:
            count += 1
    return count
