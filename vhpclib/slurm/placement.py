"""A run's placement (``LaunchSpec``) as Slurm allocation counts and ``srun`` binding options (pure).

Under ``srun`` the MPI library does not place ranks itself (Intel MPI ignores
``I_MPI_PIN_PROCESSOR_LIST`` when srun starts the ranks and only reports the
affinity it finds), so Slurm binds them:

* the same CPUs on every node: ``--cpu-bind=map_cpu:<cpus>`` (node-local task i
  on ``cpus[i]``);
* different CPUs per node (testbed nodes that are namespaces of one machine
  must not share a core): ``--cpu-bind=none`` and a small wrapper that picks the
  CPUs from ``$SLURM_NODEID``/``$SLURM_LOCALID`` and ``exec``\\ s the program
  under ``taskset``, after printing what it chose (``vhpc-bind`` lines);
* OpenMP domains: ``--cpus-per-task=T --cpu-bind=cores``.

``verbose`` is always on: srun prints one ``cpu-bind=...`` line per task with
the mask it applied, which ``parse_binding`` reads back so the placement can be
verified whatever the MPI prints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..exceptions import SlurmSettingError
from ..mpi import LaunchSpec

WRAPPER_NAME = "vhpc-bind"
# srun --cpu-bind=verbose (task/affinity): "cpu-bind=MAP  - node1, task  0  0 [4242]: mask 0x2 set"
_SRUN_LINE = re.compile(r"^cpu-bind(?P<units>[-a-z]*)=(?P<kind>[A-Z]+)\s*- (?P<node>\S+), task\s+(?P<gtid>\d+)\s+"
                        r"(?P<ltid>\d+) \[(?P<pid>\d+)\]: mask 0x(?P<mask>[0-9a-fA-F]+)(?P<rest>.*)$")
# the wrapper's own report: "vhpc-bind - node1, node 0, task 1 0 [4243]: cpus 3"
_WRAPPER_LINE = re.compile(rf"^{WRAPPER_NAME} - (?P<node>\S+), node (?P<nodeid>\d+), task (?P<gtid>\d+) "
                           r"(?P<ltid>\d+) \[(?P<pid>\d+)\]: cpus (?P<cpus>[\d,]+)$")


@dataclass(frozen=True)
class SrunPlacement:
    """Counts for the allocation and the srun step, and how the step binds its tasks."""

    nodes: int
    ntasks: int
    ntasks_per_node: int | None
    cpus_per_task: int | None
    exclusive: bool  # specific CPUs were asked for: the job takes whole nodes so they are free
    srun_args: tuple[str, ...]
    program_prefix: tuple[str, ...]  # the per-node binding wrapper, or nothing
    #: CPUs of node-local task i on node index n (``cpu_map[n][i]``), when the placement names CPUs.
    cpu_map: tuple[tuple[int, ...], ...] | None
    threads_per_task: int = 1


@dataclass(frozen=True)
class TaskBinding:
    """Where one task ran and the CPUs it was bound to, as srun (or the wrapper) reported it."""

    task: int
    local: int
    node: str
    pid: int
    cpus: tuple[int, ...] | None  # None: not bound (cpu-bind=none, or no affinity support)
    source: str  # "srun" or the wrapper's name

    def to_dict(self) -> dict:
        return {"task": self.task, "local": self.local, "node": self.node, "pid": self.pid,
                "cpus": list(self.cpus) if self.cpus is not None else None, "source": self.source}


def _cpus(cpus: Sequence[int]) -> str:
    return ",".join(str(c) for c in cpus)


def binding_wrapper(per_node: Sequence[Sequence[int]]) -> tuple[str, ...]:
    """``bash -c <script> vhpc-bind`` choosing the CPU of each task by node and local task id, then exec'ing.

    The program and its arguments follow as ``"$@"``; a task with no CPU in the
    map fails loudly instead of running unbound.
    """
    cases = " ".join(f"{n}.{i}) c={cpu};;" for n, cpus in enumerate(per_node) for i, cpu in enumerate(cpus))
    script = (f'case "$SLURM_NODEID.$SLURM_LOCALID" in {cases} '
              f'*) echo "{WRAPPER_NAME}: no CPU for node $SLURM_NODEID task $SLURM_LOCALID" >&2; exit 1;; esac; '
              f'echo "{WRAPPER_NAME} - $SLURMD_NODENAME, node $SLURM_NODEID, task $SLURM_PROCID $SLURM_LOCALID [$$]: '
              f'cpus $c" >&2; exec taskset -c "$c" "$@"')
    return ("bash", "-c", script, WRAPPER_NAME)


def srun_placement(spec: LaunchSpec) -> SrunPlacement:
    """How ``spec`` runs under srun: node and task counts, binding options, and what to verify."""
    if spec.host_cpus:
        per_node = [tuple(cpus) for _, cpus in spec.host_cpus]
        counts = {len(c) for c in per_node}
        if len(counts) != 1:
            raise SlurmSettingError("Slurm places the same number of ranks on every node; this placement asks "
                                    f"for {sorted(len(c) for c in per_node)}", key="launch.host_cpus")
        ppn = counts.pop()
        if all(c == per_node[0] for c in per_node):
            binding, prefix = ("--cpu-bind=verbose,map_cpu:" + _cpus(per_node[0]),), ()
        else:
            binding, prefix = ("--cpu-bind=verbose,none",), binding_wrapper(per_node)
        return SrunPlacement(len(per_node), ppn * len(per_node), ppn, None, True, binding, prefix, tuple(per_node))
    nodes = len(dict.fromkeys(spec.hosts)) if spec.hosts else (math.ceil(spec.nprocs / spec.ppn) if spec.ppn else 1)
    nodes = max(1, nodes)
    ppn = spec.ppn or math.ceil(spec.nprocs / nodes)
    if spec.cpus is not None:
        if len(spec.cpus) < ppn:
            raise SlurmSettingError(f"{ppn} rank(s) per node but only {len(spec.cpus)} CPU(s) named",
                                    key="launch.cpus")
        cpus = tuple(spec.cpus[:ppn])
        return SrunPlacement(nodes, spec.nprocs, ppn, None, True, ("--cpu-bind=verbose,map_cpu:" + _cpus(cpus),),
                             (), tuple(cpus for _ in range(nodes)))
    if spec.threads_per_proc > 1:
        threads = spec.threads_per_proc
        return SrunPlacement(nodes, spec.nprocs, ppn, threads, False,
                             (f"--cpus-per-task={threads}", "--cpu-bind=verbose,cores"), (), None, threads)
    return SrunPlacement(nodes, spec.nprocs, ppn, None, False, ("--cpu-bind=verbose",), (), None)


def _mask_cpus(mask: str) -> tuple[int, ...]:
    value = int(mask, 16)
    return tuple(i for i in range(value.bit_length()) if value >> i & 1)


def parse_binding(stderr: str) -> list[TaskBinding]:
    """Per-task bindings from srun's ``--cpu-bind=verbose`` lines and the wrapper's lines, by task id.

    A wrapper line (the CPUs the task was finally given) wins over srun's
    ``cpu-bind=NONE`` line for the same task.
    """
    found: dict[int, TaskBinding] = {}
    for line in stderr.splitlines():
        line = line.strip()
        if m := _SRUN_LINE.match(line):
            bound = m["kind"] != "NONE" and m["rest"].strip().startswith("set")
            entry = TaskBinding(int(m["gtid"]), int(m["ltid"]), m["node"], int(m["pid"]),
                                _mask_cpus(m["mask"]) if bound else None, "srun")
            if entry.task not in found or found[entry.task].source == "srun":
                found[entry.task] = entry
        elif m := _WRAPPER_LINE.match(line):
            found[int(m["gtid"])] = TaskBinding(int(m["gtid"]), int(m["ltid"]), m["node"], int(m["pid"]),
                                                tuple(int(c) for c in m["cpus"].split(",")), WRAPPER_NAME)
    return [found[k] for k in sorted(found)]


def binding_problems(bindings: list[TaskBinding], placement: SrunPlacement, nodes: Sequence[str]) -> list[str]:
    """Why the tasks' bindings do not show ``placement`` on the allocated ``nodes`` (empty when they do)."""
    if not bindings:
        return ["srun printed no cpu-bind line (task/affinity missing?): binding not verified by Slurm"]
    problems = []
    tasks = [b.task for b in bindings]
    if tasks != list(range(placement.ntasks)):
        problems.append(f"srun reported tasks {tasks}, expected 0..{placement.ntasks - 1}")
    used = list(dict.fromkeys(b.node for b in bindings))
    if len(used) != placement.nodes:
        problems.append(f"tasks ran on {len(used)} node(s) ({', '.join(used)}), expected {placement.nodes}")
    for b in bindings:
        index = nodes.index(b.node) if b.node in nodes else used.index(b.node)
        if placement.cpu_map is not None:
            want = placement.cpu_map[index][b.local] if index < len(placement.cpu_map) and \
                b.local < len(placement.cpu_map[index]) else None
            if b.cpus != ((want,) if want is not None else None):
                problems.append(f"task {b.task} on {b.node} bound to cpus "
                                f"{list(b.cpus) if b.cpus is not None else 'none'}, expected [{want}]")
        elif placement.threads_per_task > 1 and b.cpus is not None and len(b.cpus) != placement.threads_per_task:
            problems.append(f"task {b.task} on {b.node} bound to {len(b.cpus)} cpu(s), expected "
                            f"{placement.threads_per_task}")
    return problems
