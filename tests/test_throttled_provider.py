"""The ground-truth environment (``throttle:``): every run in a fresh CPU-limited cgroup, its accounting in the
record, nothing left in the cgroup tree; refusals are one line naming the place."""

from __future__ import annotations

import fcntl
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vhpclib import injector
from vhpclib.config import load_inventory
from vhpclib.exceptions import InventoryError
from vhpclib.launchers import Job
from vhpclib.mpi import LaunchSpec
from vhpclib.params import MicrobenchParams
from vhpclib.stages.context import StageContext
from vhpclib.stages.driver import run_stage
from vhpclib.store import RawStore
from vhpclib.workloads import Point, register_workload, unregister_workload
from vhpclib.workloads.pingpong import PingPong

ROOT = Path(__file__).resolve().parent.parent
GOOD_IMB = ROOT / "tests/fixtures/imb/pingpong_pinned_debug4_shm.log"
BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass"
VHPC = str(Path(sys.executable).with_name("vhpc"))


def write_inventory(path: Path, throttle: dict) -> Path:
    here = [{"name": "localhost", "local": True}]
    path.write_text(yaml.safe_dump({"name": "gt", "environments": {
        "local": {"label": "local", "baseline": True, "vcpu_pinning": "unknown", "hosts": here,
                  "mpi": {"flavour": "intel"}},
        "throttled": {"label": "throttled", "vcpu_pinning": "unknown", "hosts": here, "mpi": {"flavour": "intel"},
                      "throttle": throttle}}}, sort_keys=False))
    return path


def test_the_committed_ground_truth_inventory_loads_with_its_levels() -> None:
    inv = load_inventory(ROOT / "inventories/ground-truth.yml")
    levels = {n: inv.environment(n).section("throttle").cpu_loss_pct for n in inv.environments if n != "local"}
    assert levels == {"throttled-0": 0, "throttled-5": 5, "throttled-10": 10, "throttled-20": 20}
    assert inv.environment("throttled-10").kind == "throttle"


def test_a_loss_the_kernel_cannot_give_is_refused_at_load_naming_file_line_and_key(tmp_path: Path) -> None:
    path = write_inventory(tmp_path / "inv.yml", {"cpu_loss_pct": 99.9, "cpus": 1})
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    text = str(caught.value)
    assert "inv.yml:" in text and "throttle.cpu_loss_pct" in text and "minimum is 1000 us" in text
    with pytest.raises(InventoryError, match="cpu_loss_pct"):
        load_inventory(write_inventory(tmp_path / "inv2.yml", {"cpu_loss_pct": 100}))


class BusyPingPong(PingPong):
    name = "busy-gt-pingpong"

    def plan(self, stage, ctx, params):
        return [Point(self.name, "busy-intra-socket", {"placement": "intra-socket"})]

    def prepare(self, ctx, points, params):
        return None

    def job(self, ctx, point, repetition, prepared, params):
        script = (f"{shlex.quote(sys.executable)} -c {shlex.quote(BUSY.format(s=0.3))}; "
                  f"cat {shlex.quote(str(GOOD_IMB))}")
        return Job(["/bin/sh", "-c", script], LaunchSpec(1, report_binding=False), point={"cpus": [0, 1]})


@pytest.mark.mpi
@pytest.mark.root
def test_every_run_is_limited_accounted_and_its_group_removed(tmp_path: Path) -> None:
    if os.geteuid() != 0 or not Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists():
        pytest.skip("needs root and cgroup v1's cpu controller")
    # 80 % of one CPU: the job gets at most a fifth of a CPU, less than this loaded machine gives it anyway
    inv = write_inventory(tmp_path / "inv.yml", {"cpu_loss_pct": 80, "cpus": 1, "period_us": 20_000})
    register_workload(BusyPingPong())
    try:
        with open("/tmp/vhpc-system.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with StageContext.open(inv, "throttled", "gt", store=RawStore(tmp_path / "raw")) as ctx:
                result = run_stage(ctx, "microbench", MicrobenchParams(workloads=(BusyPingPong.name,),
                                                                       repetitions=2), progress=False)
            left = injector.leftover_groups()
    finally:
        unregister_workload(BusyPingPong.name)
    runs = result.runs + result.invalid
    assert len(runs) == 2 and not result.failures
    for run in runs:
        record = run.record
        assert record.environment_spec.vmm == "throttled"
        assert record.environment_spec.facts["quota_us"] == 4000  # the plan, from run_facts
        injected = record.execution.injected
        assert injected is not None and (injected.quota_us, injected.period_us) == (4000, 20_000)  # read back
        assert injected.usage_s == pytest.approx(0.3, abs=0.2) and injected.nr_throttled > 0
        assert injected.overhead_pct > 100  # nominal 400 %: at least as much held back as used
        assert (run.path / injector.ACCOUNTING_FILE).exists()  # kept with the logs
    assert left == []  # nothing left in the cgroup tree


@pytest.mark.root
def test_a_user_who_cannot_create_cgroups_gets_one_line_and_exit_2(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="vhpc-gt-", dir="/tmp"))  # pytest's own tmp is root's only
    try:
        folder.chmod(0o777)
        inv = write_inventory(folder / "inv.yml", {"cpu_loss_pct": 10})
        env = {**os.environ, "VHPC_DATA": str(folder / "data"), "HOME": str(folder)}
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", VHPC, "run",
                              "single-node", "-i", str(inv), "-e", "throttled", "-c", "gt", "-w", "blockss",
                              "--no-progress", "--no-figures"], capture_output=True, text=True, env=env, cwd=folder,
                             timeout=300)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot create" in lines[0] and "cgroup" in lines[0], out.stderr
        assert not list(folder.glob("data/raw/gt/throttled/single-node/*-r*"))  # nothing measured
        assert injector.leftover_groups() == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)
