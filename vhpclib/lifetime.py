"""A job's lifetime: its own session, a marker naming it, and a kill that reaches every process it started.

Every job vHPC starts runs in a session of its own (``setsid``), locally and on
the launch host, and carries ``VHPC_JOB=<tag>`` in its environment. Hydra gives
its proxy and each rank a process group of their own, so a job is killed by
*session* on the launch host and by *tag* on every other host of the job (the
ranks Hydra started there over SSH inherit the tag). A marker in the run's
``.partial`` folder names the session and the tag while the job runs, so a
vHPC killed with SIGKILL leaves enough behind for the next one on the campaign
to find and kill what is left (``reap_local`` here; remote leftovers through
``remote.Executor.kill_job``).

Live jobs are kept in a registry: an interpreter exit (``atexit``) kills what
is still running, and ``install_signal_handlers`` turns SIGTERM and SIGHUP into
``Interrupted`` so the launcher's ``finally`` kills the job as it does on Ctrl-C.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from .exceptions import Interrupted

#: Variable carried by every process of a job: the handle to find its ranks on any host.
TAG_VARIABLE = "VHPC_JOB"
#: Marker file of a running job inside its run's temporary folder.
MARKER = ".vhpc-job.json"
#: Seconds between SIGTERM and SIGKILL (Hydra forwards SIGTERM to its proxies, which end their ranks).
GRACE_S = 2.0
#: How often a local job's process tree is looked at, and how long its ranks may be gone while the launcher
#: holds on (a daemon they forked keeps its output pipes open) before the job is ended.
RANKS_CHECK_S = 2.0
RANKS_GONE_S = 10.0


def new_tag() -> str:
    return uuid.uuid4().hex


# ------------------------------------------------------------------ local processes

def _psutil():
    import psutil  # imported where used: most invocations never kill anything

    return psutil


def session_pids(sid: int) -> list[int]:
    """Processes of session ``sid`` on this machine (never this process); no psutil: it runs after every job."""
    me = os.getpid()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if os.getsid(int(name)) == sid:
                out.append(int(name))
        except OSError:
            continue
    return out


def tagged_pids(tag: str) -> list[int]:
    """Processes on this machine whose environment holds ``VHPC_JOB=<tag>``."""
    psutil = _psutil()
    me = os.getpid()
    out = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(TAG_VARIABLE) == tag:
                out.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return out


def terminate(pids: Iterable[int], grace: float = GRACE_S) -> list[int]:
    """SIGTERM, then SIGKILL after ``grace`` seconds for what is still there; returns the pids signalled."""
    pids = list(pids)
    if not pids:
        return []
    psutil = _psutil()
    procs = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.terminate()
            procs.append(proc)
        except psutil.Error:
            continue
    alive = _wait_gone(procs, grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    _wait_gone(alive, grace)
    return [p.pid for p in procs]


def _wait_gone(procs: list, timeout: float) -> list:
    """Processes still alive after ``timeout`` (a zombie counts as gone: it runs nothing any more)."""
    import time

    psutil = _psutil()
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        alive = []
        for proc in procs:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.Error:
                continue
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
        procs = alive


def kill_local_job(sid: int | None, tag: str | None, grace: float = GRACE_S) -> list[int]:
    """Everything of one job on this machine: its session, then anything else carrying its tag."""
    killed = terminate(session_pids(sid), grace) if sid else []
    if tag:
        killed += terminate(tagged_pids(tag), grace)
    return killed


def process_identity(pid: int) -> dict[str, Any] | None:
    """Start time (clock ticks since boot) and command of a process: what tells it apart from a later one
    with the same pid. Read from /proc directly: it is taken for every job."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rpartition(b") ")[2].split()
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            first = fh.read().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return None
    return {"start_ticks": int(fields[19]), "cmdline": [first]}


def same_process(pid: int, identity: Mapping[str, Any] | None) -> bool:
    if not identity:
        return False
    now = process_identity(pid)
    return now is not None and now == {"start_ticks": identity.get("start_ticks"),
                                       "cmdline": list(identity.get("cmdline") or [])}


# ------------------------------------------------------------------ local job

class LocalJob:
    """A job on this machine: ``Popen`` in a new session, output to files, waited on without polling.

    The harness sleeps in ``poll()`` on a pidfd while the ranks run: no wake-ups on
    the cores being measured, and the exit is noticed the moment it happens.
    """

    def __init__(self, argv: list[str], *, cwd: str | Path, env: Mapping[str, str], stdout: Path, stderr: Path,
                 tag: str, launcher_processes: Collection[str] = ()) -> None:
        from . import reaper

        self.tag = tag
        self.launcher_processes = frozenset(launcher_processes)
        #: True when the job was ended because its ranks were gone while its launcher held on (see ``wait``).
        self.ranks_gone = False
        full_env = {**os.environ, **env, TAG_VARIABLE: tag}
        reaper.become_subreaper()  # orphans of the job come back to us, not to init: ``end_orphans`` finds them
        self._children_before = reaper.children()
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, start_new_session=True)
        self.sid = self.proc.pid
        self.identity = process_identity(self.sid)
        self.returncode: int | None = None
        _LIVE.add(self)

    def wait(self, timeout: float | None) -> int | None:
        """Exit status (negative: killed by that signal), or None when ``timeout`` passed first.

        With ``launcher_processes`` the job is also looked at every ``RANKS_CHECK_S``: once ranks were seen
        and none is left for ``RANKS_GONE_S`` while the launcher still runs, ``ranks_gone`` is set and None
        is returned (the caller kills the job as on a timeout).
        """
        if self.returncode is None:
            if not self._wait_watching(timeout):
                return None
            self.returncode = self.proc.wait()
            _LIVE.discard(self)
        return self.returncode

    def _wait_watching(self, timeout: float | None) -> bool:
        import time

        from .reaper import live_ranks

        if not self.launcher_processes:
            return _block_until_exit(self.proc.pid, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = False
        gone_since: float | None = None
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            step = RANKS_CHECK_S if left is None else min(RANKS_CHECK_S, left)
            if _block_until_exit(self.proc.pid, step):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            alive = live_ranks(self.proc.pid, self.launcher_processes)
            seen |= alive > 0
            if seen and alive == 0:
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since >= RANKS_GONE_S:
                    self.ranks_gone = True
                    return False
            else:
                gone_since = None

    def end_orphans(self) -> list[int]:
        """Kill what the job left behind outside its session and tag (re-parented to this subreaper)."""
        from .reaper import end_orphans

        return end_orphans(self._children_before, terminate, keep={self.proc.pid})

    def kill(self) -> list[int]:
        """Kill the job's session, tagged processes and orphans; reap the direct child."""
        killed = kill_local_job(self.sid, self.tag)
        try:
            self.returncode = self.proc.wait(timeout=GRACE_S * 2)
        except subprocess.TimeoutExpired:
            pass
        killed += self.end_orphans()
        _LIVE.discard(self)
        return killed


def _block_until_exit(pid: int, timeout: float | None) -> bool:
    """Sleep until ``pid`` exits (pidfd + poll: no periodic wake-up); False if ``timeout`` passed first."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return _wait_fallback(pid, timeout)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        # poll() takes milliseconds as an int; a huge timeout is capped (about 24 days).
        ms = None if timeout is None else int(min(max(timeout, 0.0), 2_000_000.0) * 1000)
        return bool(poller.poll(ms))
    finally:
        os.close(fd)


def _wait_fallback(pid: int, timeout: float | None) -> bool:
    psutil = _psutil()
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.TimeoutExpired:
        return False
    except psutil.NoSuchProcess:
        pass
    return True


# ------------------------------------------------------------------ registry, exit, signals

class _Registry:
    """Jobs still running, killed at interpreter exit."""

    def __init__(self) -> None:
        self._jobs: set[Any] = set()
        self._lock = threading.Lock()

    def add(self, job: Any) -> None:
        with self._lock:
            self._jobs.add(job)

    def discard(self, job: Any) -> None:
        with self._lock:
            self._jobs.discard(job)

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self._jobs)


_LIVE = _Registry()


def register(job: Any) -> None:
    """Track a job with a ``kill()`` so an interpreter exit does not leave it running."""
    _LIVE.add(job)


def unregister(job: Any) -> None:
    _LIVE.discard(job)


@atexit.register
def _kill_leftovers_at_exit() -> None:
    for job in _LIVE.snapshot():
        try:
            job.kill()
        except Exception:  # noqa: BLE001 - best effort at exit, every job gets its chance
            pass


#: The last SIGTERM/SIGHUP received (Click turns the exception into its own Abort; the CLI reads this).
received: int | None = None


def _raise_interrupted(signum: int, frame: object) -> None:
    global received
    received = signum
    raise Interrupted(signum)


def install_signal_handlers() -> Callable[[], None]:
    """SIGTERM and SIGHUP raise ``Interrupted`` in the main thread (as SIGINT raises KeyboardInterrupt).

    SIGINT inherited as ignored (a script started without job control: ``vhpc ... &`` in ``sh``) is
    restored to Python's default, so Ctrl-C or ``kill -INT`` still stops a run and its jobs.
    Returns a function restoring the previous handlers. Only the main thread can install handlers;
    elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


# ------------------------------------------------------------------ markers

def write_marker(folder: Path, data: Mapping[str, Any]) -> Path:
    """Name the running job inside its run folder (read back by ``read_marker`` on resume)."""
    path = Path(folder) / MARKER
    tmp = path.with_name(MARKER + ".tmp")
    tmp.write_text(json.dumps({"version": 1, "vhpc_pid": os.getpid(), **data}, default=str))
    os.replace(tmp, path)
    return path


def read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_marker(folder: Path) -> None:
    (Path(folder) / MARKER).unlink(missing_ok=True)
    (Path(folder) / (MARKER + ".tmp")).unlink(missing_ok=True)


def reap_local(marker: Mapping[str, Any]) -> list[int]:
    """Kill what a dead vHPC's local job left running, if it is still the process the marker names."""
    sid = marker.get("sid")
    tag = marker.get("tag")
    killed: list[int] = []
    if isinstance(sid, int) and same_process(sid, marker.get("identity")):
        killed += terminate(session_pids(sid))
    if isinstance(tag, str) and tag:
        killed += terminate(tagged_pids(tag))
    return killed


# ------------------------------------------------------------------ shell side (launch host and other hosts)

#: bash functions killing a session or a tag on a host, with builtins only (no pkill, no forks per process).
SHELL_FUNCTIONS = r"""
vhpc_sid_pids() {
  local f l r a p
  for f in /proc/[0-9]*/stat; do
    read -r l < "$f" 2>/dev/null || continue
    r=${l##*) }; a=($r)
    if [ "${a[3]}" = "$1" ]; then
      p=${f#/proc/}; p=${p%/stat}
      [ "$p" != "$$" ] && [ "$p" != "$BASHPID" ] && printf '%s\n' "$p"
    fi
  done
}
vhpc_tag_pids() {
  local e v p
  for e in /proc/[0-9]*/environ; do
    p=${e#/proc/}; p=${p%/environ}
    [ "$p" = "$$" ] || [ "$p" = "$BASHPID" ] && continue
    while IFS= read -r -d '' v; do
      if [ "$v" = "VHPC_JOB=$1" ]; then printf '%s\n' "$p"; break; fi
    done < "$e" 2>/dev/null
  done
}
vhpc_term() {
  local pids
  pids=$("$@"); [ -n "$pids" ] || return 0
  kill -TERM $pids 2>/dev/null; sleep 2
  pids=$("$@"); [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
  return 0
}
"""


def remote_kill_script(tag: str, sid: int | None = None) -> str:
    """Kill a job's session (only if its leader still carries the tag) and everything tagged, on one host.

    Prints the pids it found so the caller can record what was left running.
    """
    sid_part = ""
    if sid:
        sid_part = (f"if [ -r /proc/{int(sid)}/environ ] && tr '\\0' '\\n' < /proc/{int(sid)}/environ | "
                    f"grep -qx 'VHPC_JOB={tag}'; then vhpc_sid_pids {int(sid)}; "
                    f"vhpc_term vhpc_sid_pids {int(sid)}; fi\n")
    return (SHELL_FUNCTIONS + sid_part + f"vhpc_tag_pids {tag}\nvhpc_term vhpc_tag_pids {tag}\nexit 0\n")


def check_tag(tag: str) -> str:
    """Refuse anything but the hex tags ``new_tag`` makes (they are spliced into shell scripts)."""
    if not tag or not all(c in "0123456789abcdef" for c in tag):
        raise ValueError(f"not a job tag: {tag!r}")
    return tag


def job_script(*, workdir: str, command: str, exports: str, tag: str, snapshot: bool = True, setup: str = "",
               files: Mapping[str, str] | None = None) -> str:
    """The script ``bash -s`` runs on an SSH launch host to start one job in its own session.

    It prints ``@@vhpc-sid N@@`` first, keeps the session id, start and end times and the
    exit status in ``workdir`` (read back on resume after a lost connection), and kills the
    session when its stdin ends: the client closing it (timeout, signal) or the connection
    dying with the vhpc that opened it. With ``snapshot`` it prints the CPU snapshots of
    ``contention`` taken just before and just after the job.
    """
    from .contention import SNAPSHOT_FUNCTION
    from .interference import SAMPLE_FUNCTION

    check_tag(tag)
    q = _quote(workdir)
    snap = SNAPSHOT_FUNCTION if snapshot else "vhpc_snap() { :; }\n"
    writes = "".join(f"printf '%s' {_quote(text)} > {_quote(name)}\n" for name, text in (files or {}).items())
    return (
        "{\nexec 3<&0 </dev/null\n" + (f"( {setup} ) || exit 98\n" if setup else "")
        + exports + f"export {TAG_VARIABLE}={tag}\n"
        + f"cd {q} || {{ echo 'vhpc: cannot enter the run folder' >&2; exit 97; }}\n" + writes
        + SHELL_FUNCTIONS + snap + SAMPLE_FUNCTION
        + "vhpc_snap > .vhpc-load-before\nvhpc_sample > .vhpc-sample-before\n"
        + "date -u +%Y-%m-%dT%H:%M:%S.%6NZ > .vhpc-started\n"
        + f"setsid {command} > stdout.log 2> stderr.log 3<&- &\n"
        + "vhpc_sid=$!\nprintf '%s\\n' \"$vhpc_sid\" > .vhpc-sid\nprintf '@@vhpc-sid %s@@\\n' \"$vhpc_sid\"\n"
        + "{ while read -r -u 3 _; do :; done; vhpc_term vhpc_sid_pids \"$vhpc_sid\"; } >/dev/null 2>&1 &\n"
        + "vhpc_watch=$!\nwait \"$vhpc_sid\"; vhpc_rc=$?\nkill \"$vhpc_watch\" 2>/dev/null\n"
        + "vhpc_term vhpc_sid_pids \"$vhpc_sid\"\n"  # ranks still in the session after mpirun ended
        + "date -u +%Y-%m-%dT%H:%M:%S.%6NZ > .vhpc-ended\nprintf '%s\\n' \"$vhpc_rc\" > .vhpc-exit\n"
        + "vhpc_snap > .vhpc-load-after\nvhpc_sample > .vhpc-sample-after\ntimes > .vhpc-times\n"
        + "printf '@@vhpc-hz %s@@\\n' \"$(getconf CLK_TCK 2>/dev/null || echo 100)\"\n"
        + "printf '@@vhpc-load before@@\\n'; while IFS= read -r l; do printf '%s\\n' \"$l\"; done < .vhpc-load-before\n"
        + "printf '@@vhpc-load after@@\\n'; while IFS= read -r l; do printf '%s\\n' \"$l\"; done < .vhpc-load-after\n"
        + "".join(f"printf '@@vhpc-load {n}@@\\n'; while IFS= read -r l; do printf '%s\\n' \"$l\"; done < .vhpc-{n}\n"
                  for n in ("sample-before", "sample-after", "times"))
        + "exit \"$vhpc_rc\"\n}\n")


def _quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


#: Files the job script leaves in the remote run folder (fetched on resume, never part of a run's files).
JOB_FILES = (".vhpc-sid", ".vhpc-started", ".vhpc-ended", ".vhpc-exit", ".vhpc-load-before", ".vhpc-load-after")
