"""Build once, run everywhere: distribution with checksums, run construction and the paper's sweep."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vhpclib import paths
from vhpclib.config import parse_inventory
from vhpclib.workloads.npb import NpbSpec
from vhpclib.exceptions import ChecksumMismatch, InputError, InventoryError
from vhpclib.mpi import MpiRuntime, build_launch, runtime_for, shell_command
from vhpclib.npb import (build_env, build_npb, distribute, install_dir, latest_build, sha256_file, verify_binary,
                         verify_deployment)
from vhpclib.workloads.app_run import AppRun
from vhpclib.workloads.npb import scaling_sweep, sweep_nprocs
from vhpclib.remote import LocalExecutor
from vhpclib.store import RawStore

from npb_helpers import MPIF90, local_environment



def mz_launch(runtime: MpiRuntime, run: AppRun, binary: str, hosts=()) -> tuple[list[str], dict[str, str]]:
    """argv and variables the npb workload launches ``run`` with, on the first ``run.nodes`` hosts."""
    return build_launch(runtime, run.launch_spec(tuple(hosts[:run.nodes])), [binary])


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """One real build of apps/mzdemo (3.3 style, 2 processes) in environment 'bare'."""
    if not MPIF90.exists():
        pytest.fail(f"{MPIF90} is missing: install impi-devel==2021.16.1")
    tmp = tmp_path_factory.mktemp("npbdist")
    spec = NpbSpec(source=paths.APPS / "mzdemo", version="3.3", fc=str(MPIF90))
    return build_npb(LocalExecutor("buildhost"), spec, benchmarks=["mz-demo"], klass="S", nprocs=[2],
                     campaign="c1", environment="bare", store=RawStore(tmp / "raw"), build_id="b1",
                     workdir=str(tmp / "buildwork"), env=build_env(local_environment()), timeout=300)


@pytest.fixture
def node_b(tmp_path):
    """A second 'host': another folder reached through its own executor (the SSH variant uses a real sshd)."""
    return LocalExecutor("node-b"), str(tmp_path / "node-b")


def test_distribute_copies_binary_to_host_and_verifies_it(build, node_b):
    executor, workdir = node_b
    [dep] = distribute(build, [executor], workdir=workdir)
    assert dep.host == "node-b"
    assert dep.path == f"{install_dir(workdir, build)}/mz-demo.S.2"
    assert dep.path.startswith(f"{workdir}/npb/bare/b1/")
    assert sha256_file(dep.path) == build.binaries[0].sha256
    assert os.access(dep.path, os.X_OK)
    assert not [p for p in Path(dep.path).parent.iterdir() if ".partial-" in p.name]
    verify_deployment(executor, dep)  # passes: the copy is the build's


def test_deployment_record_names_binary_checksum_and_build(build, node_b):
    executor, workdir = node_b
    [dep] = distribute(build, [executor], workdir=workdir)
    record = dep.record()
    assert record["binary"] == dep.path and record["binary_host"] == "node-b"
    assert record["sha256"] == build.binaries[0].sha256 and record["size"] == build.binaries[0].size
    assert record["built_in"] == {"environment": "bare", "campaign": "c1", "build_id": "b1",
                                  "build_host": "buildhost"}


def test_redistributing_leaves_a_verified_copy_alone(build, node_b):
    executor, workdir = node_b
    [dep] = distribute(build, [executor], workdir=workdir)
    os.utime(dep.path, (1_000_000, 1_000_000))
    distribute(build, [executor], workdir=workdir)
    assert os.stat(dep.path).st_mtime == 1_000_000


def test_tampered_binary_is_refused_with_host_path_and_both_checksums(build, node_b):
    executor, workdir = node_b
    [dep] = distribute(build, [executor], workdir=workdir)
    with open(dep.path, "ab") as fh:
        fh.write(b"\0")
    found = sha256_file(dep.path)
    with pytest.raises(ChecksumMismatch) as info:
        verify_deployment(executor, dep)
    message = str(info.value)
    for part in ("node-b", dep.path, build.binaries[0].sha256, found):
        assert part in message
    assert (info.value.host, info.value.path, info.value.expected, info.value.found) == \
        ("node-b", dep.path, build.binaries[0].sha256, found)
    distribute(build, [executor], workdir=workdir)  # distributing again repairs it
    verify_deployment(executor, dep)


def test_missing_binary_is_refused(build, node_b):
    executor, workdir = node_b
    with pytest.raises(ChecksumMismatch, match="is missing"):
        verify_binary(executor, f"{workdir}/nothing/mz-demo.S.2", build.binaries[0].sha256)


def test_distribute_refuses_a_tampered_store_copy(build, node_b, tmp_path):
    executor, workdir = node_b
    import dataclasses

    bad_file = tmp_path / "mz-demo.S.2"
    bad_file.write_bytes(build.binaries[0].file.read_bytes() + b"x")
    bad = dataclasses.replace(build, binaries=(dataclasses.replace(build.binaries[0], file=bad_file),))
    with pytest.raises(ChecksumMismatch, match="stored copy"):
        distribute(bad, [executor], workdir=workdir)
    assert not Path(install_dir(workdir, build), "mz-demo.S.2").exists()


def test_latest_build_finds_the_stored_build(build):
    store = RawStore(build.path.parents[3])
    assert latest_build(store, "c1", "bare").build_id == "b1"


@pytest.mark.mpi
def test_binary_built_once_runs_from_another_host(build, node_b):
    executor, workdir = node_b
    [dep] = distribute(build, [executor], workdir=workdir)
    verify_deployment(executor, dep)
    run = AppRun("mz-demo", "S", processes=2, threads=1, ppn=2)
    argv, env = mz_launch(runtime_for(local_environment()), run, dep.path)
    out = executor.run(shell_command(argv), env=env, timeout=120).stdout
    assert " Verification    =                SUCCESSFUL" in out
    assert " Total processes =                         2" in out


def test_a_33_binary_runs_only_the_process_count_it_was_built_for(build):
    assert build.binary("mz-demo", "S", 2).name == "mz-demo.S.2"
    with pytest.raises(InputError, match="no mz-demo class S binary for 4 processes"):
        build.binary("mz-demo", "S", 4)  # a 3.3 binary is baked for 2 processes


# ------------------------------------------------------------------ launch construction and the sweep

def _runtime(flavour: str) -> MpiRuntime:
    return MpiRuntime(flavour, Path("/opt/mpi"), "/opt/mpi/bin/mpirun", env={"PATH": "/opt/mpi/bin:/usr/bin"})


HOSTS = ["n1.example", "n2.example", "n3.example", "n4.example"]


def test_intel_launch_pins_omp_domains_with_ppn():
    argv, env = mz_launch(_runtime("intel"), AppRun("sp-mz", "C", 8, 2, 4), "/w/sp-mz.C.8", HOSTS)
    assert argv[:5] == ["/opt/mpi/bin/mpirun", "-n", "8", "-ppn", "4"]
    assert argv[argv.index("-hosts") + 1] == "n1.example,n2.example"
    assert argv[-1] == "/w/sp-mz.C.8"
    assert env["I_MPI_PIN_DOMAIN"] == "omp"
    assert (env["OMP_NUM_THREADS"], env["OMP_PLACES"], env["OMP_PROC_BIND"]) == ("2", "cores", "close")


def test_openmpi_launch_maps_ppr_with_pe_and_binds_to_core():
    argv, env = mz_launch(_runtime("openmpi"), AppRun("bt-mz", "C", 16, 2, 4), "/w/bt-mz.C.16", HOSTS)
    cmd = " ".join(argv)
    assert "--map-by ppr:4:node:PE=2 --bind-to core" in cmd
    assert "-x OMP_NUM_THREADS" in cmd and env["OMP_NUM_THREADS"] == "2"
    assert argv[argv.index("--host") + 1] == "n1.example:4,n2.example:4,n3.example:4,n4.example:4"


def test_mpich_launch_binds_core_domains():
    argv, env = mz_launch(_runtime("mpich"), AppRun("sp-mz", "C", 4, 2, 4), "/w/sp-mz.C.4", HOSTS)
    assert argv[argv.index("-bind-to") + 1] == "core:2"
    assert argv[argv.index("-hosts") + 1] == "n1.example"
    assert env["OMP_PLACES"] == "cores"


def test_scaling_sweep_is_the_papers_4_to_64_processes_at_2_threads():
    runs = scaling_sweep()
    assert [(r.workload, r.processes) for r in runs] == \
        [(b, p) for b in ("sp-mz", "bt-mz") for p in (4, 8, 16, 32, 64)]
    assert {(r.problem, r.threads, r.ppn) for r in runs} == {("C", 2, 4)}
    assert [r.nodes for r in runs[:5]] == [1, 2, 4, 8, 16]
    assert runs[2].stem == "sp-mz-C-p16-t2"
    assert sweep_nprocs(runs) == [4, 8, 16, 32, 64]


def test_sweep_smaller_than_a_node_uses_one_node():
    [run] = scaling_sweep(["mz-demo"], "S", [2], threads=1, cores_per_node=2)
    assert (run.processes, run.ppn, run.nodes) == (2, 2, 1)
    with pytest.raises(InputError, match="do not fit"):
        scaling_sweep(threads=4, cores_per_node=2)


# ------------------------------------------------------------------ per inventory environment

def test_environment_reusing_a_build_gets_the_builders_binaries(tmp_path):
    from vhpclib.npb.campaign import build_for, build_in_environment, distribute_to_environment

    text = f"""
environments:
  bare:
    label: BMM
    baseline: true
    workdir: {tmp_path}/bare
    hosts: [{{local: true, name: bare-n1}}]
    benchmarks:
      npb: {{source: {paths.APPS / 'mzdemo'}, version: "3.3", fc: {MPIF90}}}
  vm:
    label: VM
    workdir: {tmp_path}/vm
    hosts: [{{local: true, name: vm-n1}}]
    benchmarks:
      npb: {{built_in: bare}}
"""
    inventory = parse_inventory(text)
    store = RawStore(tmp_path / "raw")
    with pytest.raises(InventoryError, match="reuses 'bare'"):
        build_in_environment(inventory, "vm", "c1", benchmarks=["mz-demo"], klass="S", nprocs=[2], store=store)
    built = build_in_environment(inventory, "bare", "c1", benchmarks=["mz-demo"], klass="S", nprocs=[2],
                                 store=store, build_id="b7")
    assert built.build_host == "bare-n1" and built.record["build_dir"].startswith(f"{tmp_path}/bare/")
    assert build_for(inventory, "vm", "c1", store=store).build_id == "b7"
    [dep] = distribute_to_environment(inventory, "vm", build_for(inventory, "vm", "c1", store=store))
    assert dep.host == "vm-n1" and dep.path == f"{tmp_path}/vm/npb/bare/b7/mz-demo.S.2"
    assert dep.record()["built_in"]["environment"] == "bare"
    verify_deployment(LocalExecutor("vm-n1"), dep)
