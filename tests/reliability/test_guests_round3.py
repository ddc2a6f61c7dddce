"""Round 3, guests (not audited before): two `vm up` of one name at once, SIGTERM while a guest starts,
`vm down` twice. One real QEMU start (TCG, cached image) serves the three cases; no full boot is waited for."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest

from rl_helpers import LONG_PINGPONG, assert_one_error_line, partials, repo_state, start_vhpc, vhpc, wait_for
from vhpclib.vm import lifecycle

pytestmark = [pytest.mark.root, pytest.mark.mpi]
NAME = "rl3g"
PASSWORD = "pw-Guest3-4a7b21"


@pytest.fixture
def vms(tmp_path):
    reason = None if os.geteuid() == 0 else "needs root (QEMU, vCPU pinning)"
    for tool in ("qemu-system-x86_64", "qemu-img"):
        if reason is None and shutil.which(tool) is None:
            reason = f"{tool} missing"
    if reason:
        pytest.skip(reason)
    folder = tmp_path / "vms"
    yield folder
    if lifecycle.guest_qemus(NAME):  # whatever happened: nothing of the guest may outlive the test
        vhpc(["vm", "down", "--name", NAME], tmp_path / "d", timeout=120, VHPC_VMS=str(folder))


def test_a_second_vm_up_of_a_starting_guest_is_refused_and_sigterm_during_up_leaves_nothing(vms, tmp_path):
    before = repo_state()
    data = tmp_path / "d"
    first = start_vhpc(["vm", "up", "--name", NAME, "--vcpus", "1", "--memory", "512", "--accel", "tcg",
                        "--timeout", "300"], data, VHPC_VMS=str(vms), DB_PASSWORD=PASSWORD)
    try:
        assert wait_for(lambda: (vms / NAME).is_dir() or first.poll() is not None, 600), "vm up never started"
        assert first.poll() is None, first.communicate()
        second = vhpc(["vm", "up", "--name", NAME, "--vcpus", "1", "--memory", "512", "--accel", "tcg"], data,
                      timeout=120, VHPC_VMS=str(vms))
        assert_one_error_line(second, 2, f"guest name {NAME!r} is in use", "--name")
        assert first.poll() is None  # the refused one touched nothing of the first
        assert wait_for(lambda: lifecycle.guest_qemus(NAME), 60), "QEMU never started"
        time.sleep(1)
        # what the guest is given (seed image, state, logs): no secret of vhpc's environment, no private key
        key = (vms / NAME / "client_ed25519").read_bytes()
        for path in (vms / NAME).iterdir():
            if path.is_file() and path.name not in ("overlay.qcow2", "client_ed25519"):
                content = path.read_bytes()
                assert PASSWORD.encode() not in content and key not in content, path
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 128 + signal.SIGTERM, (first.returncode, err)
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("vhpc: error:"), err
    assert lifecycle.guest_qemus(NAME) == []
    assert not (vms / NAME).exists()
    assert repo_state() == before  # no inventories/vm-<name>.yml left behind

    downs = [vhpc(["vm", "down", "--name", NAME], data, timeout=120, VHPC_VMS=str(vms)) for _ in range(2)]
    for down in downs:  # twice: idempotent, one clear answer each
        assert down.returncode == 0 and "Traceback" not in down.stderr, down.stderr
        assert "nothing to remove" in down.stdout, down.stdout


def test_qemu_killed_during_a_run_is_noticed_within_30_s_and_the_run_kept_for_resume(vms, tmp_path):
    data = tmp_path / "d"
    name = NAME + "k"
    up = vhpc(["vm", "up", "--name", name, "--vcpus", "2", "--memory", "1536", "--accel", "tcg", "--timeout", "300"],
              data, timeout=900, VHPC_VMS=str(vms))
    try:
        assert up.returncode == 0, up.stderr
        line = next(x for x in up.stdout.splitlines() if x.startswith("inventory: "))
        inventory, environment = line.split()[1], line.rsplit("environment ", 1)[1].rstrip(")")
        # The inventory `vm up` wrote declares the guest; the run resolves it against the guest's state, which is
        # under VHPC_VMS: the run must be given the same folder (without it: "guest ... is not running", exit 2).
        proc = start_vhpc(["run", "microbench", "-i", inventory, "-e", environment, "-c", "qk", *LONG_PINGPONG],
                          data, VHPC_VMS=str(vms))
        try:
            started = wait_for(lambda: proc.poll() is not None or [
                p for p in partials(data) if (p / ".vhpc-job.json").exists()
                and json.loads((p / ".vhpc-job.json").read_text()).get("sid")], 240)
            assert started and proc.poll() is None, ("the job never started in the guest", proc.poll(),
                                                     proc.stderr.read() if proc.poll() is not None else "")
            time.sleep(2)
            for pid in lifecycle.guest_qemus(name):
                os.kill(pid, signal.SIGKILL)
            t0 = time.monotonic()
            out, err = proc.communicate(timeout=180)
            noticed = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
        print(f"qemu killed: vhpc ended after {noticed:.1f} s")
        assert noticed < 30, noticed
        assert proc.returncode == 1 and "Traceback" not in err, err
        assert "connection lost while the job ran" in out, out
        assert len(partials(data)) == 1  # kept: the next vhpc on the campaign stores what it can
    finally:
        down = vhpc(["vm", "down", "--name", name], data, timeout=300, VHPC_VMS=str(vms))
        assert down.returncode == 0, down.stderr
    assert lifecycle.guest_qemus(name) == []
