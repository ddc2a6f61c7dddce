"""vCPU pinning: each vCPU's host thread on one host CPU, and the map read back from the kernel.

QMP ``query-cpus-fast`` gives every vCPU's host thread id; ``sched_setaffinity``
pins it; ``/proc/<pid>/task/<tid>/status`` (``Cpus_allowed_list``) says what
the kernel really applies. The map recorded with a guest's runs is always
the one read back, never the one asked for. Without pinning the host
scheduler places vCPUs (the paper's KVM setting): the map then shows each
vCPU allowed on every CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..exceptions import VmError, VmInputError
from .qmp import QmpClient


def parse_cpu_list(text: str) -> list[int]:
    """A kernel CPU list (``0-2,5``) as sorted CPU numbers."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return sorted(cpus)


def available_cpus() -> list[int]:
    """Host CPUs this process may run on (and so may pin vCPU threads to)."""
    return sorted(os.sched_getaffinity(0))


def parse_pin(text: str | None, vcpus: int, allowed: list[int] | None = None) -> list[int] | None:
    """``--pin`` as one host CPU per vCPU (None for ``none``); ``VmInputError`` naming what is wrong."""
    if text is None or text.strip().lower() in ("", "none"):
        return None
    allowed = allowed if allowed is not None else available_cpus()
    try:
        cpus = [int(p) for p in text.split(",")]
    except ValueError:
        raise VmInputError(f"--pin takes host CPU numbers separated by commas, or none; got {text!r}",
                           key="--pin") from None
    if len(cpus) != vcpus:
        raise VmInputError(f"--pin gives {len(cpus)} CPU(s) for {vcpus} vCPU(s); give exactly one per vCPU",
                           key="--pin")
    outside = [c for c in cpus if c not in allowed]
    if outside:
        raise VmInputError(f"--pin CPU(s) {', '.join(map(str, outside))} out of range: this machine lets vHPC use "
                           f"CPUs {format_cpu_list(allowed)}", key="--pin")
    if len(set(cpus)) != len(cpus):
        raise VmInputError(f"--pin names a CPU twice ({text}); pinning is one vCPU per host CPU", key="--pin")
    return cpus


def format_cpu_list(cpus: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``0-2,5``."""
    out, run = [], []
    for cpu in sorted(set(cpus)):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [cpu]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def vcpu_threads(qmp: QmpClient) -> dict[int, int]:
    """``{vcpu index: host thread id}`` from QMP; ``VmError`` if vCPUs share a thread (nothing to pin)."""
    cpus = qmp.execute("query-cpus-fast")
    threads = {int(c["cpu-index"]): int(c["thread-id"]) for c in cpus}
    if len(set(threads.values())) != len(threads):
        raise VmError("the guest's vCPUs share one host thread (TCG without multi-threading): "
                      "they cannot be pinned one by one")
    return dict(sorted(threads.items()))


def thread_affinity(pid: int, tid: int) -> list[int]:
    """CPUs a thread may run on, as the kernel reports it (``Cpus_allowed_list``)."""
    status = Path(f"/proc/{pid}/task/{tid}/status")
    try:
        for line in status.read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return parse_cpu_list(line.split(":", 1)[1])
    except OSError as exc:
        raise VmError(f"cannot read vCPU thread {tid}: {exc.strerror}", file=str(status)) from None
    raise VmError("no Cpus_allowed_list", file=str(status))


def pin_threads(pid: int, threads: dict[int, int], cpus: list[int]) -> dict[int, list[int]]:
    """Pin vCPU i's thread to ``cpus[i]`` and return the map read back; ``VmError`` if it did not hold."""
    for vcpu, tid in threads.items():
        try:
            os.sched_setaffinity(tid, {cpus[vcpu]})
        except OSError as exc:
            raise VmError(f"cannot pin vCPU {vcpu} (thread {tid}) to CPU {cpus[vcpu]}: {exc.strerror}") from None
    read_back = read_map(pid, threads)
    wrong = {v: c for v, c in read_back.items() if c != [cpus[v]]}
    if wrong:
        raise VmError(f"vCPU pinning did not hold: asked {cpus}, kernel reports {wrong}")
    return read_back


def read_map(pid: int, threads: dict[int, int]) -> dict[int, list[int]]:
    """``{vcpu: [host CPUs it may run on]}`` read from /proc now."""
    return {vcpu: thread_affinity(pid, tid) for vcpu, tid in sorted(threads.items())}
