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
    from vhpclib.vm.lifecycle import guest_qemus

    assert guest_qemus("rl3") == []  # this guest's name only (another test may run a guest of its own)


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
    if value == "":  # unset in effect: the default (the run may be invalid on a busy machine, never refused)
        assert proc.returncode in (0, 1) and "VHPC_CONTENTION_THRESHOLD" not in proc.stderr, proc.stderr
        return
    assert_one_error_line(proc, 2, "VHPC_CONTENTION_THRESHOLD", repr(value), "'off'")
    assert not (tmp_path / "d").exists()


def python_startup(err: str) -> bool:
    """A traceback from Python's own start-up: site, or runpy importing the package before its code ran."""
    frames = [line.strip() for line in err.splitlines() if line.strip().startswith("File ")]
    return bool(frames) and not any("vhpclib" in f or "get_code" in f for f in frames) and \
        any("<frozen site>" in f or "_get_module_details" in f for f in frames)


@pytest.fixture(scope="module")
def python_startup_s():
    """How long this Python takes to start without vhpc (site, the venv's .pth files): not vhpc's window."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
        times.append(time.perf_counter() - t0)
    return min(times)


@pytest.mark.parametrize("delay_ms", [0, 5, 15, 30, 50, 100])
def test_ctrl_c_in_the_first_moments_of_a_command_is_one_line_without_traceback(tmp_path, delay_ms,
                                                                                python_startup_s):
    # Counted from the end of Python's own start-up: a Ctrl-C inside `site` is Python's traceback, not ours.
    # testbed up with a name it refuses after its imports (no namespace is ever made): the signal comes first.
    proc = subprocess.Popen([sys.executable, "-m", "vhpclib.cli", "testbed", "up", "--name", "RL-3", "--nodes", "1"],
                            cwd=ROOT, env=cli_env(tmp_path / "d"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(python_startup_s + delay_ms / 1000)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if "Traceback" in err and python_startup(err):
        pytest.skip("the signal came while Python itself was starting (site, runpy): not vhpc's to handle")
    assert "Traceback" not in err + out, err
    assert proc.returncode in (130, 2), (proc.returncode, err)  # 2: it refused the name before the signal came
    assert len(err.strip().splitlines()) == 1 and err.startswith("vhpc: error: "), err
    if proc.returncode == 130:
        assert err.strip() == "vhpc: error: interrupted", err
