"""What a killed vhpc left on a campaign, cleaned up by the next one (under the campaign's lock).

A run's temporary folder (``.<run_id>.partial-<pid>-<id>``) with a job marker
(``lifetime.MARKER``) means a job may still be running: locally it is killed if
it is still the process the marker names (start time and command); on an SSH
launch host its session is killed if its leader still carries the job's tag,
and the tag is swept from the job's other hosts. A run whose connection was lost
(marker state ``lost``) is then stored as failed with the logs of the finished
job fetched from its host. Everything else is removed: an unfinished run is
measured again, never mistaken for a result.
"""

from __future__ import annotations

import shlex
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import lifetime
from ..exceptions import HostUnreachable, RemoteError
from ..record import Execution, parse_record

if TYPE_CHECKING:
    from ..config import Environment, HostSpec
    from ..names import Campaign
    from ..remote import Executor
    from ..store import RawStore

_LOGS = ("stdout.log", "stderr.log")


class RecoveryTarget(Protocol):
    """What recovery needs of the stage context (``context.StageContext`` is one; this module never imports it)."""

    store: RawStore
    campaign: Campaign
    environment: str
    env: Environment

    def executor(self, host: HostSpec) -> Executor: ...


def recover(ctx: RecoveryTarget) -> list[str]:
    """Clean up the campaign's leftovers; one line per thing done, for the caller to warn about."""
    lines: list[str] = []
    for partial in ctx.store.partials(ctx.campaign):
        environment = partial.parent.parent.name
        marker = lifetime.read_marker(partial)
        if marker is None:
            shutil.rmtree(partial, ignore_errors=True)
            lines.append(f"{_where(ctx, partial)}: removed the folder of a run a stopped vhpc did not finish")
        elif marker.get("local"):
            killed = lifetime.reap_local(marker) + _sweep(ctx, marker)
            shutil.rmtree(partial, ignore_errors=True)
            lines.append(f"{_where(ctx, partial)}: removed the folder of a run a stopped vhpc did not finish"
                         + (f"; killed {len(killed)} process(es) its job left running" if killed else ""))
        elif environment == ctx.environment:
            lines += _recover_remote(ctx, partial, marker)
    return lines


def _where(ctx: RecoveryTarget, partial: Path) -> str:
    try:
        return str(partial.relative_to(ctx.store.root))
    except ValueError:
        return str(partial)


def _host(ctx: RecoveryTarget, label: str) -> HostSpec | None:
    for spec in [ctx.env.launch_host, *ctx.env.hosts]:
        if spec.label == label:
            return spec
    return None


def _sweep(ctx: RecoveryTarget, marker: dict[str, Any]) -> list[int]:
    """Kill the job's tag on its other hosts (best effort: an unreachable host is skipped)."""
    killed: list[int] = []
    tag = marker.get("tag")
    if not isinstance(tag, str):
        return killed
    for label in marker.get("hosts") or []:
        spec = _host(ctx, label)
        if spec is None:
            continue
        try:
            killed += ctx.executor(spec).kill_job(tag)
        except (RemoteError, OSError, ValueError):
            continue
    return killed


def _recover_remote(ctx: RecoveryTarget, partial: Path, marker: dict[str, Any]) -> list[str]:
    where = _where(ctx, partial)
    spec = _host(ctx, str(marker.get("host")))
    if spec is None:
        return [f"{where}: its launch host {marker.get('host')!r} is not in environment {ctx.environment!r} "
                "any more; folder left in place"]
    executor = ctx.executor(spec)
    remote_dir = str(marker.get("remote_dir") or "")
    try:
        sid = marker.get("sid")
        killed = executor.kill_job(lifetime.check_tag(str(marker.get("tag"))), sid if isinstance(sid, int) else None)
        killed += _sweep(ctx, marker)
        line = f"{where}: removed the folder of a run a stopped vhpc did not finish"
        if marker.get("state") == "lost" and remote_dir:
            stored = _store_lost(ctx, partial, marker, executor, remote_dir, killed)
            line = f"{where}: stored as {stored} with the logs fetched from {spec.label}"
        if remote_dir:
            executor.run(f"rm -rf {shlex.quote(remote_dir)}", timeout=60, warn=True)
    except HostUnreachable as exc:
        return [f"{where}: {exc}; left for the next resume"]
    except ValueError:
        shutil.rmtree(partial, ignore_errors=True)
        return [f"{where}: unreadable job marker; folder removed"]
    shutil.rmtree(partial, ignore_errors=True)
    return [line + (f"; killed {len(killed)} process(es) its job left running" if killed else "")]


def _store_lost(ctx: RecoveryTarget, partial: Path, marker: dict[str, Any], executor: Executor, remote_dir: str,
                killed: list[int]) -> str:
    """Fetch a finished (or now killed) job's logs and store the run as failed, with its times."""
    for name in (*_LOGS, *(marker.get("outputs") or [])):
        try:
            executor.get(f"{remote_dir}/{name}", partial / name)
        except FileNotFoundError:
            continue
    for name in _LOGS:
        if not (partial / name).exists():
            (partial / name).write_text("")
    facts = _job_files(executor, remote_dir)
    execution = Execution.model_validate(marker.get("execution") or {})
    execution.started_utc = facts.get(".vhpc-started") or execution.started_utc
    execution.ended_utc = facts.get(".vhpc-ended") or execution.ended_utc
    exit_text = facts.get(".vhpc-exit", "")
    execution.exit_status = int(exit_text) if exit_text.lstrip("-").isdigit() else None
    execution.killed = bool(killed)
    execution.duration_s = _seconds_between(execution.started_utc, execution.ended_utc) or execution.duration_s
    record = parse_record(marker["record"])
    record.execution = execution
    if killed:
        ended = "the job was still running when the campaign resumed and was killed"
    else:
        ended = f"the job ended with exit status {execution.exit_status}"
    record.reasons = [f"connection to {marker.get('host')} lost while the job ran ({marker.get('reason', '')}); "
                      f"{ended}; logs fetched when the campaign was resumed"]
    lifetime.remove_marker(partial)
    stored = ctx.store.store_recovered(partial, record)
    return stored.path.name


def _job_files(executor: Executor, remote_dir: str) -> dict[str, str]:
    q = shlex.quote(remote_dir)
    script = "".join(f"printf '%s=' {name}; cat {q}/{name} 2>/dev/null; echo\n"
                     for name in (".vhpc-started", ".vhpc-ended", ".vhpc-exit"))
    result = executor.run(script, timeout=60, warn=True)
    out = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        if value.strip():
            out[key] = value.strip()
    return out


def _seconds_between(start: str | None, end: str | None) -> float | None:
    try:
        a = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        b = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 6)
