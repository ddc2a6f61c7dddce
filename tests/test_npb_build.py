"""NPB-MZ build driver: make.def generation, and a real build of apps/mzdemo through the same code path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vhpclib import paths
from vhpclib.config import NpbSpec
from vhpclib.exceptions import BuildError, InputError, StoreError
from vhpclib.mpi import build_launch, runtime_for, shell_command
from vhpclib.npb import (REQUIRED_VARIABLES, build_env, build_npb, build_targets, load_build, make_def,
                         parse_make_def, sha256_file)
from vhpclib.workloads.app_run import AppRun
from vhpclib.remote import LocalExecutor
from vhpclib.store import RawStore

from npb_helpers import MPIF90, local_environment

MZDEMO = paths.APPS / "mzdemo"


def _require_wrapper() -> None:
    if not MPIF90.exists():
        pytest.fail(f"{MPIF90} is missing: install impi-devel==2021.16.1 (Intel MPI compiler wrappers and mpif.h)")


def _spec(source: Path, version: str = "3.3") -> NpbSpec:
    return NpbSpec(source=source, version=version, fc=str(MPIF90), fflags="-O3 -fopenmp")


def _build(tmp: Path, version: str = "3.3", source: Path = MZDEMO, build_id: str = "b1", nprocs=(2,)):
    _require_wrapper()
    store = RawStore(tmp / "raw")
    build = build_npb(LocalExecutor("buildhost"), _spec(source, version), benchmarks=["mz-demo"], klass="S",
                      nprocs=nprocs, campaign="c1", environment="bare", store=store, build_id=build_id,
                      workdir=str(tmp / "work"), env=build_env(local_environment()), timeout=300)
    return store, build


@pytest.fixture(scope="module")
def built33(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("npb33")
    store, build = _build(tmp, "3.3", nprocs=(2, 1))
    return tmp, store, build


# ------------------------------------------------------------------ make.def

def test_make_def_33_defines_mpif77_flink_and_flags():
    text = make_def("3.3", "mpiifort", "-O3 -qopenmp")
    got = parse_make_def(text)
    assert set(REQUIRED_VARIABLES["3.3"]) <= set(got)
    assert got["MPIF77"] == "mpiifort"
    assert got["FLINK"] == "$(MPIF77)"
    assert got["FFLAGS"] == "-O3 -qopenmp"
    assert got["FLINKFLAGS"] == "-O3 -qopenmp"  # OpenMP must reach the linker too
    assert got["BINDIR"] == "../bin"
    assert got["RAND"] == "randi8"
    assert "MPIFC" not in got


def test_make_def_34_defines_mpifc_fc_and_flink():
    got = parse_make_def(make_def("3.4", "mpif90", "-O3 -fopenmp"))
    assert set(REQUIRED_VARIABLES["3.4"]) <= set(got)
    assert (got["MPIFC"], got["FC"], got["FLINK"]) == ("mpif90", "$(MPIFC)", "$(MPIFC)")
    assert got["FFLAGS"] == got["FLINKFLAGS"] == "-O3 -fopenmp"
    assert "MPIF77" not in got


def test_make_def_golden_text_33():
    lines = [line for line in make_def("3.3", "mpif90", "-O3 -fopenmp").splitlines() if not line.startswith("#")]
    assert lines == ["MPIF77 = mpif90", "FLINK = $(MPIF77)", "FMPI_LIB =", "FMPI_INC =", "FFLAGS = -O3 -fopenmp",
                     "FLINKFLAGS = -O3 -fopenmp", "CC = cc -g", "BINDIR = ../bin", "RAND = randi8"]


def test_make_def_rejects_newline_and_comment_in_flags():
    with pytest.raises(InputError, match="newline"):
        make_def("3.3", "mpif90", "-O3\nall: evil")
    with pytest.raises(InputError, match="'#'"):
        make_def("3.4", "mpif90", "-O3 # -fopenmp")
    with pytest.raises(InputError, match="version"):
        make_def("3.2", "mpif90", "-O3")


def test_build_targets_33_bakes_every_process_count_and_34_does_not():
    t33 = build_targets("3.3", ["sp-mz", "bt-mz"], "C", [16, 4, 64, 4])
    assert [t.binary_name for t in t33] == ["sp-mz.C.4", "sp-mz.C.16", "sp-mz.C.64",
                                           "bt-mz.C.4", "bt-mz.C.16", "bt-mz.C.64"]
    assert t33[1].make_args() == ["sp-mz", "CLASS=C", "NPROCS=16"]
    t34 = build_targets("3.4", ["sp-mz"], "C", [4, 8])
    assert [(t.binary_name, t.make_args()) for t in t34] == [("sp-mz.C.x", ["sp-mz", "CLASS=C"])]


def test_build_targets_reject_bad_class_name_and_missing_nprocs():
    with pytest.raises(InputError, match="class"):
        build_targets("3.3", ["sp-mz"], "Q", [4])
    with pytest.raises(InputError, match="make target"):
        build_targets("3.4", ["sp-mz; rm -rf /"], "C")
    with pytest.raises(InputError, match="process count"):
        build_targets("3.3", ["sp-mz"], "C", None)


# ------------------------------------------------------------------ real builds of mz-demo

def test_build_stores_record_make_def_and_binaries_with_sha256(built33):
    tmp, store, build = built33
    assert [b.name for b in build.binaries] == ["mz-demo.S.1", "mz-demo.S.2"]
    stored = json.loads((build.path / "run.json").read_text())
    assert stored["status"] == "complete" and stored["stage"] == "build" and stored["kind"] == "build"
    record = stored["extra"]
    assert record["version"] == "3.3" and record["class"] == "S" and record["nprocs"] == [1, 2]
    assert record["compiler"]["version"].startswith("GNU Fortran")
    assert "gfortran" in record["compiler"]["wrapper_command"]
    assert record["build_host"]["name"] == "buildhost" and record["build_host"]["hostname"]
    assert record["source"] == str(MZDEMO) and record["source_kind"] == "directory"
    assert record["make_def_variables"]["MPIF77"] == str(MPIF90)
    assert (build.path / "make.def").read_text() == record["make_def"]
    assert record["started_utc"] <= record["ended_utc"]
    assert [t["exit_status"] for t in record["targets"]] == [0, 0]
    assert "mz_demo.f90" in (build.path / "stdout.log").read_text()  # the compile line is in the log
    for binary in build.binaries:
        assert binary.file.is_file() and binary.file.stat().st_size == binary.size
        assert sha256_file(binary.file) == binary.sha256
        assert len(binary.sha256) == 64
        assert binary.file.stat().st_mode & 0o111  # runnable from the store


def _snapshot(tree: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(tree)): (p.stat().st_size, p.stat().st_mtime_ns) for p in tree.rglob("*")}


def test_build_leaves_the_source_tree_untouched(tmp_path):
    before = _snapshot(MZDEMO)
    _build(tmp_path, "3.4", nprocs=None)
    assert _snapshot(MZDEMO) == before


def test_build_34_names_its_binary_x_and_accepts_a_tarball(tmp_path):
    tarball = Path(shutil.make_archive(str(tmp_path / "mzdemo-src"), "gztar", root_dir=MZDEMO.parent,
                                       base_dir=MZDEMO.name))
    store, build = _build(tmp_path, "3.4", source=tarball, nprocs=None)
    assert [b.name for b in build.binaries] == ["mz-demo.S.x"]
    assert build.record["source_kind"] == "tarball"
    assert build.record["source_sha256"] == sha256_file(tarball)
    assert build.record["make_def_variables"]["MPIFC"] == str(MPIF90)
    assert build.binary("mz-demo", "S", 7).name == "mz-demo.S.x"


def test_failed_build_is_kept_as_failed_and_raises_build_error(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(MZDEMO, broken)
    source = broken / "MZ-DEMO" / "mz_demo.f90"
    source.write_text(source.read_text().replace("call step(cur, nxt)", "call step(cur, nxt"))
    with pytest.raises(BuildError, match="make mz-demo CLASS=S NPROCS=2 failed") as info:
        _build(tmp_path, "3.3", source=broken)
    assert "Error" in str(info.value)  # the compiler's own message is in the error
    store = RawStore(tmp_path / "raw")
    runs = list(store.runs("c1", "bare", "build"))
    assert len(runs) == 1 and runs[0].status == "failed" and runs[0].run_id.startswith("b1.failed-")
    assert "Error" in (runs[0].path / "stderr.log").read_text()
    with pytest.raises(StoreError):
        load_build(store, "c1", "bare", "b1")


def test_build_of_missing_source_names_the_path(tmp_path):
    with pytest.raises(BuildError, match="source not found"):
        _build(tmp_path, source=tmp_path / "NPB3.3.1-MZ.tar.gz")


def test_build_refuses_to_overwrite_a_stored_build(built33):
    tmp, store, build = built33
    with pytest.raises(InputError, match="write-once"):
        build_npb(LocalExecutor(), _spec(MZDEMO), benchmarks=["mz-demo"], klass="S", nprocs=[2], campaign="c1",
                  environment="bare", store=store, build_id="b1", workdir=str(tmp / "work"))


# ------------------------------------------------------------------ the built binary runs

@pytest.mark.mpi
def test_built_binary_runs_2_processes_1_thread_and_verifies(built33):
    tmp, store, build = built33
    runtime = runtime_for(local_environment())
    binary = build.binary("mz-demo", "S", 2)
    argv, env = build_launch(runtime, AppRun("mz-demo", "S", processes=2, threads=1, ppn=2).launch_spec(),
                             [str(binary.file)])
    result = LocalExecutor().run(shell_command(argv), env=env, timeout=120)
    out = result.stdout
    assert "MZ-DEMO Benchmark Completed." in out
    assert " Verification    =                SUCCESSFUL" in out
    assert " Total processes =                         2" in out
    assert " Threads/process =                         1" in out


@pytest.mark.mpi
def test_33_binary_refuses_a_different_process_count(built33):
    tmp, store, build = built33
    runtime = runtime_for(local_environment())
    binary = build.binary("mz-demo", "S", 2)
    argv, env = build_launch(runtime, AppRun("mz-demo", "S", processes=1, threads=1, ppn=1).launch_spec(),
                             [str(binary.file)])
    result = LocalExecutor().run(shell_command(argv), env=env, timeout=120, warn=True)
    assert result.exit_code != 0
    assert "compiled for 2 processes, started with 1" in result.stdout
