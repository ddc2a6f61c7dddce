"""Nothing is written where it does not belong: campaign names never leave data/, work folders are private
to a user and a checkout, and the blockss problem cache is only used when its checksums hold."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from rl_helpers import ROOT, assert_one_error_line, local_inventory, repo_state, vhpc
from vhpclib.config import load_inventory, secure_dir_command
from vhpclib.exceptions import InvalidName
from vhpclib.fingerprint import fingerprint_dir
from vhpclib.stages.context import StageContext
from vhpclib.names import Campaign
from vhpclib.store import RawStore, campaign_lock

BAD_CAMPAIGNS = ["../x", "../../../x", "/etc", "a/b", ".hidden", "..", ".", "a..b", "~root", "$(id)", "x;rm -rf y",
                 "x y", "x\ny", "-rf", "café", "x" * 121, "embedded/../../x"]


@pytest.mark.parametrize("name", BAD_CAMPAIGNS)
def test_every_library_entry_point_refuses_a_campaign_name_that_leaves_the_store(name, tmp_path):
    for call in (lambda: Campaign(name), lambda: RawStore(tmp_path).run_path(name, "e", "s", "r"),
                 lambda: campaign_lock(name, root=tmp_path).__enter__(), lambda: fingerprint_dir(name, "e", tmp_path),
                 lambda: StageContext.open(ROOT / "inventories/local.yml", "local", name)):
        with pytest.raises(InvalidName):
            call()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["run", "microbench", "--no-figures", "--no-progress"], ["tables"],
                                     ["inventory", "check", "inventories/local.yml"],
                                     ["run", "single-node", "--no-figures"]])
@pytest.mark.parametrize("name", ["../../../escape", "/tmp/abs", "a/b", ".x"])
def test_every_cli_entry_point_refuses_it_with_one_line_and_writes_nothing(command, name, tmp_path):
    before = repo_state()
    proc = vhpc([*command, f"--campaign={name}"], tmp_path / "d", timeout=120)
    assert_one_error_line(proc, 2, "campaign")
    assert not (tmp_path / "d").exists() and repo_state() == before


def test_tables_of_a_missing_campaign_is_exit_2(tmp_path):
    assert_one_error_line(vhpc(["tables", "-c", "never-measured"], tmp_path / "d"), 2, "no campaign 'never-measured'")


def test_the_default_work_folder_is_per_user_and_per_checkout(tmp_path):
    env = load_inventory(ROOT / "inventories/local.yml").environment("local")
    assert env.work_root.startswith(f"/tmp/vhpc-{os.environ.get('USER') or 'root'}/") or "/tmp/vhpc-" in env.work_root
    other = subprocess.run([sys.executable, "-c", "from vhpclib.config import load_inventory; import sys; "
                            "print(load_inventory(sys.argv[1]).environment('local').work_root)",
                            str(ROOT / "inventories/local.yml")], capture_output=True, text=True,
                           env={**os.environ, "VHPC_ROOT": str(tmp_path)}, check=True).stdout.strip()
    assert other != env.work_root and other.rsplit("/", 1)[0] == env.work_root.rsplit("/", 1)[0]


def test_a_work_folder_owned_by_someone_else_or_a_symlink_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to create a folder owned by another user")
    for kind in ("foreign", "symlink"):
        top = Path(f"/tmp/vhpc-rl-{uuid.uuid4().hex[:8]}")
        try:
            if kind == "foreign":
                top.mkdir()
                os.chown(top, 65534, 65534)
            else:
                (tmp_path / "elsewhere").mkdir(exist_ok=True)
                top.symlink_to(tmp_path / "elsewhere")
            done = subprocess.run(["bash", "-c", secure_dir_command(f"{top}/work")], capture_output=True, text=True)
            assert done.returncode == 98 and f"refusing work folder {top}" in done.stderr
            assert not (tmp_path / "elsewhere" / "work").exists()
        finally:
            if top.is_symlink():
                top.unlink()
            else:
                shutil.rmtree(top, ignore_errors=True)


@pytest.mark.mpi
def test_a_planted_blockss_problem_is_regenerated_never_used(tmp_path):
    work = tmp_path / "work"
    inventory = local_inventory(tmp_path / "inv.yml", workdir=str(work))
    args = ["run", "single-node", "-i", str(inventory), "-c", "bss", "-w", "blockss", "--preset", "tiny",
            "--repetitions", "1", "--no-figures", "--no-progress"]
    first = vhpc(args, tmp_path / "d", timeout=600)
    assert first.returncode == 0, first.stderr
    [folder] = list((work / "blockss-problems").glob("tiny-*"))
    assert oct(work.stat().st_mode & 0o777) == "0o700" or oct((work / "blockss-problems").stat().st_mode & 0o777)
    genuine = (folder / "problem.json").read_text()
    planted = json.loads(genuine)
    planted["radius"] = planted["radius"] * 10  # a circle holding other eigenvalues
    (folder / "problem.json").write_text(json.dumps(planted))
    second = vhpc([*args, "--rerun"], tmp_path / "d", timeout=600)
    assert second.returncode == 0, second.stderr
    regenerated = json.loads((folder / "problem.json").read_text())  # generated again, not trusted
    assert regenerated["radius"] == pytest.approx(json.loads(genuine)["radius"], rel=1e-9)
    assert subprocess.run(["sha256sum", "--quiet", "-c", "vhpc-sha256"], cwd=folder).returncode == 0
    runs = sorted((tmp_path / "d/raw/bss/local/single-node").glob("blockss-*"))
    records = [json.loads((r / "run.json").read_text()) for r in runs]
    assert [r["status"] for r in records] == ["complete", "complete"]
    results = [json.loads((r / "blockss.json").read_text()) for r in runs]
    assert len(results[0]["eigenvalues"]) == len(results[1]["eigenvalues"])


def test_inventory_workdir_must_be_absolute(tmp_path):
    path = tmp_path / "inv.yml"
    data = yaml.safe_load((ROOT / "inventories/local.yml").read_text())
    data["environments"]["local"]["workdir"] = "relative/dir"
    path.write_text(yaml.safe_dump(data))
    assert_one_error_line(vhpc(["inventory", "validate", str(path)], tmp_path / "d"), 2, "workdir must be an absolute")
