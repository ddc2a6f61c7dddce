"""Round 3: options and variables checked before anything starts, named with what they accept; Ctrl-C at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from rl_helpers import ROOT, SHORT_PINGPONG, assert_one_error_line, cli_env, repo_state, vhpc


def host_cpus() -> int:
    return len(os.sched_getaffinity(0))


def host_memory_mib() -> int:
    with open("/proc/meminfo") as fh:
        return next(int(line.split()[1]) // 1024 for line in fh if line.startswith("MemTotal:"))


@pytest.mark.parametrize("args, fragments", [
    (["--timeout", "0"], ("--timeout", "finite number of seconds above 0", "got 0")),
    (["--timeout", "nan"], ("--timeout", "finite number of seconds above 0", "nan")),
    (["--timeout", "-5"], ("--timeout", "above 0")),
    (["--timeout", "inf"], ("--timeout", "finite")),
    (["--vcpus", "64"], ("--vcpus", "64 is more than the", "CPU(s)")),
    (["--vcpus", str(host_cpus() + 1)], ("--vcpus", f"use at most {host_cpus()}")),
    (["--memory", str(host_memory_mib() + 1024)], ("--memory", "more than this machine has")),
    (["--memory", "100000000"], ("--memory", f"use at most {host_memory_mib()}")),
], ids=["timeout-0", "timeout-nan", "timeout-negative", "timeout-inf", "vcpus-64", "vcpus-one-more",
        "memory-above", "memory-huge"])
def test_vm_up_refuses_what_the_machine_cannot_do_before_starting_anything(tmp_path, args, fragments):
    before = repo_state()
    vms = tmp_path / "vms"
    proc = vhpc(["vm", "up", "--name", "rl3", *args], tmp_path / "d", timeout=60, VHPC_VMS=str(vms))
    assert_one_error_line(proc, 2, *fragments)
    assert not vms.exists() and not (tmp_path / "d").exists()
    assert repo_state() == before
    qemus = subprocess.run(["pgrep", "-f", "vhpc-rl3|vm-rl3"], capture_output=True, text=True).stdout.split()
    assert qemus == []


@pytest.mark.parametrize("value", ["nan", "inf", "0", "100", "-1"])
def test_ci_target_names_the_option_and_what_it_accepts(tmp_path, value):
    proc = vhpc(["run", "microbench", "-c", "x", "--ci-target", value, *SHORT_PINGPONG], tmp_path / "d")
    line = assert_one_error_line(proc, 2, "--ci-target", "percentage above 0 and below 100")
    assert "ci_target_pct" not in line
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("value", ["lots", "nan", "-0.5", "inf", ""])
def test_a_bad_contention_threshold_variable_is_named(tmp_path, value):
    proc = vhpc(["run", "microbench", "-c", "x", *SHORT_PINGPONG], tmp_path / "d",
                VHPC_CONTENTION_THRESHOLD=value)
    if value == "":  # unset in effect: the default
        assert proc.returncode == 0, proc.stderr
        return
    assert_one_error_line(proc, 2, "VHPC_CONTENTION_THRESHOLD", repr(value), "'off'")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("delay_ms", [5, 20, 35, 50, 80, 150])
def test_ctrl_c_in_the_first_moments_of_a_command_is_one_line_without_traceback(tmp_path, delay_ms):
    # testbed up with a name that cannot be valid: it would refuse after the imports; the signal comes first
    proc = subprocess.Popen([sys.executable, "-m", "vhpclib.cli", "testbed", "up", "--name", "rl3x", "--nodes", "1"],
                            cwd=ROOT, env=cli_env(tmp_path / "d"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay_ms / 1000)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    try:
        assert "Traceback" not in err + out, err
        assert proc.returncode in (130, -signal.SIGINT, 2, 0), (proc.returncode, err)
        if proc.returncode == 130:
            assert err.strip().splitlines()[-1].startswith("vhpc: error: interrupted"), err
    finally:
        subprocess.run([sys.executable, "-m", "vhpclib.cli", "testbed", "down", "--name", "rl3x"], cwd=ROOT,
                       env=cli_env(tmp_path / "d"), capture_output=True, timeout=120)
