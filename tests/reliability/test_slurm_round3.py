"""Round 3, Slurm (not audited before): values from the inventory are inert in job scripts, secrets the job is
given are in no stored file (job script, Slurm's environment dump, logs, record) nor in sacct's answer, and a
slurmctld that dies mid-campaign stops the stage with one line after a few failed runs, keeping what ran.

One real private cluster (munged, slurmctld, slurmd on this machine, stopped by PID), through the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from slurm_helpers import private_cluster

from rl_helpers import vhpc

pytestmark = [pytest.mark.slurm, pytest.mark.mpi]
VENV = Path(sys.prefix)
PASSWORD = "pw-Slurm3-8e1d0c55"
TINY = ["--placement", "intra-socket", "--msglog", "0:2", "--iterations", "50", "--no-figures", "--no-progress"]

IMB_WRAPPER = """\
#!/bin/bash
# Test stand-in for IMB-MPI1: prints the secret it was given, records what EVIL arrived as, maybe stops slurmctld.
echo "rank ${{SLURM_PROCID:-?}} connecting with $DB_PASSWORD" >&2
[ "${{SLURM_PROCID:-0}}" = 0 ] && printf '%s' "$EVIL" > {folder}/evil-arrived
if [ "${{SLURM_PROCID:-0}}" = 0 ] && [ -e {folder}/stop-ctld ]; then rm -f {folder}/stop-ctld; kill {ctld_pid}; fi
exec {imb} "$@"
"""
EVIL = "$(touch {marker}); `touch {marker}`; x\"; touch {marker}; echo '"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with private_cluster(tmp_path_factory, "slurm-rl3") as running:
        yield running


def inventory(folder: Path, cluster, **slurm) -> Path:
    wrapper = folder / "imb-wrapper"
    wrapper.write_text(IMB_WRAPPER.format(folder=folder, ctld_pid=cluster.pids["slurmctld"],
                                          imb=VENV / "bin" / "IMB-MPI1"))
    wrapper.chmod(0o755)
    settings = {"partition": cluster.partition, "slurm_conf": str(cluster.conf), "job_dir": str(cluster.job_dir),
                "poll_interval_s": 1.0, "sbatch_args": ["--comment=" + EVIL.format(marker=folder / "pwned-comment")],
                **slurm}
    data = {"name": "slurm-rl3", "environments": {"cluster": {
        "label": "cluster", "baseline": True, "launcher": "slurm", "hosts": [{"local": True}],
        "benchmarks": {"imb": str(wrapper)}, "timeout_s": 300, "contention_threshold": "off",
        "env": {"DB_PASSWORD": PASSWORD, "EVIL": EVIL.format(marker=folder / "pwned-env")}, "slurm": settings}}}
    path = folder / "inventory.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_inventory_values_are_inert_and_secrets_stay_out_of_stored_files_and_sacct(cluster, tmp_path):
    inv = inventory(tmp_path, cluster)
    data = tmp_path / "d"
    proc = vhpc(["run", "microbench", "-i", str(inv), "-e", "cluster", "-c", "sl3", "--repetitions", "1", *TINY],
                data, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.glob("pwned-*")), "a value from the inventory ran as a command"
    assert (tmp_path / "evil-arrived").read_text() == EVIL.format(marker=tmp_path / "pwned-env")  # literally
    [run] = [p.parent for p in (data / "raw" / "sl3").rglob("run.json") if json.loads(p.read_text())["kind"] == "run"]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "complete", record["reasons"]
    for path in data.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert "job.sbatch" in record["redactions"] and "stderr.log" in record["redactions"]
    job_id = record["execution"]["scheduler"]["job_id"]
    sacct = subprocess.run(["sacct", "-j", job_id, "-P", "-o", "ALL"], capture_output=True, text=True,
                           env={**os.environ, **cluster.env}, timeout=60)
    assert PASSWORD not in sacct.stdout + sacct.stderr


def test_slurmctld_dying_mid_campaign_stops_the_stage_with_one_line_and_keeps_what_ran(tmp_path, tmp_path_factory):
    # MessageTimeout 2 s, not Slurm's 10: once slurmctld is gone every squeue/sbatch retries it once a second
    # for that long (squeue twice), and the stage meets 3 failed squeues and 3 refused sbatch (96 s of 110).
    with private_cluster(tmp_path_factory, "slurm-rl3-dies", message_timeout_s=2) as dying:
        shown = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60,
                               env={**os.environ, **dying.env}).stdout
        assert any(line.split() == ["MessageTimeout", "=", "2", "sec"] for line in shown.splitlines()), shown
        inv = inventory(tmp_path, dying)
        (tmp_path / "stop-ctld").write_text("")  # the first run's rank 0 kills slurmctld, then finishes
        data = tmp_path / "d"
        proc = vhpc(["run", "microbench", "-i", str(inv), "-e", "cluster", "-c", "dies", "--repetitions", "8",
                     *TINY], data, timeout=900)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vhpc: error:")]
    assert len(errors) == 1 and "runs in a row failed on" in errors[0], proc.stderr
    records = {p.parent: json.loads(p.read_text()) for p in (data / "raw" / "dies").rglob("run.json")}
    runs = [r for r in records.values() if r["kind"] == "run"]
    assert len(runs) <= 4, [r["status"] for r in runs]  # not 8: the stage stopped
    # the job slurmctld died under ran to its end: its output is kept beside the squeue failure
    [died] = [f for f, r in records.items() if r["kind"] == "run" and "squeue" in " ".join(r["reasons"])]
    assert "MPI_Finalize" in (died / "stdout.log").read_text()
    assert (data / "processed" / "dies" / "microbench.csv").is_file()
