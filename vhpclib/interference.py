"""Why was this run slow? What else used the machine while the job ran, recorded with every run.

Around each job (just before it starts, just after it ends) the launch host's counters are read:
``/proc/stat`` (busy and steal time of all CPUs), ``/proc/loadavg``, the CPUs' frequency where
readable (cpufreq's ``scaling_cur_freq``, else ``cpu MHz`` of ``/proc/cpuinfo``). The job's own CPU
time and context switches come from the rusage of its reaped process tree (locally) or the job
shell's ``times`` (over SSH). The difference is the CPU time of processes that are not the job's,
which no per-process scan can miss (short-lived compilers included). Inside a guest these are the
guest's own view (steal time is then the hypervisor's share taken from it).

``Interference`` is stored in the run record (``execution.interference``); the analysis applies one
stated rule with it (``analysis.interference_rule``).
"""

from __future__ import annotations

import glob
import os
import resource
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: bash function printing the counters this module reads (builtins and cat only).
SAMPLE_FUNCTION = r"""
vhpc_sample() {
  local l f
  read -r l < /proc/stat; printf 'stat %s\n' "$l"
  read -r l < /proc/loadavg; printf 'loadavg %s\n' "$l"
  printf 'ncpu %s\n' "$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 0)"
  printf 'hz %s\n' "$(getconf CLK_TCK 2>/dev/null || echo 100)"
  for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq; do
    [ -r "$f" ] && read -r l < "$f" && printf 'khz %s\n' "$l"
  done
  [ -r /sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq ] \
    || while IFS=: read -r f l; do case "$f" in "cpu MHz"*) printf 'mhz %s\n' "${l# }";; esac; done < /proc/cpuinfo
  return 0
}
"""


@dataclass
class Sample:
    """One reading of a host's counters (clock ticks of /proc/stat's first line, load, frequencies)."""

    ticks: list[int] = field(default_factory=list)  # user nice system idle iowait irq softirq steal ...
    load: list[float] = field(default_factory=list)
    ncpu: int = 0
    hz: int = 100
    mhz: list[float] = field(default_factory=list)

    @property
    def busy(self) -> int:
        t = self.ticks + [0] * (8 - len(self.ticks))
        return t[0] + t[1] + t[2] + t[5] + t[6]  # user nice system irq softirq (guest time is inside user)

    @property
    def steal(self) -> int:
        return self.ticks[7] if len(self.ticks) > 7 else 0


def _mhz_from_sysfs() -> list[float]:
    out = []
    for path in sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")):
        try:
            out.append(int(open(path).read().strip()) / 1000)
        except (OSError, ValueError):
            continue
    return out


def _mhz_from_cpuinfo() -> list[float]:
    out = []
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("cpu MHz"):
                    out.append(float(line.split(":", 1)[1]))
    except (OSError, ValueError):
        return []
    return out


def local_sample() -> Sample:
    """This machine's counters now (a few hundred microseconds)."""
    sample = Sample(ncpu=os.cpu_count() or 0, hz=os.sysconf("SC_CLK_TCK"))
    try:
        with open("/proc/stat") as fh:
            sample.ticks = [int(v) for v in fh.readline().split()[1:]]
        with open("/proc/loadavg") as fh:
            sample.load = [float(v) for v in fh.read().split()[:3]]
    except (OSError, ValueError):
        pass
    sample.mhz = _mhz_from_sysfs() or _mhz_from_cpuinfo()
    return sample


def parse_sample(text: str) -> Sample:
    """What ``vhpc_sample`` printed (unknown or malformed lines are skipped)."""
    sample = Sample()
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        try:
            if key == "stat":
                sample.ticks = [int(v) for v in rest.split()[1:]]
            elif key == "loadavg":
                sample.load = [float(v) for v in rest.split()[:3]]
            elif key == "ncpu":
                sample.ncpu = int(rest)
            elif key == "hz":
                sample.hz = int(rest) or 100
            elif key == "khz":
                sample.mhz.append(int(rest) / 1000)
            elif key == "mhz":
                sample.mhz.append(float(rest))
        except ValueError:
            continue
    return sample


@dataclass(frozen=True)
class JobUsage:
    """CPU time and context switches of the job's whole process tree (None where not known)."""

    cpu_s: float | None = None
    nivcsw: int | None = None
    nvcsw: int | None = None


def children_usage() -> resource.struct_rusage:
    """Rusage of this process's reaped children so far (a local job's tree once it is reaped)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN)


def usage_between(before: resource.struct_rusage, after: resource.struct_rusage,
                  layer_cpu_s: float = 0.0) -> JobUsage:
    """The job's CPU time: its reaped process tree, plus ``layer_cpu_s``, what the layer's own long-lived
    processes spent meanwhile (a gVisor sandbox runs the job's system calls in processes that are not the
    job's children): that is the job's work, not another process's interference."""
    return JobUsage(cpu_s=round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                                + layer_cpu_s, 6),
                    nivcsw=after.ru_nivcsw - before.ru_nivcsw, nvcsw=after.ru_nvcsw - before.ru_nvcsw)


def process_cpu_s(pids: Iterable[int]) -> dict[tuple[int, float], float]:
    """User + system seconds of each process now, keyed by (pid, start time) so a reused pid is not matched."""
    import psutil

    out: dict[tuple[int, float], float] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            times = proc.cpu_times()
            out[(pid, proc.create_time())] = times.user + times.system
        except (psutil.Error, OSError):
            continue
    return out


def layer_cpu_between(before: dict[tuple[int, float], float], after: dict[tuple[int, float], float]) -> float:
    """CPU seconds the processes alive at both moments spent in between (processes the job started are its
    own tree and counted there)."""
    return round(sum(max(0.0, after[key] - before[key]) for key in before.keys() & after.keys()), 6)


def parse_times(text: str) -> float | None:
    """Children's user + system seconds from bash's ``times`` (second line, e.g. ``0m1.234s 0m0.100s``)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    total = 0.0
    for part in lines[1].split():
        minutes, _, seconds = part.rstrip("s").partition("m")
        try:
            total += float(minutes) * 60 + float(seconds)
        except ValueError:
            return None
    return round(total, 3)


def measure(host: str, before: Sample, after: Sample, wall_s: float, job: JobUsage) -> dict[str, Any]:
    """The interference figures of one run (the fields of ``record.Interference``)."""
    hz = after.hz or 100
    ncpu = after.ncpu or before.ncpu or 1
    capacity = ncpu * wall_s if wall_s > 0 else float("nan")
    busy_s = max(0.0, (after.busy - before.busy) / hz)
    steal_s = max(0.0, (after.steal - before.steal) / hz)
    other = max(0.0, busy_s - job.cpu_s) if job.cpu_s is not None and before.ticks and after.ticks else None
    share = (lambda v: round(v / capacity, 4) if v is not None and capacity == capacity else None)  # noqa: E731
    return {
        "host": host, "wall_s": round(wall_s, 6), "cpus": ncpu,
        "busy_s": round(busy_s, 3), "steal_s": round(steal_s, 3), "steal_share": share(steal_s),
        "job_cpu_s": job.cpu_s, "other_cpu_s": round(other, 3) if other is not None else None,
        "other_share": share(other),
        "load_before": before.load, "load_after": after.load,
        "job_nivcsw": job.nivcsw, "job_nvcsw": job.nvcsw,
        "cpu_mhz_before": [round(v, 1) for v in before.mhz] or None,
        "cpu_mhz_after": [round(v, 1) for v in after.mhz] or None,
    }
