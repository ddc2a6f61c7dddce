"""A run measured while something else keeps the cores busy is never stored complete; one writer per campaign."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from rl_helpers import SHORT_PINGPONG, assert_one_error_line, local_inventory, vhpc
from vhpclib.store import campaign_lock

pytestmark = pytest.mark.mpi

SPIN = "import time\nend = time.time() + 60\nwhile time.time() < end: pass\n"


def records(data, campaign):
    return [json.loads(p.read_text()) for p in sorted((data / "raw" / campaign).rglob("run.json"))]


def test_a_busy_process_on_the_cores_makes_the_run_invalid_and_is_named(tmp_path):
    # Two busy-polling ranks and the spinners share the cores: each spinner gets a fraction of one.
    inventory = local_inventory(tmp_path / "inv.yml", contention_threshold=0.1)
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)
        proc = vhpc(["run", "microbench", "-i", str(inventory), "-c", "busy", *SHORT_PINGPONG], tmp_path / "d")
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert proc.returncode == 1, proc.stderr  # the stage lacks the valid run it planned
    assert "--campaign busy --rerun" in proc.stderr
    [record] = [r for r in records(tmp_path / "d", "busy") if r["kind"] == "run"]
    assert record["status"] == "invalid"
    busy = record["execution"]["contention"]["busy"]
    assert {s.pid for s in spinners} & {b["pid"] for b in busy}, busy
    assert any("contention on localhost" in r and "used" in r for r in record["reasons"])
    assert "invalid pingpong-intra-socket" in proc.stdout and "contention" in proc.stdout


def test_contention_check_can_be_switched_off_per_environment(tmp_path):
    inventory = local_inventory(tmp_path / "inv.yml", contention_threshold="off")
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        proc = vhpc(["run", "microbench", "-i", str(inventory), "-c", "quiet", *SHORT_PINGPONG], tmp_path / "d")
    finally:
        spinner.kill()
        spinner.wait()
    assert proc.returncode == 0, proc.stderr
    [record] = [r for r in records(tmp_path / "d", "quiet") if r["kind"] == "run"]
    assert record["execution"]["contention"] is None and record["status"] == "complete"


def test_a_second_writer_on_a_campaign_gets_one_line_and_exit_2(tmp_path):
    data = tmp_path / "d"
    with campaign_lock("busy", root=data / "raw"):
        proc = vhpc(["run", "microbench", "-c", "busy", *SHORT_PINGPONG], data)
    line = assert_one_error_line(proc, 2, "campaign 'busy' is being written by another vhpc", "--wait")
    assert f"pid {os.getpid()}" in line
    assert not list((data / "raw" / "busy").rglob("run.json"))


def test_wait_queues_the_second_writer_behind_the_first(tmp_path):
    data = tmp_path / "d"
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with campaign_lock("queued", root=data / "raw"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    threading.Timer(3.0, release.set).start()
    t0 = time.monotonic()
    proc = vhpc(["run", "microbench", "-c", "queued", "--wait", *SHORT_PINGPONG], data)
    holder.join()
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 >= 2.5
    assert len([r for r in records(data, "queued") if r["kind"] == "run"]) == 1
