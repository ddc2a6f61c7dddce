"""Was a run measured alone? CPU used by other processes on the launch host while the job ran.

Two snapshots of every process's CPU time, one just before the job starts and one
just after it ends, cost a few milliseconds and nothing while the ranks run. A
process that used more than ``threshold`` of a core over the run's wall time
(another vHPC job's ranks left spinning, a build, a daemon gone wild) is named
in the run record, and the run is marked invalid with that reason: a distorted
measurement is never stored as ``complete``.

Local snapshots come from psutil; on an SSH launch host the job script prints
one (``SNAPSHOT_FUNCTION``, shell builtins only) and ``parse_snapshot`` reads it.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

#: Default share of one core another process may use during a run before the run is invalid.
DEFAULT_THRESHOLD = 0.25
#: Overrides the default where every machine is shared (a CI runner): a number, or "off".
THRESHOLD_VARIABLE = "VHPC_CONTENTION_THRESHOLD"


def default_threshold() -> float | None:
    """The threshold of environments whose inventory sets none (``VHPC_CONTENTION_THRESHOLD`` or 0.25).

    A value that is not a positive number or ``off`` raises ``InputError`` naming the variable (never replaced
    silently by the default)."""
    raw = os.environ.get(THRESHOLD_VARIABLE, "")
    value = raw.strip().lower()
    if value in ("off", "none", "0"):
        return None
    try:
        number = float(value) if value else DEFAULT_THRESHOLD
    except ValueError:
        number = float("nan")
    if not 0 < number < float("inf"):  # nan fails this too
        from .exceptions import InputError

        raise InputError(f"{THRESHOLD_VARIABLE}={raw!r}: expected a share of one core above 0 (e.g. 0.25) or "
                         "'off'", key=THRESHOLD_VARIABLE)
    return number

#: bash function printing ``pid sid start cputicks name`` per process (builtins only, no forks).
SNAPSHOT_FUNCTION = r"""
vhpc_snap() {
  local f l r a p c
  for f in /proc/[0-9]*/stat; do
    read -r l < "$f" 2>/dev/null || continue
    p=${f#/proc/}; p=${p%/stat}; r=${l##*) }; a=($r); c=${l#*(}; c=${c%)*}
    printf '%s %s %s %s %s\n' "$p" "${a[3]}" "${a[19]}" "$(( a[11] + a[12] ))" "${c//[[:space:]]/_}"
  done
}
"""


@dataclass(frozen=True)
class Proc:
    start: float  # anything that changes when a pid is reused (start time)
    cpu_s: float
    name: str
    sid: int | None = None


@dataclass
class Snapshot:
    procs: dict[int, Proc] = field(default_factory=dict)


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def local_snapshot() -> Snapshot:
    """CPU time of every process on this machine (this process excluded).

    Reads ``/proc/<pid>/stat`` directly: about 20 us a process, five times cheaper than
    psutil's per-process objects, because it runs twice per run.
    """
    me = os.getpid()
    procs: dict[int, Proc] = {}
    try:
        entries = os.scandir("/proc")
    except OSError:
        return Snapshot()
    with entries:
        for entry in entries:
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    raw = fh.read()
            except OSError:
                continue
            head, _, rest = raw.rpartition(b") ")
            fields = rest.split()
            if len(fields) < 20:
                continue
            name = head.partition(b"(")[2].decode(errors="replace")
            procs[int(entry.name)] = Proc(float(fields[19]), (int(fields[11]) + int(fields[12])) / _HZ, name,
                                          int(fields[3]))
    return Snapshot(procs)


def parse_snapshot(text: str, hz: int = 100) -> Snapshot:
    """Read what ``vhpc_snap`` printed (malformed lines are skipped)."""
    procs: dict[int, Proc] = {}
    for line in text.splitlines():
        parts = line.split(" ", 4)
        if len(parts) != 5 or not all(p.lstrip("-").isdigit() for p in parts[:4]):
            continue
        pid, sid, start, ticks = (int(p) for p in parts[:4])
        procs[pid] = Proc(float(start), ticks / hz, parts[4], sid)
    return Snapshot(procs)


def busy_processes(before: Snapshot, after: Snapshot, wall_s: float, *, threshold: float,
                   exclude_pids: Collection[int] = (), exclude_sids: Collection[int] = ()) -> list[dict[str, Any]]:
    """Processes that used at least ``threshold`` of a core during ``wall_s`` seconds, busiest first."""
    if wall_s <= 0:
        return []
    busy = []
    for pid, now in after.procs.items():
        if pid in exclude_pids or (now.sid is not None and now.sid in exclude_sids):
            continue
        then = before.procs.get(pid)
        used = now.cpu_s - then.cpu_s if then is not None and then.start == now.start else now.cpu_s
        share = used / wall_s
        if share >= threshold:
            busy.append({"pid": pid, "name": now.name, "cpu_s": round(used, 3), "share": round(share, 3)})
    return sorted(busy, key=lambda b: -b["share"])


def drop_local(busy: Iterable[dict[str, Any]], tag: str, cpus: Collection[int] | None) -> list[dict[str, Any]]:
    """Local refinements: leave out the job's own processes (its tag) and those that cannot run on its cores."""
    busy = list(busy)
    if not busy:
        return []
    import psutil

    out = []
    for entry in busy:
        try:
            proc = psutil.Process(entry["pid"])
            if proc.environ().get("VHPC_JOB") == tag:
                continue
            other = proc.environ().get("VHPC_JOB")
            if cpus is not None and not set(proc.cpu_affinity()) & set(cpus):
                continue
        except (psutil.Error, OSError):
            other = None
        out.append({**entry, **({"vhpc_job": other} if other else {})})
    return out


def reasons(busy: Iterable[dict[str, Any]], host: str) -> list[str]:
    """One reason per busy process, for the run record."""
    out = []
    for b in busy:
        what = f"another vhpc job's process {b['name']}" if b.get("vhpc_job") else b["name"]
        out.append(f"contention on {host}: {what} (pid {b['pid']}) used {b['share']:.2f} of a core during the run")
    return out
