"""Which campaign a command reads or writes, so measurements of different machines never mix.

A campaign is a folder of the raw store (``data/raw/<campaign>/``). The rules:

* a measurement goes into a **new** campaign named by the UTC time unless the
  user names one (``new_name``);
* naming an existing campaign adds runs to it (that is how an interrupted
  campaign is resumed), but only when the hosts are the ones its earlier runs
  of that environment saw (``check_hosts``); ``allow_mixed`` overrides that and
  the override is recorded beside the runs (``<campaign>/<env>/mixed/``);
* a **committed** campaign (tracked by git under the raw store) is never
  written unless the caller says so (``allow_committed``);
* reading defaults to the campaign measured last (``latest``);
* ``make paper-figures RERUN=1`` resumes the last unfinished re-measure
  (``rerun_campaign``) and marks it finished at the end (``mark_rerun_finished``).

A campaign name is a ``names.Campaign``, checked once where it enters (``for_measurement``,
``for_reading``, the CLI); the helpers here take one and trust it.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exceptions import InputError
from .fsutil import atomic_write
from .names import Campaign
from .store import RawStore

if TYPE_CHECKING:
    from .stages.context import StageContext

RERUN_PREFIX = "rerun-"
RERUN_STARTED = "rerun-started.json"
RERUN_FINISHED = "rerun-finished.json"
MIXED_FOLDER = "mixed"
#: What identifies a host for mixing purposes: a different CPU, topology, virtualization or host name
#: makes the numbers of two runs incomparable. (Kernel and MPI updates are recorded per run, not refused.)
IDENTITY_KEYS = ("hostname", "cpu_model", "sockets", "cores_per_socket", "threads_per_core", "virtualization")


def utc_name(now: datetime | None = None, prefix: str = "") -> str:
    return prefix + (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def new_name(store: RawStore | None = None, prefix: str = "", now: datetime | None = None) -> Campaign:
    """A campaign name from the UTC time that no campaign uses yet (``-2``, ``-3``... when taken)."""
    root = (store or RawStore()).root
    base = utc_name(now, prefix)
    name, n = base, 1
    while (root / name).exists():
        n += 1
        name = f"{base}-{n}"
    return Campaign(name)


def exists(name: Campaign, store: RawStore | None = None) -> bool:
    return ((store or RawStore()).root / name).is_dir()


def names(store: RawStore | None = None) -> list[str]:
    """Every campaign of the store, oldest activity first."""
    root = (store or RawStore()).root
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return [p.name for p in sorted(found, key=lambda p: (_activity(p), p.name))]


def _activity(folder: Path) -> float:
    """When a campaign last changed: the newest modification of its stage folders (a stored run renames into one)."""
    times = [folder.stat().st_mtime]
    for env in folder.iterdir():
        if env.is_dir():
            times += [s.stat().st_mtime for s in env.iterdir() if s.is_dir()] or [env.stat().st_mtime]
    return max(times)


def latest(store: RawStore | None = None) -> Campaign | None:
    """The campaign measured last (None when the store is empty)."""
    found = names(store)
    return Campaign(found[-1]) if found else None


@lru_cache(maxsize=64)
def _tracked(root: str, name: str) -> bool:
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "--", name], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def is_committed(name: Campaign, store: RawStore | None = None) -> bool:
    """True when git tracks files of this campaign (outside a git work tree: never)."""
    root = (store or RawStore()).root
    return root.is_dir() and _tracked(str(root), name)


@dataclass(frozen=True)
class Selection:
    """The campaign a command will use and why (the CLI prints ``describe()``)."""

    name: Campaign
    new: bool

    def describe(self) -> str:
        return f"campaign {self.name} ({'new' if self.new else 'existing: runs are added to it'})"


def for_measurement(name: str | None, *, store: RawStore | None = None, allow_committed: bool = False,
                    prefix: str = "") -> Selection:
    """The campaign a measurement writes to: a new one unless named; a committed one only when allowed."""
    store = store or RawStore()
    if name is None:
        return Selection(new_name(store, prefix), True)
    name = Campaign(name)
    if not exists(name, store):
        return Selection(name, True)
    if is_committed(name, store) and not allow_committed:
        raise InputError(f"campaign {name!r} is committed (git tracks {store.root / name}); its raw data is not "
                         f"added to by default: measure into a new campaign (omit --campaign) or pass "
                         f"--allow-committed", key="campaign")
    return Selection(name, False)


def for_reading(name: str | None, store: RawStore | None = None) -> Campaign:
    """The campaign a figures/tables command reads: the named one (it must exist), else the latest."""
    store = store or RawStore()
    if name is None:
        found = latest(store)
        if found is None:
            raise InputError(f"no campaign under {store.root}: measure one first (vhpc run ...)", key="campaign")
        return found
    name = Campaign(name)
    if not exists(name, store):
        have = ", ".join(names(store)[-5:]) or "none"
        raise InputError(f"no campaign {name!r} under {store.root} (latest: {have})", key="campaign")
    return name


# ------------------------------------------------------------------ mixing hosts

def identity(summary: dict[str, Any]) -> dict[str, Any]:
    """The fields of a host-facts summary (as run records keep them) that say which machine it is."""
    topo = summary.get("topology") or {}
    virt = summary.get("virtualization")
    detected = virt.get("detected") if isinstance(virt, dict) else virt
    values = {"hostname": summary.get("hostname"), "cpu_model": summary.get("cpu_model"),
              "sockets": topo.get("sockets"), "cores_per_socket": topo.get("cores_per_socket"),
              "threads_per_core": topo.get("threads_per_core"), "virtualization": detected}
    return {k: values[k] for k in IDENTITY_KEYS}


def differences(earlier: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: earlier -> current`` for every identity field that changed (unknown on either side is no change)."""
    a, b = identity(earlier), identity(current)
    return [f"{k}: {a[k]} -> {b[k]}" for k in IDENTITY_KEYS
            if a[k] is not None and b[k] is not None and a[k] != b[k]]


def earlier_hosts(ctx: StageContext) -> dict[str, dict[str, Any]]:
    """Host facts of this environment's earlier runs in the campaign, per host label (the latest run's)."""
    seen: dict[str, dict[str, Any]] = {}
    for run in ctx.store.runs(ctx.campaign, ctx.environment):
        for host, facts in (run.record.host_facts or {}).items():
            if facts:
                seen[host] = facts
    return seen


@dataclass
class HostCheck:
    """Outcome of comparing the hosts of a campaign's earlier runs with today's."""

    campaign: str
    environment: str
    differences: dict[str, list[str]] = field(default_factory=dict)
    recorded: Path | None = None

    @property
    def mixed(self) -> bool:
        return bool(self.differences)

    def text(self) -> str:
        return "; ".join(f"{host}: {', '.join(d)}" for host, d in self.differences.items())


def check_hosts(ctx: StageContext, *, allow_mixed: bool = False) -> HostCheck:
    """Refuse to add runs to a campaign whose earlier runs of this environment ran on other hosts.

    Nothing is written when the hosts match or the check refuses; with ``allow_mixed`` a difference
    is recorded as ``<campaign>/<env>/mixed/<UTC>.json`` and the report lists it.
    """
    from .fingerprint import facts_from_result, fingerprint_script
    from .record import summarize_facts

    check = HostCheck(ctx.campaign, ctx.environment)
    before = earlier_hosts(ctx)
    hosts = [h for h in ctx.env.hosts if h.label in before]
    confirmed = {host.label for host, _, _ in ctx.unchanged_hosts(hosts)}  # same boot, name, mpirun: cheap probe
    hosts = [h for h in hosts if h.label not in confirmed]
    if not hosts:
        return check
    results = ctx.run_on(hosts, fingerprint_script(ctx.runtime), timeout=120)
    for host, result in zip(hosts, results):
        now = summarize_facts(facts_from_result(host.label, result))
        diff = differences(before[host.label], now)
        if diff:
            check.differences[host.label] = diff
    if check.mixed and not allow_mixed:
        raise InputError(f"environment {ctx.environment!r} of campaign {ctx.campaign!r} was measured on other "
                         f"hosts ({check.text()}): measure into a new campaign (omit --campaign), or pass "
                         f"--allow-mixed to add these runs anyway (recorded)", key="campaign")
    if check.mixed:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        from .store import refuse_symlinks

        refuse_symlinks(ctx.store.root, ctx.campaign, ctx.environment)
        target = ctx.store.root / ctx.campaign / ctx.environment / MIXED_FOLDER / f"{stamp}.json"
        check.recorded = atomic_write(target, json.dumps(
            {"allowed_utc": stamp, "campaign": ctx.campaign, "environment": ctx.environment,
             "differences": check.differences}, indent=2, sort_keys=True) + "\n")
    return check


def mixed_records(campaign: Campaign, store: RawStore | None = None) -> list[dict[str, Any]]:
    """Every ``--allow-mixed`` override recorded in a campaign (the report lists them)."""
    root = (store or RawStore()).root / campaign
    out = []
    for path in sorted(root.glob(f"*/{MIXED_FOLDER}/*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            out.append({"environment": path.parent.parent.name, "differences": {"?": [f"unreadable {path.name}"]}})
    return out


# ------------------------------------------------------------------ re-measure (make paper-figures RERUN=1)

def rerun_campaign(store: RawStore | None = None, *, new: bool = False) -> Selection:
    """The last re-measure that did not finish (resumed), else a new ``rerun-<UTC>`` campaign.

    A committed campaign is never resumed (committed raw data is not added to by default).
    """
    store = store or RawStore()
    if not new:
        unfinished = [n for n in names(store) if n.startswith(RERUN_PREFIX)
                      and not (store.root / n / RERUN_FINISHED).exists() and not is_committed(n, store)]
        if unfinished:
            return Selection(Campaign(unfinished[-1]), False)
    name = new_name(store, RERUN_PREFIX)
    started = store.root / name / RERUN_STARTED
    atomic_write(started, json.dumps({"started_utc": utc_name()}) + "\n")
    return Selection(name, True)


def mark_rerun_finished(name: Campaign, store: RawStore | None = None) -> Path:
    """Written once every stage of a re-measure ran: the next ``RERUN=1`` starts a new campaign."""
    target = (store or RawStore()).root / name / RERUN_FINISHED
    return atomic_write(target, json.dumps({"finished_utc": utc_name()}) + "\n")
