"""Round 3: a data folder that cannot be written is one line naming the path and what to do, exit 2.

Disk full and read-only are real: a small tmpfs mounted under the test's folder (root only), unmounted
after. Nothing half-written may be left: no run folder, no partial folder.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from rl_helpers import SHORT_PINGPONG, assert_one_error_line, partials, vhpc

pytestmark = pytest.mark.mpi
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def mount_tmpfs(folder: Path, *options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("mode=755", *options)), "vhpc-rl3", str(folder)],
                   check=True, timeout=30)


@pytest.fixture
def tmpfs(tmp_path):
    mounted: list[Path] = []

    def mount(folder: Path, *options: str) -> Path:
        mount_tmpfs(folder, *options)
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], timeout=30, check=False)


def test_vhpc_data_pointing_at_a_file_is_one_line(tmp_path):
    data = tmp_path / "data-file"
    data.write_text("not a folder\n")
    proc = vhpc(["run", "microbench", "-c", "x", *SHORT_PINGPONG], data)
    assert_one_error_line(proc, 2, str(data), "a file stands where a folder belongs", "VHPC_DATA")
    assert data.read_text() == "not a folder\n"


def test_a_lock_that_is_a_folder_is_one_line(tmp_path):
    data = tmp_path / "d"
    (data / "raw" / "x" / ".lock").mkdir(parents=True)
    proc = vhpc(["run", "microbench", "-c", "x", *SHORT_PINGPONG], data)
    assert_one_error_line(proc, 2, str(data / "raw" / "x" / ".lock"), "a folder stands where a file belongs",
                          "remove")


def test_tables_into_a_processed_folder_that_is_a_file_is_one_line(tmp_path):
    data = tmp_path / "d"
    assert vhpc(["run", "microbench", "-c", "x", *SHORT_PINGPONG], data).returncode == 0
    (data / "processed").rename(tmp_path / "moved")
    (data / "processed").write_text("")
    proc = vhpc(["tables", "-c", "x"], data)
    assert_one_error_line(proc, 2, str(data / "processed"), "a file stands where a folder belongs")


@needs_root
def test_a_read_only_data_folder_is_one_line(tmp_path, tmpfs):
    data = tmpfs(tmp_path / "ro", "ro", "size=1m")
    proc = vhpc(["run", "microbench", "-c", "x", *SHORT_PINGPONG], data)
    assert_one_error_line(proc, 2, str(data), "read-only", "VHPC_DATA")


@needs_root
@pytest.mark.parametrize("free_kib", [4, 12, 24])
def test_a_full_disk_is_one_line_and_nothing_half_written_is_left(tmp_path, tmpfs, free_kib):
    data = tmpfs(tmp_path / "small", "size=512k")
    filler = data / "filler"
    with open(filler, "wb") as fh:  # leave about free_kib KiB: full at the lock, the fingerprint or the run
        try:
            fh.write(b"\0" * (512 - free_kib) * 1024)
        except OSError:
            pass
    proc = vhpc(["run", "microbench", "-c", "x", *SHORT_PINGPONG], data)
    if proc.returncode == 0:  # everything fitted: then it must be complete
        assert list((data / "raw" / "x").rglob("run.json"))
        return
    assert_one_error_line(proc, 2, str(data), "no space left", "VHPC_DATA")
    for record in data.rglob("run.json"):  # stored before the disk filled up (tables failed): whole, readable
        assert json.loads(record.read_text())["status"] in ("complete", "invalid", "failed")
        assert (record.parent / "stdout.log").is_file()
    assert partials(data) == []
    assert not list(data.rglob(".*.partial-*")) and not list(data.rglob(".*.tmp"))
