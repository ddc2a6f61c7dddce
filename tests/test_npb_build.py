"""NPB-MZ build driver: make.def generation, and a real build of apps/mzdemo through the same code path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vhpclib import paths
from vhpclib.workloads.npb import NpbSpec
from vhpclib.exceptions import BuildError, InputError, StoreError
from vhpclib.mpi import build_launch, runtime_for, shell_command
from vhpclib.npb import (REQUIRED_VARIABLES, build_env, build_npb, build_targets, load_build, make_def,
                         parse_make_def, sha256_file)
from vhpclib.npb.compile_options import (as_printed, compile_option_mismatches, expected_compile_options,
                                         npbparams_compile_options)
from vhpclib.parsers import get_parser
from vhpclib.workloads.app_run import AppRun
from vhpclib.remote import LocalExecutor
from vhpclib.store import RawStore

from npb_helpers import MPIF90, local_environment

MZDEMO = paths.APPS / "mzdemo"
#: The compiler as the binary prints it: setparams cuts a value over 46 characters (a checkout at a long path).
PRINTED_FC = as_printed(str(MPIF90))


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

# The variables the real trees' makefiles read (NPB3.3.1-MZ and NPB3.4-MZ: config/make.def.template,
# sys/make.common, sys/Makefile, {SP,BT,LU}-MZ/Makefile). 3.4 renamed F77 to FC.
REAL_33 = {"F77", "FLINK", "F_LIB", "F_INC", "FFLAGS", "FLINKFLAGS", "CC", "C_INC", "CFLAGS", "UCC", "BINDIR", "RAND"}
REAL_34 = (REAL_33 - {"F77"}) | {"FC"}
# What vhpc wrote before issue 11: plain NPB3.3-MPI names, which no NPB-MZ makefile reads.
NOT_MZ = {"MPIF77", "MPIFC", "FMPI_LIB", "FMPI_INC"}


def test_make_def_33_sets_every_variable_the_real_33_makefiles_read():
    got = parse_make_def(make_def("3.3", "mpiifort", "-O3 -qopenmp"))
    assert REAL_33 <= set(got) and set(REQUIRED_VARIABLES["3.3"]) <= set(got)
    assert not (NOT_MZ | {"FC"}) & set(got)
    # literal values: setparams prints the text, so FLINK names the linker, not $(F77)
    assert got["F77"] == got["FLINK"] == "mpiifort"
    assert got["FFLAGS"] == got["FLINKFLAGS"] == "-O3 -qopenmp"  # OpenMP must reach the linker too
    assert (got["F_LIB"], got["F_INC"], got["BINDIR"], got["RAND"], got["UCC"]) == ("", "", "../bin", "randi8", "cc")


def test_make_def_34_sets_every_variable_the_real_34_makefiles_read():
    got = parse_make_def(make_def("3.4", "mpif90", "-O3 -fopenmp"))
    assert REAL_34 <= set(got) and set(REQUIRED_VARIABLES["3.4"]) <= set(got)
    assert not (NOT_MZ | {"F77"}) & set(got)
    assert (got["FC"], got["FLINK"]) == ("mpif90", "mpif90")
    assert got["FFLAGS"] == got["FLINKFLAGS"] == "-O3 -fopenmp"


def test_make_def_golden_text_33():
    lines = [line for line in make_def("3.3", "mpif90", "-O3 -fopenmp").splitlines() if not line.startswith("#")]
    assert lines == ["F77 = mpif90", "FLINK = mpif90", "F_LIB =", "F_INC =", "FFLAGS = -O3 -fopenmp",
                     "FLINKFLAGS = -O3 -fopenmp", "CC = cc", "CLINK = cc", "C_LIB =", "C_INC =", "CFLAGS = -O3",
                     "CLINKFLAGS = -O3", "UCC = cc", "BINDIR = ../bin", "RAND = randi8"]


def test_make_def_rejects_newline_and_comment_in_flags():
    with pytest.raises(InputError, match="newline"):
        make_def("3.3", "mpif90", "-O3\nall: evil")
    with pytest.raises(InputError, match="'#'"):
        make_def("3.4", "mpif90", "-O3 # -fopenmp")
    with pytest.raises(InputError, match="version"):
        make_def("3.2", "mpif90", "-O3")


def test_make_def_rejects_what_setparams_cannot_print_as_it_ran():
    for bad in ("-DNAME='x'", "-I$(HOME)/inc", "-O3 \\", "-L`pwd`"):
        with pytest.raises(InputError, match="Compile options"):
            make_def("3.3", "mpif90", bad)
    with pytest.raises(InputError, match="fc"):
        make_def("3.4", "$(MPIF90)", "-O3")


def test_expected_compile_options_read_make_def_as_setparams_does():
    text = ("# F77 = commented-out\nF77 = old\nF77\t=   mpif90 -fc=gfortran\nFLINKFLAGS = -O3\nFLINK = ld90\n"
            "F_LIB =\nFFLAGS = " + "-fno-" * 12 + "\nRAND=randdp\n")
    got = expected_compile_options("3.3", text)
    assert got == {"F77": "mpif90 -fc=gfortran", "FLINK": "ld90", "F_LIB": None, "F_INC": None,
                   "FFLAGS": ("-fno-" * 12)[:43] + "...", "FLINKFLAGS": "-O3", "RAND": "randdp"}
    assert len(got["FFLAGS"]) == 46  # setparams' limit, as the binary prints it
    assert expected_compile_options("3.4", text)["FC"] is None  # 3.4 reads FC, not F77


def test_npbparams_fixed_and_free_form_give_the_compile_options():
    fixed = "        character*6 cs1\n        parameter (cs1='mpif90')\n        parameter (cs3='(none)')\n"
    free = "      character(len=*), parameter :: cs1 = 'mpif90'\n      character(len=*), parameter :: cs7 = 'randi8'\n"
    assert npbparams_compile_options("3.3", fixed)["F77"] == "mpif90"
    assert npbparams_compile_options("3.3", fixed)["F_LIB"] is None
    assert npbparams_compile_options("3.4", free) == {"FC": "mpif90", "FLINK": None, "F_LIB": None, "F_INC": None,
                                                      "FFLAGS": None, "FLINKFLAGS": None, "RAND": "randi8"}


def test_compile_option_mismatches_name_the_label_and_both_values():
    expected = {"FC": "mpif90", "FLINK": "mpif90", "FFLAGS": "-O3", "RAND": None}
    record = {"fc": "mpif90", "flink": "mpif90", "fflags": "-O2", "rand": None}
    assert compile_option_mismatches(expected, record) == ["FFLAGS = -O2 (the build set -O3)"]
    assert compile_option_mismatches(expected, {**record, "fflags": "-O3"}) == []


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
    assert record["make_def_variables"]["F77"] == str(MPIF90)
    assert (build.path / "make.def").read_text() == record["make_def"]
    # the compiler that really ran: every Fortran compile and link line make printed starts with it
    for target in record["targets"]:
        assert target["compile_command"].startswith(f"{MPIF90} -c ") and "mz_demo.f90" in target["compile_command"]
        assert target["link_command"].startswith(f"{MPIF90} -O3 -fopenmp -o ../bin/mz-demo.S.")
        assert target["compile_options"] == {**record["compile_options"], "RAND": "randi8"}  # npbparams.h
    assert record["compile_options"] == {"F77": PRINTED_FC, "FLINK": PRINTED_FC, "F_LIB": None, "F_INC": None,
                                         "FFLAGS": "-O3 -fopenmp", "FLINKFLAGS": "-O3 -fopenmp", "RAND": None}
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
    assert build.record["make_def_variables"]["FC"] == str(MPIF90)
    assert build.record["compile_options"]["FC"] == PRINTED_FC
    assert build.binary("mz-demo", "S", 7).name == "mz-demo.S.x"


def test_build_creates_bindir_because_git_copies_of_npb_have_none(tmp_path):
    """git stores no empty folder: an NPB tree cloned from git has no bin/, and no NPB makefile makes it."""
    tree = tmp_path / "from-git"
    shutil.copytree(MZDEMO, tree, ignore=shutil.ignore_patterns("bin"))
    assert not (tree / "bin").exists()
    store, build = _build(tmp_path, "3.3", source=tree)
    assert build.record["bin_dir"] == f"{build.record['tree']}/bin"
    assert [b.name for b in build.binaries] == ["mz-demo.S.2"]
    assert not (tree / "bin").exists()


def _make_in_copy(tmp_path: Path, make_def_text: str, *make_args: str):
    """make in a copy of MZ-DEMO with this make.def (and its bin/ made), as a user would by hand."""
    _require_wrapper()
    tree = tmp_path / "tree"
    shutil.copytree(MZDEMO, tree)
    (tree / "config" / "make.def").write_text(make_def_text)
    (tree / "bin").mkdir(exist_ok=True)
    return LocalExecutor().run(f"cd {tree} && make mz-demo CLASS=S " + " ".join(make_args),
                               env=build_env(local_environment()), timeout=300, warn=True), tree


@pytest.mark.parametrize("version, args, missing", [("3.4", ("NPROCS=2",), "F77"), ("3.3", (), "FC")])
def test_mzdemo_refuses_a_make_def_of_the_other_version(tmp_path, version, args, missing):
    result, tree = _make_in_copy(tmp_path, make_def(version, str(MPIF90), "-O3 -fopenmp"), *args)
    assert result.exit_code != 0
    assert f"config/make.def does not set {missing}" in result.stdout + result.stderr
    assert not list((tree / "bin").iterdir())


def test_mzdemo_refuses_the_old_plain_npb_mpi_names(tmp_path):
    old = (f"MPIF77 = {MPIF90}\nFLINK = $(MPIF77)\nFMPI_LIB =\nFMPI_INC =\nFFLAGS = -O3 -fopenmp\n"
           f"FLINKFLAGS = -O3 -fopenmp\nCC = cc -g\nBINDIR = ../bin\nRAND = randi8\n")
    result, _ = _make_in_copy(tmp_path, old, "NPROCS=2")
    assert result.exit_code != 0 and "does not set F77" in result.stdout + result.stderr


def test_mzdemo_does_not_create_bindir(tmp_path):
    result, tree = _make_in_copy(tmp_path, make_def("3.3", str(MPIF90), "-O3 -fopenmp", bindir="../out"),
                                 "NPROCS=2")
    assert result.exit_code != 0 and not (tree / "out").exists()
    assert "../out/mz-demo.S.2" in result.stdout + result.stderr


def test_build_fails_when_make_runs_another_compiler_than_make_def_names(tmp_path):
    tree = tmp_path / "other-compiler"
    shutil.copytree(MZDEMO, tree)
    common = tree / "sys" / "make.common"
    common.write_text(common.read_text().replace("FCOMPILE = $(F77) -c", "FCOMPILE = mpif90 -c"))
    with pytest.raises(BuildError, match=r"ran 'mpif90 -c .*not the compiler make.def names"):
        _build(tmp_path, "3.3", source=tree)


def test_build_fails_when_the_binary_would_print_other_compile_options(tmp_path):
    tree = tmp_path / "other-options"
    shutil.copytree(MZDEMO, tree)
    setparams = tree / "sys" / "setparams.c"
    setparams.write_text(setparams.read_text().replace('"FFLAGS", "FLINKFLAGS"', '"CFLAGS", "FLINKFLAGS"'))
    with pytest.raises(BuildError, match=r"bakes in compile options other than make.def's \(FFLAGS = -O3 "):
        _build(tmp_path, "3.3", source=tree)


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
    assert f"    F77          = {PRINTED_FC}\n" in out  # NPB3.3-MZ's label, the compiler vHPC chose
    record = get_parser("mzdemo").parse(out, "log").records[0]
    assert compile_option_mismatches(build.record["compile_options"], record) == []
    assert record["fc"] == record["flink"] == PRINTED_FC and record["rand"] is None


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


@pytest.mark.mpi
def test_34_binary_runs_any_process_count_and_prints_fc_as_npb34_does(tmp_path):
    store, build = _build(tmp_path, "3.4", nprocs=None)
    runtime = runtime_for(local_environment())
    binary = build.binary("mz-demo", "S", 1)
    argv, env = build_launch(runtime, AppRun("mz-demo", "S", processes=1, threads=1, ppn=1).launch_spec(),
                             [str(binary.file)])
    out = LocalExecutor().run(shell_command(argv), env=env, timeout=120).stdout
    assert f"    FC           = {PRINTED_FC}\n" in out and "    F77 " not in out
    record = get_parser("mzdemo").parse(out, "log").records[0]
    assert record["verified"] is True
    assert compile_option_mismatches(build.record["compile_options"], record) == []


@pytest.mark.mpi
def test_a_compiler_under_a_long_path_is_printed_cut_and_its_runs_still_match_their_build(tmp_path):
    """A checkout 45+ characters deep puts the venv's mpif90 beyond setparams' 46 characters: the binary prints
    it cut ('...'), the build predicts exactly that, and the build-versus-binary check passes."""
    _require_wrapper()
    folder = tmp_path / ("a-deliberately-long-checkout-path-" * 2) / ".venv" / "bin"
    folder.mkdir(parents=True)
    fc = folder / "mpif90"
    fc.symlink_to(MPIF90)
    assert len(str(fc)) > 46
    store = RawStore(tmp_path / "raw")
    spec = NpbSpec(source=MZDEMO, version="3.3", fc=str(fc), fflags="-O3 -fopenmp")
    build = build_npb(LocalExecutor("buildhost"), spec, benchmarks=["mz-demo"], klass="S", nprocs=(2,), campaign="c1",
                      environment="bare", store=store, build_id="long", workdir=str(tmp_path / "work"),
                      env=build_env(local_environment()), timeout=300)
    printed = as_printed(str(fc))
    assert printed.endswith("...") and len(printed) == 46 and build.record["compile_options"]["F77"] == printed
    argv, env = build_launch(runtime_for(local_environment()),
                             AppRun("mz-demo", "S", processes=2, threads=1, ppn=2).launch_spec(),
                             [str(build.binary("mz-demo", "S", 2).file)])
    out = LocalExecutor().run(shell_command(argv), env=env, timeout=120).stdout
    assert f"    F77          = {printed}\n" in out
    record = get_parser("mzdemo").parse(out, "log").records[0]
    assert record["verified"] is True and compile_option_mismatches(build.record["compile_options"], record) == []
