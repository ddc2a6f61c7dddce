"""Launch construction per MPI flavour: the pinning flags differ, the placement must not."""

from pathlib import Path

import pytest

from vhpclib.config import parse_inventory
from vhpclib.mpi import LaunchSpec, MpiRuntime, build_launch, hostfile_text, runtime_for
from vhpclib.topology import Placement, Skip, choose_placement, parse_lscpu

TWO_SOCKETS = parse_lscpu("".join(f"{c},{c},{c // 4},{c // 4}\n" for c in range(8)))  # 2 x 4 cores (AGC)
ONE_SOCKET = parse_lscpu("0,0,0,0\n1,1,0,0\n")


def runtime(flavour):
    return MpiRuntime(flavour, Path("/opt/mpi"), "/opt/mpi/bin/mpirun", ("--mca", "mpi_leave_pinned", "0")
                      if flavour == "openmpi" else ())


def test_intel_pins_ranks_through_its_processor_list_and_prints_the_map():
    argv, env = build_launch(runtime("intel"), LaunchSpec(2, cpus=(0, 4)), ["IMB-MPI1", "PingPong"])
    assert argv == ["/opt/mpi/bin/mpirun", "-n", "2", "IMB-MPI1", "PingPong"]
    assert env["I_MPI_PIN_PROCESSOR_LIST"] == "0,4" and env["I_MPI_DEBUG"] == "4"
    assert env["I_MPI_FABRICS"] == "shm"


def test_openmpi_pins_with_cpu_set_and_keeps_inventory_options():
    argv, _ = build_launch(runtime("openmpi"), LaunchSpec(2, cpus=(0, 4)), ["IMB-MPI1"])
    assert argv[:3] == ["/opt/mpi/bin/mpirun", "--mca", "mpi_leave_pinned"]
    assert argv[argv.index("--cpu-set") + 1] == "0,4" and "--bind-to" in argv and "--report-bindings" in argv


def test_mpich_pins_with_user_binding():
    argv, _ = build_launch(runtime("mpich"), LaunchSpec(2, cpus=(0, 4)), ["IMB-MPI1"])
    assert argv[argv.index("-bind-to") + 1] == "user:0,4"


@pytest.mark.parametrize("flavour,flag", [("intel", "-env"), ("openmpi", "--cpu-set"), ("mpich", "-bind-to")])
def test_per_host_pinning_is_one_mpmd_segment_per_host(flavour, flag):
    spec = LaunchSpec(2, hosts=("n1", "n2"), host_cpus=(("n1", (0,)), ("n2", (1,))))
    argv, _ = build_launch(runtime(flavour), spec, ["IMB-MPI1", "PingPong"])
    assert argv.count(":") == 1 and argv.count("IMB-MPI1") == 2 and argv.count(flag) == 2


def test_hostfiles_use_each_flavours_format():
    assert hostfile_text("openmpi", ["a", "b"], 4) == "a slots=4\nb slots=4\n"
    assert hostfile_text("intel", ["a", "b"], 4) == "a:4\nb:4\n"


def test_placements_follow_the_topology():
    assert choose_placement("intra-socket", TWO_SOCKETS, ["h"]) == Placement("intra-socket", (0, 1))
    assert choose_placement("inter-socket", TWO_SOCKETS, ["h"]) == Placement("inter-socket", (0, 4))
    assert choose_placement("inter-node", TWO_SOCKETS, ["a", "b"]) == Placement("inter-node", (0, 0), ("a", "b"))
    # Nodes that are namespaces of one machine must not put both ranks on one core.
    assert choose_placement("inter-node", TWO_SOCKETS, ["a", "b"], shared_machine=True).cpus == (0, 1)


def test_impossible_placements_are_skipped_with_a_reason():
    skip = choose_placement("inter-socket", ONE_SOCKET, ["h"])
    assert isinstance(skip, Skip) and "1 socket" in skip.reason
    assert isinstance(choose_placement("inter-node", ONE_SOCKET, ["h"]), Skip)


def test_runtime_defaults_to_this_venvs_intel_mpi_with_its_libraries():
    text = "environments:\n  local:\n    label: local\n    hosts: [{local: true}]\n"
    env = parse_inventory(text).environment("local")
    rt = runtime_for(env)
    assert rt.flavour == "intel" and Path(rt.mpirun).name == "mpirun"
    assert rt.env["LD_LIBRARY_PATH"].endswith("/lib") and rt.env["PATH"].startswith(str(rt.prefix / "bin"))


def test_sysfs_topology_fallback_agrees_with_lscpu():
    import subprocess

    from vhpclib.topology import LSCPU_COMMAND, SYSFS_TOPOLOGY_COMMAND

    run = lambda cmd: subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout  # noqa: E731
    assert parse_lscpu(run(SYSFS_TOPOLOGY_COMMAND)).summary() == parse_lscpu(run(LSCPU_COMMAND)).summary()
