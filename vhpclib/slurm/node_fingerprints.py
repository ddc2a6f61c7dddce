"""Host fingerprints of N Slurm nodes from one ``srun --ntasks-per-node=1`` step.

Instead of N SSH sessions from one client, one batch job runs the existing
``fingerprint_script()`` once on every allocated node, through Slurm's own
fan-out. Each output line is prefixed with ``$SLURMD_NODENAME|`` so the
merged output splits back per node, and each node's part is parsed exactly as
an SSH fingerprint is (``facts_from_result``).
"""

from __future__ import annotations

from collections.abc import Callable

from pathlib import Path
from typing import Any

from ..exceptions import SlurmError
from ..fingerprint import facts_from_result, fingerprint_script
from ..mpi import MpiRuntime
from ..remote import CommandResult, Executor
from .jobs import JobResult, run_batch_job
from .script import BatchJob
from .settings import SlurmSettings

SEPARATOR = "|"  # never part of a Slurm node name


def fingerprint_job(nodes: int, runtime: MpiRuntime | None = None, *, name: str = "vhpc-fingerprint") -> BatchJob:
    """One task on each of ``nodes`` nodes, printing the fingerprint sections line by line, node-prefixed."""
    # The script ends with `exit 0`; in the subshell that only ends the subshell.
    tagged = (f"( {fingerprint_script(runtime)} ) 2>&1 | "
              "while IFS= read -r l || [ -n \"$l\" ]; do printf '%s|%s\\n' \"$SLURMD_NODENAME\" \"$l\"; done")
    return BatchJob(name=name, program=("bash", "-c", tagged), nodes=nodes, ntasks_per_node=1, launch="srun",
                    launcher_args=("--ntasks-per-node=1",))


def split_by_node(text: str) -> dict[str, str]:
    """``{node: its lines}`` from node-prefixed output, in the order nodes first appear."""
    parts: dict[str, list[str]] = {}
    for line in text.splitlines():
        node, sep, rest = line.partition(SEPARATOR)
        if sep and node and " " not in node:
            parts.setdefault(node, []).append(rest)
    return {node: "\n".join(lines) + "\n" for node, lines in parts.items()}


def fingerprint_nodes(executor: Executor, settings: SlurmSettings, nodes: int, run_dir: Path, *,
                      runtime: MpiRuntime | None = None,
                      timeout_s: float | None = None) -> tuple[dict[str, dict[str, Any]], JobResult]:
    """Facts of ``nodes`` Slurm nodes (``{node name: facts}``) from one job, and that job.

    Raises ``SlurmError`` when the job fails or fewer nodes answered than were
    allocated; settings and interruption errors propagate as in ``run_batch_job``.
    """
    job = run_batch_job(executor, settings, fingerprint_job(nodes, runtime), run_dir, timeout_s=timeout_s)
    if not job.ok:
        raise SlurmError(f"fingerprint job {job.job_id} failed: {job.reason}")
    per_node = split_by_node(job.stdout_path.read_text(errors="replace"))
    if len(per_node) != nodes:
        raise SlurmError(f"fingerprint job {job.job_id} ran on {nodes} node(s) but {len(per_node)} answered "
                         f"({', '.join(per_node) or 'none'}); see {job.stdout_path}")
    facts = {}
    for node, text in per_node.items():
        result = CommandResult(node, "fingerprint (srun)", 0, text, "", job.turnaround_s, job.submitted_utc)
        facts[node] = {**facts_from_result(node, result), "slurm_job_id": job.job_id}
    return facts, job


def slurm_rows(env: Any, pool: Any, timeout: float | None, answered: Callable[[Any, Any], Any],
               unanswered: Callable[[str, str], Any]) -> list[Any]:
    """``vhpc inventory check`` rows of a Slurm environment: its nodes fingerprinted by one srun step.

    As many nodes as the environment lists answer (the rows name Slurm's nodes). A job that fails or
    leaves nodes unanswered makes unanswered rows with the reason; settings Slurm refuses raise (exit 2).
    The check makes the rows (``answered(host, outcome)``, ``unanswered(label, reason)``): this module
    never imports it.
    """
    import tempfile

    from ..config import HostSpec
    from ..exceptions import InputError, VhpcError
    from ..mpi import runtime_for
    from ..remote import HostOutcome

    executor = pool.get(env.slurm.submit_host or env.launch_host, env)
    nodes = len(env.hosts)
    try:
        with tempfile.TemporaryDirectory(prefix="vhpc-check-") as tmp:
            job = run_batch_job(executor, env.slurm, fingerprint_job(nodes, runtime_for(env)), Path(tmp),
                                timeout_s=timeout or 300)
            text = job.stdout_path.read_text(errors="replace")
    except InputError:
        raise
    except VhpcError as exc:
        return [unanswered(h.label, f"through Slurm: {exc}") for h in env.hosts]
    if not job.ok:
        why = f"Slurm job {job.job_id} {job.reason}"
        return [unanswered(h.label, why) for h in env.hosts]
    rows = []
    for node, part in split_by_node(text).items():
        result = CommandResult(node, "fingerprint (srun)", 0, part, "", job.turnaround_s, job.submitted_utc)
        spec = next((h for h in env.hosts if node in (h.label, (h.address or "").split(".")[0])), None)
        spec = spec or HostSpec(name=node, ssh_alias=node)
        rows.append(answered(spec, HostOutcome(node, result, None)))
    missing = nodes - len(rows)
    rows += [unanswered(f"(node {len(rows) + i + 1} of {nodes})",
                        f"Slurm job {job.job_id} ran on {nodes} node(s) but only {len(rows)} answered")
             for i in range(max(0, missing))]
    return rows
