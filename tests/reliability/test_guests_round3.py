"""Round 3, guests (not audited before): two `vm up` of one name at once, SIGTERM while a guest starts,
`vm down` twice. One real QEMU start (TCG, cached image) serves the three cases; no full boot is waited for."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

from rl_helpers import assert_one_error_line, repo_state, start_vhpc, vhpc, wait_for
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
