"""A known CPU slowdown: the job's processes in a fresh cgroup whose CPU bandwidth is capped.

The ground-truth environment (``providers.throttled``) needs an overhead that is known, not
assumed. A CPU bandwidth limit takes a stated fraction of the CPU time a CPU-bound job would
use: with ``cpus`` CPUs busy, the quota is ``(1 - loss) * cpus * period``. What the job really
lost is then read back from the cgroup's own accounting after the run (``cpu.stat``: periods,
throttled periods, throttled time; ``cpuacct.usage`` or ``usage_usec``), so every run carries
its measured injected overhead: ``throttled / usage`` (CPU time held back per CPU time used,
which is the wall-time increase of a job that would keep its CPUs busy).

One implementation for local and SSH hosts: :func:`wrap_script` is a POSIX shell script that
creates the group (cgroup v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us`` with ``cpuacct``, as
on this machine; cgroup v2 ``cpu.max`` elsewhere), joins it, runs the command, writes the
accounting to ``ACCOUNTING_FILE`` in the working folder, kills what the job left in the group
and removes it; empty groups left by a job killed with SIGKILL are swept by the next one.
:func:`plan_limit` refuses a loss the kernel cannot give (a quota under 1 ms, 100 % or more).
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import asdict, dataclass
from typing import Any

from .exceptions import InputError

#: The kernel's bounds for a CFS bandwidth period and the smallest quota (kernel/sched/core.c).
MIN_QUOTA_US = 1000
MIN_PERIOD_US, MAX_PERIOD_US = 1000, 1_000_000
#: 100 ms: the kernel's default period; a run of a second sees ten periods.
DEFAULT_PERIOD_US = 100_000
#: Groups vHPC creates are named so; an empty one is a leftover and may be removed by anyone.
GROUP_PREFIX = "vhpc-inject-"
#: The accounting the wrapped job leaves in its working folder (fetched with its logs).
ACCOUNTING_FILE = "vhpc-cgroup.txt"
#: Exit status of the wrapper when it cannot create or configure the group (one line on stderr).
SETUP_FAILED = 97
CGROUP_ROOT = "/sys/fs/cgroup"


class InjectionError(InputError):
    """A slowdown that cannot be injected here: no permission for cgroups, or a quota the kernel refuses."""


@dataclass(frozen=True)
class CpuLimit:
    """A CPU bandwidth limit: ``loss_pct`` % of ``cpus`` CPUs' time taken away at ``period_us``."""

    loss_pct: float
    cpus: float
    period_us: int = DEFAULT_PERIOD_US

    @property
    def quota_us(self) -> int | None:
        """The quota per period (None: no limit, an A/A environment that only accounts)."""
        if self.loss_pct == 0:
            return None
        return int(round((1 - self.loss_pct / 100) * self.cpus * self.period_us))

    @property
    def nominal_overhead_pct(self) -> float:
        """The wall-time increase a job keeping ``cpus`` CPUs busy sees: 1 / (1 - loss) - 1."""
        return 100 * (1 / (1 - self.loss_pct / 100) - 1)


def plan_limit(loss_pct: float, cpus: float, period_us: int = DEFAULT_PERIOD_US) -> CpuLimit:
    """The limit for ``loss_pct`` of ``cpus`` CPUs; InjectionError when the kernel cannot give it."""
    if not math.isfinite(loss_pct) or not 0 <= loss_pct < 100:
        raise InjectionError(f"a CPU loss of {loss_pct:g} % cannot be injected: it must be at least 0 and "
                             "below 100 %", key="cpu_loss_pct")
    if not math.isfinite(cpus) or cpus <= 0:
        raise InjectionError(f"cpus must be a positive number of CPUs, got {cpus:g}", key="cpus")
    if not MIN_PERIOD_US <= period_us <= MAX_PERIOD_US:
        raise InjectionError(f"period_us {period_us} is outside the kernel's {MIN_PERIOD_US}-{MAX_PERIOD_US} us",
                             key="period_us")
    limit = CpuLimit(float(loss_pct), float(cpus), int(period_us))
    quota = limit.quota_us
    if quota is not None and quota < MIN_QUOTA_US:
        raise InjectionError(f"a CPU loss of {loss_pct:g} % of {cpus:g} CPU(s) at a {period_us} us period needs a "
                             f"{quota} us quota; the kernel's minimum is {MIN_QUOTA_US} us (use a longer period "
                             "or a smaller loss)", key="cpu_loss_pct")
    return limit


# ------------------------------------------------------------------ the wrapper (shell)

_SCRIPT = r"""
vl_name={name}
vl_out={out}
vl_root={root}
vl_fail() {{ echo "vhpc: cannot inject the CPU loss: $1" >&2; exit {failed}; }}
vl_g=; vl_a=
vl_done() {{
  [ -n "$vl_g" ] || return 0
  echo $$ > "$vl_up/cgroup.procs" 2>/dev/null; echo $$ > "$vl_aup/cgroup.procs" 2>/dev/null
  {{ echo "version $vl_v"; echo "group $vl_name"; echo "status $1"
    if [ $vl_v = 1 ]; then
      echo "period_us $(cat "$vl_g/cpu.cfs_period_us")"; echo "quota_us $(cat "$vl_g/cpu.cfs_quota_us")"
      cat "$vl_g/cpu.stat"; echo "usage_ns $(cat "$vl_a/cpuacct.usage")"
    else
      echo "max $(cat "$vl_g/cpu.max")"; cat "$vl_g/cpu.stat"
    fi; }} > "$vl_out" 2>/dev/null
  for vl_i in 1 2 3 4 5 6 7 8 9 10; do
    for vl_p in $(cat "$vl_g/cgroup.procs" "$vl_a/cgroup.procs" 2>/dev/null); do
      kill -9 "$vl_p" 2>/dev/null
    done
    rmdir "$vl_g" 2>/dev/null; [ "$vl_a" = "$vl_g" ] || rmdir "$vl_a" 2>/dev/null
    [ -d "$vl_g" ] || [ -d "$vl_a" ] || break
    sleep 0.1
  done
}}
trap 'vl_done 143; exit 143' TERM HUP INT
for d in "$vl_root"/cpu/{prefix}* "$vl_root"/cpuacct/{prefix}* "$vl_root"/{prefix}*; do
  [ -d "$d" ] && rmdir "$d" 2>/dev/null
done
if [ -f "$vl_root/cpu/cpu.cfs_quota_us" ]; then
  vl_v=1; vl_g="$vl_root/cpu/$vl_name"; vl_a="$vl_root/cpuacct/$vl_name"
  vl_up="$vl_root/cpu"; vl_aup="$vl_root/cpuacct"
  mkdir "$vl_g" 2>/dev/null || vl_fail "no permission to create cgroup $vl_g (run as root, or grant a delegated cgroup)"
  mkdir -p "$vl_a" 2>/dev/null || {{ rmdir "$vl_g"; vl_fail "no permission to create cgroup $vl_a"; }}
  echo {period} > "$vl_g/cpu.cfs_period_us" && echo {quota} > "$vl_g/cpu.cfs_quota_us" \
    || {{ rmdir "$vl_g" "$vl_a" 2>/dev/null; vl_fail "the kernel refused quota {quota} us per {period} us"; }}
elif grep -qw cpu "$vl_root/cgroup.controllers" 2>/dev/null; then
  vl_v=2; vl_g="$vl_root/$vl_name"; vl_a="$vl_g"
  vl_up="$vl_root"; vl_aup="$vl_root"
  grep -qw cpu "$vl_root/cgroup.subtree_control" 2>/dev/null \
    || echo +cpu > "$vl_root/cgroup.subtree_control" 2>/dev/null
  mkdir "$vl_g" 2>/dev/null || vl_fail "no permission to create cgroup $vl_g (run as root, or grant a delegated cgroup)"
  echo "{quota_v2} {period}" > "$vl_g/cpu.max" \
    || {{ rmdir "$vl_g" 2>/dev/null; vl_fail "the kernel refused cpu.max {quota_v2} {period}"; }}
else
  vl_fail "no CPU controller under $vl_root (neither cgroup v1 cpu nor cgroup v2 cpu)"
fi
echo $$ > "$vl_g/cgroup.procs" && echo $$ > "$vl_a/cgroup.procs" \
  || {{ vl_done 1; vl_fail "cannot move the job into $vl_g"; }}
( {command} )
vl_s=$?
trap - TERM HUP INT
vl_done $vl_s
exit $vl_s
"""


def wrap_script(command: str, limit: CpuLimit, tag: str, *, out: str = ACCOUNTING_FILE,
                root: str = CGROUP_ROOT, jobs_only: bool = False) -> str:
    """A shell script running ``command`` (a shell command line) under ``limit`` in group ``GROUP_PREFIX+tag``.

    Exits with the command's status (``SETUP_FAILED`` and one stderr line when the group cannot be
    made); the accounting is in ``out`` (relative to the working folder) when it returns. With
    ``jobs_only`` it is written only for a job (``VHPC_JOB`` set), not for probes run in the layer.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", tag):
        raise ValueError(f"group tag {tag!r} must be letters, digits, '_', '.', '-'")
    quota = limit.quota_us
    quoted = shlex.quote(out)
    target = f'"$([ -n "${{VHPC_JOB:-}}" ] && echo {quoted} || echo /dev/null)"' if jobs_only else quoted
    return _SCRIPT.format(name=shlex.quote(GROUP_PREFIX + tag), out=target, root=shlex.quote(root),
                          prefix=GROUP_PREFIX, failed=SETUP_FAILED, period=limit.period_us,
                          quota=-1 if quota is None else quota, quota_v2="max" if quota is None else quota,
                          command=command).lstrip()


# ------------------------------------------------------------------ reading the accounting back

@dataclass(frozen=True)
class Accounting:
    """What the cgroup counted over one run; ``overhead_pct`` is the injected overhead measured."""

    version: int
    group: str
    period_us: int
    quota_us: int | None
    nr_periods: int
    nr_throttled: int
    throttled_s: float
    usage_s: float
    exit_status: int | None

    @property
    def overhead_pct(self) -> float | None:
        """CPU time held back per CPU time used, in % (None when the job used no CPU)."""
        return 100 * self.throttled_s / self.usage_s if self.usage_s > 0 else None

    @property
    def throttled_share(self) -> float | None:
        """Fraction of the periods in which the group ran out of quota."""
        return self.nr_throttled / self.nr_periods if self.nr_periods else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "overhead_pct": self.overhead_pct, "throttled_share": self.throttled_share}


def parse_accounting(text: str, file: str = ACCOUNTING_FILE) -> Accounting:
    """The accounting :func:`wrap_script` wrote (v1 or v2 keys); a ParseError-like InputError names the file."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            values[key] = value.strip()
    try:
        version = int(values["version"])
        if version == 1:
            quota = int(values["quota_us"])
            period, throttled_s = int(values["period_us"]), int(values["throttled_time"]) / 1e9
            usage_s = int(values["usage_ns"]) / 1e9
        else:
            q, p = values["max"].split()
            quota, period = (-1 if q == "max" else int(q)), int(p)
            throttled_s, usage_s = int(values["throttled_usec"]) / 1e6, int(values["usage_usec"]) / 1e6
        status = values.get("status")
        return Accounting(version, values.get("group", ""), period, None if quota < 0 else quota,
                          int(values["nr_periods"]), int(values["nr_throttled"]), throttled_s, usage_s,
                          int(status) if status and status.lstrip("-").isdigit() else None)
    except (KeyError, ValueError) as exc:
        raise InputError(f"not a cgroup accounting vHPC wrote ({type(exc).__name__}: {exc})", file=file) from None


def leftover_groups(root: str = CGROUP_ROOT) -> list[str]:
    """Groups named by vHPC still in the tree on this machine (tests assert there are none after a run)."""
    import glob

    return sorted(glob.glob(f"{root}/cpu/{GROUP_PREFIX}*") + glob.glob(f"{root}/cpuacct/{GROUP_PREFIX}*")
                  + glob.glob(f"{root}/{GROUP_PREFIX}*"))


def run_limited(argv: list[str], limit: CpuLimit, *, cwd: str, root: str = CGROUP_ROOT,
                timeout: float | None = None) -> tuple[int, Accounting | None, str]:
    """Run ``argv`` locally under ``limit`` (``vhpc inject``): exit status, accounting, stderr of the setup.

    Raises InjectionError when the group cannot be made (no permission, no CPU controller).
    """
    import subprocess
    import uuid
    from pathlib import Path

    script = wrap_script(shlex.join(argv), limit, uuid.uuid4().hex[:12], root=root)
    proc = subprocess.run(["sh", "-c", script], cwd=cwd, stderr=subprocess.PIPE, text=True, timeout=timeout)
    said = [line for line in proc.stderr.splitlines() if line.startswith("vhpc: cannot inject")]
    if proc.returncode == SETUP_FAILED and said:
        raise InjectionError(said[-1].removeprefix("vhpc: cannot inject the CPU loss: "))
    path = Path(cwd) / ACCOUNTING_FILE
    accounting = parse_accounting(path.read_text(), str(path)) if path.exists() else None
    return proc.returncode, accounting, proc.stderr
