"""Round 3: a cut link to a host of the job that is not its launch host is noticed within 30 s.

Two testbed nodes (root, network namespaces): node 1 launches an inter-node PingPong whose second rank runs on
node 2; node 2's link is cut in the root namespace while IMB runs. Before, only the launch host was watched
and the run sat in its timeout.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from rl_helpers import LONG_PINGPONG, inventory_of_a_testbed, partials, start_vhpc, wait_for
from vhpclib.testbed.netns import Names

pytestmark = [pytest.mark.root, pytest.mark.ssh, pytest.mark.mpi]
NAME = "rl3"


@pytest.fixture
def two_nodes(tmp_path):
    yield from inventory_of_a_testbed(NAME, 2, tmp_path)


def test_a_cut_link_to_the_second_node_is_noticed_within_30_s(two_nodes, tmp_path):
    data = tmp_path / "d"
    args = [a if a != "intra-socket" else "inter-node" for a in LONG_PINGPONG]
    proc = start_vhpc(["run", "microbench", "-i", str(two_nodes), "-e", "testbed", "-c", "ld2", "--timeout", "600",
                       *args], data)
    try:
        started = wait_for(lambda: [p for p in partials(data) if (p / ".vhpc-job.json").exists()
                                    and json.loads((p / ".vhpc-job.json").read_text()).get("sid")], 120)
        assert started, "the job never started"
        time.sleep(3)  # IMB under way on both nodes
        subprocess.run(["ip", "link", "set", Names(NAME).veth(2), "down"], check=True, capture_output=True)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=300)
        noticed = time.monotonic() - t0
    finally:
        proc.kill()
    print(f"cut link to node 2 noticed and vhpc ended after {noticed:.1f} s")
    assert "Traceback" not in err, err
    [run] = [json.loads(p.read_text()) for p in (data / "raw" / "ld2").rglob("run.json")
             if json.loads(p.read_text())["kind"] == "run"]
    assert run["status"] == "failed"
    assert "a host of this job, died while it ran" in run["reasons"][0], run["reasons"]
    assert run["execution"]["duration_s"] < 3 + 30 + 10, run["execution"]["duration_s"]
    assert noticed < 90, noticed
