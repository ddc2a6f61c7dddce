"""The CPU-loss injector: a real cgroup (v1 here) set, read back and removed; refusals are one line, exit 2.

Tests that create cgroups take the shared system lock themselves (other helpers' runs on this machine).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vhpclib import injector
from vhpclib.injector import InjectionError, parse_accounting, plan_limit, run_limited, wrap_script

VHPC = str(Path(sys.executable).with_name("vhpc"))
BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass"
V1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")


@pytest.fixture
def system_lock():
    with open("/tmp/vhpc-system.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
        fcntl.flock(fh, fcntl.LOCK_UN)


def _need_cgroup_v1_root() -> None:
    if os.geteuid() != 0 or not V1.exists():
        pytest.skip("needs root and cgroup v1's cpu controller at /sys/fs/cgroup/cpu")


# ------------------------------------------------------------------ what the kernel can give

def test_quota_is_the_kept_share_of_the_cpus_period() -> None:
    assert plan_limit(10, 2, 100_000).quota_us == 180_000
    assert plan_limit(20, 1, 20_000).quota_us == 16_000
    assert plan_limit(0, 2).quota_us is None  # A/A: the group only accounts
    assert plan_limit(10, 1).nominal_overhead_pct == pytest.approx(100 / 9)


@pytest.mark.parametrize("loss", [100, 150, -1, float("nan")])
def test_a_loss_of_100_percent_or_more_or_below_zero_is_refused(loss: float) -> None:
    with pytest.raises(InjectionError, match="cannot be injected"):
        plan_limit(loss, 1)


def test_a_loss_needing_a_quota_under_the_kernels_1ms_minimum_is_refused() -> None:
    with pytest.raises(InjectionError, match="500 us quota; the kernel's minimum is 1000 us"):
        plan_limit(99.5, 1, 100_000)
    assert plan_limit(99.5, 1, 1_000_000).quota_us == 5000  # a longer period can give it


def test_a_period_outside_the_kernels_bounds_is_refused() -> None:
    with pytest.raises(InjectionError, match="period_us"):
        plan_limit(10, 1, 500)


def test_cli_refuses_an_impossible_quota_with_one_line_and_exit_2(tmp_path: Path) -> None:
    out = subprocess.run([VHPC, "inject", "--cpu-loss", "99.9", "--cpus", "1", "--", "touch", str(tmp_path / "ran")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "kernel's minimum is 1000 us" in out.stderr
    assert not (tmp_path / "ran").exists()  # nothing ran


# ------------------------------------------------------------------ reading the accounting

def test_accounting_v2_is_read_from_cpu_max_and_cpu_stat() -> None:
    # cgroup v2's cpu.stat of a child group (Documentation/admin-guide/cgroup-v2.rst, "cpu.stat")
    text = ("version 2\ngroup vhpc-inject-x\nstatus 0\nmax 90000 100000\nusage_usec 2000000\nuser_usec 1900000\n"
            "system_usec 100000\nnr_periods 30\nnr_throttled 12\nthrottled_usec 200000\nnr_bursts 0\nburst_usec 0\n")
    acc = parse_accounting(text)
    assert (acc.quota_us, acc.period_us, acc.nr_periods, acc.nr_throttled) == (90000, 100000, 30, 12)
    assert acc.overhead_pct == pytest.approx(10.0)
    assert parse_accounting(text.replace("max 90000", "max max")).quota_us is None


def test_accounting_without_its_counters_names_the_file() -> None:
    with pytest.raises(Exception, match="run/vhpc-cgroup.txt: not a cgroup accounting"):
        parse_accounting("version 1\nstatus 0\n", "run/vhpc-cgroup.txt")


# ------------------------------------------------------------------ a real cgroup (v1 on this machine)

def test_group_is_set_read_back_and_removed_after_the_run(tmp_path: Path, system_lock: None) -> None:
    _need_cgroup_v1_root()
    # 80 %: the job gets at most a fifth of a CPU, less than it gets on this loaded machine, so the quota bites
    limit = plan_limit(80, 1, 20_000)
    status, acc, _ = run_limited([sys.executable, "-c", BUSY.format(s=0.3)], limit, cwd=str(tmp_path))
    assert status == 0 and acc is not None
    assert (acc.version, acc.period_us, acc.quota_us) == (1, 20_000, 4_000)  # read back from the group's files
    assert acc.usage_s == pytest.approx(0.3, abs=0.15)  # the job's CPU time, counted by cpuacct
    assert acc.nr_periods > 0 and acc.nr_throttled > 0 and acc.throttled_s > 0  # the quota bit
    assert acc.overhead_pct > 100  # at least as much held back as used (nominal: 400 %)
    assert not Path(f"/sys/fs/cgroup/cpu/{acc.group}").exists()
    assert not Path(f"/sys/fs/cgroup/cpuacct/{acc.group}").exists()
    assert injector.leftover_groups() == []


def test_a_process_the_job_leaves_behind_is_killed_and_the_group_removed(tmp_path: Path, system_lock: None) -> None:
    _need_cgroup_v1_root()
    marker = tmp_path / "pid"
    command = ["sh", "-c", f"sleep 300 & echo $! > {marker}; exit 3"]
    status, acc, _ = run_limited(command, plan_limit(10, 1), cwd=str(tmp_path))
    assert status == 3 and acc is not None and acc.exit_status == 3
    pid = int(marker.read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    assert injector.leftover_groups() == []


def test_a_terminated_job_still_leaves_its_accounting_and_no_group(tmp_path: Path, system_lock: None) -> None:
    _need_cgroup_v1_root()
    script = wrap_script("sleep 300", plan_limit(10, 1), "termtest")
    proc = subprocess.Popen(["sh", "-c", script], cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 10
    while not Path("/sys/fs/cgroup/cpu/vhpc-inject-termtest").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)  # what the launcher does to a job past its timeout
    assert proc.wait(10) == 143
    assert parse_accounting((tmp_path / injector.ACCOUNTING_FILE).read_text()).exit_status == 143
    assert injector.leftover_groups() == []


def test_no_permission_to_create_a_cgroup_is_one_line_and_exit_2(tmp_path: Path) -> None:
    _need_cgroup_v1_root()
    marker = tmp_path / "ran"
    tmp_path.chmod(0o777)
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", VHPC, "inject",
                          "--cpu-loss", "10", "--", "touch", str(marker)], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)})
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vhpc: error: no permission to create cgroup"), out.stderr
    assert "Traceback" not in out.stderr and not marker.exists()  # the command never ran unlimited
    assert injector.leftover_groups() == []


def test_a_cgroup_root_without_a_cpu_controller_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    with pytest.raises(InjectionError, match="no CPU controller"):
        run_limited(["true"], plan_limit(10, 1), cwd=str(tmp_path), root=str(tmp_path))
