"""A launch host whose link dies mid-run: vhpc notices within ~30 s instead of hanging, keeps the run, and the
next vhpc on the campaign fetches the finished job's logs and stores the run as failed with its times.

Uses the network-namespace testbed (root): node 1 is the SSH launch host; its link is cut in the root
namespace (``ip link set <veth> down``) while IMB runs there.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from rl_helpers import (LONG_PINGPONG, SHORT_PINGPONG, inventory_of_a_testbed, job_pids, partials, ranks, start_vhpc,
                        vhpc, wait_for)
from vhpclib.testbed.netns import Names

pytestmark = [pytest.mark.root, pytest.mark.ssh, pytest.mark.mpi]
NAME = "rl1"


@pytest.fixture
def one_node(tmp_path):
    yield from inventory_of_a_testbed(NAME, 1, tmp_path)


def link(state: str) -> None:
    subprocess.run(["ip", "link", "set", Names(NAME).veth(1), state], check=True, capture_output=True)


def test_a_dead_link_is_noticed_within_30_s_and_the_run_is_stored_on_resume(one_node, tmp_path):
    data = tmp_path / "d"
    args = ["run", "microbench", "-i", str(one_node), "-e", "testbed", "-c", "ld"]
    proc = start_vhpc([*args, *LONG_PINGPONG], data)
    try:
        started = wait_for(lambda: [p for p in partials(data) if (p / ".vhpc-job.json").exists()
                                    and json.loads((p / ".vhpc-job.json").read_text()).get("sid")], 90)
        assert started, "the job never started on node 1"
        marker = json.loads((started[0] / ".vhpc-job.json").read_text())
        assert wait_for(lambda: len(ranks(job_pids(tag=marker["tag"]))) == 2, 30)
        link("down")
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=120)
        noticed = time.monotonic() - t0
    finally:
        proc.kill()
    print(f"link down noticed and vhpc ended after {noticed:.1f} s")
    assert noticed < 60, f"vhpc took {noticed:.0f} s to notice the dead link"
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "connection lost while the job ran" in out, out
    [kept] = partials(data)
    assert json.loads((kept / ".vhpc-job.json").read_text())["state"] == "lost"

    # The job may finish on its own meanwhile, or hang without its node's link (Hydra's control traffic
    # uses that interface): either way the next vhpc stores what the host kept and leaves nothing running.
    finished = wait_for(lambda: not ranks(job_pids(tag=marker["tag"])), 30)
    link("up")
    resumed = vhpc([*args, *SHORT_PINGPONG], data, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert "stored as pingpong-intra-socket-m20-22-i200000-r01.failed-" in resumed.stderr
    assert partials(data) == []
    [failed] = list((data / "raw/ld/testbed/microbench").glob("*.failed-*"))
    record = json.loads((failed / "run.json").read_text())
    execution = record["execution"]
    assert record["status"] == "failed" and "lost while the job ran" in record["reasons"][0]
    assert "logs fetched when the campaign was resumed" in record["reasons"][0]
    if finished:
        assert execution["exit_status"] == 0 and "ended with exit status 0" in record["reasons"][0]
    else:
        assert execution["killed"] and "still running when the campaign resumed and was killed" in record["reasons"][0]
    assert execution["started_utc"] and execution["ended_utc"] and execution["duration_s"] > 0
    assert "# Benchmarking PingPong" in (failed / "stdout.log").read_text()
    assert ranks(job_pids(tag=marker["tag"])) == []
    check = subprocess.run(["ip", "netns", "exec", Names(NAME).namespace(1), "test", "-e",
                            execution["remote_dir"]], capture_output=True)
    assert check.returncode == 1, "the remote run folder was not removed"
