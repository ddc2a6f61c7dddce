"""The network-namespace testbed: real namespaces, bridge, sshd per node, Intel MPI over TCP, tbf shaping.

One 2-node testbed is brought up for this module; other tests build their own
1- or 2-node testbeds under other names. Everything is written to tmp folders
(``paths.TESTBEDS``/``paths.INVENTORIES`` are patched), never into the project.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vhpclib.store import RawStore

from vhpclib import paths
from vhpclib.config import load_inventory
from vhpclib.exceptions import HostUnreachable, InputError, TestbedError
from vhpclib.remote import SshExecutor
from vhpclib.sshd import sshd_available
from vhpclib import testbed as tb
from vhpclib.testbed import lifecycle

NAME = os.environ.get("VHPC_TEST_TESTBED", "pytb")  # the shared testbed of this module


def _need_root() -> None:
    reason = None if os.geteuid() == 0 else "needs root (network namespaces, bridge, tc)"
    reason = reason or sshd_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"testbed tests must run in CI: {reason}")
        pytest.skip(reason)


def _ours(name: str) -> dict[str, list]:
    """Namespaces and links named like testbed ``name``'s, and its recorded sshd PIDs still running."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    prefix = f"vtb-{name}-"
    return {"namespaces": [n for n in names if n.startswith(prefix)],
            "links": [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()
                      if line.split(":")[1].strip().startswith(prefix)]}


def _running(pid: int) -> bool:
    return lifecycle._alive(pid)


@pytest.fixture(scope="module")
def testbed_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Testbed folders and inventories in a tmp folder for this module."""
    base = tmp_path_factory.mktemp("testbed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paths, "TESTBEDS", base / "testbeds")
        mp.setattr(paths, "INVENTORIES", base / "inventories")
        yield base


@pytest.fixture(scope="module")
def testbed(testbed_dirs: Path) -> Iterator[tb.TestbedInfo]:
    """A 2-node unshaped testbed, up once for the module and taken down after it."""
    _need_root()
    tb.down(NAME)  # a crashed earlier session must not make this one fail
    info = tb.up(2, name=NAME)
    try:
        yield info
    finally:
        tb.down(NAME)


def _ssh(info: tb.TestbedInfo, index: int, known_hosts: Path | None = None) -> SshExecutor:
    env = load_inventory(info.inventory).environment("testbed")
    return SshExecutor(env.hosts[index], policy="strict", known_hosts=known_hosts or info.known_hosts,
                       connect_timeout=5)


# ---------------------------------------------------------------- input and privileges (no root needed)

def test_up_refuses_without_root_with_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "_euid", lambda: 1000)
    with pytest.raises(TestbedError, match=r"'testbed up' needs root"):
        tb.up(2, name="pynr")
    with pytest.raises(TestbedError, match=r"needs root"):
        tb.down("pynr")


@pytest.mark.parametrize("name", ["Vhpc", "has-dash", "toolong99", "1abc", ""])
def test_up_rejects_names_that_break_interface_naming(name: str) -> None:
    with pytest.raises(InputError, match="testbed name"):
        tb.up(2, name=name)


def test_rate_must_be_a_bandwidth_and_latency_says_netem_is_absent() -> None:
    assert tb.parse_rate("1gbit") == 1e9 and tb.parse_rate("100Mbit") == 1e8
    with pytest.raises(InputError, match="netem"):
        tb.up(2, name="pyrt", rate="10ms")
    with pytest.raises(InputError, match="rate must be"):
        tb.parse_rate("fast")


# ---------------------------------------------------------------- the running testbed

@pytest.mark.root
@pytest.mark.ssh
def test_each_node_answers_strict_ssh_with_its_own_hostname(testbed: tb.TestbedInfo) -> None:
    seen = []
    for index, node in enumerate(testbed.nodes):
        with _ssh(testbed, index) as host:
            out = host.run("hostname; ip -4 -o addr show dev eth0").stdout.splitlines()
        seen.append(out[0])
        assert out[0] == node.hostname
        assert f"inet {node.address}/24" in out[1]
    assert len(set(seen)) == 2


@pytest.mark.root
@pytest.mark.ssh
def test_strict_host_keys_refuse_a_node_missing_from_known_hosts(testbed: tb.TestbedInfo, tmp_path: Path) -> None:
    only_node2 = tmp_path / "known_hosts"
    only_node2.write_text("".join(line for line in testbed.known_hosts.read_text().splitlines(keepends=True)
                                  if line.startswith(testbed.nodes[1].address + " ")))
    with pytest.raises(HostUnreachable, match="not in known_hosts"):
        _ssh(testbed, 0, only_node2).run("true")
    with _ssh(testbed, 1, only_node2) as host:
        assert host.run("hostname").stdout.strip() == testbed.nodes[1].hostname


@pytest.mark.root
@pytest.mark.ssh
def test_the_written_inventory_passes_its_own_check(testbed: tb.TestbedInfo, tmp_path: Path) -> None:
    from vhpclib.inventory_check import check_inventory

    report = check_inventory(load_inventory(testbed.inventory), None, None, store_root=tmp_path)
    assert report.exit_code == 0 and report.problems() == [], report.problems()
    assert [r.findings for r in report.rows] == [[]] * len(report.rows)


@pytest.mark.root
def test_written_inventory_uses_node1_over_strict_ssh(testbed: tb.TestbedInfo) -> None:
    inv = load_inventory(testbed.inventory)
    env = inv.environment("testbed")
    assert (env.label, env.baseline, env.host_key_policy) == ("testbed", True, "strict")
    assert env.vmm == tb.inventory.machine_vmm(), "the nodes are as virtualized as the machine they are on"
    assert env.known_hosts == testbed.known_hosts
    assert [h.address for h in env.hosts] == testbed.addresses
    assert env.launch_host.address == testbed.nodes[0].address and not env.launch_host.local
    assert all(h.key_file == testbed.client_key and h.user == "root" for h in env.hosts)
    mpi_env = env.mpi.env
    assert mpi_env["I_MPI_HYDRA_IFACE"] == "eth0" and mpi_env["FI_PROVIDER"] == "tcp"
    args = mpi_env["I_MPI_HYDRA_BOOTSTRAP_EXEC_EXTRA_ARGS"]
    assert "StrictHostKeyChecking=yes" in args and f"UserKnownHostsFile={testbed.known_hosts}" in args
    assert f"-i {testbed.client_key}" in args


@pytest.mark.root
def test_status_reports_live_sshd_hostnames_and_link_counters(testbed: tb.TestbedInfo) -> None:
    st = tb.status(NAME)
    assert st.up and st.healthy, st.problems
    assert [n.uts_hostname for n in st.nodes] == [n.hostname for n in testbed.nodes]
    assert all(n.sshd_alive and n.namespace_present and n.tx_bytes is not None for n in st.nodes)
    assert st.bridge == testbed.bridge and st.bridge_present


@pytest.mark.root
@pytest.mark.ssh
@pytest.mark.mpi
def test_inter_node_pingpong_crosses_the_node_link(testbed: tb.TestbedInfo, tmp_path: Path) -> None:
    before = tb.status(NAME).nodes[1].tx_bytes
    records = tb.run_pingpong(testbed.inventory, msglog=(0, 12), iterations=200, store=RawStore(tmp_path))
    assert [r["bytes"] for r in records] == [0] + [2 ** k for k in range(13)]
    assert all(r["repetitions"] == 200 and r["t_avg_usec"] > 0 for r in records)
    # node 2 sent every reply over its eth0: at least the payload of 200 round trips of every size
    sent = tb.status(NAME).nodes[1].tx_bytes - before
    assert sent >= 200 * sum(2 ** k for k in range(13))


@pytest.mark.root
def test_shape_sets_changes_and_removes_the_ceiling_on_every_node(testbed: tb.TestbedInfo) -> None:
    try:
        tb.shape(NAME, "100mbit")
        assert [(n.qdisc, n.rate) for n in tb.status(NAME).nodes] == [("tbf", "100Mbit")] * 2
        tb.shape(NAME, "2gbit")
        assert {n.rate for n in tb.status(NAME).nodes} == {"2Gbit"}
        assert "shaped to 2gbit" in load_inventory(testbed.inventory).environment("testbed").description
    finally:
        tb.shape(NAME, None)
    assert all(n.qdisc not in ("tbf", "htb") for n in tb.status(NAME).nodes)


@pytest.mark.root
@pytest.mark.ssh
@pytest.mark.mpi
def test_shaped_link_caps_pingpong_at_the_rate_and_unshaped_is_far_above(testbed: tb.TestbedInfo,
                                                                          tmp_path: Path) -> None:
    store = RawStore(tmp_path)
    # 5 IMB iterations per size, not the check's 20: 8 MiB messages at ~20 % of 125 MB/s take ~1 s per round trip
    # (two attempts of 20 took 150 s here). Fewer round trips per size average a burst less, never more.
    check = tb.shaped_link_check(NAME, "1gbit", iterations=5, store=store)
    assert check["rate_mb_s"] == 125.0
    # 1 gbit = 125 MB/s: a ceiling at every message size 1 B - 8 MiB, in every attempt (IMB's MB = 10^6 B)
    assert check["msglog"] == [0, 23]
    assert all(p <= 125.0 for p in check["shaped_peaks_mb_s"]), check
    assert check["shaped_ok"] and check["unshaped_ok"], check
    assert check["unshaped_peak_mb_s"] > 2 * 125.0, check
    assert set(check["shaped_by_size_mb_s"]) == {1 << k for k in range(24)}
    # how close bulk transfers come depends on the machine's timer: a strict ceiling releases one small frame
    # per wake-up (late wake-ups are lost link time; 20-40 % of the rate measured here)
    assert check["bulk_mb_s"] >= 125.0 * 0.1, check
    assert tb.status(NAME).rate is None  # the testbed's own (un)shaping is restored
    # Measured through the normal stage: stored runs with a verified pin map on two nodes.
    runs = list(store.runs("linkcheck-1gbit", "testbed", "microbench"))
    assert runs and all(r.record.pinning.verification == "verified" for r in runs)
    assert len({p.node for p in runs[0].record.pinning.pin_map}) == 2


@pytest.mark.root
@pytest.mark.ssh
@pytest.mark.mpi
def test_local_launch_variant_runs_mpirun_in_the_root_namespace(testbed: tb.TestbedInfo, tmp_path: Path) -> None:
    path = tb.write_local_inventory(NAME)
    env = load_inventory(path).environment("testbed")
    assert env.launch_host.local and env.mpi.env["I_MPI_HYDRA_IFACE"] == testbed.bridge
    records = tb.run_pingpong(path, msglog=(0, 2), iterations=20, store=RawStore(tmp_path))
    assert [r["bytes"] for r in records] == [0, 1, 2, 4]


@pytest.mark.root
def test_up_refuses_a_testbed_that_already_exists(testbed: tb.TestbedInfo) -> None:
    with pytest.raises(TestbedError, match="already exists"):
        tb.up(2, name=NAME)
    assert tb.status(NAME).healthy


# ---------------------------------------------------------------- down

@pytest.mark.root
def test_down_removes_namespaces_links_processes_and_files(testbed_dirs: Path) -> None:
    _need_root()
    info = tb.up(2, name="pydn")
    pids = [n.sshd_pid for n in info.nodes]
    assert all(_running(p) for p in pids) and _ours("pydn")["namespaces"]
    removed = tb.down("pydn")
    assert "bridge vtb-pydn-br" in removed and "namespace vtb-pydn-2" in removed
    assert _ours("pydn") == {"namespaces": [], "links": []}
    assert not any(_running(p) for p in pids)
    assert not info.folder.exists() and not info.inventory.exists()
    assert tb.down("pydn") == []  # idempotent


@pytest.mark.root
def test_down_after_a_crash_with_dead_sshds_cleans_up_from_the_state_file(testbed_dirs: Path) -> None:
    _need_root()
    info = tb.up(1, name="pycr")
    lifecycle._servers.pop("pycr")  # a new process: it knows only the state file
    os.kill(info.nodes[0].sshd_pid, signal.SIGKILL)
    time.sleep(0.1)
    assert not tb.status("pycr").up
    removed = tb.down("pycr")
    assert {"namespace vtb-pycr-1", "link vtb-pycr-1", "bridge vtb-pycr-br"} <= set(removed)
    assert _ours("pycr") == {"namespaces": [], "links": []}
    assert not info.folder.exists()


@pytest.mark.root
def test_down_without_state_file_finds_leftovers_by_name_only(testbed_dirs: Path, testbed: tb.TestbedInfo) -> None:
    info = tb.up(1, name="pycr")
    pid = info.nodes[0].sshd_pid
    lifecycle._servers.pop("pycr")
    info.state_file.unlink()
    subprocess.run(["ip", "netns", "add", "vtb-pycrx-1"], check=True)  # same letters, another testbed
    try:
        assert "namespace vtb-pycr-1" in tb.status("pycr").leftovers
        removed = tb.down("pycr")
        assert f"sshd pid {pid}" in removed and "namespace vtb-pycr-1" in removed
        assert not _running(pid)
        assert _ours("pycr") == {"namespaces": [], "links": []}
        assert "vtb-pycrx-1" in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert tb.status(NAME).healthy  # the module's testbed is untouched
    finally:
        subprocess.run(["ip", "netns", "del", "vtb-pycrx-1"], check=False)


@pytest.mark.root
@pytest.mark.ssh
@pytest.mark.mpi
def test_microbench_stage_runs_inter_node_on_the_testbed_inventory(testbed: tb.TestbedInfo, tmp_path: Path) -> None:
    from vhpclib.params import MicrobenchParams
    from vhpclib.parsers import get_parser
    from vhpclib.stages.context import StageContext
    from vhpclib.stages.driver import run_stage
    from vhpclib.store import RawStore

    with StageContext.open(testbed.inventory, "testbed", "tbstage", store=RawStore(tmp_path / "raw")) as ctx:
        result = run_stage(ctx, "microbench", MicrobenchParams(placements=("inter-node",), msglog=(0, 4),
                                                               iterations=20, repetitions=1), progress=False)
    assert result.failures == [] and result.skipped == [] and result.invalid == []
    (run,) = result.runs
    assert run.status == "complete" and run.record.execution.hosts == testbed.addresses[:2]
    assert run.record.execution.launch_host == testbed.nodes[0].hostname
    records = get_parser("imb").parse((run.path / "stdout.log").read_text(), "stdout.log").records
    assert [r["bytes"] for r in records] == [0, 1, 2, 4, 8, 16]


@pytest.mark.root
@pytest.mark.ssh
@pytest.mark.mpi
def test_scaling_stage_runs_blockss_across_two_nodes(testbed: tb.TestbedInfo, tmp_path: Path) -> None:
    from vhpclib.params import AppParams
    from vhpclib.stages.context import StageContext
    from vhpclib.stages.driver import run_stage
    from vhpclib.store import RawStore

    with StageContext.open(testbed.inventory, "testbed", "tbscale", store=RawStore(tmp_path / "raw")) as ctx:
        result = run_stage(ctx, "scaling", AppParams(workloads=("blockss",), blockss_preset="tiny", repetitions=1),
                           progress=False)
    assert result.failures == []
    by_procs = {r.record.point["processes"]: r for r in result.runs}
    # The nodes are namespaces of one machine: 2 ranks spread one per node, each pinned to a core of its own
    # (one MPMD segment per node); 4 ranks would share its 2 cores, so that point is skipped with the reason.
    assert sorted(by_procs) == [1, 2]
    two = by_procs[2].record
    assert "blockss.json" in two.files and two.point["ppn"] == 1 and len(two.execution.hosts) == 2
    segments = two.execution.command.split(" : ")
    assert len(segments) == 2 and "PROCESSOR_LIST 0 " in segments[0] and "PROCESSOR_LIST 1 " in segments[1]
    assert any("share one machine" in s and "core of their own" in s for s in result.skipped), result.skipped


@pytest.mark.root
@pytest.mark.ssh
@pytest.mark.mpi
def test_microbench_inter_node_latency_on_the_testbed_is_microseconds(testbed: tb.TestbedInfo, tmp_path: Path) -> None:
    from vhpclib.params import MicrobenchParams
    from vhpclib.parsers import get_parser
    from vhpclib.stages.context import StageContext
    from vhpclib.stages.driver import run_stage
    from vhpclib.store import RawStore

    with StageContext.open(testbed.inventory, "testbed", "tblat", store=RawStore(tmp_path / "raw")) as ctx:
        (run,) = run_stage(ctx, "microbench", MicrobenchParams(placements=("inter-node",), msglog=(0, 0),
                                                               iterations=50, repetitions=1), progress=False).runs
    # Testbed nodes are namespaces of one machine: the ranks must get distinct cores (else ~4000 us).
    assert [p.cpus for p in run.record.pinning.pin_map] == [[0], [1]]
    zero = get_parser("imb").parse((run.path / "stdout.log").read_text(), "stdout.log").records[0]
    # unpinned, the same link gives 5-20 us (measured on this kind of machine: 4.7-5.7 us)
    assert zero["bytes"] == 0 and zero["t_avg_usec"] < 1000, zero


@pytest.mark.root
def test_failed_up_rolls_back_everything_it_created(testbed_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _need_root()

    def broken(*args, **kwargs):
        raise TestbedError("simulated failure after the sshds started")

    monkeypatch.setattr(lifecycle, "write_known_hosts", broken)
    with pytest.raises(TestbedError, match="rolled back.*simulated failure"):
        tb.up(2, name="pyrb")
    assert _ours("pyrb") == {"namespaces": [], "links": []}
    assert lifecycle._testbed_sshds(paths.TESTBEDS / "pyrb") == []
    assert not (paths.TESTBEDS / "pyrb").exists()


# ---------------------------------------------------------------- the testbed through Slurm

SLURM_NAME = "sltb"


@pytest.fixture(scope="module")
def slurm_testbed(testbed_dirs: Path) -> Iterator[tb.TestbedInfo]:
    """A 2-node testbed with its private Slurm cluster (a slurmd in each namespace node)."""
    _need_root()
    tb.down(SLURM_NAME)
    info = tb.up(2, name=SLURM_NAME, slurm=True)
    try:
        yield info
    finally:
        tb.down(SLURM_NAME)


def _slurm_submit_host(info: tb.TestbedInfo):
    from vhpclib.remote import executor_for

    inv = load_inventory(info.inventory)
    env = inv.environment("slurm")
    return env, executor_for(env.slurm.submit_host, env, inv)


@pytest.mark.root
@pytest.mark.slurm
def test_slurm_testbed_has_a_slurmd_per_node_and_an_inventory_environment_for_it(
        slurm_testbed: tb.TestbedInfo) -> None:
    from vhpclib.slurm import cluster as slurm_cluster

    cluster = slurm_cluster.load_cluster(slurm_testbed.slurm_conf.parent)
    assert [n.name for n in cluster.nodes] == [n.hostname for n in slurm_testbed.nodes]
    assert slurm_cluster.node_states(cluster) == {n.hostname: "idle" for n in slurm_testbed.nodes}
    for node in slurm_testbed.nodes:  # each slurmd lives in its node's network and UTS namespaces
        pid = cluster.pids[f"slurmd:{node.hostname}"]
        assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(f"/proc/{node.sshd_pid}/ns/net")
        assert os.readlink(f"/proc/{pid}/ns/uts") == os.readlink(f"/proc/{node.sshd_pid}/ns/uts")
    env, host = _slurm_submit_host(slurm_testbed)
    assert env.launcher == "slurm" and env.slurm.partition == cluster.partition
    assert env.slurm.slurm_conf == str(slurm_testbed.slurm_conf) and env.slurm.mpi_mode == "srun-pmi2"
    assert env.slurm.submit_host.address == slurm_testbed.nodes[0].address and env.host_key_policy == "strict"
    with host:  # sbatch's view from node 1, over SSH
        assert host.run("hostname").stdout.strip() == slurm_testbed.nodes[0].hostname


@pytest.mark.root
@pytest.mark.ssh
@pytest.mark.mpi
@pytest.mark.slurm
def test_imb_pingpong_across_two_namespace_nodes_through_srun_pmi2(slurm_testbed: tb.TestbedInfo,
                                                                   tmp_path: Path) -> None:
    import sys

    from vhpclib.mpi import SYSTEM_PATH
    from vhpclib.parsers import get_parser
    from vhpclib.parsers.impi_pinmap import parse_pin_map
    from vhpclib.slurm.jobs import run_batch_job
    from vhpclib.slurm.script import BatchJob

    venv = Path(sys.prefix)
    env, host = _slurm_submit_host(slurm_testbed)
    # The namespace nodes share this machine's cores: pin each node's rank to its own core.
    imb = f"{venv}/bin/IMB-MPI1 PingPong -msglog 0:4 -iter 50"
    job = BatchJob(name="imb-internode", program=("bash", "-c", f"exec taskset -c $SLURM_NODEID {imb}"),
                   nodes=2, ntasks_per_node=1, launcher_args=("--cpu-bind=none",),
                   env={"LD_LIBRARY_PATH": f"{venv}/lib", "PATH": f"{venv}/bin:{SYSTEM_PATH}", "I_MPI_DEBUG": "4",
                        "FI_PROVIDER": "tcp", "I_MPI_FABRICS": "ofi"})
    with host:
        result = run_batch_job(host, env.slurm, job, tmp_path / "run")
    assert result.ok, (result.reason, result.stderr_path.read_text()[-2000:])
    assert result.accounting.job.node_list == f"{SLURM_NAME}-node[1-2]" and result.accounting.job.nnodes == 2
    assert result.submit_host == slurm_testbed.nodes[0].hostname
    text = result.stdout_path.read_text()
    pins = parse_pin_map(text)
    assert [(p.node, p.cpus) for p in pins] == [(n.hostname, (i,)) for i, n in enumerate(slurm_testbed.nodes)]
    assert "libfabric provider: tcp" in text
    records = get_parser("imb").parse(text, "stdout.log").records
    assert [r["bytes"] for r in records] == [0, 1, 2, 4, 8, 16]
    assert min(r["t_avg_usec"] for r in records) < 1000  # TCP between namespaces: microseconds, not ms


@pytest.mark.root
@pytest.mark.ssh
@pytest.mark.slurm
def test_both_nodes_are_fingerprinted_by_one_srun_step(slurm_testbed: tb.TestbedInfo, tmp_path: Path) -> None:
    from vhpclib.slurm.node_fingerprints import fingerprint_nodes

    env, host = _slurm_submit_host(slurm_testbed)
    with host:
        facts, job = fingerprint_nodes(host, env.slurm, 2, tmp_path / "run")
    names = [n.hostname for n in slurm_testbed.nodes]
    assert sorted(facts) == names and job.accounting.job.nnodes == 2
    assert [facts[n]["hostname"] for n in names] == names  # each node's own UTS host name
    assert all(facts[n]["topology"] and facts[n]["kernel"] for n in names)
    assert job.script_path.read_text().count("srun ") == 1


@pytest.mark.root
@pytest.mark.slurm
def test_cli_testbed_up_with_slurm_and_down_stop_every_daemon(testbed_dirs: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    from vhpclib.cli import main
    from vhpclib.slurm import cluster as slurm_cluster

    _need_root()
    name = "slcli"
    tb.down(name)
    try:
        assert main(["testbed", "up", "--nodes", "1", "--slurm", "--name", name]) == 0
        out = capsys.readouterr().out
        assert "slurm: SLURM_CONF=" in out
        cluster = slurm_cluster.load_cluster(paths.TESTBEDS / name / "slurm")
        pids = dict(cluster.pids)
        assert load_inventory(paths.INVENTORIES / f"testbed-{name}.yml").environment("slurm").launcher == "slurm"
    finally:
        assert main(["testbed", "down", "--name", name]) == 0
    removed = capsys.readouterr().out
    assert "removed slurm slurmctld" in removed and "removed slurm munged" in removed
    assert not any(lifecycle._alive(pid) for pid in pids.values())
    assert not cluster.munge_folder.exists()
