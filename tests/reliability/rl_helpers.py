"""Helpers of the reliability audit's tests: run the real CLI, find a job's processes, check one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[2]
LOCAL_INVENTORY = ROOT / "inventories" / "local.yml"
#: A PingPong that runs long enough to be interrupted (IMB cuts each size at its own 10 s limit).
LONG_PINGPONG = ["--msglog", "20:22", "--iterations", "200000", "--repetitions", "1", "--placement", "intra-socket",
                 "--no-figures", "--no-progress"]
SHORT_PINGPONG = ["--msglog", "0:2", "--iterations", "100", "--repetitions", "1", "--placement", "intra-socket",
                  "--no-figures", "--no-progress"]


def cli_env(data: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "VHPC_DATA": str(data), "VHPC_FIGURES": str(data / "figures"), **extra}


def vhpc(args: Sequence[str], data: Path, *, timeout: float = 240, **extra: str) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, writing under ``data`` only."""
    return subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], cwd=ROOT, env=cli_env(data, **extra),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def start_vhpc(args: Sequence[str], data: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vhpclib.cli", *args], cwd=ROOT, env=cli_env(data, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def job_pids(*, tag: str | None = None, data: Path | None = None) -> list[int]:
    """Processes of vhpc jobs on this machine: carrying ``VHPC_JOB`` (= ``tag``), started from ``data``'s vhpc."""
    me = os.getpid()
    found = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            environ = proc.environ()
        except (psutil.Error, OSError):
            continue
        if "VHPC_JOB" not in environ or (tag is not None and environ["VHPC_JOB"] != tag):
            continue
        if data is not None and environ.get("VHPC_DATA") != str(data):
            continue
        found.append(proc.pid)
    return found


def ranks(pids: list[int]) -> list[int]:
    """The IMB ranks among ``pids`` (what must never outlive a job)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).name().startswith("IMB-MPI1"):
                out.append(pid)
        except psutil.Error:
            continue
    return out


def wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def assert_one_error_line(proc: subprocess.CompletedProcess, code: int = 2, *fragments: str) -> str:
    """Exit code ``code``, exactly one ``vhpc: error:`` line (other lines only warnings), no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vhpc: error: ")]
    others = [line for line in proc.stderr.splitlines() if line and not line.startswith("vhpc: ")]
    assert len(errors) == 1 and not others, proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def write_inventory(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def local_inventory(path: Path, **environment: object) -> Path:
    """The embedded default inventory with extra keys on its ``local`` environment."""
    data = yaml.safe_load(LOCAL_INVENTORY.read_text())
    data["environments"]["local"].update(environment)
    return write_inventory(path, data)


def partials(data: Path) -> list[Path]:
    return sorted((data / "raw").glob("*/*/*/.*.partial-*"))


def repo_state() -> str:
    """Everything git sees as changed or new in the checkout (a test must not add to it)."""
    return subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
                          capture_output=True, text=True, timeout=60).stdout


def inventory_of_a_testbed(name: str, nodes: int, folder: Path):
    """A testbed of ``nodes`` namespace nodes up for one test, as an inventory path (5 s connect, no contention
    check); every node's link is set up again and the testbed removed afterwards (a generator for a fixture)."""
    import pytest

    from vhpclib import testbed
    from vhpclib.sshd import sshd_available
    from vhpclib.testbed.netns import Names

    reason = sshd_available()
    if reason:
        pytest.skip(reason)
    testbed.down(name)
    info = testbed.up(nodes, name=name)
    try:
        data = yaml.safe_load(info.inventory.read_text())
        env = data["environments"]["testbed"]
        env["connect_timeout_s"] = 5
        env["contention_threshold"] = "off"
        yield write_inventory(folder / "testbed.yml", data)
    finally:
        for index in range(1, nodes + 1):
            subprocess.run(["ip", "link", "set", Names(name).veth(index), "up"], capture_output=True)
        testbed.down(name)
